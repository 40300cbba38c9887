"""The JPX (TSE) trading calendar, offline, from exchange_calendars' XTKS, and the as-of rule.

The as-of rule (docs/data.md): information published before the close of T's session (15:30 JST from
2024-11-05, 15:00 before) is usable at T; anything published at or after the close is first usable
at the next business day.

Half-day sessions (J-Quants trading_calendar HolidayDivision "2") close after the morning session,
at 11:30: callers pass the set of half days (`half_days_from_calendar`) and the as-of functions use
that close on those dates. The offline XTKS calendar knows no early closes, so without the set every
business day closes at the full-day time.
"""

from __future__ import annotations

import bisect
import datetime as dt
import os
from collections.abc import Collection
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl

from gogoku.errors import InputError

TOKYO = ZoneInfo("Asia/Tokyo")
CLOSE_CHANGE_DATE = dt.date(2024, 11, 5)
CLOSE_BEFORE = dt.time(15, 0)
CLOSE_FROM_CHANGE = dt.time(15, 30)
HALF_DAY_CLOSE = dt.time(11, 30)
HALF_DAY_DIVISION = "2"
_FIRST = dt.date(2000, 1, 4)


@lru_cache(maxsize=1)
def _sessions() -> tuple[dt.date, ...]:
    # exchange_calendars takes about 1.5 s to import and compute XTKS (pandas included): every CLI process
    # (every pod) needs the calendar, so the result is kept on disk for the day, keyed by its version.
    cached = _sessions_file()
    if cached is not None and cached.is_file():
        try:
            return tuple(dt.date.fromordinal(int(line)) for line in cached.read_text().split())
        except (OSError, ValueError):
            pass
    import exchange_calendars as xcals

    cal = xcals.get_calendar("XTKS", start=_FIRST.isoformat())
    sessions = tuple(ts.date() for ts in cal.sessions)
    if cached is not None:
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            tmp = cached.with_name(f".{cached.name}.{os.getpid()}")
            tmp.write_text("\n".join(str(d.toordinal()) for d in sessions))
            os.replace(tmp, cached)
        except OSError:  # a read-only home: compute again next time
            pass
    return sessions


def _sessions_file() -> Path | None:
    """Where the XTKS sessions computed today by this exchange_calendars version are kept (None: unknown version)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        release = version("exchange_calendars")
    except PackageNotFoundError:
        return None
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "gogoku"
    return base / f"xtks-sessions-{release}-{_FIRST:%Y%m%d}-{dt.date.today():%Y%m%d}.txt"


def _bounds_check(d: dt.date) -> None:
    sessions = _sessions()
    if d < sessions[0] or d > sessions[-1]:
        raise InputError(f"date {d} is outside the JPX calendar known offline ({sessions[0]} .. {sessions[-1]})")


def session_ordinals(days: Collection[dt.date]) -> list[int]:
    """Each day's position among all JPX sessions since the calendar's start (for business days: a
    fixed count, whatever range a computation starts from)."""
    sessions = _sessions()
    return [bisect.bisect_left(sessions, d) for d in days]


def calendar_bounds() -> tuple[dt.date, dt.date]:
    sessions = _sessions()
    return sessions[0], sessions[-1]


def is_business_day(d: dt.date) -> bool:
    _bounds_check(d)
    sessions = _sessions()
    i = bisect.bisect_left(sessions, d)
    return i < len(sessions) and sessions[i] == d


def business_days(start: dt.date, end: dt.date) -> list[dt.date]:
    """Business days in [start, end], both inclusive."""
    if end < start:
        return []
    sessions = _sessions()
    lo = bisect.bisect_left(sessions, start)
    hi = bisect.bisect_right(sessions, end)
    return list(sessions[lo:hi])


def next_business_day(d: dt.date) -> dt.date:
    """The first business day strictly after d."""
    _bounds_check(d)
    sessions = _sessions()
    i = bisect.bisect_right(sessions, d)
    if i >= len(sessions):
        raise InputError(f"no business day after {d} in the offline JPX calendar")
    return sessions[i]


def previous_business_day(d: dt.date) -> dt.date:
    """The last business day strictly before d."""
    _bounds_check(d)
    sessions = _sessions()
    i = bisect.bisect_left(sessions, d) - 1
    if i < 0:
        raise InputError(f"no business day before {d} in the offline JPX calendar")
    return sessions[i]


def business_day_on_or_after(d: dt.date) -> dt.date:
    return d if is_business_day(d) else next_business_day(d)


def add_business_days(d: dt.date, n: int) -> dt.date:
    """Move n business days from d (d itself need not be a business day; n=0 -> on or after)."""
    sessions = _sessions()
    base = bisect.bisect_left(sessions, d)
    if n > 0 and base < len(sessions) and sessions[base] == d:
        idx = base + n
    elif n > 0:
        idx = base + n - 1
    else:
        idx = base + n
    if not 0 <= idx < len(sessions):
        raise InputError(f"{d} {n:+d} business days is outside the offline JPX calendar")
    return sessions[idx]


def half_days_from_calendar(calendar: pl.DataFrame | pl.LazyFrame | None) -> frozenset[dt.date]:
    """The half-day sessions (HolidayDivision "2") of a J-Quants trading_calendar frame."""
    if calendar is None:
        return frozenset()
    lf = calendar.lazy()
    missing = {"Date", "HolidayDivision"} - set(lf.collect_schema().names())
    if missing:
        raise InputError(f"trading calendar: missing column(s) {sorted(missing)}")
    days = lf.filter(pl.col("HolidayDivision").cast(pl.Utf8) == HALF_DAY_DIVISION).select("Date").collect()
    return frozenset(days["Date"].to_list())


def session_close(d: dt.date, half_days: Collection[dt.date] = ()) -> dt.time:
    """Close of the TSE cash session on d (JST): 11:30 on a half day, else 15:00 / 15:30."""
    if d in half_days:
        return HALF_DAY_CLOSE
    return CLOSE_FROM_CHANGE if d >= CLOSE_CHANGE_DATE else CLOSE_BEFORE


def effective_date(published: dt.date, time: dt.time | None, half_days: Collection[dt.date] = ()) -> dt.date:
    """First business day whose rows may use a record published at (published, time) JST.

    A missing time counts as after the close (the conservative side).
    """
    if is_business_day(published) and time is not None and time < session_close(published, half_days):
        return published
    return next_business_day(published)


def tokyo_date(moment: dt.datetime) -> dt.date:
    """The Tokyo calendar date of an aware datetime (an 08:00 JST run is 23:00 UTC the day before)."""
    if moment.tzinfo is None:
        raise InputError(f"datetime {moment.isoformat()} has no time zone; give an aware datetime")
    return moment.astimezone(TOKYO).date()


def business_day_frame(start: dt.date, end: dt.date) -> pl.DataFrame:
    """Business days in [start, end] as a one-column frame `Date`, with their index `bday_idx`."""
    days = business_days(start, end)
    return pl.DataFrame({"Date": pl.Series(days, dtype=pl.Date)}).with_row_index("bday_idx")


def with_effective_date(
    frame: pl.DataFrame | pl.LazyFrame,
    date_col: str,
    time_col: str | None,
    out_col: str = "EffectiveDate",
    half_days: Collection[dt.date] = (),
) -> pl.LazyFrame:
    """Vectorized `effective_date`: adds `out_col`, the first business day that may use each row.

    `time_col` holds JST times as pl.Time or 'HH:MM[:SS]' strings; a null/empty time counts as after
    the close; `half_days` close at 11:30. Row order is preserved.
    """
    lf = frame.lazy().with_row_index("_row")
    first, last = calendar_bounds()
    sessions = pl.LazyFrame({"_next": pl.Series(business_days(first, last), dtype=pl.Date)})
    d = pl.col(date_col)
    close = (
        pl.when(d.is_in(pl.Series(sorted(half_days), dtype=pl.Date)))
        .then(pl.lit(HALF_DAY_CLOSE))
        .when(d >= pl.lit(CLOSE_CHANGE_DATE))
        .then(pl.lit(CLOSE_FROM_CHANGE))
        .otherwise(pl.lit(CLOSE_BEFORE))
    )
    if time_col is None:
        t = pl.lit(None, dtype=pl.Time)
    else:
        raw = pl.col(time_col)
        t = raw if frame.collect_schema()[time_col] == pl.Time else pl.coalesce(
            raw.str.to_time("%H:%M:%S", strict=False), raw.str.to_time("%H:%M", strict=False)
        )
    lf = lf.with_columns(_t=t, _close=close, _after=(d + pl.duration(days=1)))
    lf = (
        lf.sort("_after")
        .join_asof(sessions, left_on="_after", right_on="_next", strategy="forward")
        .sort(date_col)
        .join_asof(sessions.rename({"_next": "_onafter"}), left_on=date_col, right_on="_onafter", strategy="forward")
    )
    same_day = (pl.col("_onafter") == d) & pl.col("_t").is_not_null() & (pl.col("_t") < pl.col("_close"))
    return (
        lf.with_columns(pl.when(same_day).then(d).otherwise(pl.col("_next")).alias(out_col))
        .sort("_row")
        .drop("_row", "_t", "_close", "_after", "_next", "_onafter")
    )
