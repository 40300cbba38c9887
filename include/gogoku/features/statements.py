"""A first, small statements group `stmt_*` (the full group is a later issue).

As-of rule (DESIGN contract 6): a disclosure is usable from `gogoku.calendar.with_effective_date`
(the same business day if disclosed before that day's close, else the next business day); rows
take the latest disclosure effective on or before their Date. Each field is the latest non-null
value disclosed so far, so a forecast-only revision does not blank the last reported actuals.
"""

from __future__ import annotations

import polars as pl

from gogoku.calendar import with_effective_date

STATEMENT_FIELDS = ("NetSales", "OperatingProfit", "ForecastOperatingProfit", "EquityToAssetRatio")
REQUIRED = ("DisclosedDate", "DisclosedTime", "LocalCode", "DisclosureNumber", *STATEMENT_FIELDS)

STATEMENT_FEATURES: tuple[str, ...] = (
    "stmt_op_margin",
    "stmt_progress_op",
    "stmt_equity_ratio",
    "stmt_days_since",
    "is_stmt_valid",
)


def add_statement_features(lf: pl.LazyFrame, statements: pl.LazyFrame) -> pl.LazyFrame:
    """Add `STATEMENT_FEATURES` to rows keyed by (Code, Date); rows come back sorted by (Code, Date)."""
    stmts = (
        with_effective_date(statements.select(REQUIRED), "DisclosedDate", "DisclosedTime", out_col="_eff")
        .rename({"LocalCode": "Code"})
        .sort("Code", "_eff", "DisclosedDate", "DisclosedTime", "DisclosureNumber")
        .with_columns(pl.col(STATEMENT_FIELDS).cast(pl.Float64).forward_fill().over("Code"))
        .unique(["Code", "_eff"], keep="last", maintain_order=True)
        .sort("_eff")
    )
    lf = lf.sort("Date").join_asof(
        stmts.select("Code", "_eff", *STATEMENT_FIELDS),
        left_on="Date",
        right_on="_eff",
        by="Code",
        strategy="backward",
        check_sortedness=False,
    )
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
