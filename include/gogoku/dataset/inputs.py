"""The raw inputs of a feature build, read through the cache: one place for what a build needs.

A build of [start, end] reads every source its plan includes from `start - lookback_days` (the
history the longest feature windows need) to `end`. `gogoku dataset build`, `gogoku features daily`
(the day's features for a prediction) and `gogoku features futures` all read through here.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from gogoku.contracts import LOOKBACK_DAYS
from gogoku.errors import InputError

log = logging.getLogger(__name__)

# Calendar days of history read before a build's start so that 60/120/200/252-session windows are warm.
# The sources every build reads (by the plan); the family sources feed the optional groups.
CORE_SOURCES = ("trading_calendar", "listed_info", "daily_quotes", "topix", "statements")


@dataclass
class BuildInputs:
    """Raw frames by source (None where the plan lacks the source) and the family frames."""

    frames: dict[str, pl.DataFrame | None] = field(default_factory=dict)
    family: dict[str, pl.DataFrame | None] = field(default_factory=dict)


def load_inputs(loader: Any, plan: str, history_start: dt.date, end: dt.date, *, offline: bool,
                skip: tuple[str, ...] = ()) -> BuildInputs:
    """Every source of `plan` for [history_start, end] through the loader (a cache.sources.SourceLoader).
    Offline, a family source missing from the cache is left out (its group is then listed as absent);
    a core source missing is an error naming the refresh to run."""
    from gogoku.features.family_groups import FAMILY_SOURCES
    from gogoku.jquants.endpoints import endpoint

    inputs = BuildInputs(dict.fromkeys(CORE_SOURCES), dict.fromkeys(FAMILY_SOURCES))
    for source in CORE_SOURCES:
        if plan in endpoint(source).plans and source not in skip:
            inputs.frames[source] = loader.load(source, history_start, end).frame
    for source in FAMILY_SOURCES:
        if plan in endpoint(source).plans and source not in skip:
            try:
                inputs.family[source] = loader.load(source, history_start, end).frame
            except InputError as exc:
                if not offline:
                    raise
                log.warning("%s skipped: %s", source, exc)
    return inputs


def futures_inputs_features(loader: Any, start: dt.date, end: dt.date, lookback_days: int = LOOKBACK_DAYS) -> pl.DataFrame:
    """The premium futures features per date for [start, end] from the cached futures, TOPIX and
    index options (the Nikkei 225 close for NK225F's basis is the options' underlying price)."""
    from gogoku.features.futures import futures_features, nk225_spot

    history = start - dt.timedelta(days=lookback_days)
    fut = loader.load("futures", history, end).frame
    topix = loader.load("topix", history, end).frame
    options = loader.load("index_option", history, end).frame
    return futures_features(fut, topix=topix, start=start, end=end, spots={"NK225F": nk225_spot(options)})
