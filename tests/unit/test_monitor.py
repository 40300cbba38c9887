"""Monitoring pieces with hand-computed expectations: PSI, streaks, realized returns, the long-short."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import polars as pl
import pytest

from gogoku.errors import InputError
from gogoku.monitor import MonitorSettings, below_floor_streak, long_short_daily, psi, realized_returns


def test_psi_by_hand() -> None:
    # Expected deciles split 0..99 into ten bins of ten; the actual sample puts everything in the top bin.
    expected = np.arange(100, dtype=float)
    assert psi(expected, expected) == pytest.approx(0.0)
    actual = np.full(50, 99.0)
    # Shares: expected 0.1 in each bin; actual 1.0 in the last and the floor 1e-4 elsewhere.
    by_hand = 9 * (1e-4 - 0.1) * math.log(1e-4 / 0.1) + (1.0 - 0.1) * math.log(1.0 / 0.1)
    assert psi(expected, actual) == pytest.approx(by_hand)
    assert math.isnan(psi(np.array([np.nan]), expected))


def test_streak_of_days_below_the_floor() -> None:
    assert below_floor_streak([0.05, -0.01, -0.02, -0.03], 0.0) == 3
    assert below_floor_streak([-0.01, None, -0.02], 0.0) == 1  # an undefined day breaks it
    assert below_floor_streak([0.01], 0.0) == 0


def test_realized_returns_are_the_dataset_targets() -> None:
    days = [dt.date(2024, 1, 4), dt.date(2024, 1, 5), dt.date(2024, 1, 9)]
    quotes = pl.DataFrame({"Code": ["13010"] * 3, "Date": days, "AdjustmentClose": [100.0, 110.0, 99.0]})
    out = realized_returns(quotes, [1])
    assert out["target_1d"].to_list()[:2] == pytest.approx([0.1, -0.1]) and out["target_1d"][2] is None


def test_long_short_by_hand() -> None:
    # Five names, quintiles of one: top minus bottom h-session return, divided by h.
    frame = pl.DataFrame({"Date": [dt.date(2024, 1, 4)] * 5, "score_5d": [1.0, 2.0, 3.0, 4.0, 5.0],
                          "target_5d": [-0.05, 0.0, 0.01, 0.02, 0.10]})
    out = long_short_daily(frame, "score_5d", "target_5d", 5, quantiles=5, min_names=5)
    assert out["ls"].to_list() == pytest.approx([(0.10 - (-0.05)) / 5])


def test_settings_are_checked() -> None:
    with pytest.raises(InputError, match="window"):
        MonitorSettings(window=0)
    with pytest.raises(InputError, match="--psi-threshold"):
        MonitorSettings(psi_threshold=0)
