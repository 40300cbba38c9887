"""The JPX calendar and the as-of rule (docs/data.md), with hand-checked dates."""

import datetime as dt

import polars as pl
import pytest

from gogoku import calendar as cal
from gogoku.errors import InputError

D = dt.date
T = dt.time


def test_year_end_closure_and_holidays() -> None:
    days = cal.business_days(D(2024, 12, 27), D(2025, 1, 7))
    # 31 Dec - 3 Jan closed; 4-5 Jan weekend
    assert days == [D(2024, 12, 27), D(2024, 12, 30), D(2025, 1, 6), D(2025, 1, 7)]
    assert not cal.is_business_day(D(2024, 11, 4))  # Culture Day observed
    assert not cal.is_business_day(D(2025, 5, 5))  # Golden Week
    assert cal.next_business_day(D(2025, 4, 30)) == D(2025, 5, 1)
    assert cal.next_business_day(D(2025, 5, 2)) == D(2025, 5, 7)
    assert cal.previous_business_day(D(2025, 1, 6)) == D(2024, 12, 30)


def test_add_business_days() -> None:
    assert cal.add_business_days(D(2024, 12, 27), 1) == D(2024, 12, 30)
    assert cal.add_business_days(D(2024, 12, 27), 2) == D(2025, 1, 6)
    assert cal.add_business_days(D(2025, 1, 1), 1) == D(2025, 1, 6)  # from a holiday
    assert cal.add_business_days(D(2025, 1, 6), -1) == D(2024, 12, 30)


@pytest.mark.parametrize(
    ("published", "time", "expected"),
    [
        (D(2024, 11, 1), T(14, 59), D(2024, 11, 1)),  # before the 15:00 close
        (D(2024, 11, 1), T(15, 0), D(2024, 11, 5)),  # at the close -> next business day (4th is a holiday)
        (D(2024, 11, 5), T(15, 10), D(2024, 11, 5)),  # the close moved to 15:30 that day
        (D(2024, 11, 5), T(15, 30), D(2024, 11, 6)),
        (D(2024, 12, 30), T(16, 0), D(2025, 1, 6)),  # year-end
        (D(2025, 1, 3), T(9, 0), D(2025, 1, 6)),  # published on a closed day
        (D(2024, 11, 1), None, D(2024, 11, 5)),  # unknown time counts as after the close
    ],
)
def test_effective_date(published: dt.date, time: dt.time | None, expected: dt.date) -> None:
    assert cal.effective_date(published, time) == expected


def test_vectorized_effective_date_matches_scalar() -> None:
    rows = [
        (D(2024, 11, 1), "14:59:00"), (D(2024, 11, 1), "15:00"), (D(2024, 11, 5), "15:10:00"),
        (D(2024, 11, 5), "15:30:00"), (D(2024, 12, 30), "16:00"), (D(2025, 1, 3), "09:00"), (D(2024, 11, 1), ""),
    ]
    frame = pl.DataFrame({"d": [r[0] for r in rows], "t": [r[1] for r in rows]})
    got = cal.with_effective_date(frame, "d", "t").collect()["EffectiveDate"].to_list()

    def scalar(d: dt.date, t: str) -> dt.date:
        parsed = dt.time.fromisoformat(t) if t else None
        return cal.effective_date(d, parsed)

    assert got == [scalar(d, t) for d, t in rows]


def test_tokyo_date_of_the_0800_run() -> None:
    utc = dt.datetime(2025, 1, 5, 23, 0, tzinfo=dt.UTC)
    assert cal.tokyo_date(utc) == D(2025, 1, 6)
    with pytest.raises(InputError, match="no time zone"):
        cal.tokyo_date(dt.datetime(2025, 1, 5, 23, 0))


def test_outside_the_known_calendar_is_an_error() -> None:
    with pytest.raises(InputError, match="outside the JPX calendar"):
        cal.is_business_day(D(1990, 1, 4))


# A half-day session (HolidayDivision "2") closes after the morning session, at 11:30. The offline
# XTKS calendar has none, so the tests take the half days from a J-Quants-shaped calendar frame.
HALF = D(2024, 12, 30)


def test_half_days_from_a_jquants_calendar() -> None:
    frame = pl.DataFrame({"Date": [D(2024, 12, 27), HALF, D(2024, 12, 31)], "HolidayDivision": ["1", "2", "0"]})
    assert cal.half_days_from_calendar(frame) == frozenset({HALF})
    assert cal.half_days_from_calendar(frame.lazy()) == frozenset({HALF})
    assert cal.half_days_from_calendar(None) == frozenset()
    with pytest.raises(InputError, match="HolidayDivision"):
        cal.half_days_from_calendar(frame.drop("HolidayDivision"))


@pytest.mark.parametrize(
    ("published", "time", "expected"),
    [
        (HALF, T(11, 29), HALF),  # before the half-day close
        (HALF, T(11, 30), D(2025, 1, 6)),  # at the close -> next business day, across the year end
        (HALF, T(13, 0), D(2025, 1, 6)),  # a full day's afternoon is after a half day's close
        (D(2024, 12, 27), T(13, 0), D(2024, 12, 27)),  # the day before is a full session
        (D(2025, 1, 6), T(15, 10), D(2025, 1, 6)),
    ],
)
def test_effective_date_on_half_days(published: dt.date, time: dt.time, expected: dt.date) -> None:
    assert cal.session_close(HALF, {HALF}) == T(11, 30)
    assert cal.effective_date(published, time, half_days={HALF}) == expected
    # Without the half-day set the same record would have counted as known on the day.
    if published == HALF and time < T(15, 30):
        assert cal.effective_date(published, time) == HALF


def test_vectorized_effective_date_on_half_days_matches_scalar() -> None:
    rows = [(HALF, "11:29"), (HALF, "11:30:00"), (HALF, "13:00"), (D(2024, 12, 27), "13:00"), (HALF, "")]
    frame = pl.DataFrame({"d": [r[0] for r in rows], "t": [r[1] for r in rows]})
    got = cal.with_effective_date(frame, "d", "t", half_days={HALF}).collect()["EffectiveDate"].to_list()
    assert got == [HALF, D(2025, 1, 6), D(2025, 1, 6), D(2024, 12, 27), D(2025, 1, 6)]


def test_the_sessions_kept_on_disk_are_exchange_calendars_own(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    import exchange_calendars as xcals

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    cal._sessions.cache_clear()
    try:
        computed = cal._sessions()  # computed, then kept in the cache folder
        kept = cal._sessions_file()
        assert kept is not None and kept.parent == tmp_path / "gogoku" and kept.is_file()
        cal._sessions.cache_clear()
        assert cal._sessions() == computed  # read back from the file
        expected = xcals.get_calendar("XTKS", start="2000-01-04").sessions
        assert computed == tuple(ts.date() for ts in expected)
        kept.write_text("not a date")  # a damaged file: computed again
        cal._sessions.cache_clear()
        assert cal._sessions() == computed
    finally:
        cal._sessions.cache_clear()
