"""Statements features `stmt_*`: a small group (frames with only `REQUIRED`) and the full group.

The full group (`add_statement_features_full`, used by the dataset build whenever the frame carries
`FULL_REQUIRED`, as the cached fins/statements source does): YoY growth of sales / operating profit /
profit against the same period type a year earlier, margins, ROE / ROA (annualized cumulative
profit), progress of cumulative actuals against the forecast in force for the same fiscal year,
forecast revisions (forecast-only `EarnForecastRevision` rows update the guidance and keep the
actuals), days since the last statement / revision, validity flags and a few `_cs_z` columns.

As-of rule (docs/data.md, "Dataset schema and the as-of rule"): a disclosure is usable from
`gogoku.calendar.with_effective_date` (the same business day if disclosed before that day's close,
11:30 on half days, else the next business day); rows take the latest disclosure effective on or
before their Date. Each field is the latest non-null value disclosed so far, so a forecast-only
revision does not blank the last reported actuals.

Bounded memory (gogoku.features.memory; statements are dated by DisclosedDate, effective at most
PUBLICATION_LAG_DAYS later): reports are quarterly, so
- a report (and, in the small group, each field's latest value) attaches only while its effective
  date is at most REPORT_MAX_AGE_DAYS = 200 days before the row (two quarters: a company that stopped
  reporting gets nulls, not its last report forever); the forecast in force likewise;
- a revision compares a forecast with the previous forecast for the same fiscal year only when that
  one was effective at most PREV_FORECAST_MAX_DAYS = 180 days before it (200 + 180 + lag <= 600);
- `stmt_days_since_rev` counts from a revision at most REVISION_MAX_AGE_DAYS = 365 days old (null
  beyond);
- YoY (`stmt_*_yoy`, `stmt_op_margin_yoy`, `is_stmt_yoy_valid`) needs last year's report of the same
  period to be effective at most YOY_MAX_AGE_DAYS = 587 days before the row (FEATURE_MEMORY_DAYS
  less the publication lag): with reports a year apart, YoY is known while this year's report is up to
  about 220 days old, so as long as the report itself attaches. Last year's report is taken as it was
  public when this year's became effective (a later correction of it does not reach back).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection

import polars as pl

from gogoku.calendar import with_effective_date
from gogoku.features._asof import asof_attach, cs_z, prev_within, ratio
from gogoku.features.memory import FEATURE_MEMORY_DAYS, PUBLICATION_LAG_DAYS

REPORT_MAX_AGE_DAYS = 200
PREV_FORECAST_MAX_DAYS = 180
REVISION_MAX_AGE_DAYS = 365
YOY_MAX_AGE_DAYS = FEATURE_MEMORY_DAYS - PUBLICATION_LAG_DAYS
# The most calendar days before a row that its statement features read (DisclosedDate).
MEMORY_DAYS = PUBLICATION_LAG_DAYS + max(REPORT_MAX_AGE_DAYS + PREV_FORECAST_MAX_DAYS, REVISION_MAX_AGE_DAYS,
                                         YOY_MAX_AGE_DAYS)

STATEMENT_FIELDS = ("NetSales", "OperatingProfit", "ForecastOperatingProfit", "EquityToAssetRatio")
REQUIRED = ("DisclosedDate", "DisclosedTime", "LocalCode", "DisclosureNumber", *STATEMENT_FIELDS)

STATEMENT_FEATURES: tuple[str, ...] = (
    "stmt_op_margin",
    "stmt_progress_op",
    "stmt_equity_ratio",
    "stmt_days_since",
    "is_stmt_valid",
)


def add_statement_features(
    lf: pl.LazyFrame, statements: pl.LazyFrame, half_days: Collection[dt.date] = ()
) -> pl.LazyFrame:
    """Add `STATEMENT_FEATURES` to rows keyed by (Code, Date); rows come back sorted by (Code, Date).

    `half_days`: half-day sessions (close 11:30) for the as-of rule.
    """
    stmts = (
        with_effective_date(
            statements.select(REQUIRED), "DisclosedDate", "DisclosedTime", out_col="_eff", half_days=half_days
        )
        .rename({"LocalCode": "Code"})
        .sort("Code", "_eff", "DisclosedDate", "DisclosedTime", "DisclosureNumber")
        .with_columns(pl.col(STATEMENT_FIELDS).cast(pl.Float64))
        # Each field's latest value and the date it became effective (a value too old is dropped below).
        .with_columns(
            *[pl.when(pl.col(f).is_not_null()).then(pl.col("_eff")).forward_fill().over("Code").alias(f"_eff_{f}")
              for f in STATEMENT_FIELDS],
            pl.col(STATEMENT_FIELDS).forward_fill().over("Code"),
        )
        .unique(["Code", "_eff"], keep="last", maintain_order=True)
        .sort("_eff")
    )
    lf = asof_attach(lf, stmts, "_eff", "Code", [*STATEMENT_FIELDS, *[f"_eff_{f}" for f in STATEMENT_FIELDS]],
                     max_age_days=REPORT_MAX_AGE_DAYS)
    lf = lf.with_columns(
        pl.when((pl.col("Date") - pl.col(f"_eff_{f}")).dt.total_days() <= REPORT_MAX_AGE_DAYS).then(pl.col(f)).alias(f)
        for f in STATEMENT_FIELDS
    ).drop([f"_eff_{f}" for f in STATEMENT_FIELDS])
    sales, op, fop = pl.col("NetSales"), pl.col("OperatingProfit"), pl.col("ForecastOperatingProfit")
    return (
        lf.with_columns(
            pl.when(sales != 0).then(op / sales).alias("stmt_op_margin"),
            pl.when(fop > 0).then(op / fop).alias("stmt_progress_op"),
            pl.col("EquityToAssetRatio").alias("stmt_equity_ratio"),
            (pl.col("Date") - pl.col("_eff")).dt.total_days().cast(pl.Float64).alias("stmt_days_since"),
            pl.col("_eff").is_not_null().cast(pl.Float64).alias("is_stmt_valid"),
        )
        .drop("_eff", *STATEMENT_FIELDS)
        .sort("Code", "Date")
    )


# ---------------------------------------------------------------- the full group
# Used when the statements frame carries the full fins/statements columns (the cached source does);
# the small group above stays for frames with only `REQUIRED`.
FULL_FIELDS = (
    "TypeOfDocument", "TypeOfCurrentPeriod", "CurrentPeriodEndDate", "CurrentFiscalYearEndDate",
    "NextFiscalYearEndDate", "NetSales", "OperatingProfit", "Profit", "TotalAssets", "Equity",
    "EquityToAssetRatio", "ForecastNetSales", "ForecastOperatingProfit", "ForecastProfit",
    "NextYearForecastNetSales", "NextYearForecastOperatingProfit", "NextYearForecastProfit",
)
FULL_REQUIRED = ("DisclosedDate", "DisclosedTime", "LocalCode", "DisclosureNumber", *FULL_FIELDS)
_QUARTERS = {"1Q": 1.0, "2Q": 2.0, "3Q": 3.0, "FY": 4.0}
_CS_Z = ("stmt_sales_yoy", "stmt_op_yoy", "stmt_roe", "stmt_progress_op", "stmt_rev_op")

STATEMENT_FULL_FEATURES: tuple[str, ...] = (
    "stmt_sales_yoy", "stmt_op_yoy", "stmt_np_yoy", "stmt_op_margin", "stmt_np_margin", "stmt_op_margin_yoy",
    "stmt_roe", "stmt_roa", "stmt_equity_ratio", "stmt_progress_sales", "stmt_progress_op", "stmt_progress_np",
    "stmt_fc_op_margin", "stmt_rev_sales", "stmt_rev_op", "stmt_rev_np", "stmt_quarter", "stmt_days_since",
    "stmt_days_since_rev", *[f"{c}_cs_z" for c in _CS_Z], "is_stmt_valid", "is_stmt_yoy_valid",
)


def has_full_columns(statements: pl.LazyFrame) -> bool:
    schema = statements.collect_schema()
    return all(c in schema for c in FULL_REQUIRED)


GROWTH_CLIP = 10.0  # growth against a near-zero base is clipped to +-1000%


def _growth(now: str, before: str) -> pl.Expr:
    b = pl.col(before)
    return pl.when(b.abs() > 0).then(((pl.col(now) - b) / b.abs()).clip(-GROWTH_CLIP, GROWTH_CLIP))


def _statement_tables(
    statements: pl.LazyFrame, half_days: Collection[dt.date] = ()
) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """(actuals, forecasts): per (Code, _eff) the latest report of each kind effective that day."""
    num = [c for c in FULL_FIELDS if c not in ("TypeOfDocument", "TypeOfCurrentPeriod") and not c.endswith("Date")]
    s = (
        with_effective_date(
            statements.select(FULL_REQUIRED), "DisclosedDate", "DisclosedTime", out_col="_eff", half_days=half_days
        )
        .rename({"LocalCode": "Code"})
        .with_columns(pl.col(num).cast(pl.Float64))
        .sort("Code", "_eff", "DisclosedDate", "DisclosedTime", "DisclosureNumber")
    )
    revision = pl.col("TypeOfDocument").str.contains("ForecastRevision") | (
        pl.col("NetSales").is_null() & pl.col("OperatingProfit").is_null() & pl.col("Profit").is_null()
    )
    s = s.with_columns(revision.fill_null(False).alias("_is_rev"))

    # Actuals: cumulative figures of the period; YoY against the same period type a year earlier.
    act = s.filter(~pl.col("_is_rev")).with_columns(
        (pl.col("CurrentPeriodEndDate").dt.year() * 12 + pl.col("CurrentPeriodEndDate").dt.month()).alias("_pk"),
        pl.col("TypeOfCurrentPeriod").replace_strict(_QUARTERS, default=None, return_dtype=pl.Float64).alias("_q"),
    )
    # Last year's report of the same period, as it was public when this report became effective: the
    # latest version effective on or before this one's `_eff` (a correction of last year's report
    # published later must not change, or blank, this report's YoY).
    ly_keys = ["Code", "TypeOfCurrentPeriod", "_pk"]
    prev = (
        act.select(
            "Code", "TypeOfCurrentPeriod", (pl.col("_pk") + 12).alias("_pk"), pl.col("_eff").alias("_eff_ly"),
            pl.col("NetSales").alias("_sales_ly"), pl.col("OperatingProfit").alias("_op_ly"),
            pl.col("Profit").alias("_np_ly"),
        )
        .drop_nulls(ly_keys)
        .unique([*ly_keys, "_eff_ly"], keep="last", maintain_order=True)
        .sort("_eff_ly")
    )
    act = (
        act.with_row_index("_row_ly")
        .sort("_eff")
        .join_asof(prev, left_on="_eff", right_on="_eff_ly", by=ly_keys, strategy="backward", check_sortedness=False)
        .sort("_row_ly")
        .drop("_row_ly")
    )
    annual = 4.0 / pl.col("_q")
    act = act.with_columns(
        _growth("NetSales", "_sales_ly").alias("stmt_sales_yoy"),
        _growth("OperatingProfit", "_op_ly").alias("stmt_op_yoy"),
        _growth("Profit", "_np_ly").alias("stmt_np_yoy"),
        ratio(pl.col("OperatingProfit"), pl.col("NetSales")).alias("stmt_op_margin"),
        ratio(pl.col("Profit"), pl.col("NetSales")).alias("stmt_np_margin"),
        (ratio(pl.col("OperatingProfit"), pl.col("NetSales")) - ratio(pl.col("_op_ly"), pl.col("_sales_ly")))
        .alias("stmt_op_margin_yoy"),
        ratio(pl.col("Profit") * annual, pl.col("Equity")).alias("stmt_roe"),
        ratio(pl.col("Profit") * annual, pl.col("TotalAssets")).alias("stmt_roa"),
        pl.col("EquityToAssetRatio").alias("stmt_equity_ratio"),
        pl.col("_q").alias("stmt_quarter"),
        pl.col("_sales_ly").is_not_null().cast(pl.Float64).alias("is_stmt_yoy_valid"),
        pl.col("CurrentFiscalYearEndDate").alias("_act_fy"),
        pl.col("NetSales").alias("_a_sales"), pl.col("OperatingProfit").alias("_a_op"), pl.col("Profit").alias("_a_np"),
    ).unique(["Code", "_eff"], keep="last", maintain_order=True)

    # Forecasts in force: an FY report guides the next year, other reports and revisions the current one.
    fy = pl.col("TypeOfCurrentPeriod") == "FY"
    fy_actual = fy & ~pl.col("_is_rev")
    fc = s.with_columns(
        pl.when(fy_actual).then(pl.col("NextFiscalYearEndDate")).otherwise(pl.col("CurrentFiscalYearEndDate")).alias("_fc_fy"),
        *[
            pl.when(fy_actual).then(pl.col(f"NextYearForecast{k}")).otherwise(pl.col(f"Forecast{k}")).alias(f"_f_{k}")
            for k in ("NetSales", "OperatingProfit", "Profit")
        ],
    ).filter(pl.col("_f_NetSales").is_not_null() | pl.col("_f_OperatingProfit").is_not_null())
    fc = fc.with_columns(
        *[prev_within(pl.col(f"_f_{k}"), "_eff", PREV_FORECAST_MAX_DAYS, ["Code", "_fc_fy"]).alias(f"_p_{k}")
          for k in ("NetSales", "OperatingProfit", "Profit")]
    ).with_columns(
        _growth("_f_NetSales", "_p_NetSales").alias("stmt_rev_sales"),
        _growth("_f_OperatingProfit", "_p_OperatingProfit").alias("stmt_rev_op"),
        _growth("_f_Profit", "_p_Profit").alias("stmt_rev_np"),
        ratio(pl.col("_f_OperatingProfit"), pl.col("_f_NetSales")).alias("stmt_fc_op_margin"),
    ).unique(["Code", "_eff"], keep="last", maintain_order=True).rename({"_eff": "_eff_f"})
    return act, fc


def _revisions(statements: pl.LazyFrame, half_days: Collection[dt.date] = ()) -> pl.LazyFrame:
    """Per Code, the effective dates of its forecast revisions (`_rev_eff`)."""
    s = with_effective_date(
        statements.select(FULL_REQUIRED), "DisclosedDate", "DisclosedTime", out_col="_rev_eff", half_days=half_days
    ).rename({"LocalCode": "Code"})
    revision = pl.col("TypeOfDocument").str.contains("ForecastRevision") | (
        pl.col("NetSales").is_null() & pl.col("OperatingProfit").is_null() & pl.col("Profit").is_null()
    )
    forecast = pl.any_horizontal(pl.col(c).is_not_null() for c in ("ForecastNetSales", "ForecastOperatingProfit"))
    return s.filter(revision.fill_null(False) & forecast).select("Code", "_rev_eff").unique()


def add_statement_features_full(
    lf: pl.LazyFrame, statements: pl.LazyFrame, half_days: Collection[dt.date] = ()
) -> pl.LazyFrame:
    """Add `STATEMENT_FULL_FEATURES` to rows keyed by (Code, Date); rows come back sorted by (Code, Date).

    As of each row's Date: the latest actual report and the latest forecast in force (a forecast-only
    revision updates the guidance and leaves the actuals as they were). Progress compares cumulative
    actuals with the forecast for the same fiscal year; revisions compare a forecast with the previous
    forecast for the same fiscal year.
    """
    act, fc = _statement_tables(statements, half_days)
    act_cols = [c for c in STATEMENT_FULL_FEATURES if c.startswith(("stmt_sales_yoy", "stmt_op_yoy", "stmt_np_yoy",
                "stmt_op_margin", "stmt_np_margin", "stmt_roe", "stmt_roa", "stmt_equity", "stmt_quarter"))
                and not c.endswith("_cs_z")]
    act_cols += ["is_stmt_yoy_valid", "_act_fy", "_a_sales", "_a_op", "_a_np", "_eff_ly"]
    fc_cols = ["stmt_rev_sales", "stmt_rev_op", "stmt_rev_np", "stmt_fc_op_margin", "_fc_fy",
               "_f_NetSales", "_f_OperatingProfit", "_f_Profit"]
    lf = asof_attach(lf, act, "_eff", "Code", act_cols, max_age_days=REPORT_MAX_AGE_DAYS)
    lf = asof_attach(lf, fc, "_eff_f", "Code", fc_cols, max_age_days=REPORT_MAX_AGE_DAYS)
    lf = asof_attach(lf, _revisions(statements, half_days), "_rev_eff", "Code", [],
                     max_age_days=REVISION_MAX_AGE_DAYS)
    # YoY only while last year's report is within the memory (see the module docstring).
    yoy_known = (pl.col("Date") - pl.col("_eff_ly")).dt.total_days() <= YOY_MAX_AGE_DAYS
    lf = lf.with_columns(
        pl.when(yoy_known).then(pl.col(c)).alias(c)
        for c in ("stmt_sales_yoy", "stmt_op_yoy", "stmt_np_yoy", "stmt_op_margin_yoy", "is_stmt_yoy_valid")
    )
    same_fy = pl.col("_act_fy") == pl.col("_fc_fy")
    last = pl.max_horizontal("_eff", "_eff_f")
    lf = lf.with_columns(
        pl.when(same_fy & (pl.col("_f_NetSales") > 0)).then(pl.col("_a_sales") / pl.col("_f_NetSales")).alias("stmt_progress_sales"),
        pl.when(same_fy & (pl.col("_f_OperatingProfit") > 0)).then(pl.col("_a_op") / pl.col("_f_OperatingProfit"))
        .alias("stmt_progress_op"),
        pl.when(same_fy & (pl.col("_f_Profit") > 0)).then(pl.col("_a_np") / pl.col("_f_Profit")).alias("stmt_progress_np"),
        (pl.col("Date") - last).dt.total_days().cast(pl.Float64).alias("stmt_days_since"),
        (pl.col("Date") - pl.col("_rev_eff")).dt.total_days().cast(pl.Float64).alias("stmt_days_since_rev"),
        pl.col("_eff").is_not_null().cast(pl.Float64).alias("is_stmt_valid"),
        pl.col("is_stmt_yoy_valid").fill_null(0.0),
    )
    return (
        lf.with_columns(*[cs_z(c) for c in _CS_Z])
        .drop("_eff", "_eff_f", "_act_fy", "_a_sales", "_a_op", "_a_np", "_rev_eff", "_fc_fy", "_eff_ly",
              "_f_NetSales", "_f_OperatingProfit", "_f_Profit")
        .sort("Code", "Date")
    )
