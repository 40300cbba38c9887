"""The feature groups of the J-Quants families other than prices, wired for the dataset build.

`family_adders` gives the dataset build an adder for every group whose source the plan includes and
the caller supplied with rows; a group whose source the plan lacks, or whose frame is missing or
empty, is skipped and listed with the reason (the manifest's `absent_groups`). The correlation graph
(gogoku.features.peer_graph) comes from the quotes and is added by the build itself.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping

import polars as pl

from gogoku.errors import InputError
from gogoku.features import daily_margin, earnings, flow, margin, options, short_selling
from gogoku.jquants.endpoints import endpoint, minimum_plan

log = logging.getLogger(__name__)

Frame = pl.DataFrame | pl.LazyFrame

# group -> (source, required columns, feature names)
FAMILY_GROUPS: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "flow": ("trades_spec", flow.REQUIRED, flow.FLOW_FEATURES),
    "margin": ("weekly_margin_interest", margin.REQUIRED, margin.MARGIN_FEATURES),
    "daily_margin": ("daily_margin_interest", daily_margin.REQUIRED, daily_margin.DMI_FEATURES),
    "short_selling": ("short_selling", short_selling.SECTOR_REQUIRED, short_selling.SHORT_SELLING_FEATURES),
    "short_positions": ("short_selling_positions", short_selling.POSITION_REQUIRED, short_selling.POSITION_FEATURES),
    "earnings": ("announcement", earnings.REQUIRED, earnings.EARNINGS_FEATURES),
    "options": ("index_option", options.REQUIRED, options.OPTION_FEATURES),
}
FAMILY_SOURCES: tuple[str, ...] = tuple(s for s, _, _ in FAMILY_GROUPS.values())


def _plans_text(source: str) -> str:
    return minimum_plan(source) + "+"


def family_adders(
    sources: Mapping[str, Frame | None],
    *,
    plan: str,
    listed: pl.LazyFrame | None = None,
    since: dt.date | None = None,
) -> tuple[list[tuple[str, tuple[str, ...], Callable[[pl.LazyFrame], pl.LazyFrame]]], dict[str, str]]:
    """The family groups to add: ([(group, feature names, adder(lf) -> lf)], groups absent with why).

    Each adder needs only the (Code, Date) rows with MarketCode, Sector33Code and AdjustmentVolume,
    so that the dataset build can run each one on a narrow frame. Records dated before `since` are
    ignored, so that a dataset does not depend on how much extra history was passed (their z-score
    windows start at the same point as the quotes').
    """
    found: list[tuple[str, tuple[str, ...], Callable[[pl.LazyFrame], pl.LazyFrame]]] = []
    absent: dict[str, str] = {}
    adders: dict[str, Callable[[pl.LazyFrame, pl.LazyFrame], pl.LazyFrame]] = {
        "flow": flow.add_flow_features,
        "margin": lambda x, s: margin.add_margin_features(x, s, listed),
        "daily_margin": daily_margin.add_daily_margin_features,
        "short_selling": short_selling.add_short_selling_features,
        "short_positions": short_selling.add_position_features,
        "earnings": earnings.add_earnings_features,
        "options": options.add_option_features,
    }
    for group, (source, required, names) in FAMILY_GROUPS.items():
        frame = sources.get(source)
        if plan not in endpoint(source).plans:
            absent[group] = f"{source} needs the {_plans_text(source)} plan (plan {plan})"
            continue
        if frame is None:
            absent[group] = f"no {source} data given"
            continue
        src = frame.lazy()
        missing = [c for c in required if c not in src.collect_schema()]
        if missing:
            raise InputError(f"{source}: missing column(s) {', '.join(missing)}")
        if since is not None:
            src = src.filter(pl.col(endpoint(source).date_column) >= since)
        if src.select(pl.len()).collect().item() == 0:
            absent[group] = f"{source} is empty for the range"
            continue
        found.append((group, names, lambda x, f=adders[group], s=src: f(x, s)))
    return found, absent
