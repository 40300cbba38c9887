"""PNG figures of an evaluation: cumulative long-short return, RankIC by horizon, IC decay.

Drawn with matplotlib's object API on the Agg canvas (no pyplot state, no display needed) and
written atomically.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import polars as pl
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from gogoku.errors import InputError
from gogoku.io import atomic_write

# series[model][horizon] -> frame; horizons as "5d" keys.
PerModel = Mapping[str, Mapping[str, pl.DataFrame]]


def _save(fig: Figure, path: Path) -> Path:
    FigureCanvasAgg(fig)
    return atomic_write(Path(path), lambda tmp: fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight"))


def _grid(n: int) -> tuple[int, int]:
    cols = min(n, 2)
    return math.ceil(n / cols), cols


def _horizons(series: PerModel) -> list[str]:
    found = {h for per_h in series.values() for h in per_h}
    return sorted(found, key=lambda h: int(h.rstrip("d")))


def plot_cumulative_long_short(series: PerModel, path: Path) -> Path:
    """One panel per horizon, one line per model: the summed return of the staggered long-short
    book (`Date`, `gross`, `net` per rebalance period, as `cumulative_long_short` gives), gross
    solid and net of costs dashed."""
    horizons = _horizons(series)
    if not horizons:
        raise InputError("plot_cumulative_long_short: no series to draw")
    rows, cols = _grid(len(horizons))
    fig = Figure(figsize=(6.4 * cols, 3.8 * rows))
    for i, h in enumerate(horizons):
        ax = fig.add_subplot(rows, cols, i + 1)
        for j, (model, per_h) in enumerate(series.items()):
            frame = per_h.get(h)
            if frame is None or frame.is_empty():
                continue
            color = f"C{j}"
            dates = frame["Date"].to_list()
            ax.plot(dates, frame["gross"].cum_sum().to_list(), color=color, label=f"{model} gross")
            ax.plot(dates, frame["net"].cum_sum().to_list(), color=color, linestyle="--", label=f"{model} net")
        ax.axhline(0.0, color="grey", linewidth=0.6)
        ax.set_title(f"long-short {h}: staggered non-overlapping books", fontsize=10)
        ax.set_ylabel("cumulative return (summed)")
        ax.legend(fontsize=7)
        ax.tick_params(axis="x", labelrotation=30, labelsize=7)
    return _save(fig, path)


def plot_rank_ic_by_horizon(points: Mapping[str, Sequence[tuple[int, float, float | None, float | None]]], path: Path) -> Path:
    """Mean daily RankIC per horizon with its bootstrap interval, one series per model:
    points[model] = [(horizon_days, mean, low, high), ...]."""
    if not any(points.values()):
        raise InputError("plot_rank_ic_by_horizon: no points to draw")
    fig = Figure(figsize=(7.0, 4.2))
    ax = fig.add_subplot(1, 1, 1)
    horizons = sorted({p[0] for pts in points.values() for p in pts})
    x_of = {h: i for i, h in enumerate(horizons)}
    width = 0.8 / max(len(points), 1)
    for j, (model, pts) in enumerate(points.items()):
        xs = [x_of[p[0]] - 0.4 + width * (j + 0.5) for p in pts]
        means = [p[1] for p in pts]
        low = [p[1] - p[2] if p[2] is not None else 0.0 for p in pts]
        high = [p[3] - p[1] if p[3] is not None else 0.0 for p in pts]
        ax.bar(xs, means, width=width, color=f"C{j}", label=model)
        ax.errorbar(xs, means, yerr=[low, high], fmt="none", ecolor="black", capsize=3, linewidth=1)
    ax.set_xticks(range(len(horizons)), [f"{h}d" for h in horizons])
    ax.axhline(0.0, color="grey", linewidth=0.6)
    ax.set_xlabel("horizon")
    ax.set_ylabel("mean daily RankIC (95% block-bootstrap CI)")
    ax.set_title("RankIC by horizon, test folds")
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_ic_decay(decay: PerModel, path: Path) -> Path:
    """One panel per model, one line per horizon's prediction: mean RankIC against the one-session
    return realized k sessions later (`lag`, `rank_ic_mean`)."""
    models = [m for m, per_h in decay.items() if any(not f.is_empty() for f in per_h.values())]
    if not models:
        raise InputError("plot_ic_decay: no decay curves to draw")
    rows, cols = _grid(len(models))
    fig = Figure(figsize=(6.4 * cols, 3.8 * rows))
    for i, model in enumerate(models):
        ax = fig.add_subplot(rows, cols, i + 1)
        per_h = decay[model]
        for j, h in enumerate(sorted(per_h, key=lambda k: int(k.rstrip("d")))):
            frame = per_h[h]
            ax.plot(frame["lag"].to_list(), frame["rank_ic_mean"].to_list(), marker="o", markersize=3,
                    color=f"C{j}", label=f"pred {h}")
        ax.axhline(0.0, color="grey", linewidth=0.6)
        ax.set_title(f"IC decay: {model}")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_xlabel("lag k (return from session t+k-1 to t+k)")
        ax.set_ylabel("mean daily RankIC")
        ax.legend(fontsize=7)
    return _save(fig, path)


def plot_family_exposure(exposure: Mapping[str, Mapping[str, Mapping[str, float]]], path: Path) -> Path:
    """One panel per horizon: a heatmap of each model's exposure (mean daily rank correlation of its
    prediction with a planted family's part) per family; exposure[model][horizon][family]."""
    models = list(exposure)
    horizons = sorted({h for per_h in exposure.values() for h in per_h}, key=lambda h: int(h.rstrip("d")))
    if not models or not horizons:
        raise InputError("plot_family_exposure: no exposures to draw")
    families = list(next(iter(exposure[models[0]].values())))
    rows, cols = _grid(len(horizons))
    fig = Figure(figsize=(1.1 * len(families) * cols + 2.5, (0.45 * len(models) + 1.6) * rows))
    for i, h in enumerate(horizons):
        ax = fig.add_subplot(rows, cols, i + 1)
        grid = [[exposure[m].get(h, {}).get(f, math.nan) for f in families] for m in models]
        image = ax.imshow(grid, cmap="RdBu_r", vmin=-1.0, vmax=1.0, aspect="auto")
        for r, values in enumerate(grid):
            for c, value in enumerate(values):
                if value == value:
                    ax.text(c, r, f"{value:.2f}", ha="center", va="center", fontsize=7)
        ax.set_xticks(range(len(families)), families, rotation=30, fontsize=8)
        ax.set_yticks(range(len(models)), models, fontsize=8)
        ax.set_title(f"{h}: rank correlation with each planted family", fontsize=9)
        fig.colorbar(image, ax=ax, fraction=0.03)
    return _save(fig, path)
