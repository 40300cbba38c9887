"""Nikkei 225 index-option features `opt_*` (standard plan and above), one row per Date.

The day's option bars, settlement and implied volatilities are end-of-day values (the derivatives
day session closes after the cash close), so a row dated T is usable from the next session (T+1).
Every stock of a date gets the same values.

Per date: the contract months with a last trading day after the date are ranked by expiry; near = the
first, next = the second. ATM IV = mean of the put and call IV at the strike nearest the underlying;
the skew is the near-month put IV at the strike nearest 0.95 x spot minus the call IV nearest 1.05 x
spot (a 25-delta-like risk reversal); put/call ratios of open interest and volume over all contracts;
the ATM IV's 60-session z-score and 5-session change. IVs are fractions (the API's percent / 100).
"""

from __future__ import annotations

import polars as pl

from gogoku.features._asof import ratio, session_shift, ts_z

REQUIRED = ("Date", "Code", "ContractMonth", "StrikePrice", "PutCallDivision", "LastTradingDay", "UnderlyingPrice",
            "ImpliedVolatility", "OpenInterest", "Volume")
MONEYNESS = 0.05

OPTION_FEATURES: tuple[str, ...] = (
    "opt_atm_iv_near", "opt_atm_iv_next", "opt_term_slope", "opt_skew_near", "opt_pc_oi_ratio", "opt_pc_vol_ratio",
    "opt_atm_iv_z60", "opt_atm_iv_chg5", "opt_days_to_expiry", "is_opt_valid",
)


def _nearest(rows: pl.LazyFrame, target: pl.Expr, put: bool | None, name: str) -> pl.LazyFrame:
    """IV at the strike nearest `target` per (Date, rank): puts, calls, or the put/call mean."""
    r = rows if put is None else rows.filter(pl.col("_put") == put)
    r = r.with_columns((pl.col("StrikePrice") - target).abs().alias("_dist"))
    best = r.group_by("Date", "_rank").agg(pl.col("_dist").min().alias("_best"))
    return (
        r.join(best, on=["Date", "_rank"])
        .filter(pl.col("_dist") == pl.col("_best"))
        .group_by("Date", "_rank")
        .agg(pl.col("_iv").mean().alias(name))
    )


def option_table(index_option: pl.LazyFrame) -> pl.LazyFrame:
    """Date-keyed `opt_*` features, Date = the first session that may use them."""
    o = index_option.select(REQUIRED).with_columns(
        pl.col("StrikePrice", "UnderlyingPrice", "ImpliedVolatility", "OpenInterest", "Volume").cast(pl.Float64),
        (pl.col("PutCallDivision").cast(pl.Utf8) == "1").alias("_put"),
    ).unique(["Date", "Code"], keep="last")
    totals = o.group_by("Date").agg(
        ratio(pl.col("OpenInterest").filter(pl.col("_put")).sum(), pl.col("OpenInterest").filter(~pl.col("_put")).sum())
        .alias("opt_pc_oi_ratio"),
        ratio(pl.col("Volume").filter(pl.col("_put")).sum(), pl.col("Volume").filter(~pl.col("_put")).sum())
        .alias("opt_pc_vol_ratio"),
    )
    live = o.filter(pl.col("LastTradingDay") > pl.col("Date"), pl.col("ImpliedVolatility") > 0).with_columns(
        (pl.col("ImpliedVolatility") / 100.0).alias("_iv")
    )
    months = (
        live.group_by("Date", "ContractMonth").agg(pl.col("LastTradingDay").min().alias("_ltd"))
        .with_columns(pl.col("_ltd").rank("dense").over("Date").alias("_rank"))
        .filter(pl.col("_rank") <= 2)
    )
    rows = live.join(months, on=["Date", "ContractMonth"])
    spot = pl.col("UnderlyingPrice")
    atm = _nearest(rows, spot, None, "_atm")
    put = _nearest(rows.filter(pl.col("_rank") == 1), spot * (1 - MONEYNESS), True, "_put_iv")
    call = _nearest(rows.filter(pl.col("_rank") == 1), spot * (1 + MONEYNESS), False, "_call_iv")
    near = atm.filter(pl.col("_rank") == 1).select("Date", pl.col("_atm").alias("opt_atm_iv_near"))
    nxt = atm.filter(pl.col("_rank") == 2).select("Date", pl.col("_atm").alias("opt_atm_iv_next"))
    expiry = months.filter(pl.col("_rank") == 1).select(
        "Date", (pl.col("_ltd") - pl.col("Date")).dt.total_days().cast(pl.Float64).alias("opt_days_to_expiry")
    )
    t = (
        totals.join(near, on="Date", how="left")
        .join(nxt, on="Date", how="left")
        .join(put.drop("_rank"), on="Date", how="left")
        .join(call.drop("_rank"), on="Date", how="left")
        .join(expiry, on="Date", how="left")
        .sort("Date")
        .with_columns(
            (pl.col("opt_atm_iv_next") - pl.col("opt_atm_iv_near")).alias("opt_term_slope"),
            (pl.col("_put_iv") - pl.col("_call_iv")).alias("opt_skew_near"),
            ts_z(pl.col("opt_atm_iv_near"), 60, 20).alias("opt_atm_iv_z60"),
            (pl.col("opt_atm_iv_near") - pl.col("opt_atm_iv_near").shift(5)).alias("opt_atm_iv_chg5"),
        )
    )
    # End-of-day values: usable from the next session; the latest day wins if two map to one session.
    t = session_shift(t, "Date", 1, "_eff").sort("_eff", "Date").unique("_eff", keep="last", maintain_order=True)
    return t.select(pl.col("_eff").alias("Date"), *[c for c in OPTION_FEATURES if c != "is_opt_valid"])


def add_option_features(lf: pl.LazyFrame, index_option: pl.LazyFrame) -> pl.LazyFrame:
    """Add `OPTION_FEATURES` to rows keyed by (Code, Date) (an exact-date join: no stale carry-over)."""
    table = option_table(index_option).with_columns(pl.lit(1.0).alias("is_opt_valid"))
    return lf.join(table, on="Date", how="left", maintain_order="left").with_columns(
        pl.col("is_opt_valid").fill_null(0.0)
    )

