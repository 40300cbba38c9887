"""The small stmt_* group obeys the as-of rule (DESIGN contract 6)."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from gogoku.features.statements import (
    FULL_REQUIRED,
    STATEMENT_FEATURES,
    STATEMENT_FULL_FEATURES,
    add_statement_features,
    add_statement_features_full,
    has_full_columns,
)

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


# ---------------------------------------------------------------- the full group
def _stmt(**kw: object) -> dict:
    row = dict.fromkeys(FULL_REQUIRED)
    row.update(kw)
    return row


def full_statements() -> pl.DataFrame:
    d = dt.date
    fy24, fy25 = d(2024, 3, 31), d(2025, 3, 31)
    rows = [
        _stmt(DisclosedDate=d(2023, 5, 12), DisclosedTime="13:00:00", LocalCode="13010", DisclosureNumber="1",
              TypeOfDocument="FYFinancialStatements_Consolidated_JP", TypeOfCurrentPeriod="FY",
              CurrentPeriodEndDate=d(2023, 3, 31), CurrentFiscalYearEndDate=d(2023, 3, 31), NextFiscalYearEndDate=fy24,
              NetSales=1000.0, OperatingProfit=100.0, Profit=60.0, TotalAssets=2000.0, Equity=800.0,
              EquityToAssetRatio=0.4, NextYearForecastNetSales=1200.0, NextYearForecastOperatingProfit=120.0,
              NextYearForecastProfit=70.0),
        # 15:00 on 2023-08-10 is the close (before 2024-11-05): next session is 08-14 (08-11 is a holiday).
        _stmt(DisclosedDate=d(2023, 8, 10), DisclosedTime="15:00:00", LocalCode="13010", DisclosureNumber="2",
              TypeOfDocument="1QFinancialStatements_Consolidated_JP", TypeOfCurrentPeriod="1Q",
              CurrentPeriodEndDate=d(2023, 6, 30), CurrentFiscalYearEndDate=fy24,
              NetSales=300.0, OperatingProfit=30.0, Profit=18.0, TotalAssets=2000.0, Equity=810.0,
              EquityToAssetRatio=0.405, ForecastNetSales=1200.0, ForecastOperatingProfit=120.0, ForecastProfit=70.0),
        # Forecast-only revision after the close on Fri 09-15: usable Tue 09-19 (09-18 is a holiday).
        _stmt(DisclosedDate=d(2023, 9, 15), DisclosedTime="17:00:00", LocalCode="13010", DisclosureNumber="3",
              TypeOfDocument="EarnForecastRevision", TypeOfCurrentPeriod="FY", CurrentFiscalYearEndDate=fy24,
              ForecastNetSales=1320.0, ForecastOperatingProfit=150.0, ForecastProfit=70.0),
        # 15:10 on 2024-11-05 is before the new 15:30 close: same session.
        _stmt(DisclosedDate=d(2024, 11, 5), DisclosedTime="15:10:00", LocalCode="13010", DisclosureNumber="4",
              TypeOfDocument="1QFinancialStatements_Consolidated_JP", TypeOfCurrentPeriod="1Q",
              CurrentPeriodEndDate=d(2024, 6, 30), CurrentFiscalYearEndDate=fy25,
              NetSales=330.0, OperatingProfit=27.0, Profit=18.0, TotalAssets=2100.0, Equity=900.0,
              EquityToAssetRatio=0.43, ForecastNetSales=1400.0, ForecastOperatingProfit=140.0, ForecastProfit=80.0),
        # 15:10 on Fri 2024-11-01 is after the old 15:00 close: next session Tue 11-05 (11-04 is a holiday).
        _stmt(DisclosedDate=d(2024, 11, 1), DisclosedTime="15:10:00", LocalCode="13020", DisclosureNumber="5",
              TypeOfDocument="1QFinancialStatements_Consolidated_JP", TypeOfCurrentPeriod="1Q",
              CurrentPeriodEndDate=d(2024, 6, 30), CurrentFiscalYearEndDate=fy25,
              NetSales=100.0, OperatingProfit=5.0, Profit=3.0, TotalAssets=500.0, Equity=200.0,
              EquityToAssetRatio=0.4, ForecastNetSales=400.0, ForecastOperatingProfit=20.0, ForecastProfit=12.0),
    ]
    schema = {c: pl.Utf8 for c in FULL_REQUIRED}
    schema.update({c: pl.Date for c in FULL_REQUIRED if c.endswith("Date")})
    schema.update({c: pl.Float64 for c in FULL_REQUIRED if schema[c] == pl.Utf8 and c not in (
        "DisclosedTime", "LocalCode", "DisclosureNumber", "TypeOfDocument", "TypeOfCurrentPeriod")})
    return pl.DataFrame(rows, schema=schema)


FULL_DAYS = [dt.date(2023, 5, 11), dt.date(2023, 5, 12), dt.date(2023, 8, 10), dt.date(2023, 8, 14),
             dt.date(2023, 9, 15), dt.date(2023, 9, 19), dt.date(2024, 11, 1), dt.date(2024, 11, 5)]


def test_full_group_as_of_yoy_progress_and_revisions() -> None:
    stmts = full_statements().lazy()
    assert has_full_columns(stmts) and not has_full_columns(statements().lazy())
    rows_ = pl.LazyFrame({"Code": ["13010"] * 8 + ["13020"] * 2, "Date": FULL_DAYS + FULL_DAYS[-2:]})
    out = add_statement_features_full(rows_, stmts).collect()
    assert set(STATEMENT_FULL_FEATURES) <= set(out.columns) and out.height == 10
    f = lambda name: feature(out, "13010", name)  # noqa: E731
    assert f("is_stmt_valid") == [0.0] + [1.0] * 7
    assert f("stmt_quarter") == [None, 4.0, 4.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    assert f("stmt_roe")[1] == pytest.approx(0.075) and f("stmt_roa")[1] == pytest.approx(0.03)
    assert f("stmt_roe")[3] == pytest.approx(18 * 4 / 810)
    # FY actuals vs next year's guidance: different fiscal years, no progress.
    assert f("stmt_progress_op")[1:3] == [None, None]
    assert f("stmt_fc_op_margin")[1] == pytest.approx(0.1)
    assert f("stmt_progress_op")[3:5] == pytest.approx([0.25, 0.25])
    assert f("stmt_progress_np")[3] == pytest.approx(18 / 70)
    assert f("stmt_rev_sales")[3] == pytest.approx(0.0)  # 1Q restates the same guidance
    # The revision: guidance up, actuals kept.
    assert f("stmt_progress_op")[5:7] == pytest.approx([0.2, 0.2])
    assert f("stmt_progress_sales")[5] == pytest.approx(300 / 1320)
    assert (f("stmt_rev_sales")[5], f("stmt_rev_op")[5], f("stmt_rev_np")[5]) == pytest.approx((0.1, 0.25, 0.0))
    assert f("stmt_op_margin")[5] == pytest.approx(0.1)
    assert f("stmt_days_since")[:6] == [None, 0.0, 90.0, 0.0, 32.0, 0.0]
    assert f("stmt_days_since_rev")[6] == float((dt.date(2024, 11, 1) - dt.date(2023, 9, 19)).days)
    # The next year's 1Q: YoY against the 1Q a year earlier.
    assert f("is_stmt_yoy_valid") == [0.0] * 7 + [1.0]
    assert (f("stmt_sales_yoy")[7], f("stmt_op_yoy")[7], f("stmt_np_yoy")[7]) == pytest.approx((0.1, -0.1, 0.0))
    assert f("stmt_op_margin_yoy")[7] == pytest.approx(27 / 330 - 0.1)
    assert f("stmt_progress_op")[7] == pytest.approx(27 / 140)
    assert f("stmt_rev_op")[7] is None  # first guidance for the new fiscal year
    assert feature(out, "13020", "is_stmt_valid") == [0.0, 1.0]
    # Cross-sectional z on 2024-11-05 (ROE 0.08 vs 0.06; sample std): +-1/sqrt(2).
    z = out.filter(pl.col("Date") == dt.date(2024, 11, 5)).sort("Code")["stmt_roe_cs_z"].to_list()
    assert z == pytest.approx([1 / 2**0.5, -1 / 2**0.5])


def test_half_day_session_moves_afternoon_disclosures_to_the_next_day() -> None:
    # Treat Friday 2024-05-10 as a half-day session (close 11:30): 13020's 13:00 disclosure is then
    # after the close and first usable on Monday 05-13; on a full day it is usable on the 10th.
    half = {dt.date(2024, 5, 10)}
    out = add_statement_features(rows(), statements().lazy(), half_days=half).collect()
    assert feature(out, "13020", "is_stmt_valid")[:4] == [0.0, 0.0, 1.0, 1.0]
    # The full group: 13010's 13:00 FY statement of 2023-05-12 moves to Monday 05-15 on a half day.
    rows_ = pl.LazyFrame({"Code": ["13010"] * 3, "Date": [dt.date(2023, 5, d) for d in (11, 12, 15)]})
    on_full_day = add_statement_features_full(rows_, full_statements().lazy()).collect()
    on_half_day = add_statement_features_full(rows_, full_statements().lazy(), half_days={dt.date(2023, 5, 12)}).collect()
    assert on_full_day["is_stmt_valid"].to_list() == [0.0, 1.0, 1.0]
    assert on_half_day["is_stmt_valid"].to_list() == [0.0, 0.0, 1.0]
    assert on_half_day["stmt_days_since"].to_list() == [None, None, 0.0]
