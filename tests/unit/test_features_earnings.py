"""e_*: the earnings calendar under the as-of rule (a row dated D is published 19:00 the session before)."""

from __future__ import annotations

import datetime as dt

import polars as pl

from gogoku.calendar import business_days
from gogoku.features.earnings import EARNINGS_FEATURES, add_earnings_features, announcement_table

D = dt.date
A_DATES = [D(2023, 11, 7), D(2024, 2, 9), D(2024, 5, 10), D(2024, 8, 9), D(2024, 11, 5)]


def sessions_between(a: dt.date, b: dt.date) -> float:
    """Sessions from a to b (b's index minus a's)."""
    return float(len(business_days(a, b)) - 1)


def announcements() -> pl.LazyFrame:
    return pl.LazyFrame({"Date": [*A_DATES, D(2025, 1, 6)], "Code": ["13010"] * len(A_DATES) + ["13020"]})


def test_visibility_is_the_announcement_session() -> None:
    t = announcement_table(announcements()).collect().sort("Code", "_ann")
    # 19:00 on the session before -> first usable on the announcement's own session, also after a
    # holiday (11-05: published Fri 11-01) and after the year-end closure (01-06: published 12-30).
    assert t["_eff"].to_list() == t["_ann"].to_list()


def test_days_to_since_and_windows() -> None:
    days = [D(2023, 11, 6), D(2024, 11, 1), D(2024, 11, 5), D(2024, 11, 6), D(2024, 12, 30), D(2025, 1, 6)]
    rows = pl.LazyFrame({"Code": ["13010"] * 4 + ["13020"] * 2, "Date": days})
    out = add_earnings_features(rows, announcements()).collect()
    assert set(EARNINGS_FEATURES) <= set(out.columns) and out.height == 6
    r = {(c, d): row for c, d, row in zip(out["Code"], out["Date"], out.iter_rows(named=True), strict=True)}
    first = r[("13010", D(2023, 11, 6))]
    assert first["e_days_to"] is None and first["e_days_since"] is None and first["is_e_valid"] == 0.0
    # 11-01: the 11-05 row is published that evening (after the close): not known yet. The estimate
    # projects 2023-11-07 by 52 weeks to 2024-11-05, one session ahead (11-04 is a holiday).
    before = r[("13010", D(2024, 11, 1))]
    assert (before["e_days_to"], before["e_days_to_is_est"]) == (1.0, 1.0)
    assert (before["e_win_pre1"], before["e_win_pre3"]) == (0.0, 1.0)
    assert before["e_days_since"] == sessions_between(D(2024, 8, 9), D(2024, 11, 1))
    today = r[("13010", D(2024, 11, 5))]
    assert (today["e_days_to"], today["e_days_to_is_est"], today["e_win_pre1"]) == (0.0, 0.0, 1.0)
    assert today["e_win_post5"] == 0.0
    after = r[("13010", D(2024, 11, 6))]
    assert (after["e_days_since"], after["e_win_post1"], after["e_win_pre5"]) == (1.0, 1.0, 0.0)
    # Next projection: 2024-02-09 + 364 days = 2025-02-07 (the quarter just announced is not reused).
    assert after["e_days_to"] == sessions_between(D(2024, 11, 6), D(2025, 2, 7))
    # 13020: its first announcement on 2025-01-06 is unknown on 2024-12-30, known on the day.
    assert r[("13020", D(2024, 12, 30))]["e_days_to"] is None
    assert r[("13020", D(2025, 1, 6))]["e_days_to"] == 0.0


def test_the_latest_announcement_is_forgotten_after_a_year() -> None:
    # 13030's only announcement (2024-11-05, usable that day) counts while it is at most
    # LAST_MAX_AGE_DAYS = 365 days before the row's previous day: through 2025-11-06.
    ann = pl.LazyFrame({"Date": [D(2024, 11, 5)], "Code": ["13030"]})
    rows = pl.LazyFrame({"Code": ["13030"] * 2, "Date": [D(2025, 11, 6), D(2025, 11, 7)]})
    out = add_earnings_features(rows, ann).collect()
    assert out["e_days_since"].to_list() == [sessions_between(D(2024, 11, 5), D(2025, 11, 6)), None]
    assert out["is_e_valid"].to_list() == [1.0, 0.0]
    assert out["e_days_to"].to_list() == [None, None]  # nothing within the last 363 days to project
