"""Forward-return targets: per Code, null where the future is unknown (never 0)."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from gogoku.dataset.targets import add_targets, target_columns

DAYS = [dt.date(2024, 1, 1) + dt.timedelta(days=i) for i in range(25)]


def quotes() -> pl.DataFrame:
    a = [100.0 * 1.01**i for i in range(25)]
    b = [50.0 + i for i in range(10)]  # a shorter series (e.g. delisted)
    return pl.DataFrame(
        {"Code": ["13010"] * 25 + ["13020"] * 10, "Date": DAYS + DAYS[:10], "AdjustmentClose": a + b}
    )


def test_forward_returns_and_nulls() -> None:
    out = add_targets(quotes()).collect()
    assert [c for c in out.columns if c.startswith("target_")] == target_columns() == [
        "target_1d", "target_5d", "target_10d", "target_20d"
    ]
    a = out.filter(pl.col("Code") == "13010")
    assert a["target_1d"][:24].to_list() == pytest.approx([0.01] * 24)
    assert a["target_20d"][0] == pytest.approx(1.01**20 - 1)
    # The last h rows of a series have no future: null, not 0.
    assert a["target_1d"][24] is None
    assert a["target_5d"][20:].to_list() == [None] * 5
    assert a["target_20d"].null_count() == 20
    b = out.filter(pl.col("Code") == "13020")
    assert b["target_1d"][0] == pytest.approx(51 / 50 - 1)
    # 13020 ends on day 9: its day-5 5-day target would be day 10, which it does not have,
    # and it must not borrow the next Code's rows.
    assert b["target_5d"][4] == pytest.approx(59 / 54 - 1)
    assert b["target_5d"][5:].to_list() == [None] * 5
    assert b["target_10d"].null_count() == 10
    assert out.select(pl.col("^target_.*$") == 0.0).sum().sum_horizontal().item() == 0


def test_custom_horizons_and_price_column() -> None:
    out = add_targets(quotes().rename({"AdjustmentClose": "px"}), horizons=[2], price_col="px").collect()
    assert out["target_2d"][0] == pytest.approx(1.01**2 - 1)
