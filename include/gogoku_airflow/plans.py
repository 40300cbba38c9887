"""J-Quants plan tiers and the sources each tier may fetch, for the DAGs: the core package's leaf
module `gogoku.contracts` (standard library only, cheap at parse time) is their one home."""

from __future__ import annotations

from gogoku.contracts import (
    DEFAULT_PLAN_TIER,
    LOOKBACK_DAYS,
    MINIMUM_PLAN,
    PLAN_TIERS,
    SOURCES,
    plan_allows,
    sources_for_plan,
)

__all__ = ["DEFAULT_PLAN_TIER", "LOOKBACK_DAYS", "MINIMUM_PLAN", "PLAN_TIERS", "SOURCES", "plan_allows",
           "sources_for_plan"]
