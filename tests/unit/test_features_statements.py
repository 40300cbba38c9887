"""The small stmt_* group obeys the as-of rule (DESIGN contract 6)."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from gogoku.features.statements import STATEMENT_FEATURES, add_statement_features

# 2024-05-10 is a Friday (close 15:00 then); 2024-11-08 a Friday after the 15:30 close change.
DAYS = [dt.date(2024, 5, d) for d in (9, 10, 13, 14)] + [dt.date(2024, 11, d) for d in (7, 8, 11)]


def statements() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "DisclosedDate": [dt.date(2024, 5, 10), dt.date(2024, 5, 10), dt.date(2024, 11, 8), dt.date(2024, 11, 8)],
            "DisclosedTime": ["15:00:00", "13:00:00", "15:10:00", "15:10:00"],
            "LocalCode": ["13010", "13020", "13010", "13020"],
            "DisclosureNumber": ["1", "2", "3", "4"],
            "NetSales": [1000.0, 500.0, None, 600.0],
            "OperatingProfit": [100.0, 25.0, None, 30.0],
            "ForecastOperatingProfit": [400.0, 100.0, 500.0, None],
            "EquityToAssetRatio": [0.4, 0.5, None, 0.55],
        }
    )


def rows() -> pl.LazyFrame:
    return pl.LazyFrame({"Code": ["13010"] * 7 + ["13020"] * 7, "Date": DAYS * 2})


def feature(out: pl.DataFrame, code: str, name: str) -> list:
    return out.filter(pl.col("Code") == code)[name].to_list()


def test_as_of_rule_and_latest_values() -> None:
    out = add_statement_features(rows(), statements().lazy()).collect()
    assert sorted(c for c in out.columns if c not in ("Code", "Date")) == sorted(STATEMENT_FEATURES)
    assert out.select("Code", "Date").equals(rows().collect().sort("Code", "Date"))
    # 13010 disclosed AT the 15:00 close on 2024-05-10: first usable Monday 05-13.
    assert feature(out, "13010", "is_stmt_valid")[:4] == [0.0, 0.0, 1.0, 1.0]
    assert feature(out, "13010", "stmt_op_margin")[2] == pytest.approx(0.1)
    assert feature(out, "13010", "stmt_progress_op")[2] == pytest.approx(0.25)
    assert feature(out, "13010", "stmt_days_since")[3] == 1.0
    # 13020 disclosed at 13:00: usable the same day.
    assert feature(out, "13020", "is_stmt_valid")[:4] == [0.0, 1.0, 1.0, 1.0]
    assert feature(out, "13020", "stmt_op_margin")[1] == pytest.approx(0.05)
    # 15:10 on 2024-11-08 is before the new 15:30 close: same day. The forecast-only revision of
    # 13010 keeps the last actuals and updates the forecast.
    assert feature(out, "13010", "stmt_progress_op")[4:] == pytest.approx([0.25, 0.2, 0.2])
    assert feature(out, "13010", "stmt_op_margin")[5] == pytest.approx(0.1)
    assert feature(out, "13010", "stmt_days_since")[5] == 0.0
    assert feature(out, "13020", "stmt_op_margin")[5] == pytest.approx(0.05)
    assert feature(out, "13020", "stmt_progress_op")[5] == pytest.approx(0.3)
    assert feature(out, "13020", "stmt_equity_ratio")[4:] == pytest.approx([0.5, 0.55, 0.55])
