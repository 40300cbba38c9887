"""The constants of gogoku.features.memory hold on the offline JPX calendar, and every feature module's
memory fits in FEATURE_MEMORY_DAYS, which fits in the history a build reads (LOOKBACK_DAYS)."""

from __future__ import annotations

import bisect
import datetime as dt
import inspect

import pytest

from gogoku import calendar as cal
from gogoku.contracts import LOOKBACK_DAYS
from gogoku.dataset import build
from gogoku.features import daily_margin, earnings, flow, margin, short_selling, statements, technical, topix
from gogoku.features.memory import (
    EWMA_WINDOW,
    FEATURE_MEMORY_DAYS,
    MEMORY_SESSIONS,
    PUBLICATION_LAG_DAYS,
    SESSION_MEMORY_DAYS,
)
from gogoku.features.price import YEAR
from gogoku.predict import day_features

MODULES_WITH_EVENT_TABLES = (daily_margin, earnings, flow, margin, short_selling, statements)
FLOAT32_EPS = 2.0**-24  # relative precision of the Float32 the dataset stores


@pytest.fixture(scope="module")
def sessions() -> list[dt.date]:
    first, last = cal.calendar_bounds()
    return cal.business_days(first, last)


def test_memory_sessions_is_the_fewest_sessions_in_any_memory_window(sessions: list[dt.date]) -> None:
    # For every session D whose window [D - SESSION_MEMORY_DAYS, D] lies within the calendar: the
    # sessions in that window, D included. The fewest over 2000-2027 is MEMORY_SESSIONS.
    memory = dt.timedelta(days=SESSION_MEMORY_DAYS)
    counts = [i - bisect.bisect_left(sessions, d - memory) + 1
              for i, d in enumerate(sessions) if d - memory >= sessions[0]]
    assert len(counts) > 6000
    assert min(counts) == MEMORY_SESSIONS
    # Equivalently: MEMORY_SESSIONS consecutive sessions never span more than SESSION_MEMORY_DAYS.
    span = max((sessions[i + MEMORY_SESSIONS - 1] - sessions[i]).days for i in range(len(sessions) - MEMORY_SESSIONS))
    assert span <= SESSION_MEMORY_DAYS
    assert max((sessions[i + EWMA_WINDOW - 1] - sessions[i]).days for i in range(len(sessions) - EWMA_WINDOW)) == 384


def test_session_windows_fit_in_memory_sessions() -> None:
    assert EWMA_WINDOW <= MEMORY_SESSIONS  # the windowed EMA60 / EMA200
    assert YEAR + 1 <= MEMORY_SESSIONS  # mom_12_1 reads the close 252 sessions back
    assert topix.Z_WINDOW + topix.Z_INPUT_SESSIONS - 1 == MEMORY_SESSIONS  # the market and sector z-scores
    # The chunked build gives a chunk's sector group as many sessions before it.
    assert build.SECTOR_SESSIONS >= topix.Z_WINDOW + topix.Z_INPUT_SESSIONS - 1
    assert set(technical.WINDOWED_EMAS) == {n for n in technical.EMA_WINDOWS if n >= 60}


def test_the_recursions_kept_forget_their_seed_within_memory_sessions() -> None:
    # The smoothings that keep TA-Lib's seeded recursion: Wilder's (alpha 1/14: RSI, ATR, ADX, +-DI;
    # 1/2: RSI2), the EMAs 5 / 10 / 20 and the MACD's 12 / 26 / 9. Their seed's weight after
    # MEMORY_SESSIONS rows is below Float32 precision; the windowed EMAs' would not be.
    alphas = [1 / 14, 1 / 2, *[2 / (n + 1) for n in (5, 10, 20, 12, 26, 9)]]
    for alpha in alphas:
        assert (1 - alpha) ** MEMORY_SESSIONS < FLOAT32_EPS, alpha
    for n in technical.WINDOWED_EMAS:
        assert (1 - 2 / (n + 1)) ** MEMORY_SESSIONS > FLOAT32_EPS, n


def test_publication_lag_days_bounds_three_sessions_after_any_day(sessions: list[dt.date]) -> None:
    # A publication is usable 1 to 3 sessions after the day it is dated by (margin: 3 sessions after the
    # record's Date). The 3rd session after any calendar day is at most PUBLICATION_LAG_DAYS later.
    first, last = sessions[0], sessions[-10]
    worst, when = 0, first
    day = first
    while day <= last:
        third = sessions[bisect.bisect_right(sessions, day) + 2]
        if (third - day).days > worst:
            worst, when = (third - day).days, day
        day += dt.timedelta(days=1)
    assert worst == PUBLICATION_LAG_DAYS
    assert when == dt.date(2019, 4, 24)  # 04-25, 04-26, then 05-07 after the ten-day Golden Week of 2019


@pytest.mark.parametrize("module", MODULES_WITH_EVENT_TABLES, ids=lambda m: m.__name__.rsplit(".", 1)[1])
def test_each_event_module_memory_fits(module: object) -> None:
    days = module.MEMORY_DAYS  # type: ignore[attr-defined]
    # Only the statements (their YoY) reach beyond the sessions' memory.
    bound = FEATURE_MEMORY_DAYS if module is statements else SESSION_MEMORY_DAYS
    assert PUBLICATION_LAG_DAYS < days <= bound
    assert statements.YOY_MAX_AGE_DAYS >= 365 + statements.REPORT_MAX_AGE_DAYS  # YoY as long as a report attaches


def test_weekly_z_windows_hold_52_weekly_publications() -> None:
    # 52 weekly publications span 357 days: a z-score window of Z_MAX_DAYS holds them all.
    assert flow.Z_MAX_DAYS > (flow.Z_WINDOW - 1) * 7 and margin.Z_MAX_DAYS > (margin.Z_WINDOW - 1) * 7


def test_the_memory_fits_in_the_history_a_build_reads() -> None:
    assert SESSION_MEMORY_DAYS < FEATURE_MEMORY_DAYS < LOOKBACK_DAYS
    # The defaults of both builds and of the day's features are that lookback.
    for function in (build.build_dataset, build.read_quotes_history, day_features):
        assert inspect.signature(function).parameters["lookback_days"].default == LOOKBACK_DAYS, function
