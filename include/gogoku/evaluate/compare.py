"""Does a candidate model beat the champion? Judged on the same test rows, never on anything else.

Both runs' walk-forward test predictions are restricted to the (Code, Date) rows both scored (the
same test folds when they share a dataset; the overlap of their test spans otherwise). Per horizon:
the daily RankIC of each model on those rows, the candidate's minus the champion's, its mean and a
moving-block bootstrap interval (paired by date, blocks of max(block_length, h) days, as every
interval of the evaluation). The candidate beats the champion on a horizon when the interval's
lower bound is above the configured margin, i.e. it is better by more than the margin, beyond noise;
it is promoted when it beats on every horizon and the overlap holds enough days.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from gogoku.evaluate.metrics import Bootstrap, block_bootstrap_ci, daily_ic
from gogoku.evaluate.runs import load_test_rows

DEFAULT_MIN_DAYS = 40


def compare_runs(
    candidate: Path | pl.DataFrame,
    champion: Path | pl.DataFrame,
    horizons: Sequence[int],
    margins: Mapping[int, float],
    bootstrap: Bootstrap | None = None,
    min_days: int = DEFAULT_MIN_DAYS,
    min_names: int = 20,
) -> dict[str, Any]:
    """The comparison of two runs (see the module docstring): per-horizon figures, `beats`. Each run is
    its model folder, or its test rows already loaded (`gogoku.evaluate.runs.load_test_rows`)."""
    cand, champ = (run if isinstance(run, pl.DataFrame) else load_test_rows(run) for run in (candidate, champion))
    bootstrap = bootstrap or Bootstrap()
    missing = [f"pred_{h}d" for h in horizons if f"pred_{h}d" not in champ.columns or f"pred_{h}d" not in cand.columns]
    if missing:
        return {"beats": False, "reason": f"the runs do not both predict {missing}", "horizons": {}, "common_days": 0}
    common = cand.join(champ.select("Code", "Date", *(f"pred_{h}d" for h in horizons)), on=["Code", "Date"],
                       suffix="_champion")
    days = common["Date"].n_unique()
    figures: dict[str, Any] = {}
    for h in horizons:
        a = daily_ic(common, f"pred_{h}d", f"target_{h}d", min_names=min_names).select("Date", "rank_ic")
        b = daily_ic(common, f"pred_{h}d_champion", f"target_{h}d", min_names=min_names).select("Date", "rank_ic")
        paired = a.join(b, on="Date", suffix="_champion").drop_nulls().sort("Date")
        diff = (paired["rank_ic"] - paired["rank_ic_champion"]).to_numpy()
        lo, hi = block_bootstrap_ci(diff, lambda x: x.mean(axis=1), max(bootstrap.block_length, h), bootstrap)
        margin = float(margins.get(h, 0.0))
        figures[f"{h}d"] = {
            "days": int(len(diff)),
            "candidate_rank_ic": _mean(paired["rank_ic"]), "champion_rank_ic": _mean(paired["rank_ic_champion"]),
            "difference": float(diff.mean()) if len(diff) else None,
            "difference_ci": [_finite(lo), _finite(hi)], "margin": margin,
            "beats": bool(len(diff) >= min_days and math.isfinite(lo) and lo > margin),
        }
    if days < min_days:
        reason = f"only {days} common test days (at least {min_days} needed): not comparable"
        beats = False
    else:
        beats = all(f["beats"] for f in figures.values())
        lost = [h for h, f in figures.items() if not f["beats"]]
        reason = ("better beyond the margin on every horizon" if beats
                  else f"not better beyond the margin on {', '.join(lost)}")
    return {"beats": beats, "reason": reason, "common_days": int(days), "horizons": figures,
            "level": bootstrap.level}


def _mean(values: pl.Series) -> float | None:
    return float(values.mean()) if values.len() else None  # type: ignore[arg-type]


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def margins_from(config: Mapping[str, Any] | None, horizons: Sequence[int]) -> dict[int, float]:
    """Per-horizon margins from a `promotion.margin` setting: a number for every horizon or a mapping
    of horizon (1 or "1d") to number; absent horizons get 0."""
    value = (config or {}).get("margin", 0.0)
    if isinstance(value, Mapping):
        parsed = {int(str(k).rstrip("d")): float(v) for k, v in value.items()}
        return {h: parsed.get(h, 0.0) for h in horizons}
    return dict.fromkeys(horizons, float(value))
