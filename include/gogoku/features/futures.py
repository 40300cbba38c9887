"""Market-level index-futures features `fut_*` (premium plan), one row per Date the dataset joins on.

Per category (TOPIXF, NK225F) the central contract month of each day is used, and every change is
measured against the SAME contract's previous session, so a roll to the next month is not a jump.

Timing assumptions (JPX; DESIGN contract 6):
- The night session of a J-Quants futures row dated T is the one that trades the evening BEFORE T's
  day session (it belongs to T's trading day) and ends at 06:00 JST on T. So the night return
  `NightSessionClose(T) / WholeDayClose(previous session) - 1` is known before T's cash session:
  it is effective at T (or the next business day when T is not a TSE business day).
- The whole-day close, open interest and the basis against TOPIX are end-of-day values set at the
  futures day-session close (15:45 JST, after the cash close), so they are effective at the next
  business day (T+1), as in the reference.
- Days to expiry (calendar days to LastTradingDay) is known in advance: effective at T.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from gogoku.calendar import with_effective_date

CATEGORIES = ("TOPIXF", "NK225F")
SAME_DAY_FEATURES = ("night_ret", "days_to_expiry")
NEXT_DAY_FEATURES = ("ret_1d", "oi_chg")


def _central_rows(futures: pl.LazyFrame, categories: tuple[str, ...]) -> pl.LazyFrame:
    cat = pl.col("DerivativesProductCategory")
    rows = (
        futures.filter(cat.is_in(list(categories)))
        .select(
            "Date", "Code", cat.alias("cat"), "WholeDayClose", "NightSessionClose", "OpenInterest",
            "ContractMonth", "LastTradingDay", "CentralContractMonthFlag",
        )
        .unique(["Code", "Date"], keep="last")
    )
    # The category's previous session; a contract's previous row counts only if it is that session.
    sessions = (
        rows.select("cat", "Date").unique().sort("cat", "Date")
        .with_columns(pl.col("Date").shift(1).over("cat").alias("_cat_prev"))
    )
    rows = (
        rows.join(sessions, on=["cat", "Date"], how="left")
        .sort("Code", "Date")
        .with_columns(
            pl.col("Date").shift(1).over("Code").alias("_prev_date"),
            pl.col("WholeDayClose").shift(1).over("Code").alias("_prev_close"),
            pl.col("OpenInterest").shift(1).over("Code").alias("_prev_oi"),
        )
        .with_columns(
            *[
                pl.when(pl.col("_prev_date") == pl.col("_cat_prev")).then(pl.col(c)).alias(c)
                for c in ("_prev_close", "_prev_oi")
            ]
        )
    )
    return (
        rows.filter(pl.col("CentralContractMonthFlag") == "1")
        .sort("cat", "Date", "ContractMonth")
        .unique(["cat", "Date"], keep="first")  # nearest month if a day lists two central rows
        .with_columns(
            (pl.col("NightSessionClose") / pl.col("_prev_close") - 1.0).alias("night_ret"),
            (pl.col("LastTradingDay") - pl.col("Date")).dt.total_days().cast(pl.Float64).alias("days_to_expiry"),
            (pl.col("WholeDayClose") / pl.col("_prev_close") - 1.0).alias("ret_1d"),
            (pl.col("OpenInterest") / pl.col("_prev_oi") - 1.0).alias("oi_chg"),
        )
    )


def _effective(frame: pl.LazyFrame, cols: list[str], time: str | None) -> pl.LazyFrame:
    """Move rows to the first business day that may use them; the latest row wins per day."""
    frame = frame.with_columns(pl.lit(time, dtype=pl.Utf8).alias("_time"))
    return (
        with_effective_date(frame, "Date", "_time" if time else None, out_col="_eff")
        .sort("_eff", "Date")
        .group_by("_eff", maintain_order=True)
        .agg(pl.col(cols).last())
        .rename({"_eff": "Date"})
    )


def futures_features(
    futures: pl.LazyFrame | pl.DataFrame,
    topix: pl.LazyFrame | pl.DataFrame | None = None,
    categories: tuple[str, ...] = CATEGORIES,
    start: dt.date | None = None,
    end: dt.date | None = None,
) -> pl.DataFrame:
    """Date + `fut_{category}_{name}` Float32 columns (plus fut_topixf_basis with TOPIX).

    Rows are the business days the values apply to, cut to [start, end] when given; pass futures
    from before `start` so that `start` gets the previous session's end-of-day values. Returned
    eager: it is a small Date-keyed table written to a file that the dataset build joins.
    """
    central = _central_rows(futures.lazy(), categories)
    if topix is not None and "TOPIXF" in categories:
        spot = topix.lazy().select("Date", pl.col("Close").alias("_topix"))
        central = central.join(spot, on="Date", how="left").with_columns(
            pl.when(pl.col("cat") == "TOPIXF").then(pl.col("WholeDayClose") / pl.col("_topix") - 1.0).alias("basis")
        )
        next_day = [*NEXT_DAY_FEATURES, "basis"]
    else:
        next_day = list(NEXT_DAY_FEATURES)

    out = pl.LazyFrame(schema={"Date": pl.Date})
    for cat in categories:
        rows = central.filter(pl.col("cat") == cat)
        prefix = f"fut_{cat.lower()}_"
        cols = [c for c in next_day if c != "basis" or cat == "TOPIXF"]
        same = _effective(rows, list(SAME_DAY_FEATURES), "06:00:00")
        later = _effective(rows, cols, None)
        part = same.join(later, on="Date", how="full", coalesce=True)
        part = part.rename({c: prefix + c for c in [*SAME_DAY_FEATURES, *cols]})
        out = out.join(part, on="Date", how="full", coalesce=True)
    if start is not None:
        out = out.filter(pl.col("Date") >= start)
    if end is not None:
        out = out.filter(pl.col("Date") <= end)
    return out.sort("Date").with_columns(pl.exclude("Date").cast(pl.Float32)).collect()
