"""The stmt_* groups obey the as-of rule (docs/data.md, "Dataset schema and the as-of rule") and the
bounded memory of gogoku.features.statements."""

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
    return full_frame(rows)


def full_frame(rows: list[dict]) -> pl.DataFrame:
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
    # 2024-11-01 (row 6): the last report (effective 2023-08-14) and the last forecast (2023-09-19) are
    # 445 and 409 days old, beyond REPORT_MAX_AGE_DAYS = 200: nothing attaches (a bounded memory).
    assert f("is_stmt_valid") == [0.0] + [1.0] * 5 + [0.0, 1.0]
    assert f("stmt_quarter") == [None, 4.0, 4.0, 1.0, 1.0, 1.0, None, 1.0]
    assert f("stmt_roe")[1] == pytest.approx(0.075) and f("stmt_roa")[1] == pytest.approx(0.03)
    assert f("stmt_roe")[3] == pytest.approx(18 * 4 / 810)
    # FY actuals vs next year's guidance: different fiscal years, no progress.
    assert f("stmt_progress_op")[1:3] == [None, None]
    assert f("stmt_fc_op_margin")[1] == pytest.approx(0.1)
    assert f("stmt_progress_op")[3:5] == pytest.approx([0.25, 0.25])
    assert f("stmt_progress_np")[3] == pytest.approx(18 / 70)
    assert f("stmt_rev_sales")[3] == pytest.approx(0.0)  # 1Q restates the same guidance
    # The revision: guidance up, actuals kept.
    assert f("stmt_progress_op")[5] == pytest.approx(0.2)
    assert f("stmt_progress_op")[6] is None
    assert f("stmt_progress_sales")[5] == pytest.approx(300 / 1320)
    assert (f("stmt_rev_sales")[5], f("stmt_rev_op")[5], f("stmt_rev_np")[5]) == pytest.approx((0.1, 0.25, 0.0))
    assert f("stmt_op_margin")[5] == pytest.approx(0.1)
    assert f("stmt_days_since")[:6] == [None, 0.0, 90.0, 0.0, 32.0, 0.0]
    assert f("stmt_days_since_rev")[5] == 0.0
    # 2024-11-01 - 2023-09-19 = 409 days > REVISION_MAX_AGE_DAYS = 365: no count from so long ago.
    assert f("stmt_days_since_rev")[6] is None and f("stmt_days_since")[6] is None
    # The next year's 1Q (effective 2024-11-05) against last year's 1Q (effective 2023-08-14, 449 days
    # before, within YOY_MAX_AGE_DAYS = 587): sales 330 / 300 - 1, op 27 / 30 - 1, profit 18 / 18 - 1.
    assert f("is_stmt_yoy_valid") == [0.0] * 7 + [1.0]
    assert (f("stmt_sales_yoy")[7], f("stmt_op_yoy")[7], f("stmt_np_yoy")[7]) == pytest.approx((0.1, -0.1, 0.0))
    assert f("stmt_op_margin_yoy")[7] == pytest.approx(27 / 330 - 30 / 300)
    assert f("stmt_progress_op")[7] == pytest.approx(27 / 140)
    assert f("stmt_rev_op")[7] is None  # first guidance for the new fiscal year
    assert feature(out, "13020", "is_stmt_valid") == [0.0, 1.0]
    # Cross-sectional z on 2024-11-05 (ROE 0.08 vs 0.06; sample std): +-1/sqrt(2).
    z = out.filter(pl.col("Date") == dt.date(2024, 11, 5)).sort("Code")["stmt_roe_cs_z"].to_list()
    assert z == pytest.approx([1 / 2**0.5, -1 / 2**0.5])


def test_full_group_bounded_memory() -> None:
    """Each bound of the module docstring, on either side of it; and last year's report as it was
    public then (a later correction of it does not reach back)."""
    d = dt.date
    fy24, fy25 = d(2024, 3, 31), d(2025, 3, 31)
    q1 = dict(TypeOfDocument="1QFinancialStatements_Consolidated_JP", TypeOfCurrentPeriod="1Q")
    rows = [
        # 13030: 1Q reports a year apart, both disclosed at 13:00 (before the close: effective that day).
        _stmt(DisclosedDate=d(2023, 8, 10), DisclosedTime="13:00:00", LocalCode="13030", DisclosureNumber="1", **q1,
              CurrentPeriodEndDate=d(2023, 6, 30), CurrentFiscalYearEndDate=fy24, NetSales=300.0,
              OperatingProfit=30.0, Profit=18.0, ForecastNetSales=1200.0, ForecastOperatingProfit=120.0),
        # A forecast revision after the close of Fri 2023-09-15: effective Tue 09-19 (09-18 a holiday).
        _stmt(DisclosedDate=d(2023, 9, 15), DisclosedTime="17:00:00", LocalCode="13030", DisclosureNumber="2",
              TypeOfDocument="EarnForecastRevision", TypeOfCurrentPeriod="FY", CurrentFiscalYearEndDate=fy24,
              ForecastNetSales=1320.0, ForecastOperatingProfit=150.0),
        _stmt(DisclosedDate=d(2024, 8, 9), DisclosedTime="13:00:00", LocalCode="13030", DisclosureNumber="3", **q1,
              CurrentPeriodEndDate=d(2024, 6, 30), CurrentFiscalYearEndDate=fy25, NetSales=330.0,
              OperatingProfit=27.0, Profit=18.0, ForecastNetSales=1400.0, ForecastOperatingProfit=140.0),
        # 13040: guidance in force from its FY report, revised 187 days later (beyond the 180-day bound).
        _stmt(DisclosedDate=d(2023, 5, 12), DisclosedTime="13:00:00", LocalCode="13040", DisclosureNumber="4",
              TypeOfDocument="FYFinancialStatements_Consolidated_JP", TypeOfCurrentPeriod="FY",
              CurrentPeriodEndDate=d(2023, 3, 31), CurrentFiscalYearEndDate=d(2023, 3, 31), NextFiscalYearEndDate=fy24,
              NetSales=1000.0, OperatingProfit=100.0, Profit=60.0, NextYearForecastNetSales=1200.0,
              NextYearForecastOperatingProfit=120.0),
        _stmt(DisclosedDate=d(2023, 11, 15), DisclosedTime="13:00:00", LocalCode="13040", DisclosureNumber="5",
              TypeOfDocument="EarnForecastRevision", TypeOfCurrentPeriod="FY", CurrentFiscalYearEndDate=fy24,
              ForecastNetSales=1260.0, ForecastOperatingProfit=150.0),
    ]
    # 2023-09-19 + 365 = 2024-09-18; 2024-08-09 + 200 (REPORT_MAX_AGE_DAYS) = 2025-02-25;
    # 2023-08-10 + 587 (YOY_MAX_AGE_DAYS) = 2025-03-19, so last year's 1Q is in reach while this year's attaches.
    days = [d(2024, 8, 9), d(2024, 8, 30), d(2024, 9, 2), d(2024, 9, 18), d(2024, 9, 19), d(2025, 2, 25),
            d(2025, 2, 26)]
    rows_ = pl.LazyFrame({"Code": ["13030"] * len(days) + ["13040"] * 2,
                          "Date": days + [d(2023, 11, 14), d(2023, 11, 15)]})
    out = add_statement_features_full(rows_, full_frame(rows).lazy()).collect()
    f = lambda name: feature(out, "13030", name)  # noqa: E731
    # YoY against last year's 1Q: sales 330 / 300 - 1, op 27 / 30 - 1, profit 18 / 18 - 1; known as
    # long as this year's report attaches (565 days after last year's on 2025-02-25), not after.
    assert f("is_stmt_yoy_valid") == [1.0] * 6 + [0.0]
    assert (f("stmt_sales_yoy")[0], f("stmt_op_yoy")[0], f("stmt_np_yoy")[0]) == pytest.approx((0.1, -0.1, 0.0))
    assert f("stmt_op_margin_yoy")[1] == pytest.approx(27 / 330 - 30 / 300)
    assert f("stmt_sales_yoy")[1:6] == pytest.approx([0.1] * 5) and f("stmt_sales_yoy")[6] is None
    # The 2023-09-19 revision is counted for 365 days, then forgotten.
    assert f("stmt_days_since_rev")[:5] == [325.0, 346.0, 349.0, 365.0, None]  # 2024 is a leap year
    # The 2024-08-09 report attaches for 200 days.
    assert f("is_stmt_valid") == [1.0] * 6 + [0.0]
    assert f("stmt_days_since")[5] == 200.0 and f("stmt_days_since")[6] is None
    assert f("stmt_progress_op")[5] == pytest.approx(27 / 140) and f("stmt_progress_op")[6] is None
    # 13040: the guidance of 2023-05-12 is 187 days old when revised: the revision is not compared
    # with it (stmt_rev_* null), though the new guidance is in force (the old one still attached the
    # day before, 186 <= 200 days old).
    g = lambda name: feature(out, "13040", name)  # noqa: E731
    assert g("stmt_rev_op") == [None, None]
    assert g("stmt_fc_op_margin") == pytest.approx([0.1, 150 / 1260])
    assert g("stmt_days_since_rev") == [None, 0.0]

    # A correction of last year's 1Q disclosed after this year's 1Q (2024-08-20) leaves the rows before
    # it as they were: their YoY uses last year's report as public on 2024-08-09.
    fix = _stmt(DisclosedDate=d(2024, 8, 20), DisclosedTime="13:00:00", LocalCode="13030", DisclosureNumber="6",
                **q1, CurrentPeriodEndDate=d(2023, 6, 30), CurrentFiscalYearEndDate=fy24, NetSales=310.0,
                OperatingProfit=31.0, Profit=18.0)
    early = pl.LazyFrame({"Code": ["13030"] * 2, "Date": [d(2024, 8, 9), d(2024, 8, 19)]})
    without = add_statement_features_full(early, full_frame(rows).lazy()).collect()
    with_fix = add_statement_features_full(early, full_frame([*rows, fix]).lazy()).collect()
    assert with_fix["stmt_sales_yoy"].to_list() == pytest.approx([0.1, 0.1])
    assert with_fix.equals(without)


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
