"""J-Quants plan tiers and the sources each tier may fetch (J-Quants "Plans": free < light < standard < premium).

Mirrors `gogoku.jquants.endpoints` (a test keeps the two equal) so that DAG files can branch on the
plan without importing the core package at parse time.
"""

from __future__ import annotations

PLAN_TIERS = ("free", "light", "standard", "premium")
DEFAULT_PLAN_TIER = "standard"

# The cheapest tier that may call each source; every dearer tier may call it too.
MINIMUM_PLAN = {
    "daily_quotes": "free",
    "statements": "free",
    "listed_info": "free",
    "trading_calendar": "free",
    "topix": "light",
    "futures": "premium",
}
SOURCES = tuple(MINIMUM_PLAN)


def plan_allows(plan: str, source: str) -> bool:
    return PLAN_TIERS.index(plan) >= PLAN_TIERS.index(MINIMUM_PLAN[source])


def sources_for_plan(plan: str, sources: tuple[str, ...] = SOURCES) -> list[str]:
    """The members of `sources` that `plan` may fetch, in the given order."""
    return [s for s in sources if plan_allows(plan, s)]
