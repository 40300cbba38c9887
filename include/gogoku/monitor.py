"""Live monitoring of the published predictions: how they turned out, and whether the inputs drifted.

- **Realized skill.** For every published prediction file (`predictions/<date>.parquet`) whose
  targets are now known, the realized forward returns come from the raw cache (adjusted closes, the
  dataset's own target definition), and per horizon: the daily RankIC, its rolling mean, and the
  cumulative top-minus-bottom quintile return (each day's h-session return divided by h, so that
  horizons are on one daily scale), beside the model's walk-forward RankIC (its interval).
- **Drift.** For the features of the recent prediction days (`features/daily/`) against the training
  data of the model that scored them: the population stability index (PSI, ten bins at the training
  deciles) per feature, summarized per feature group, and the missing-data rate per group.
- **Alerts** when the rolling realized RankIC of a horizon stays below a floor for N days in a row,
  or a group's drift (its median feature PSI) exceeds a threshold.

Writes `reports/monitor/<as-of>/` (monitor.json, monitor.md, realized.png) in the data root.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from gogoku.config import Settings
from gogoku.dataset.targets import add_targets
from gogoku.errors import InputError
from gogoku.evaluate.metrics import daily_ic, json_clean
from gogoku.io import atomic_write, write_json_atomic
from gogoku.predict import PREDICTIONS, prediction_files

log = logging.getLogger(__name__)

DAILY_FEATURES = "features/daily"
REPORTS = "reports/monitor"


@dataclass(frozen=True)
class MonitorSettings:
    window: int = 20  # sessions of the rolling RankIC
    floor: float = 0.0  # alert when the rolling RankIC stays below this ...
    floor_days: int = 10  # ... for this many days in a row
    psi_threshold: float = 0.25  # alert when a group's median feature PSI exceeds this
    drift_days: int = 20  # recent prediction days whose features are compared with the training data
    min_names: int = 20
    quantiles: int = 5

    def __post_init__(self) -> None:
        if self.window < 1 or self.floor_days < 1 or self.drift_days < 1 or self.min_names < 2 or self.quantiles < 2:
            raise InputError(f"monitor settings: window, floor_days, drift_days >= 1, min_names, quantiles >= 2 "
                             f"required, got {asdict(self)}")
        if not self.psi_threshold > 0:
            raise InputError(f"--psi-threshold {self.psi_threshold}: expected a positive number")


def psi(expected: np.ndarray, actual: np.ndarray, bins: int = 10, floor: float = 1e-4) -> float:
    """Population stability index of `actual` against `expected`: bins at the expected sample's
    quantiles, sum over bins of (a - e) * ln(a / e) of the two shares (each floored at `floor`).
    NaN when either sample has no finite value."""
    e = np.asarray(expected, dtype=np.float64)
    a = np.asarray(actual, dtype=np.float64)
    e, a = e[np.isfinite(e)], a[np.isfinite(a)]
    if e.size == 0 or a.size == 0:
        return math.nan
    edges = np.unique(np.quantile(e, np.linspace(0, 1, bins + 1)[1:-1]))
    e_share = np.bincount(np.searchsorted(edges, e, side="right"), minlength=edges.size + 1) / e.size
    a_share = np.bincount(np.searchsorted(edges, a, side="right"), minlength=edges.size + 1) / a.size
    e_share, a_share = np.maximum(e_share, floor), np.maximum(a_share, floor)
    return float(np.sum((a_share - e_share) * np.log(a_share / e_share)))


def realized_returns(quotes: pl.DataFrame, horizons: Sequence[int]) -> pl.DataFrame:
    """Code, Date, target_{h}d from daily quotes, as the dataset defines its targets."""
    priced = quotes.select("Code", "Date", "AdjustmentClose").filter(pl.col("AdjustmentClose").is_not_null())
    return add_targets(priced.sort("Code", "Date"), horizons).drop("AdjustmentClose").collect()


def long_short_daily(frame: pl.DataFrame, score: str, target: str, horizon: int, quantiles: int, min_names: int
                     ) -> pl.DataFrame:
    """Date, ls: top minus bottom quantile mean of the h-session return, divided by h."""
    usable = frame.filter(pl.col(score).is_not_null() & pl.col(target).is_not_null())
    bucket = ((pl.col(score).rank("ordinal").over("Date") - 1) * quantiles / pl.len().over("Date")).floor()
    return (
        usable.with_columns(bucket.alias("_q"), pl.len().over("Date").alias("_n"))
        .filter(pl.col("_n") >= min_names)
        .group_by("Date")
        .agg(((pl.col(target).filter(pl.col("_q") == quantiles - 1).mean()
               - pl.col(target).filter(pl.col("_q") == 0).mean()) / horizon).alias("ls"))
        .sort("Date")
    )


def below_floor_streak(values: Sequence[float | None], floor: float) -> int:
    """Days in a row, at the end of `values`, below `floor` (undefined days break the streak)."""
    streak = 0
    for v in reversed(list(values)):
        if v is None or not math.isfinite(v) or v >= floor:
            break
        streak += 1
    return streak


def run_monitor(settings: Settings, monitor: MonitorSettings = MonitorSettings(), asof: dt.date | None = None
                ) -> dict[str, Any]:
    """Realized skill, drift and alerts of everything published so far (see the module docstring)."""
    from gogoku.cache.sources import SourceLoader

    store = settings.store
    files = prediction_files(store)
    if not files:
        raise InputError(f"{store.uri(PREDICTIONS)}: no published predictions to monitor yet")
    preds = pl.concat([pl.read_parquet(store.fetch(f)) for f in files], how="diagonal_relaxed")
    if asof is not None:
        preds = preds.filter(pl.col("Date") <= asof)
    if preds.is_empty():
        raise InputError(f"no predictions dated on or before {asof}")
    horizons = sorted(int(c[len("score_"):-1]) for c in preds.columns if c.startswith("score_") and c.endswith("d"))
    from gogoku.predict import latest_cached_date

    first, last = preds["Date"].min(), preds["Date"].max()
    # Realized returns as far as the cache knows them (the newest predictions' are not known yet).
    known = max(min(last + dt.timedelta(days=45), latest_cached_date(settings)), first)
    with SourceLoader(settings, offline=True) as loader:
        quotes = loader.load("daily_quotes", first, known).frame
    realized = realized_returns(quotes, horizons)
    joined = preds.join(realized, on=["Code", "Date"], how="left")
    skill: dict[str, Any] = {}
    curves: dict[str, pl.DataFrame] = {}
    alerts: list[str] = []
    models = preds["model"].unique().to_list() if "model" in preds.columns else []
    walk_forward = _walk_forward(store, models)
    for h in horizons:
        score, target = f"score_{h}d", f"target_{h}d"
        daily = daily_ic(joined, score, target, min_names=monitor.min_names).select("Date", "rank_ic")
        daily = daily.with_columns(pl.col("rank_ic").rolling_mean(monitor.window, min_samples=1).alias("rolling"))
        ls = long_short_daily(joined, score, target, h, monitor.quantiles, monitor.min_names)
        curve = daily.join(ls, on="Date", how="full", coalesce=True).sort("Date").with_columns(
            pl.col("ls").fill_null(0.0).cum_sum().alias("cum_ls"))
        curves[f"{h}d"] = curve
        streak = below_floor_streak(daily["rolling"].to_list(), monitor.floor)
        skill[f"{h}d"] = {
            "days": daily.height, "rank_ic_mean": _mean(daily["rank_ic"]),
            "rank_ic_rolling": _last(daily["rolling"]), "cum_long_short": _last(curve["cum_ls"]),
            "days_below_floor": streak, "walk_forward": walk_forward.get(f"{h}d"),
        }
        if streak >= monitor.floor_days:
            alerts.append(f"{h}d: rolling {monitor.window}-day realized RankIC below {monitor.floor} for {streak} days "
                          f"(now {_last(daily['rolling']):.4f})")
    drift = _drift(store, models, preds["Date"].unique().sort().to_list()[-monitor.drift_days:])
    for group, figures in drift.get("groups", {}).items():
        if figures["psi_median"] is not None and figures["psi_median"] > monitor.psi_threshold:
            alerts.append(f"drift: feature group {group} median PSI {figures['psi_median']:.3f} > {monitor.psi_threshold}")
    report = json_clean({
        "asof": str(asof or last), "first_prediction": str(first), "last_prediction": str(last),
        "prediction_days": preds["Date"].n_unique(), "models": models, "settings": asdict(monitor),
        "skill": skill, "drift": drift, "alerts": alerts,
        "missing_scores": _missing(preds, horizons),
    })
    return _write_report(store, report, curves)


def _mean(values: pl.Series) -> float | None:
    clean = values.drop_nulls()
    return float(clean.mean()) if clean.len() else None  # type: ignore[arg-type]


def _last(values: pl.Series) -> float | None:
    clean = values.drop_nulls()
    return float(clean[-1]) if clean.len() else None


def _missing(preds: pl.DataFrame, horizons: Sequence[int]) -> dict[str, Any]:
    rows = preds.height
    nulls = {f"{h}d": int(preds[f"score_{h}d"].null_count()) for h in horizons}
    reasons = (preds.filter(pl.col("reason").is_not_null()).group_by("reason").len().sort("len", descending=True)
               .head(5).to_dicts() if "reason" in preds.columns else [])
    return {"rows": rows, "null_scores": nulls, "top_reasons": reasons}


def _model_description(store: Any, model: str) -> dict[str, Any]:
    rel = f"models/{model}/final/model.json"
    return store.read_json(rel) if store.exists(rel) else {}


def _walk_forward(store: Any, models: Sequence[str]) -> dict[str, Any]:
    """The walk-forward figures of the (latest) model that scored the predictions."""
    for model in reversed(list(models)):
        figures = _model_description(store, model).get("walk_forward")
        if figures:
            return figures
    return {}


def _drift(store: Any, models: Sequence[str], days: Sequence[dt.date]) -> dict[str, Any]:
    """PSI and missing rates per feature group: recent daily features against the training data."""
    description = next((d for d in (_model_description(store, m) for m in reversed(list(models))) if d), {})
    dataset = description.get("dataset")
    recent_files = [f"{DAILY_FEATURES}/{description.get('plan', '')}_{d}.parquet" for d in days]
    recent_files = [f for f in recent_files if store.exists(f)]
    if not dataset or not recent_files:
        return {"note": "no training dataset or no daily feature files to compare", "groups": {}}
    from gogoku.dataset.manifest import read_manifest

    try:
        train_path = store.localize(dataset)
        manifest = read_manifest(train_path)
    except InputError as exc:
        return {"note": f"training dataset unavailable: {exc}", "groups": {}}
    features = [f for f in manifest["features"] if f["name"] in set(description.get("features") or [])]
    names = [f["name"] for f in features]
    train = pl.scan_parquet(train_path).select(names).collect()
    if train.height > 200_000:
        train = train.sample(200_000, seed=0)
    recent = pl.concat([pl.read_parquet(store.fetch(f), columns=names) for f in recent_files], how="vertical_relaxed")
    by_group: dict[str, list[tuple[str, float, float, float]]] = {}
    for f in features:
        name = f["name"]
        e, a = train[name].cast(pl.Float64).to_numpy(), recent[name].cast(pl.Float64).to_numpy()
        by_group.setdefault(f["group"], []).append(
            (name, psi(e, a), float(np.mean(~np.isfinite(e))), float(np.mean(~np.isfinite(a)))))
    groups = {}
    for group, rows in by_group.items():
        values = [r[1] for r in rows if math.isfinite(r[1])]
        worst = max(rows, key=lambda r: r[1] if math.isfinite(r[1]) else -1)
        groups[group] = {
            "features": len(rows), "psi_median": float(np.median(values)) if values else None,
            "psi_max": worst[1] if math.isfinite(worst[1]) else None, "psi_max_feature": worst[0],
            "missing_train": float(np.mean([r[2] for r in rows])), "missing_recent": float(np.mean([r[3] for r in rows])),
        }
    return {"dataset": dataset, "recent_days": len(recent_files), "groups": groups}


def _write_report(store: Any, report: dict[str, Any], curves: Mapping[str, pl.DataFrame]) -> dict[str, Any]:
    rel = f"{REPORTS}/{report['asof']}"
    folder = store.local_path(rel)
    folder.mkdir(parents=True, exist_ok=True)
    _plot(curves, report, folder / "realized.png")
    atomic_write(folder / "monitor.md", lambda tmp: tmp.write_text(_table(report)))
    write_json_atomic(report, folder / "monitor.json")
    store.publish_tree(rel, last=["monitor.json"])
    print(_table(report), flush=True)
    for alert in report["alerts"]:
        log.warning("ALERT %s", alert)
    return {"report": store.uri(f"{rel}/monitor.json"), "table": store.uri(f"{rel}/monitor.md"),
            "figure": store.uri(f"{rel}/realized.png"), "alerts": report["alerts"],
            "skill": {h: {k: s[k] for k in ("rank_ic_mean", "rank_ic_rolling", "days")} for h, s in report["skill"].items()}}


def _fmt(x: Any, digits: int = 4) -> str:
    return "-" if x is None or (isinstance(x, float) and not math.isfinite(x)) else (
        f"{x:.{digits}f}" if isinstance(x, float) else str(x))


def _table(report: Mapping[str, Any]) -> str:
    lines = [f"# Monitoring as of {report['asof']}",
             f"predictions {report['first_prediction']} .. {report['last_prediction']} "
             f"({report['prediction_days']} days), models {', '.join(report['models'])}", "",
             "| horizon | days | realized RankIC | rolling | walk-forward RankIC [CI] | cum. long-short | days below floor |",
             "|---|---|---|---|---|---|---|"]
    for h, s in report["skill"].items():
        wf = s.get("walk_forward") or {}
        ci = wf.get("rank_ic_mean_ci") or [None, None]
        lines.append(f"| {h} | {s['days']} | {_fmt(s['rank_ic_mean'])} | {_fmt(s['rank_ic_rolling'])} | "
                     f"{_fmt(wf.get('rank_ic_mean'))} [{_fmt(ci[0])}, {_fmt(ci[1])}] | {_fmt(s['cum_long_short'])} | "
                     f"{s['days_below_floor']} |")
    groups = report["drift"].get("groups") or {}
    if groups:
        lines += ["", "| feature group | features | PSI median | PSI max (feature) | missing train | missing recent |",
                  "|---|---|---|---|---|---|"]
        for g, d in sorted(groups.items()):
            lines.append(f"| {g} | {d['features']} | {_fmt(d['psi_median'], 3)} | {_fmt(d['psi_max'], 3)} "
                         f"({d['psi_max_feature']}) | {_fmt(d['missing_train'], 3)} | {_fmt(d['missing_recent'], 3)} |")
    elif report["drift"].get("note"):
        lines += ["", f"drift: {report['drift']['note']}"]
    lines += ["", "alerts: " + ("; ".join(report["alerts"]) if report["alerts"] else "none")]
    return "\n".join(lines) + "\n"


def _plot(curves: Mapping[str, pl.DataFrame], report: Mapping[str, Any], path: Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12.0, 7.0))
    ax_ic, ax_ls = fig.add_subplot(2, 1, 1), fig.add_subplot(2, 1, 2)
    for i, (h, curve) in enumerate(curves.items()):
        color = f"C{i}"
        ax_ic.plot(curve["Date"].to_list(), curve["rolling"].to_list(), color=color, label=f"{h} rolling realized")
        wf = (report["skill"][h].get("walk_forward") or {}).get("rank_ic_mean")
        if wf is not None:
            ax_ic.axhline(wf, color=color, linestyle=":", linewidth=0.8)
        ax_ls.plot(curve["Date"].to_list(), curve["cum_ls"].to_list(), color=color, label=h)
    ax_ic.axhline(report["settings"]["floor"], color="red", linewidth=0.6)
    ax_ic.set_title("realized RankIC, rolling mean (dotted: walk-forward; red: alert floor)", fontsize=10)
    ax_ls.set_title("cumulative top-minus-bottom quintile return (per day)", fontsize=10)
    for ax in (ax_ic, ax_ls):
        ax.legend(fontsize=8)
    FigureCanvasAgg(fig)
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight"))
