"""Facts that the core package and the Airflow layer share, in one leaf module (standard library
only, no other gogoku import), so that DAG files may import it at parse time for the price of a
few tuples.

- the J-Quants plan tiers in price order and the cheapest tier that may call each source;
- the sources the DAGs fetch (the dataset's inputs);
- LOOKBACK_DAYS: the calendar days of history a dataset build (or the daily features of one day)
  reads before its first day. Every feature of a day reads less than that (gogoku.features.memory:
  a year and two quarters for the statements' year-over-year growth, 400 days for everything else).
"""

from __future__ import annotations

PLAN_TIERS: tuple[str, ...] = ("free", "light", "standard", "premium")
DEFAULT_PLAN_TIER = "standard"
LOOKBACK_DAYS = 620

# The cheapest tier that may call each J-Quants source; every dearer tier may call it too
# (gogoku.jquants.endpoints describes each endpoint with the same plans; a test keeps them equal).
MINIMUM_PLAN: dict[str, str] = {
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
SOURCES: tuple[str, ...] = (
    "daily_quotes", "statements", "listed_info", "trading_calendar", "announcement", "topix", "trades_spec",
    "weekly_margin_interest", "daily_margin_interest", "short_selling", "short_selling_positions",
    "index_option", "futures",
)


def plans_from(minimum: str) -> frozenset[str]:
    """The tiers at or above `minimum`."""
    return frozenset(PLAN_TIERS[PLAN_TIERS.index(minimum):])


def cheapest(plans: frozenset[str] | set[str]) -> str:
    """The cheapest tier among `plans`."""
    return next(p for p in PLAN_TIERS if p in plans)


def plan_allows(plan: str, source: str) -> bool:
    return PLAN_TIERS.index(plan) >= PLAN_TIERS.index(MINIMUM_PLAN[source])


def sources_for_plan(plan: str, sources: tuple[str, ...] = SOURCES) -> list[str]:
    """The members of `sources` that `plan` may fetch, in the given order."""
    return [s for s in sources if plan_allows(plan, s)]
