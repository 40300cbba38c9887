"""The market date of a scheduled run and the cache refresh window it covers.

The 08:00 Asia/Tokyo schedule fires at 23:00 UTC the day before, so the market date is the Tokyo
date of the run, never the UTC `ds`. At 08:00 the day's session has not opened, so a run refreshes
up to the previous business day: asking the API for today would record an empty day as covered.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from gogoku_airflow.params import parse_date

log = logging.getLogger("airflow.task")


def closed_reason(day: dt.date) -> str:
    """Why the exchange is closed on `day`: "weekend", or the holiday's name from the offline JPX
    calendar (exchange_calendars' XTKS), e.g. "holiday: Coming of Age Day"."""
    if day.weekday() >= 5:
        return "weekend"
    try:
        import re

        import exchange_calendars as xcals
        import pandas as pd

        calendar = xcals.get_calendar("XTKS")
        stamp = pd.Timestamp(day)
        names = calendar.regular_holidays.holidays(stamp, stamp, return_name=True)
        if len(names):
            # "Coming of Age Day (2000 onwards)": the rule's validity is not part of the name.
            return "holiday: " + re.sub(r"\s*\([^)]*\d{4}[^)]*\)$", "", str(names.iloc[0]))
        if any(pd.Timestamp(h).date() == day for h in calendar.adhoc_holidays):
            return "holiday (exchange closure)"
    except Exception:  # the name is a courtesy: the calendar still says the exchange is closed
        log.debug("no holiday name for %s", day, exc_info=True)
    return "exchange holiday"


def refresh_window(moment: dt.datetime, date_override: str | None, window_days: int) -> dict[str, Any] | None:
    """{market_date, start, end} for a run at `moment` (or on `date_override`); None off business days."""
    from gogoku.calendar import is_business_day, previous_business_day, tokyo_date

    market_date = parse_date("date", date_override) if date_override else tokyo_date(moment)
    if not is_business_day(market_date):
        log.info("%s (%s in Tokyo) is not a JPX business day (%s): no session closed since the last run, "
                 "nothing to refresh; the run's other tasks are skipped", market_date, market_date.strftime("%A"),
                 closed_reason(market_date))
        return None
    end = previous_business_day(market_date)
    return {
        "market_date": market_date.isoformat(),
        "start": (end - dt.timedelta(days=window_days)).isoformat(),
        "end": end.isoformat(),
    }


def prediction_day(context: Any) -> dict[str, str] | None:
    """{date, market_date, model} of a gogoku_daily run, or None (logged) when it has nothing to do.

    The feature date D is the `date` param, else the `end` of the triggering market-data event, else
    the session before the run's Tokyo market date (scheduled guard runs and backfills). The model is
    the `model` param or the run's conf (a backfill's), else "" (the champion, when the task runs).
    A scheduled guard run stops when D's predictions were already published (an event of the asset
    gogoku_predictions for D).
    """
    from gogoku.calendar import is_business_day, next_business_day, previous_business_day, tokyo_date
    from gogoku_airflow.assets import MARKET_DATA, PREDICTIONS, events_of

    params, run = context["params"], context["dag_run"]
    model = str(params.get("model") or (run.conf or {}).get("model") or "").strip()
    if params.get("date"):
        day = parse_date("date", params["date"])
        source = "the date param"
    else:
        market = [e for e in events_of(context.get("triggering_asset_events"), MARKET_DATA) if e.get("end")]
        if market:
            day = parse_date("end", market[-1]["end"])
            source = f"the market-data event of {market[-1].get('market_date')}"
        else:
            moment = context.get("logical_date") or run.run_after
            market_date = tokyo_date(moment)
            if not is_business_day(market_date):
                log.info("%s (%s in Tokyo) is not a JPX business day (%s): no predictions to make", market_date,
                         market_date.strftime("%A"), closed_reason(market_date))
                return None
            day = previous_business_day(market_date)
            source = f"the run's market date {market_date}"
    if not is_business_day(day):
        log.info("%s is not a JPX business day (%s): there is no session close to predict from", day,
                 closed_reason(day))
        return None
    if str(getattr(run, "run_type", "")).lower().endswith("scheduled"):
        published = [e for e in events_of(context.get("inlet_events"), PREDICTIONS) if e.get("date") == day.isoformat()]
        if published and (not model or published[-1].get("model") == model):
            log.info("predictions for %s were already published (%s): nothing to do", day, published[-1].get("uri"))
            return None
    log.info("predicting as of the close of %s (from %s) with %s", day, source, model or "the champion")
    return {"date": day.isoformat(), "for_session": next_business_day(day).isoformat(), "model": model}


def month_window(interval_start: dt.datetime, interval_end: dt.datetime, params: Any) -> dict[str, str]:
    """The dataset window of a monthly run: `window_months` months ending at the last JPX session
    before the interval's end (in Tokyo)."""
    from gogoku.calendar import previous_business_day, tokyo_date
    from gogoku_airflow.params import InvalidParam, check_choice
    from gogoku_airflow.plans import LOOKBACK_DAYS, PLAN_TIERS

    months = int(params.get("window_months") or 0)
    if months < 1:
        raise InvalidParam(f"param 'window_months' ({months}) must be at least 1")
    end = previous_business_day(tokyo_date(interval_end))
    year, month = divmod((end.year * 12 + end.month - 1) - months + 1, 12)
    start = dt.date(year, month + 1, 1)
    plan = check_choice("plan_tier", params.get("plan_tier"), PLAN_TIERS)
    log.info("month %s..%s (Tokyo): the dataset %s..%s on the %s plan", tokyo_date(interval_start),
             tokyo_date(interval_end), start, end, plan)
    return {"start": start.isoformat(), "end": end.isoformat(),
            "fetch_start": (start - dt.timedelta(days=LOOKBACK_DAYS)).isoformat(), "plan_tier": plan}
