"""Which of the simulator's planted signal families a model captures (simulator data only).

The simulator's truth splits the next session's expected return into one part per family
(`contrib_{family}_1d`: reversal, momentum, quality, leadlag, pead, margin, flow). Per horizon h:
- the family oracle: the mean daily RankIC of `contrib_{f}_1d` against `target_{h}d`, with its
  block-bootstrap interval: what a model that knew family f exactly, and nothing else, would score;
- a model's exposure to f: the mean daily rank correlation of its `pred_{h}d` with `contrib_{f}_1d`,
  i.e. how much of its ranking follows f. The full oracle's own exposure (`exp_ret_{h}d` against
  each part) is the reference: a model that captured the planted signal exactly would match it.
A model with low exposure to a family whose family oracle is strong is leaving that signal unused
(e.g. the peer lead-lag family, which only a model looking across stocks can use).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl

from gogoku.evaluate.metrics import Bootstrap, daily_ic, ic_intervals, ic_summary

PREFIX, SUFFIX = "contrib_", "_1d"


def families_of(joined: pl.DataFrame) -> list[str]:
    """The families whose parts the truth joined to `joined` carries, in the truth's order."""
    return [c[len(PREFIX):-len(SUFFIX)] for c in joined.columns if c.startswith(PREFIX) and c.endswith(SUFFIX)]


def _mean_rank_corr(joined: pl.DataFrame, a: str, b: str, min_names: int) -> float:
    value = ic_summary(daily_ic(joined, a, b, min_names=min_names)).get("rank_ic_mean", math.nan)
    return float(value) if value is not None else math.nan


def family_oracles(joined: pl.DataFrame, horizons: Sequence[int], bootstrap: Bootstrap | None,
                   min_names: int = 20) -> dict[str, dict[str, dict[str, Any]]]:
    """{"5d": {family: {"rank_ic_mean", "rank_ic_mean_ci"}}}: each family's part alone as the predictor."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for h in horizons:
        per_family = {}
        for f in families_of(joined):
            daily = daily_ic(joined, f"{PREFIX}{f}{SUFFIX}", f"target_{h}d", min_names=min_names)
            entry: dict[str, Any] = {"rank_ic_mean": ic_summary(daily).get("rank_ic_mean", math.nan)}
            if bootstrap is not None:
                entry["rank_ic_mean_ci"] = ic_intervals(daily, h, bootstrap)["rank_ic_mean_ci"]
            per_family[f] = entry
        out[f"{h}d"] = per_family
    return out


def exposures(joined: pl.DataFrame, horizons: Sequence[int], min_names: int = 20,
              column: str = "pred_{h}d") -> dict[str, dict[str, float]]:
    """{"5d": {family: mean daily rank correlation of `column` (formatted with h) with the family's part}}."""
    return {f"{h}d": {f: _mean_rank_corr(joined, column.format(h=h), f"{PREFIX}{f}{SUFFIX}", min_names)
                      for f in families_of(joined)}
            for h in horizons}


def format_families(section: Mapping[str, Any]) -> str:
    """The markdown table of an evaluation's `families` section: per horizon and family, the family
    oracle's RankIC [CI] and every model's exposure (the full oracle's first)."""
    oracles, exposure = section["family_oracle"], section["exposure"]
    labels = list(exposure)
    head = ["horizon", "family", "family oracle RankIC [95% CI]", *(f"exposure: {label}" for label in labels)]
    rows = []
    for h, per_family in oracles.items():
        for f, entry in per_family.items():
            ci = entry.get("rank_ic_mean_ci")
            ci_text = f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci and None not in ci else ""
            rows.append([h, f, _fmt(entry.get("rank_ic_mean")) + ci_text,
                         *(_fmt(exposure[label].get(h, {}).get(f)) for label in labels)])
    return "\n".join([
        "Signal families (simulator truth): the family oracle ranks by one family's planted part alone; "
        "exposure = mean daily rank correlation of a model's prediction with that part.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "|".join("---" for _ in head) + "|",
        *("| " + " | ".join(row) + " |" for row in rows),
    ])


def _fmt(x: Any) -> str:
    return f"{x:.3f}" if isinstance(x, (int, float)) and math.isfinite(x) else "-"
