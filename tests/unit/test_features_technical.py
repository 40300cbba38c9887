"""Technical indicators against TA-Lib on real daily bars, per-code isolation, and the as-of rule."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
import talib
from backtesting.test import GOOG

from gogoku.features.market import MARKET_FEATURES, STOCK_MARKET_FEATURES, add_market_features
from gogoku.features.price import PRICE_FEATURES, price_features
from gogoku.features.sector import SECTOR_FEATURES, add_sector_features
from gogoku.features.technical import TECHNICAL_FEATURES, add_seeded_ewm, add_technical_features

WARM_UP = 250
REL = 1e-6


def bars(frame, code: str) -> pl.DataFrame:
    """A pandas OHLCV frame (DatetimeIndex) as adjusted quote rows of one code."""
    return pl.DataFrame(
        {
            "Code": code,
            "Date": [d.date() for d in frame.index],
            "AdjustmentOpen": frame["Open"].to_numpy(float),
            "AdjustmentHigh": frame["High"].to_numpy(float),
            "AdjustmentLow": frame["Low"].to_numpy(float),
            "AdjustmentClose": frame["Close"].to_numpy(float),
            "AdjustmentVolume": frame["Volume"].to_numpy(float),
        }
    )


def talib_reference(q: pl.DataFrame) -> dict[str, np.ndarray]:
    o, h, lo, c, v = (q[f"Adjustment{k}"].to_numpy() for k in ("Open", "High", "Low", "Close", "Volume"))
    macd, signal, hist = talib.MACD(c, 12, 26, 9)
    upper, middle, lower = talib.BBANDS(c, 20, 2.0, 2.0)
    fast_k, fast_d = talib.STOCHF(h, lo, c, 14, 3)
    ref = {
        "rsi_2": talib.RSI(c, 2),
        "rsi_14": talib.RSI(c, 14),
        "atr_14": talib.ATR(h, lo, c, 14),
        "natr_14": talib.NATR(h, lo, c, 14),
        "adx_14": talib.ADX(h, lo, c, 14),
        "plus_di_14": talib.PLUS_DI(h, lo, c, 14),
        "minus_di_14": talib.MINUS_DI(h, lo, c, 14),
        "macd": macd,
        "macd_signal": signal,
        "macd_hist": hist,
        "bb_pct_b": (c - lower) / (upper - lower),
        "bb_bw": (upper - lower) / middle,
        "stoch_k": fast_k,
        "stoch_d": fast_d,
        "mfi_14": talib.MFI(h, lo, c, v, 14),
    }
    ref.update({f"sma_{n}": talib.SMA(c, n) for n in (5, 10, 20, 60, 120)})
    ref.update({f"ema_{n}": talib.EMA(c, n) for n in (5, 10, 20, 60, 200)})
    assert sorted(ref) == sorted(TECHNICAL_FEATURES)
    return ref


def assert_matches_talib(ours: pl.DataFrame, q: pl.DataFrame) -> None:
    """Every indicator, as the Float32 the dataset stores, equals TA-Lib after the warm-up."""
    ref = talib_reference(q)
    for name, want in ref.items():
        got = ours[name].cast(pl.Float32).cast(pl.Float64).to_numpy()[WARM_UP:]
        want = want[WARM_UP:]
        assert not np.isnan(want).any(), name
        assert not np.isnan(got).any(), f"{name}: null after the warm-up"
        # Relative to the value, with a floor for values that cross zero (MACD histogram).
        scale = np.maximum(np.abs(want), 1e-6 * np.abs(q["AdjustmentClose"].to_numpy()[WARM_UP:]))
        worst = np.max(np.abs(got - want) / scale)
        assert worst < REL, f"{name}: relative error {worst:.2e}"


def test_goog_matches_talib() -> None:
    q = bars(GOOG, "A")
    assert q.height == 2148
    out = add_technical_features(q.lazy()).collect()
    assert_matches_talib(out, q)


def test_warm_up_rows_are_null_not_filled() -> None:
    q = bars(GOOG, "A")
    out = add_technical_features(q.lazy()).collect()
    first = {name: out[name].is_not_null().arg_max() for name in TECHNICAL_FEATURES}
    # TA-Lib's first output rows (lookbacks); MACD starts with the slow EMA, its signal 8 rows later.
    want = {"sma_120": 119, "ema_200": 199, "rsi_14": 14, "rsi_2": 2, "atr_14": 14, "adx_14": 27,
            "plus_di_14": 14, "macd": 25, "macd_signal": 33, "bb_pct_b": 19, "stoch_k": 13, "stoch_d": 15,
            "mfi_14": 14}
    assert {k: first[k] for k in want} == want
    for name in TECHNICAL_FEATURES:
        assert out[name][first[name] :].null_count() == 0, name


def test_two_interleaved_codes_with_gaps_are_isolated() -> None:
    # Code B: a rescaled GOOG tail with every 7th session missing (a suspended stock). The rows of
    # both codes are mixed in one frame; each code must equal TA-Lib on its own series.
    a = bars(GOOG.iloc[:1200], "A")
    tail = GOOG.iloc[900:]
    b = bars(tail.iloc[[i for i in range(len(tail)) if i % 7 != 3]], "B").with_columns(
        pl.col("^Adjustment(Open|High|Low|Close)$") * 0.37
    )
    mixed = pl.concat([a, b]).sort("Date", "Code")
    out = add_technical_features(mixed.sort("Code", "Date").lazy()).collect()
    for code, q in (("A", a), ("B", b)):
        assert_matches_talib(out.filter(pl.col("Code") == code), q)


def test_seeded_ewm_seed_options() -> None:
    lf = pl.LazyFrame({"x": [None, 1.0, 2.0, 3.0, None, 5.0]})
    # Mean of the first 2 values at their row; a null later is skipped (the value carries over).
    out = add_seeded_ewm(lf, "x", "y", 2, 0.5, by=None).collect()["y"].to_list()
    assert out == [None, None, 1.5, 2.25, 2.25, 3.625]
    # TA-Lib's ADX seed: sum of n - 1 = 2 values, scaled by (n - 1) / n = 2/3 (i.e. sum / n).
    out = add_seeded_ewm(lf, "x", "y", 3, 1 / 3, by=None, seed_count=2, seed_scale=2 / 3).collect()["y"]
    assert out[2] == pytest.approx(1.0) and out[3] == pytest.approx(1.0 * 2 / 3 + 3.0 / 3)


# ---- the as-of rule over the price, market, stock x market and sector groups ----

CODES = [f"{1300 + i}0" for i in range(6)]
N_DAYS = 320


def universe(seed: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    rng = np.random.default_rng(seed)
    days = [dt.date(2022, 1, 3) + dt.timedelta(days=i) for i in range(N_DAYS)]
    mkt = np.cumsum(rng.normal(0, 0.01, N_DAYS))
    frames = []
    for i, code in enumerate(CODES):
        c = 100 * np.exp(0.9 * mkt + np.cumsum(rng.normal(0, 0.015, N_DAYS)))
        o = c * np.exp(rng.normal(0, 0.004, N_DAYS))
        v = rng.integers(1000, 5000, N_DAYS).astype(float)
        keep = np.arange(N_DAYS) % (5 + i) != 4  # each code misses some sessions
        frames.append(
            pl.DataFrame(
                {
                    "Code": code, "Date": days, "AdjustmentOpen": o, "AdjustmentHigh": np.maximum(o, c) * 1.01,
                    "AdjustmentLow": np.minimum(o, c) * 0.99, "AdjustmentClose": c, "AdjustmentVolume": v,
                    "TurnoverValue": v * c, "UpperLimit": "0", "LowerLimit": "0",
                    "Sector33Code": "0050" if i < 4 else "3050",
                }
            ).filter(pl.Series(keep))
        )
    t = 2000 * np.exp(mkt)
    topix = pl.DataFrame({"Date": days, "High": t * 1.004, "Low": t * 0.996, "Close": t})
    return pl.concat(frames).sort("Code", "Date"), topix


def all_features(quotes: pl.DataFrame, topix: pl.DataFrame) -> pl.DataFrame:
    lf = add_market_features(price_features(quotes.lazy()), topix.lazy())
    return add_sector_features(lf).sort("Code", "Date").collect()


def test_perturbing_the_future_changes_nothing_before() -> None:
    quotes, topix = universe(1)
    cut = dt.date(2022, 1, 3) + dt.timedelta(days=290)
    # Replace every bar and TOPIX value after the cut with unrelated ones.
    other_q, other_t = universe(2)
    later = pl.col("Date") > cut
    bar_cols = ["AdjustmentOpen", "AdjustmentHigh", "AdjustmentLow", "AdjustmentClose", "AdjustmentVolume",
                "TurnoverValue"]
    q2 = quotes.with_columns(
        *[pl.when(later).then(other_q[c] * 3.0).otherwise(pl.col(c)).alias(c) for c in bar_cols]
    )
    t2 = topix.with_columns(*[pl.when(later).then(other_t[c] * 0.5).otherwise(pl.col(c)).alias(c)
                              for c in ("High", "Low", "Close")])
    features = [*PRICE_FEATURES, *MARKET_FEATURES, *STOCK_MARKET_FEATURES, *SECTOR_FEATURES]
    base, moved = all_features(quotes, topix), all_features(q2, t2)
    assert base.height == moved.height
    before = pl.col("Date") <= cut
    b, m = base.filter(before).select(features), moved.filter(before).select(features)
    assert b.height > 5 * 280
    for name in features:
        x, y = b[name].to_numpy(), m[name].to_numpy()
        assert np.array_equal(np.isnan(x), np.isnan(y)), name
        assert np.allclose(x, y, rtol=1e-12, atol=0, equal_nan=True), name
    # ...while the rows after the cut did change (the perturbation reached the features).
    changed = [n for n in features if not base.filter(~before)[n].equals(moved.filter(~before)[n])]
    assert len(changed) > 0.9 * len(features)
