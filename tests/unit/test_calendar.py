"""The JPX calendar and the as-of rule (DESIGN contract 6), with hand-checked dates."""

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
