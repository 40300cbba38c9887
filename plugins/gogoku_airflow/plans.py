"""J-Quants plan tiers and the sources each tier may fetch (J-Quants "Plans": free < light < standard < premium).

Mirrors `gogoku.jquants.endpoints` (a test keeps the two equal) so that DAG files can branch on the
plan without importing the core package at parse time.
"""

from __future__ import annotations

PLAN_TIERS = ("free", "light", "standard", "premium")
DEFAULT_PLAN_TIER = "standard"
# Calendar days of history a dataset build reads before its start (as `gogoku dataset build`).
LOOKBACK_DAYS = 420

# The cheapest tier that may call each J-Quants source; every dearer tier may call it too.
MINIMUM_PLAN = {
    "daily_quotes": "free",
    "statements": "free",
    "listed_info": "free",
    "trading_calendar": "free",
    "announcement": "free",
    "topix": "light",
    "trades_spec": "light",
    "weekly_margin_interest": "standard",
    "daily_margin_interest": "standard",
    "short_selling": "standard",
    "short_selling_positions": "standard",
    "index_option": "standard",
    "indices": "standard",
    "futures": "premium",
    "options": "premium",
    "prices_am": "premium",
    "breakdown": "premium",
    "dividend": "premium",
}
# The sources the DAGs fetch: the dataset's inputs (the other endpoints feed no feature yet).
SOURCES = (
    "daily_quotes", "statements", "listed_info", "trading_calendar", "announcement", "topix", "trades_spec",
    "weekly_margin_interest", "daily_margin_interest", "short_selling", "short_selling_positions",
    "index_option", "futures",
)


def plan_allows(plan: str, source: str) -> bool:
    return PLAN_TIERS.index(plan) >= PLAN_TIERS.index(MINIMUM_PLAN[source])


def sources_for_plan(plan: str, sources: tuple[str, ...] = SOURCES) -> list[str]:
    """The members of `sources` that `plan` may fetch, in the given order."""
    return [s for s in sources if plan_allows(plan, s)]
