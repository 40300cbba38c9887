"""TOPIX features and stock x market features on hand-checkable series."""

from __future__ import annotations

import datetime as dt
import math
import statistics

import numpy as np
import polars as pl
import pytest
import talib

from gogoku.features.memory import EWMA_WINDOW
from gogoku.features.price import price_features
from gogoku.features.topix import (
    MARKET_FEATURES,
    STOCK_MARKET_FEATURES,
    add_market_features,
    market_features,
)

N = 300
DAYS = [dt.date(2023, 1, 1) + dt.timedelta(days=i) for i in range(N)]
# Deterministic, irregular TOPIX daily returns (a periodic pattern would give constant rolling stats).
MKT_RET = [0.01 * math.sin(1.3 * i) + 0.004 * math.cos(0.7 * i * i) for i in range(N)]


def topix_close() -> list[float]:
    closes = [1000.0]
    for r in MKT_RET[1:]:
        closes.append(closes[-1] * (1 + r))
    return closes


def windowed_ema(c: list[float], n: int, i: int, size: int = EWMA_WINDOW) -> float:
    """EMA(n) of row i windowed over the last `size` rows: sum w^k c[i-k] / sum w^k, w = 1 - 2/(n+1)."""
    w = 1 - 2 / (n + 1)
    rows = range(max(0, i - size + 1), i + 1)
    return sum(w ** (i - j) * c[j] for j in rows) / sum(w ** (i - j) for j in rows)


def zscore_of_last(values: list[float]) -> float:
    """The z-score of the last value among the last Z_WINDOW = 240 (sample std)."""
    window = values[-240:]
    return (values[-1] - statistics.mean(window)) / statistics.stdev(window)


def topix() -> pl.DataFrame:
    c = topix_close()
    return pl.DataFrame(
        {"Date": DAYS, "Open": c, "High": [x * 1.01 for x in c], "Low": [x * 0.99 for x in c], "Close": c}
    )


@pytest.fixture(scope="module")
def mkt() -> pl.DataFrame:
    return market_features(topix().lazy()).collect()


def test_market_columns_and_returns(mkt: pl.DataFrame) -> None:
    assert mkt.columns == ["Date", *MARKET_FEATURES]
    assert mkt.height == N
    c = topix_close()
    assert mkt["mkt_ret_1d"][0] is None
    assert mkt["mkt_ret_1d"][1] == pytest.approx(MKT_RET[1])
    assert mkt["mkt_ret_5d"][10] == pytest.approx(c[10] / c[5] - 1)
    rets = [c[i] / c[i - 1] - 1 for i in range(1, N)]
    assert mkt["mkt_vol_20d"][50] == pytest.approx(statistics.stdev(rets[30:50]) * math.sqrt(252))


def test_drawdown_ema_and_flags(mkt: pl.DataFrame) -> None:
    c = topix_close()
    assert mkt["mkt_dd_from_peak"][250] is None  # 252 sessions needed
    assert mkt["mkt_dd_from_peak"][299] == pytest.approx(c[299] / max(c[48:300]) - 1)
    # EMA200 is windowed over the last 250 sessions: it first exists at row 199 (200 closes, all of
    # them weighted), and row 299 weighs rows 50..299 only.
    assert mkt["mkt_price_to_ema200"][198] is None
    assert mkt["mkt_price_to_ema200"][199] == pytest.approx(c[199] / windowed_ema(c, 200, 199))
    ema = windowed_ema(c, 200, 299)
    assert mkt["mkt_price_to_ema200"][299] == pytest.approx(c[299] / ema)
    assert mkt["mkt_bull_200"][198] is None  # warm-up is unknown, not "bear"
    assert mkt["mkt_bull_200"][299] == (1.0 if c[299] > ema else 0.0)


def test_time_series_zscore(mkt: pl.DataFrame) -> None:
    vol = mkt["mkt_vol_20d"].to_list()
    assert mkt["mkt_vol_20d_z"][144] is None  # 126 values of mkt_vol_20d start at row 20 + 125
    i = 280  # the last 240 values: rows 41..280
    want = zscore_of_last(vol[i - 239 : i + 1])
    assert mkt["mkt_vol_20d_z"][i] == pytest.approx(want, rel=1e-6)
    z = mkt["mkt_vol_20d_z"][i]
    assert mkt["mkt_high_vol"][i] == (1.0 if z > 1 else 0.0)


def stock_quotes(extra: float) -> pl.DataFrame:
    """A stock whose daily return is exactly 2 x TOPIX's + `extra`: beta 2, alpha `extra`."""
    closes = [500.0]
    for r in MKT_RET[1:]:
        closes.append(closes[-1] * (1 + 2 * r + extra))
    return pl.DataFrame(
        {
            "Code": "72030",
            "Date": DAYS,
            "AdjustmentOpen": closes,
            "AdjustmentHigh": closes,
            "AdjustmentLow": closes,
            "AdjustmentClose": closes,
            "AdjustmentVolume": 1000.0,
            "TurnoverValue": 1000.0,
            "UpperLimit": "0",
            "LowerLimit": "0",
        }
    )


def test_stock_market_features() -> None:
    q = price_features(stock_quotes(0.001).lazy())
    # Drop one TOPIX day: the stock row of that day gets null market columns, not a neighbour's.
    tpx = topix().filter(pl.col("Date") != DAYS[200])
    out = add_market_features(q, tpx.lazy()).collect()
    assert out.height == N
    for name in (*MARKET_FEATURES, *STOCK_MARKET_FEATURES):
        assert name in out.columns
    assert out["mkt_ret_1d"][200] is None
    assert out["beta_60d"][59] is None and out["is_beta_valid"][59] == 0.0
    assert out["beta_60d"][60] == pytest.approx(2.0)
    assert out["corr_mkt_60d"][100] == pytest.approx(1.0)
    assert out["alpha_1d"][100] == pytest.approx(0.001, abs=1e-12)
    assert out["idio_vol_ratio"][100] == pytest.approx(0.0, abs=1e-9)
    c = out["AdjustmentClose"].to_list()
    tc = topix_close()
    assert out["rel_strength_5d"][100] == pytest.approx((c[100] / c[95] - 1) - (tc[100] / tc[95] - 1))
    # A window containing the missing TOPIX day has no beta.
    assert out["beta_60d"][259] is None and out["beta_60d"][260] is not None


def test_market_indicators_match_talib(mkt: pl.DataFrame) -> None:
    t = topix()
    h, lo, c = (t[k].to_numpy() for k in ("High", "Low", "Close"))
    _, _, hist = talib.MACD(c, 12, 26, 9)
    upper, middle, lower = talib.BBANDS(c, 20, 2.0, 2.0)
    want = {
        "mkt_rsi_14": talib.RSI(c, 14),
        "mkt_adx_14": talib.ADX(h, lo, c, 14),
        "mkt_natr_14": talib.NATR(h, lo, c, 14),
        "mkt_macd_hist_norm": hist / c,
        "mkt_bb_pct_b": (c - lower) / (upper - lower),
        "mkt_bb_bw": (upper - lower) / middle,
    }
    # EMA60 is windowed over 250 sessions (not TA-Lib's seeded recursion).
    want["mkt_price_to_ema60"] = c / np.array([windowed_ema(list(c), 60, i) for i in range(len(c))])
    for name, ref in want.items():
        got = mkt[name].to_numpy()[250:]
        assert np.allclose(got, ref[250:], rtol=1e-9, atol=1e-12), name


def test_more_market_columns_and_flags(mkt: pl.DataFrame) -> None:
    c = topix_close()
    rets = [c[i] / c[i - 1] - 1 for i in range(1, N)]
    assert mkt["mkt_ret_60d"][100] == pytest.approx(c[100] / c[40] - 1)
    assert mkt["mkt_vol_60d"][100] == pytest.approx(statistics.stdev(rets[40:100]) * math.sqrt(252))
    assert mkt["mkt_hl_range"][7] == pytest.approx(0.02)
    i = 200
    big = abs(rets[i - 1]) >= 2 * statistics.stdev(rets[i - 60 : i])
    assert mkt["mkt_big_move"][i] == (1.0 if big else 0.0)
    assert mkt["mkt_trend_up"][i] == (1.0 if mkt["mkt_ema_gap_5_20"][i] > 0 else 0.0)
    assert mkt["mkt_bear_dd"][299] == (1.0 if mkt["mkt_dd_from_peak"][299] < -0.1 else 0.0)
    assert mkt["mkt_bear_dd"][250] is None
    gap = mkt["mkt_ema_gap_5_20"]  # EMA20 exists from row 19
    assert gap[18] is None and gap[19] is not None
    assert mkt["mkt_ema20_slope_3"][21] is None and mkt["mkt_ema20_slope_3"][22] is not None


def test_z_scores_of_smoothed_series_use_seed_free_inputs(mkt: pl.DataFrame) -> None:
    # The z-scores of the RSI, the NATR and the EMA gap take the same indicators without a recursion's
    # seed: simple 14-session means (Cutler's RSI), and EWMA5 / EWMA20 windowed over 21 sessions, so
    # that their last 240 values read 260 sessions at most.
    t = topix()
    c, h, lo = (t[k].to_list() for k in ("Close", "High", "Low"))
    moves = [c[k] - c[k - 1] for k in range(1, N)]  # moves[k - 1]: row k's

    def cutler_rsi(i: int) -> float:
        m = moves[i - 14 : i]
        gain, loss = sum(max(x, 0.0) for x in m) / 14, sum(max(-x, 0.0) for x in m) / 14
        return 100 * gain / (gain + loss)

    def natr(i: int) -> float:
        tr = [max(h[k] - lo[k], abs(h[k] - c[k - 1]), abs(lo[k] - c[k - 1])) for k in range(i - 13, i + 1)]
        return 100 * sum(tr) / 14 / c[i]

    def gap(i: int) -> float:
        return windowed_ema(c, 5, i, size=21) / windowed_ema(c, 20, i, size=21) - 1

    rows = range(299 - 239, 300)
    assert mkt["mkt_rsi_14_z"][299] == pytest.approx(zscore_of_last([cutler_rsi(i) for i in rows]), rel=1e-6)
    assert mkt["mkt_natr_14_z"][299] == pytest.approx(zscore_of_last([natr(i) for i in rows]), rel=1e-6)
    assert mkt["mkt_ema_gap_5_20_z"][299] == pytest.approx(zscore_of_last([gap(i) for i in rows]), rel=1e-6)
    # Their first values: 126 inputs, the first input at row 14 (RSI, NATR) or 19 (EWMA20: 20 closes).
    for name, first in (("mkt_rsi_14_z", 14 + 125), ("mkt_natr_14_z", 14 + 125), ("mkt_ema_gap_5_20_z", 19 + 125)):
        assert mkt[name][first - 1] is None and mkt[name][first] is not None, name


def test_more_stock_market_features() -> None:
    out = add_market_features(price_features(stock_quotes(0.001).lazy()), topix().lazy()).collect()
    i = 150
    # returns are exactly 2 x TOPIX + 0.001: every beta is 2, it never moves, volatility doubles.
    assert out["beta_20d"][i] == pytest.approx(2.0)
    assert out["beta_20d"][19] is None and out["beta_20d"][20] == pytest.approx(2.0)
    assert out["downside_beta_60d"][i] == pytest.approx(2.0)
    assert out["beta_stability_60d"][i] == pytest.approx(1.0, abs=1e-6)
    assert out["beta_stability_60d"][78] is None  # 20 betas needed, the first at row 60
    assert out["vol_ratio_mkt_20"][i] == pytest.approx(2.0)
    c, tc = out["AdjustmentClose"].to_list(), topix_close()
    assert out["alpha_5d"][i] == pytest.approx((c[i] / c[i - 5] - 1) - 2 * (tc[i] / tc[i - 5] - 1))
    assert out["alpha_20d"][i] == pytest.approx((c[i] / c[i - 20] - 1) - 2 * (tc[i] / tc[i - 20] - 1))
    assert out["rel_strength_20d"][i] == pytest.approx((c[i] / c[i - 20] - 1) - (tc[i] / tc[i - 20] - 1))
    gap, mgap = out["ma_gap_5_20"][i], out["mkt_ema_gap_5_20"][i]
    assert out["trend_align_mkt"][i] == (1.0 if (gap > 0) == (mgap > 0) else 0.0)
    assert out["trend_align_mkt"][10] is None
    assert out["alpha_vs_regime"][250] == pytest.approx(out["alpha_1d"][250] * out["mkt_bull_200"][250])
    assert out["alpha_vs_regime"][150] is None  # no 200-day regime yet


def test_downside_beta_uses_down_days_only() -> None:
    # The stock moves 1x the market on up days and 3x on down days: beta 3 on the down days.
    closes = [500.0]
    for r in MKT_RET[1:]:
        closes.append(closes[-1] * (1 + (3 * r if r < 0 else r)))
    q = stock_quotes(0.0).with_columns(
        *[pl.Series(c, closes) for c in ("AdjustmentOpen", "AdjustmentHigh", "AdjustmentLow", "AdjustmentClose")]
    )
    out = add_market_features(price_features(q.lazy()), topix().lazy()).collect()
    assert out["downside_beta_60d"][120] == pytest.approx(3.0)
    assert 1.0 < out["beta_60d"][120] < 3.0
