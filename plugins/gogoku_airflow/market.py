"""The market date of a scheduled run and the cache refresh window it covers.

The 08:00 Asia/Tokyo schedule fires at 23:00 UTC the day before, so the market date is the Tokyo
date of the run, never the UTC `ds`. At 08:00 the day's session has not opened, so a run refreshes
up to the previous business day: asking the API for today would record an empty day as covered.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from gogoku_airflow.params import parse_date


def refresh_window(moment: dt.datetime, date_override: str | None, window_days: int) -> dict[str, Any] | None:
    """{market_date, start, end} for a run at `moment` (or on `date_override`); None off business days."""
    from gogoku.calendar import is_business_day, previous_business_day, tokyo_date

    market_date = parse_date("date", date_override) if date_override else tokyo_date(moment)
    if not is_business_day(market_date):
        return None
    end = previous_business_day(market_date)
    return {
        "market_date": market_date.isoformat(),
        "start": (end - dt.timedelta(days=window_days)).isoformat(),
        "end": end.isoformat(),
    }
