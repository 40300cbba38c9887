"""Market-level index-futures features `fut_*` (premium plan), one row per Date the dataset joins on.

Products: TOPIXF, NK225F, JN400F, REITF. Each uses its central contract month of the day
(CentralContractMonthFlag "1"; the nearest month if two rows carry the flag), and every change is
measured against the SAME contract's previous session of the product, so a roll to the next month
is never a return: on a roll day the new contract's own previous price is used (null when it did
not trade that session). Columns are `fut_<product>_<name>`, Float32, 22 per product (88 in all).

Notation for the central contract on session T of a product: P = SettlementPrice (WholeDayClose
when missing), P' = the same contract's P on the product's previous session, NO/NH/NL/NC = night
session open/high/low/close, DC = day-session close, OI, V = volume, S = the underlying index close
on T, SQ/LTD = special quotation day / last trading day, (P_n, SQ_n) = the next contract month's.
z60(x) = (x - mean) / std over the product's last 60 sessions (at least 30 values). Sessions are the
product's trading days (derivatives trade on some TSE holidays).

As of (the cash close is 15:00 JST, 15:30 from 2024-11-05): the night session of row T is the one
from the evening before T to 06:00 JST on T, published before T's cash close, so the ON group is
usable at T (a holiday session's at the next business day). Everything of the day session (the
settlement, OI, volume, the basis against the index close) is published after T's close, so the
EOD group is usable from the next JPX business day (T+1). When several sessions map to one
business day, each column keeps the latest non-null value.

| name | formula | usable from |
|---|---|---|
| on_ret | NC / P' - 1 | T |
| on_range | ln(NH / NL) | T |
| on_close_pos | (NC - NL) / (NH - NL) (null when NH = NL) | T |
| on_ret_z | z60(on_ret) | T |
| on_ret_5d | exp(sum of ln(1 + on_ret) over the last 5 sessions) - 1 (all 5 needed) | T |
| day_ret | DC / NC - 1 | T+1 |
| ret_1d | P / P' - 1 | T+1 |
| ret_5d | exp(sum of ln(1 + ret_1d) over the last 5 sessions) - 1 (all 5 needed; roll-safe) | T+1 |
| rv_20d | std(ret_1d, last 20 sessions, at least 10) x sqrt(252) | T+1 |
| basis | P / S - 1 (null without the underlying) | T+1 |
| basis_z | z60(basis) | T+1 |
| carry_ann | ln(P / S) x 365 / (SQ - T in days) | T+1 |
| term_spread | P_n / P - 1 | T+1 |
| term_carry_ann | ln(P_n / P) x 365 / (SQ_n - SQ in days) | T+1 |
| days_to_ltd | LTD - T in calendar days | T+1 |
| roll_flag | 1 if the central month differs from the previous session's, else 0 | T+1 |
| days_since_roll | product sessions since the last roll (0 on it; null before the first seen) | T+1 |
| oi_chg | OI / OI' - 1 (same contract) | T+1 |
| oi_z | z60(OI) | T+1 |
| oi_share | OI / the product's OI over all listed months | T+1 |
| vol_z | z60(ln(1 + V)) | T+1 |
| price_oi | sign(ret_1d) x oi_chg (positions added in the direction of the move) | T+1 |

The underlying close S comes from `topix` (TOPIXF) and `spots` (any product, e.g. NK225F from
`nk225_spot`); products without one keep basis, basis_z and carry_ann null.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping

import polars as pl

from gogoku.calendar import with_effective_date
from gogoku.errors import InputError
from gogoku.features._asof import ratio, ts_z

CATEGORIES = ("TOPIXF", "NK225F", "JN400F", "REITF")
ON_FEATURES = ("on_ret", "on_range", "on_close_pos", "on_ret_z", "on_ret_5d")
EOD_FEATURES = (
    "day_ret", "ret_1d", "ret_5d", "rv_20d", "basis", "basis_z", "carry_ann", "term_spread", "term_carry_ann",
    "days_to_ltd", "roll_flag", "days_since_roll", "oi_chg", "oi_z", "oi_share", "vol_z", "price_oi",
)
REQUIRED = (
    "Date", "Code", "DerivativesProductCategory", "NightSessionOpen", "NightSessionHigh", "NightSessionLow",
    "NightSessionClose", "DaySessionClose", "WholeDayClose", "SettlementPrice", "Volume", "OpenInterest",
    "ContractMonth", "LastTradingDay", "SpecialQuotationDay", "CentralContractMonthFlag",
)
NIGHT_PUBLISHED = "06:00:00"  # the night session ends at 06:00 JST, before the cash session
Z_WINDOW = 60
RV_WINDOW = 20
SUM_WINDOW = 5
ANNUALIZE = math.sqrt(252.0)

Frame = pl.DataFrame | pl.LazyFrame


def feature_names(categories: tuple[str, ...] = CATEGORIES) -> list[str]:
    """The output columns (besides Date), in order."""
    return [f"fut_{c.lower()}_{n}" for c in categories for n in (*ON_FEATURES, *EOD_FEATURES)]


def nk225_spot(index_option: Frame) -> pl.DataFrame:
    """Date + Close of the Nikkei 225 from option/index_option rows (their UnderlyingPrice), for `spots`."""
    return (
        index_option.lazy()
        .filter(pl.col("UnderlyingPrice") > 0)
        .group_by("Date")
        .agg(pl.col("UnderlyingPrice").cast(pl.Float64).median().alias("Close"))
        .sort("Date")
        .collect()
    )


def _sessions(futures: pl.LazyFrame, categories: tuple[str, ...]) -> pl.LazyFrame:
    """One row per (Code, Date) with P, and P' / OI' of the same contract on the product's previous session."""
    rows = futures.filter(pl.col("DerivativesProductCategory").is_in(list(categories))).select(
        *REQUIRED,
        *(["EmergencyMarginTriggerDivision"] if "EmergencyMarginTriggerDivision" in futures.collect_schema() else []),
    )
    if "EmergencyMarginTriggerDivision" in rows.collect_schema():
        # An emergency-margin day lists a row "001" besides the normal "002" one: keep the normal one.
        rows = rows.sort("EmergencyMarginTriggerDivision")
    rows = (
        rows.unique(["Code", "Date"], keep="last", maintain_order=True)
        .rename({"DerivativesProductCategory": "cat"})
        .with_columns(pl.coalesce("SettlementPrice", "WholeDayClose").cast(pl.Float64).alias("_px"))
    )
    sessions = (
        rows.select("cat", "Date").unique().sort("cat", "Date")
        .with_columns(pl.col("Date").shift(1).over("cat").alias("_cat_prev"))
    )
    same = pl.col("_prev_date") == pl.col("_cat_prev")  # the contract traded the product's previous session
    return (
        rows.join(sessions, on=["cat", "Date"], how="left")
        .sort("Code", "Date")
        .with_columns(
            pl.col("Date").shift(1).over("Code").alias("_prev_date"),
            pl.col("_px").shift(1).over("Code").alias("_px_prev"),
            pl.col("OpenInterest").shift(1).over("Code").alias("_oi_prev"),
        )
        .with_columns(pl.when(same).then(pl.col(c)).alias(c) for c in ("_px_prev", "_oi_prev"))
    )


def _central(rows: pl.LazyFrame) -> pl.LazyFrame:
    """The central contract per (cat, Date) with the next month's price and SQ and the product's total OI."""
    central = (
        rows.filter(pl.col("CentralContractMonthFlag") == "1")
        .sort("cat", "Date", "ContractMonth")
        .unique(["cat", "Date"], keep="first", maintain_order=True)
    )
    nxt = (
        rows.join(central.select("cat", "Date", pl.col("ContractMonth").alias("_cm_c")), on=["cat", "Date"])
        .filter(pl.col("ContractMonth") > pl.col("_cm_c"))
        .sort("cat", "Date", "ContractMonth")
        .group_by("cat", "Date", maintain_order=True)
        .agg(pl.col("_px").first().alias("_px_next"), pl.col("SpecialQuotationDay").first().alias("_sq_next"))
    )
    total = rows.group_by("cat", "Date").agg(pl.col("OpenInterest").sum().alias("_oi_total"))
    return (
        central.join(nxt, on=["cat", "Date"], how="left")
        .join(total, on=["cat", "Date"], how="left")
        .sort("cat", "Date")
    )


def _log_sum_ret(ret: pl.Expr) -> pl.Expr:
    """Compounded return over the last SUM_WINDOW values (null unless all are known)."""
    return ret.log1p().rolling_sum(SUM_WINDOW, min_samples=SUM_WINDOW).exp() - 1.0


def _product_features(c: pl.LazyFrame) -> pl.LazyFrame:
    """ON and EOD features of one product's central series (rows sorted by Date)."""
    nc, nh, nl = pl.col("NightSessionClose"), pl.col("NightSessionHigh"), pl.col("NightSessionLow")
    px, px_prev, oi = pl.col("_px"), pl.col("_px_prev"), pl.col("OpenInterest")
    days_to_sq = (pl.col("SpecialQuotationDay") - pl.col("Date")).dt.total_days()
    roll = (pl.col("ContractMonth") != pl.col("ContractMonth").shift(1)).cast(pl.Float64)
    c = c.with_columns(
        ratio(nc, px_prev).sub(1.0).alias("on_ret"),
        pl.when((nh > 0) & (nl > 0)).then((nh / nl).log()).alias("on_range"),
        ratio(nc - nl, nh - nl).alias("on_close_pos"),
        ratio(pl.col("DaySessionClose"), nc).sub(1.0).alias("day_ret"),
        ratio(px, px_prev).sub(1.0).alias("ret_1d"),
        ratio(px, pl.col("_spot")).sub(1.0).alias("basis"),
        pl.when(days_to_sq > 0).then((px / pl.col("_spot")).log() * 365.0 / days_to_sq).alias("carry_ann"),
        ratio(pl.col("_px_next"), px).sub(1.0).alias("term_spread"),
        pl.when(pl.col("_sq_next") > pl.col("SpecialQuotationDay"))
        .then((pl.col("_px_next") / px).log() * 365.0 / (pl.col("_sq_next") - pl.col("SpecialQuotationDay")).dt.total_days())
        .alias("term_carry_ann"),
        (pl.col("LastTradingDay") - pl.col("Date")).dt.total_days().cast(pl.Float64).alias("days_to_ltd"),
        roll.alias("roll_flag"),
        ratio(oi, pl.col("_oi_prev")).sub(1.0).alias("oi_chg"),
        ratio(oi, pl.col("_oi_total")).alias("oi_share"),
        pl.col("Volume").cast(pl.Float64).log1p().alias("_log_vol"),
        pl.int_range(pl.len()).alias("_i"),
        roll.fill_null(0.0).cum_sum().alias("_n_rolls"),
    )
    last_roll = pl.when(pl.col("roll_flag") == 1.0).then(pl.col("_i")).forward_fill()
    return c.with_columns(
        ts_z(pl.col("on_ret"), Z_WINDOW).alias("on_ret_z"),
        _log_sum_ret(pl.col("on_ret")).alias("on_ret_5d"),
        _log_sum_ret(pl.col("ret_1d")).alias("ret_5d"),
        (pl.col("ret_1d").rolling_std(RV_WINDOW, min_samples=RV_WINDOW // 2) * ANNUALIZE).alias("rv_20d"),
        ts_z(pl.col("basis"), Z_WINDOW).alias("basis_z"),
        pl.when(pl.col("_n_rolls") > 0).then(pl.col("_i") - last_roll).cast(pl.Float64).alias("days_since_roll"),
        ts_z(oi.cast(pl.Float64), Z_WINDOW).alias("oi_z"),
        ts_z(pl.col("_log_vol"), Z_WINDOW).alias("vol_z"),
        (pl.col("ret_1d").sign() * pl.col("oi_chg")).alias("price_oi"),
    )


def _effective(frame: pl.LazyFrame, cols: list[str], time: str | None) -> pl.LazyFrame:
    """Move rows to the first business day that may use them; per column the latest non-null value wins."""
    frame = frame.with_columns(pl.lit(time, dtype=pl.Utf8).alias("_time"))
    return (
        with_effective_date(frame, "Date", "_time" if time else None, out_col="_eff")
        .sort("_eff", "Date")
        .group_by("_eff", maintain_order=True)
        .agg(pl.col(c).drop_nulls().last() for c in cols)
        .rename({"_eff": "Date"})
    )


def _spot_frame(spot: Frame, name: str) -> pl.LazyFrame:
    lf = spot.lazy()
    missing = {"Date", "Close"} - set(lf.collect_schema().names())
    if missing:
        raise InputError(f"futures features: spot for {name}: missing column(s) {sorted(missing)}")
    return lf.select("Date", pl.col("Close").cast(pl.Float64).alias("_spot")).unique("Date", keep="last")


def futures_features(
    futures: Frame,
    topix: Frame | None = None,
    categories: tuple[str, ...] = CATEGORIES,
    start: dt.date | None = None,
    end: dt.date | None = None,
    spots: Mapping[str, Frame] | None = None,
) -> pl.DataFrame:
    """Date + the `fut_<product>_<name>` Float32 columns of `feature_names(categories)`.

    `topix` (Date, Close) is TOPIXF's underlying; `spots` maps a product to its underlying's
    (Date, Close) and wins over `topix`. Rows are the business days the values apply to, cut to
    [start, end]; pass futures from before `start` (60+ sessions) so that the windows are filled.
    Every column is present even for a product without rows (all null). Returned eager: a small
    Date-keyed table that the dataset build joins.
    """
    lf = futures.lazy()
    missing = [c for c in REQUIRED if c not in lf.collect_schema()]
    if missing:
        raise InputError(f"futures features: derivatives/futures frame lacks {missing}")
    underlying: dict[str, Frame] = {"TOPIXF": topix} if topix is not None else {}
    underlying.update(spots or {})
    central = _central(_sessions(lf, categories))

    out = pl.LazyFrame(schema={"Date": pl.Date})
    for cat in categories:
        rows = central.filter(pl.col("cat") == cat)
        if cat in underlying:
            rows = rows.join(_spot_frame(underlying[cat], cat), on="Date", how="left")
        else:
            rows = rows.with_columns(pl.lit(None, dtype=pl.Float64).alias("_spot"))
        rows = _product_features(rows.sort("Date"))
        part = _effective(rows, list(ON_FEATURES), NIGHT_PUBLISHED).join(
            _effective(rows, list(EOD_FEATURES), None), on="Date", how="full", coalesce=True
        )
        prefix = f"fut_{cat.lower()}_"
        out = out.join(part.rename({n: prefix + n for n in (*ON_FEATURES, *EOD_FEATURES)}), on="Date", how="full",
                       coalesce=True)
    if start is not None:
        out = out.filter(pl.col("Date") >= start)
    if end is not None:
        out = out.filter(pl.col("Date") <= end)
    names = feature_names(categories)
    return out.sort("Date").select("Date", *[pl.col(n).cast(pl.Float32) for n in names]).collect()
