"""Technical indicators as polars expressions, defined as TA-Lib defines them, but for the long EMAs,
which are windowed to keep the features' memory bounded.

Every indicator runs over one series: a Code's own rows with `.over(by)` (rows sorted by
(Code, Date)), or a whole frame with by=None (the TOPIX series). Values are Float64 here; the
dataset build casts them to Float32. Each one is null until its window is full or its recursion is
seeded, and matches TA-Lib on the same series once the seeds of the recursions have decayed (the
unit tests check 1e-6 relative after 250 rows, on real daily and hourly bars):

- SMA(n); EMA(n) for n in (5, 10, 20): seeded with the SMA of the first n values, then alpha = 2/(n+1).
- EMA(60), EMA(200) (`WINDOWED_EMAS`): NOT TA-Lib's. TA-Lib's recursion never forgets its seed:
  0.99^282 = 6 % of an EMA200's weight sits on its first value after 282 sessions, so the value of a
  day depended on where the series started (a full build and the build of that day alone disagreed
  by up to 4 %; EMA60 by 3e-5). They are windowed EWMAs over the last `EWMA_WINDOW` = 250 rows
  (`add_windowed_ewm`): y_t = sum_{i<K} w^i x_{t-i} / sum_{i<K} w^i over the non-null x of the
  window, w = 1 - 2/(n+1), null until the window holds n values (as TA-Lib is null before its seed).
  The weight the window leaves out is w^250: 8 % for EMA200, 2e-4 for EMA60; tested by hand.
- RSI(n), ATR(n): Wilder smoothing (alpha = 1/n) seeded with the mean of the first n gains/losses
  or true ranges (the first true range needs a previous close, so both start at row n).
- ADX(n), +DI(n), -DI(n): Wilder running sums of +DM, -DM and TR seeded with the SUM of the first
  n-1 values (TA-Lib's seed, not a mean); DX from row n; ADX = Wilder average of DX seeded with the
  mean of the first n DX values (first value at row 2n-1).
- MACD(12, 26, 9): EMA12 - EMA26 (price units); signal = EMA9 of it, seeded with the mean of its
  first 9 values. TA-Lib seeds its fast EMA at the slow EMA's first row instead: the difference
  decays like (11/13)^k and is below 1e-15 after 250 rows.
- BBANDS(20, 2, 2): middle SMA20 and the POPULATION standard deviation (ddof 0) of the same 20.
  Polars' rolling variance loses digits as the spread shrinks against the price (TA-Lib's is exact
  per window): %B holds 1e-6 down to a 20-bar standard deviation of about 1e-6 of the price, below
  what a tick allows for a stock that moved at all (a flat window is exactly 0 in both).
- STOCHF fast %K(14) and fast %D (SMA3 of %K); MFI(14) on the typical price (H + L + C) / 3.
- NATR(14) = 100 * ATR / close.

Ties follow TA-Lib's scale-aware zero test (`differs`): a typical price within 1e-14 x (|TP| +
|TP_prev|) of the previous one is unchanged (no money flow either way), and a %K range within 1e-14 x
(|high| + |low|) is flat. Prices equal in decimal often differ in their last bits once summed.

Deliberate differences from TA-Lib on degenerate input (flat windows): RSI is 50 (neutral) when
there was no move at all, where TA-Lib gives 0; %K (and so %D), %B, MFI and DX are null when their
range or denominator is 0 (TA-Lib gives 0); a null DX (no directional movement) is skipped by the ADX
average, as TA-Lib skips it after the seed.
"""

from __future__ import annotations

import polars as pl

from gogoku.features.memory import EWMA_WINDOW

SMA_WINDOWS = (5, 10, 20, 60, 120)
EMA_WINDOWS = (5, 10, 20, 60, 200)
# The EMAs whose TA-Lib seed would still weigh more than float tolerance at the memory bound.
WINDOWED_EMAS = (60, 200)
# TA-Lib's TA_EPSILON, used relative to the operands' magnitude (its TA_IS_ZERO_SCALED).
TIE_EPSILON = 1e-14

TECHNICAL_FEATURES: tuple[str, ...] = (
    *[f"sma_{n}" for n in SMA_WINDOWS],
    *[f"ema_{n}" for n in EMA_WINDOWS],
    "rsi_2",
    "rsi_14",
    "atr_14",
    "natr_14",
    "adx_14",
    "plus_di_14",
    "minus_di_14",
    "macd",
    "macd_signal",
    "macd_hist",
    "bb_pct_b",
    "bb_bw",
    "stoch_k",
    "stoch_d",
    "mfi_14",
)


def window(expr: pl.Expr, by: str | None) -> pl.Expr:
    """`expr` per partition `by` (a Code), or over the whole frame for a single series (by=None)."""
    return expr.over(by) if by else expr


def add_seeded_ewm(
    lf: pl.LazyFrame,
    src: str,
    out: str,
    n: int,
    alpha: float,
    by: str | None = "Code",
    *,
    seed_count: int | None = None,
    seed_scale: float = 1.0,
) -> pl.LazyFrame:
    """Add `out`: y_t = (1 - alpha) y_{t-1} + alpha x_t, seeded like TA-Lib.

    The seed is `seed_scale` x the mean of the first `seed_count` (default n) non-null values of
    `src`, placed at the row of the last of them; `out` is null before it. EMA: alpha = 2/(n+1);
    Wilder smoothing: alpha = 1/n. A null input after the seed is skipped (y carries over).
    """
    k = n if seed_count is None else seed_count
    x = pl.col(src)
    seen = window(x.is_not_null().cum_sum(), by)
    seed = window(x.fill_null(0.0).cum_sum(), by) * (seed_scale / k)
    tmp = f"_{out}_ewm_src"
    lf = lf.with_columns(pl.when(seen == k).then(seed).when((seen > k) & x.is_not_null()).then(x).alias(tmp))
    return lf.with_columns(
        window(pl.col(tmp).ewm_mean(alpha=alpha, adjust=False, ignore_nulls=True).forward_fill(), by)
        .alias(out)
    ).drop(tmp)


def add_windowed_ewm(lf: pl.LazyFrame, src: str, out: str, n: int, size: int = EWMA_WINDOW,
                     by: str | None = "Code") -> pl.LazyFrame:
    """Add `out`: the EWMA of `src` with w = 1 - 2/(n+1) over the last `size` rows only,

        y_t = sum_{i<size} w^i x_{t-i} / sum_{i<size} w^i   (both sums over the non-null x),

    null until the window holds n non-null values. Each value is a weighted sum of its own window, so
    it depends on the last `size` rows whatever came before them.
    """
    w = 1.0 - 2.0 / (n + 1)
    weights = [w ** (size - 1 - j) for j in range(size)]  # oldest first: the current row weighs 1
    x = pl.col(src)
    seen = x.is_not_null()
    num = window(x.fill_null(0.0).rolling_sum(size, weights=weights, min_samples=1), by)
    den = window(seen.cast(pl.Float64).rolling_sum(size, weights=weights, min_samples=1), by)
    count = window(seen.cast(pl.Int64).rolling_sum(size, min_samples=1), by)
    return lf.with_columns(pl.when(count >= n).then(num / den).alias(out))


def true_range(high: str, low: str, close: str, by: str | None) -> pl.Expr:
    """max(H - L, |H - C_prev|, |L - C_prev|); null on a series' first row (TA-Lib starts at row 1)."""
    h, lo = pl.col(high), pl.col(low)
    prev = window(pl.col(close).shift(1), by)
    return pl.when(prev.is_not_null()).then(pl.max_horizontal(h - lo, (h - prev).abs(), (lo - prev).abs()))


def rsi_from_averages(avg_gain: pl.Expr, avg_loss: pl.Expr) -> pl.Expr:
    # 100 * G / (G + L) == 100 - 100 / (1 + G/L); a window with no move (G = L = 0) is neutral (50).
    total = avg_gain + avg_loss
    return pl.when(total > 0).then(100.0 * avg_gain / total).when(total == 0).then(50.0)


def add_rsi(lf: pl.LazyFrame, close: str, n: int, out: str, by: str | None) -> pl.LazyFrame:
    c = pl.col(close)
    prev = window(c.shift(1), by)
    g, lo = f"_{out}_gain", f"_{out}_loss"
    lf = lf.with_columns((c - prev).clip(lower_bound=0.0).alias(g), (prev - c).clip(lower_bound=0.0).alias(lo))
    lf = add_seeded_ewm(lf, g, f"{g}_avg", n, 1.0 / n, by)
    lf = add_seeded_ewm(lf, lo, f"{lo}_avg", n, 1.0 / n, by)
    return lf.with_columns(rsi_from_averages(pl.col(f"{g}_avg"), pl.col(f"{lo}_avg")).alias(out)).drop(
        g, lo, f"{g}_avg", f"{lo}_avg"
    )


def add_atr(lf: pl.LazyFrame, high: str, low: str, close: str, n: int, out: str, by: str | None) -> pl.LazyFrame:
    tr = f"_{out}_tr"
    lf = lf.with_columns(true_range(high, low, close, by).alias(tr))
    return add_seeded_ewm(lf, tr, out, n, 1.0 / n, by).drop(tr)


def add_adx(
    lf: pl.LazyFrame,
    high: str,
    low: str,
    close: str,
    n: int,
    *,
    adx: str,
    plus_di: str | None = None,
    minus_di: str | None = None,
    by: str | None,
) -> pl.LazyFrame:
    """Add Wilder's ADX(n) (and +DI/-DI when named), TA-Lib's seeding."""
    h, lo = pl.col(high), pl.col(low)
    up = h - window(h.shift(1), by)
    down = window(lo.shift(1), by) - lo
    t = f"_{adx}"
    lf = lf.with_columns(
        pl.when(up.is_not_null()).then(pl.when((up > 0) & (up > down)).then(up).otherwise(0.0)).alias(f"{t}_pdm"),
        pl.when(up.is_not_null()).then(pl.when((down > 0) & (down > up)).then(down).otherwise(0.0)).alias(f"{t}_mdm"),
        true_range(high, low, close, by).alias(f"{t}_tr"),
    )
    # TA-Lib keeps running sums S_t = S_{t-1} (1 - 1/n) + x_t seeded with the sum of n-1 values;
    # S / n is an EWM with alpha 1/n seeded with that sum / n. The scale cancels in the ratios.
    for part in ("pdm", "mdm", "tr"):
        lf = add_seeded_ewm(lf, f"{t}_{part}", f"{t}_{part}_s", n, 1.0 / n, by, seed_count=n - 1,
                            seed_scale=(n - 1) / n)
    seen = window(pl.col(f"{t}_tr").is_not_null().cum_sum(), by)
    trs = pl.col(f"{t}_tr_s")
    lf = lf.with_columns(
        pl.when((seen >= n) & (trs > 0)).then(100.0 * pl.col(f"{t}_pdm_s") / trs).alias(f"{t}_pdi"),
        pl.when((seen >= n) & (trs > 0)).then(100.0 * pl.col(f"{t}_mdm_s") / trs).alias(f"{t}_mdi"),
    )
    pdi, mdi = pl.col(f"{t}_pdi"), pl.col(f"{t}_mdi")
    lf = lf.with_columns(pl.when(pdi + mdi > 0).then(100.0 * (pdi - mdi).abs() / (pdi + mdi)).alias(f"{t}_dx"))
    lf = add_seeded_ewm(lf, f"{t}_dx", adx, n, 1.0 / n, by)
    renames = {f"{t}_pdi": plus_di, f"{t}_mdi": minus_di}
    lf = lf.with_columns(*[pl.col(k).alias(v) for k, v in renames.items() if v])
    return lf.drop(pl.col(f"^{t}_.*$"))


def add_macd(
    lf: pl.LazyFrame,
    close: str,
    *,
    out: str,
    signal_out: str,
    hist_out: str,
    by: str | None,
    fast: int = 12,
    slow: int = 26,
    signal: int = 9,
) -> pl.LazyFrame:
    t = f"_{out}"
    lf = add_seeded_ewm(lf, close, f"{t}_fast", fast, 2.0 / (fast + 1), by)
    lf = add_seeded_ewm(lf, close, f"{t}_slow", slow, 2.0 / (slow + 1), by)
    lf = lf.with_columns((pl.col(f"{t}_fast") - pl.col(f"{t}_slow")).alias(out))
    lf = add_seeded_ewm(lf, out, signal_out, signal, 2.0 / (signal + 1), by)
    return lf.with_columns((pl.col(out) - pl.col(signal_out)).alias(hist_out)).drop(f"{t}_fast", f"{t}_slow")


def bbands_pct_b_bw(close: str, by: str | None, n: int = 20, k: float = 2.0) -> tuple[pl.Expr, pl.Expr]:
    """(%B, bandwidth) of BBANDS(n, k, k): (C - lower) / (upper - lower) and (upper - lower) / middle."""
    c = pl.col(close)
    mid = window(c.rolling_mean(n), by)
    sd = window(c.rolling_std(n, ddof=0), by)
    pct_b = pl.when(sd > 0).then((c - (mid - k * sd)) / (2.0 * k * sd))
    return pct_b, 2.0 * k * sd / mid


def differs(a: pl.Expr, b: pl.Expr) -> pl.Expr:
    """a and b differ by more than TA-Lib's scale-aware zero band, |a - b| > 1e-14 (|a| + |b|).

    Two prices that are equal in decimal can differ in their last bits once computed ((H + L + C) / 3
    of two FX bars): TA-Lib calls such a difference zero (~90 ulp), so ties and flat ranges are
    decided alike here.
    """
    return (a - b).abs() > TIE_EPSILON * (a.abs() + b.abs())


def stoch_fast_k(high: str, low: str, close: str, n: int, by: str | None) -> pl.Expr:
    """Fast %K(n): 100 (C - lowest low) / (highest high - lowest low); null on a flat range."""
    hh = window(pl.col(high).rolling_max(n), by)
    ll = window(pl.col(low).rolling_min(n), by)
    return pl.when(differs(hh, ll)).then(100.0 * (pl.col(close) - ll) / (hh - ll))


def mfi(high: str, low: str, close: str, volume: str, n: int, by: str | None) -> pl.Expr:
    """Money flow index: 100 x the up-move share of typical price x volume over n sessions.

    A typical price that did not move (see `differs`) adds money flow to neither side, as in
    TA-Lib; the first value is at row n (n price changes).
    """
    tp = (pl.col(high) + pl.col(low) + pl.col(close)) / 3.0
    prev = window(tp.shift(1), by)
    d = tp - prev
    flow = pl.when(differs(tp, prev)).then(tp * pl.col(volume)).otherwise(0.0)
    # Null on a series' first row (no previous price), so that the sums start at row n as TA-Lib's.
    pos = window(pl.when(d >= 0).then(flow).when(d < 0).then(0.0).rolling_sum(n), by)
    neg = window(pl.when(d < 0).then(flow).when(d >= 0).then(0.0).rolling_sum(n), by)
    # Count the bars that carried flow: an empty window is recognized exactly, not from sums that a
    # sliding add/subtract may leave a rounding residue in. Clamp the share into [0, 100] likewise.
    carried = window((flow != 0.0).cast(pl.Int64).rolling_sum(n), by)
    total = pos + neg
    return pl.when((carried > 0) & (total > 0)).then(100.0 * pos.clip(0.0, total) / total)


def add_technical_features(
    lf: pl.LazyFrame,
    by: str | None = "Code",
    *,
    high: str = "AdjustmentHigh",
    low: str = "AdjustmentLow",
    close: str = "AdjustmentClose",
    volume: str = "AdjustmentVolume",
) -> pl.LazyFrame:
    """Add `TECHNICAL_FEATURES` computed on the (adjusted) bars of each series."""
    c = pl.col(close)
    pct_b, bw = bbands_pct_b_bw(close, by)
    lf = lf.with_columns(
        *[window(c.rolling_mean(n), by).alias(f"sma_{n}") for n in SMA_WINDOWS],
        pct_b.alias("bb_pct_b"),
        bw.alias("bb_bw"),
        stoch_fast_k(high, low, close, 14, by).alias("stoch_k"),
        mfi(high, low, close, volume, 14, by).alias("mfi_14"),
    )
    for n in EMA_WINDOWS:
        if n in WINDOWED_EMAS:
            lf = add_windowed_ewm(lf, close, f"ema_{n}", n, by=by)
        else:
            lf = add_seeded_ewm(lf, close, f"ema_{n}", n, 2.0 / (n + 1), by)
    lf = add_rsi(lf, close, 2, "rsi_2", by)
    lf = add_rsi(lf, close, 14, "rsi_14", by)
    lf = add_atr(lf, high, low, close, 14, "atr_14", by)
    lf = add_adx(lf, high, low, close, 14, adx="adx_14", plus_di="plus_di_14", minus_di="minus_di_14", by=by)
    lf = add_macd(lf, close, out="macd", signal_out="macd_signal", hist_out="macd_hist", by=by)
    return lf.with_columns(
        (100.0 * pl.col("atr_14") / c).alias("natr_14"),
        window(pl.col("stoch_k").rolling_mean(3), by).alias("stoch_d"),
    )
