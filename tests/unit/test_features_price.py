"""Price features on tiny frames, checked against explicit step-by-step computations."""

from __future__ import annotations

import datetime as dt
import math
import statistics

import polars as pl
import pytest

from gogoku.features.price import PRICE_FEATURES, price_features

N = 30
DAYS = [dt.date(2024, 1, 1) + dt.timedelta(days=i) for i in range(N)]
# Code A rises 1 a day; code B zig-zags; code C is flat (RSI and %B have no spread).
CLOSES = {
    "1301": [100.0 + i for i in range(N)],
    "1302": [50.0 + (3.0 if i % 3 == 0 else -1.0 if i % 3 == 1 else 0.5) + 0.2 * i for i in range(N)],
    "1303": [80.0] * N,
}


def quotes() -> pl.DataFrame:
    rows = []
    for code, closes in CLOSES.items():
        for i, (day, c) in enumerate(zip(DAYS, closes, strict=True)):
            rows.append(
                {
                    "Code": code + "0",
                    "Date": day,
                    "AdjustmentOpen": c - 0.5,
                    "AdjustmentHigh": c * 1.02,
                    "AdjustmentLow": c * 0.98,
                    "AdjustmentClose": c,
                    "AdjustmentVolume": float(1000 + 100 * (i % 4)),
                    "TurnoverValue": float(1000 + 100 * (i % 4)) * c,
                    "UpperLimit": "1" if (code == "1301" and i == 7) else "0",
                    "LowerLimit": "0",
                }
            )
    return pl.DataFrame(rows)


@pytest.fixture(scope="module")
def feats() -> pl.DataFrame:
    return price_features(quotes().lazy()).collect()


def col(df: pl.DataFrame, code: str, name: str) -> list[float | None]:
    return df.filter(pl.col("Code") == code + "0")[name].to_list()


def wilder_rsi_loop(closes: list[float], n: int) -> list[float | None]:
    """TA-Lib RSI: seed = simple mean of the first n gains/losses, then (prev*(n-1) + x)/n."""
    out: list[float | None] = [None] * len(closes)
    gains = [max(closes[i] - closes[i - 1], 0.0) for i in range(1, len(closes))]
    losses = [max(closes[i - 1] - closes[i], 0.0) for i in range(1, len(closes))]
    avg_g = sum(gains[:n]) / n
    avg_l = sum(losses[:n]) / n
    for i in range(n, len(closes)):
        if i > n:
            avg_g = (avg_g * (n - 1) + gains[i - 1]) / n
            avg_l = (avg_l * (n - 1) + losses[i - 1]) / n
        out[i] = 50.0 if avg_g + avg_l == 0 else 100.0 - 100.0 / (1.0 + avg_g / avg_l) if avg_l > 0 else 100.0
    return out


def ema_loop(values: list[float], n: int) -> list[float | None]:
    """TA-Lib EMA: the first value is the SMA of the first n, then k = 2 / (n + 1)."""
    k = 2.0 / (n + 1)
    out: list[float | None] = [None] * len(values)
    ema = sum(values[:n]) / n
    out[n - 1] = ema
    for i in range(n, len(values)):
        ema = values[i] * k + ema * (1 - k)
        out[i] = ema
    return out


def assert_close(got: list[float | None], want: list[float | None], tol: float = 1e-9) -> None:
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        if w is None:
            assert g is None, f"row {i}: expected null, got {g}"
        else:
            assert g is not None and g == pytest.approx(w, rel=tol, abs=tol), f"row {i}: {g} != {w}"


def test_adds_exactly_the_declared_features(feats: pl.DataFrame) -> None:
    added = [c for c in feats.columns if c not in quotes().columns]
    assert sorted(added) == sorted(PRICE_FEATURES)
    assert feats.height == 3 * N


def test_returns_are_per_code_and_backward(feats: pl.DataFrame) -> None:
    a = CLOSES["1301"]
    assert_close(col(feats, "1301", "returns_1d"), [None] + [a[i] / a[i - 1] - 1 for i in range(1, N)])
    assert_close(col(feats, "1301", "returns_5d"), [None] * 5 + [a[i] / a[i - 5] - 1 for i in range(5, N)])
    assert col(feats, "1301", "returns_5d")[5] == pytest.approx(0.05)
    # The first row of the next code does not reach back into the previous code's rows.
    assert col(feats, "1302", "returns_1d")[0] is None
    assert col(feats, "1301", "returns_60d") == [None] * N
    assert col(feats, "1301", "is_returns60_valid") == [0.0] * N


def test_sma_ratio_and_gap(feats: pl.DataFrame) -> None:
    a = CLOSES["1301"]
    assert col(feats, "1301", "sma_5")[4] == pytest.approx(102.0)
    assert col(feats, "1301", "price_to_sma5")[4] == pytest.approx(104.0 / 102.0)
    sma20 = sum(a[0:20]) / 20
    assert col(feats, "1301", "ma_gap_5_20")[19] == pytest.approx((sum(a[15:20]) / 5) / sma20 - 1)
    assert col(feats, "1301", "sma_20")[18] is None
    assert col(feats, "1301", "is_sma120_valid") == [0.0] * N
    assert col(feats, "1301", "is_ema200_valid") == [0.0] * N


def test_ema_matches_talib_seeding(feats: pl.DataFrame) -> None:
    for code, closes in CLOSES.items():
        for n in (5, 10, 20):
            assert_close(col(feats, code, f"ema_{n}"), ema_loop(closes, n))
        want = [None if e is None else c / e for c, e in zip(closes, ema_loop(closes, 10), strict=True)]
        assert_close(col(feats, code, "price_to_ema10"), want)


def test_rsi_is_wilder(feats: pl.DataFrame) -> None:
    for code in ("1301", "1302"):
        assert_close(col(feats, code, "rsi_14"), wilder_rsi_loop(CLOSES[code], 14))
        assert_close(col(feats, code, "rsi_2"), wilder_rsi_loop(CLOSES[code], 2))
    # Only gains: 100. No move at all: neutral 50.
    assert col(feats, "1301", "rsi_14")[14] == pytest.approx(100.0)
    assert col(feats, "1303", "rsi_14")[20] == pytest.approx(50.0)


def test_volatility_and_parkinson(feats: pl.DataFrame) -> None:
    b = CLOSES["1302"]
    rets = [b[i] / b[i - 1] - 1 for i in range(1, N)]
    want = [None] * 5 + [statistics.stdev(rets[i - 5 : i]) * math.sqrt(252) for i in range(5, N)]
    assert_close(col(feats, "1302", "volatility_5d"), want)
    # High/low are +-2% of the close every day: a constant Parkinson estimate.
    park = math.log(1.02 / 0.98) * math.sqrt(252 / (4 * math.log(2)))
    got = col(feats, "1302", "realized_vol_20")
    assert got[18] is None
    assert got[19] == pytest.approx(park) and got[-1] == pytest.approx(park)


def test_bar_shape_features(feats: pl.DataFrame) -> None:
    a = CLOSES["1301"]
    assert_close(col(feats, "1301", "ret_overnight"), [None] + [(a[i] - 0.5) / a[i - 1] - 1 for i in range(1, N)])
    assert_close(col(feats, "1301", "ret_intraday"), [c / (c - 0.5) - 1 for c in a])
    assert col(feats, "1301", "hl_range")[3] == pytest.approx(0.04)
    assert col(feats, "1301", "close_location")[3] == pytest.approx(0.5)
    assert col(feats, "1301", "limit_up")[7] == 1.0
    assert sum(col(feats, "1301", "limit_up")) == 1.0


def test_volume_and_turnover(feats: pl.DataFrame) -> None:
    vols = [1000.0 + 100 * (i % 4) for i in range(N)]
    want = [None] * 4 + [vols[i] / (sum(vols[i - 4 : i + 1]) / 5) for i in range(4, N)]
    assert_close(col(feats, "1301", "volume_ratio_5"), want)
    a = CLOSES["1301"]
    turnover = [v * c for v, c in zip(vols, a, strict=True)]
    adv = sum(turnover[0:20]) / 20
    assert col(feats, "1301", "log_turnover_20")[19] == pytest.approx(math.log(adv + 1))
    assert col(feats, "1301", "turnover_ratio_20")[19] == pytest.approx(turnover[19] / adv)
    rets = [a[i] / a[i - 1] - 1 for i in range(1, N)]
    amihud = sum(abs(rets[i - 1]) / turnover[i] * 1e8 for i in range(1, 21)) / 20
    assert col(feats, "1301", "amihud_20")[20] == pytest.approx(amihud)


def test_atr_bollinger_stochastic_macd(feats: pl.DataFrame) -> None:
    b = CLOSES["1302"]
    hi, lo = [c * 1.02 for c in b], [c * 0.98 for c in b]
    tr = [max(hi[i] - lo[i], abs(hi[i] - b[i - 1]), abs(lo[i] - b[i - 1])) for i in range(1, N)]
    atr = sum(tr[:14]) / 14  # first ATR at row 14
    atrs: list[float | None] = [None] * 14 + [atr]
    for i in range(15, N):
        atr = (atr * 13 + tr[i - 1]) / 14
        atrs.append(atr)
    assert_close(col(feats, "1302", "atr_14"), atrs)
    assert_close(col(feats, "1302", "natr_14"), [None if a is None else 100 * a / c for a, c in zip(atrs, b, strict=True)])

    # Bollinger bands on the population standard deviation (TA-Lib's STDDEV).
    window = b[5:25]
    mid, sd = sum(window) / 20, statistics.pstdev(window)
    assert col(feats, "1302", "bb_pct_b")[24] == pytest.approx((b[24] - (mid - 2 * sd)) / (4 * sd))
    assert col(feats, "1302", "bb_bw")[24] == pytest.approx(4 * sd / mid)
    assert col(feats, "1303", "bb_pct_b")[24] is None  # no spread: undefined, not 0

    hh, ll = max(hi[10:24]), min(lo[10:24])
    assert col(feats, "1302", "stoch_k")[23] == pytest.approx(100 * (b[23] - ll) / (hh - ll))
    ks = col(feats, "1302", "stoch_k")
    assert col(feats, "1302", "stoch_d")[23] == pytest.approx(sum(ks[21:24]) / 3)
    # A flat close inside a +-2% bar range sits in the middle of the range.
    assert col(feats, "1303", "stoch_k")[23] == pytest.approx(50.0)

    ema12, ema26 = ema_loop(b, 12), ema_loop(b, 26)
    macd = [None if e26 is None else e12 - e26 for e12, e26 in zip(ema12, ema26, strict=True)]
    assert_close(col(feats, "1302", "macd"), macd)
    assert_close(col(feats, "1302", "macd_norm"), [None if m is None else m / c for m, c in zip(macd, b, strict=True)])
    # The signal needs 9 MACD values: MACD starts at row 25, so the signal is still warming up.
    assert col(feats, "1302", "macd_signal") == [None] * N
    assert col(feats, "1302", "macd_hist") == [None] * N


def test_adx_on_a_steady_rise(feats: pl.DataFrame) -> None:
    # 1301 rises 1 a day with H = 1.02 C and L = 0.98 C: +DM = 1.02 every day, -DM = 0, so -DI = 0,
    # DX = 100 and ADX = 100 from row 27 (2n - 1); +DI = 100 x 1.02 / the Wilder-smoothed TR.
    assert col(feats, "1301", "adx_14")[26] is None
    assert col(feats, "1301", "adx_14")[27] == pytest.approx(100.0)
    assert col(feats, "1301", "minus_di_14")[14] == pytest.approx(0.0)
    a = CLOSES["1301"]
    tr = [max(1.02 * a[i] - 0.98 * a[i], abs(1.02 * a[i] - a[i - 1]), abs(0.98 * a[i] - a[i - 1])) for i in range(1, N)]
    s_dm, s_tr = 1.02 * 13, sum(tr[:13])  # TA-Lib seeds the running sums with n - 1 values
    for i in range(14, 17):
        s_dm = s_dm - s_dm / 14 + 1.02
        s_tr = s_tr - s_tr / 14 + tr[i - 1]
        assert col(feats, "1301", "plus_di_14")[i] == pytest.approx(100 * s_dm / s_tr)
    assert col(feats, "1301", "plus_di_14")[13] is None
    # A flat stock has no directional movement: DX is undefined, so ADX stays null (TA-Lib: 0).
    assert col(feats, "1303", "adx_14") == [None] * N
    assert col(feats, "1303", "plus_di_14")[20] == pytest.approx(0.0)


def test_mfi(feats: pl.DataFrame) -> None:
    # 1301 always rises: all money flow is positive. 1302 zig-zags: compute both sums.
    assert col(feats, "1301", "mfi_14")[14] == pytest.approx(100.0)
    assert col(feats, "1301", "mfi_14")[13] is None
    b = CLOSES["1302"]
    tp = [(1.02 * c + 0.98 * c + c) / 3 for c in b]
    vols = [1000.0 + 100 * (i % 4) for i in range(N)]
    pos = sum(tp[i] * vols[i] for i in range(7, 21) if tp[i] > tp[i - 1])
    neg = sum(tp[i] * vols[i] for i in range(7, 21) if tp[i] < tp[i - 1])
    assert col(feats, "1302", "mfi_14")[20] == pytest.approx(100 * pos / (pos + neg))


def test_return_distribution_features(feats: pl.DataFrame) -> None:
    b = CLOSES["1302"]
    rets = [b[i] / b[i - 1] - 1 for i in range(1, N)]  # rets[i - 1] is row i
    last20 = rets[N - 21 :]
    assert col(feats, "1302", "ret_max_20")[-1] == pytest.approx(max(last20))
    assert col(feats, "1302", "ret_min_20")[-1] == pytest.approx(min(last20))
    assert col(feats, "1302", "up_ratio_20")[-1] == pytest.approx(sum(r > 0 for r in last20) / 20)
    sd = statistics.stdev(last20)
    assert col(feats, "1302", "ret_z_20")[-1] == pytest.approx(last20[-1] / sd)
    assert col(feats, "1302", "sharpe_20")[-1] == pytest.approx(statistics.mean(last20) / sd)
    down = math.sqrt(sum(min(r, 0.0) ** 2 for r in last20) / 20 * 252)
    assert col(feats, "1302", "downside_vol_20")[-1] == pytest.approx(down)
    m = statistics.mean(last20)
    m2 = sum((r - m) ** 2 for r in last20) / 20
    m3 = sum((r - m) ** 3 for r in last20) / 20
    m4 = sum((r - m) ** 4 for r in last20) / 20
    assert col(feats, "1302", "ret_skew_20")[-1] == pytest.approx(m3 / m2**1.5)
    assert col(feats, "1302", "ret_kurt_20")[-1] == pytest.approx(m4 / m2**2 - 3.0)
    assert col(feats, "1302", "ret_skew_20")[19] is None  # 19 returns only
    v5, v20 = col(feats, "1302", "volatility_5d")[-1], col(feats, "1302", "volatility_20d")[-1]
    assert col(feats, "1302", "vol_ratio_5_20")[-1] == pytest.approx(v5 / v20)


def test_garman_klass_and_session_vols(feats: pl.DataFrame) -> None:
    a = CLOSES["1301"]
    gk = [0.5 * math.log(1.02 / 0.98) ** 2 - (2 * math.log(2) - 1) * math.log(c / (c - 0.5)) ** 2 for c in a]
    assert col(feats, "1301", "gk_vol_20")[19] == pytest.approx(math.sqrt(sum(gk[:20]) / 20 * 252))
    over = [(a[i] - 0.5) / a[i - 1] - 1 for i in range(1, N)]
    assert col(feats, "1301", "overnight_vol_20")[20] == pytest.approx(statistics.stdev(over[:20]) * math.sqrt(252))
    intra = [c / (c - 0.5) - 1 for c in a]
    assert col(feats, "1301", "intraday_vol_20")[19] == pytest.approx(statistics.stdev(intra[:20]) * math.sqrt(252))
    assert col(feats, "1301", "hl_range_20")[19] == pytest.approx(0.04)


def test_trend_and_volume_shape(feats: pl.DataFrame) -> None:
    a = CLOSES["1301"]
    assert col(feats, "1301", "price_to_sma10")[12] == pytest.approx(a[12] / (sum(a[3:13]) / 10))
    ema20 = ema_loop(a, 20)
    assert col(feats, "1301", "ema20_slope_5")[24] == pytest.approx(ema20[24] / ema20[19] - 1)
    assert col(feats, "1301", "ema20_slope_5")[23] is None
    assert col(feats, "1302", "drawdown_60d")[-1] is None  # 60 sessions needed
    vols = [1000.0 + 100 * (i % 4) for i in range(N)]
    assert col(feats, "1301", "volume_trend_5_20")[19] == pytest.approx((sum(vols[15:20]) / 5) / (sum(vols[:20]) / 20))
    logs = [math.log(v + 1) for v in vols[:20]]
    want = (logs[-1] - statistics.mean(logs)) / statistics.stdev(logs)
    assert col(feats, "1301", "volume_z_20")[19] == pytest.approx(want)
    assert col(feats, "1301", "dollar_volume_z_60")[-1] is None
    assert col(feats, "1302", "mom_12_1")[-1] is None and col(feats, "1302", "dist_52w_high")[-1] is None
    assert col(feats, "1302", "is_52w_valid") == [0.0] * N


def long_quotes(n: int = 300) -> pl.DataFrame:
    """One code over n sessions: a rise to row 200, then a fall (for 52-week and momentum windows)."""
    closes = [100.0 + i if i <= 200 else 300.0 - 2 * (i - 200) for i in range(n)]
    days = [dt.date(2022, 1, 1) + dt.timedelta(days=i) for i in range(n)]
    return pl.DataFrame(
        {
            "Code": "13010", "Date": days, "AdjustmentOpen": closes, "AdjustmentHigh": [c + 1 for c in closes],
            "AdjustmentLow": [c - 1 for c in closes], "AdjustmentClose": closes, "AdjustmentVolume": 1000.0,
            "TurnoverValue": [1000.0 * c for c in closes], "UpperLimit": "0", "LowerLimit": "0",
        }
    )


def test_long_windows() -> None:
    q = long_quotes()
    out = price_features(q.lazy()).collect()
    c = q["AdjustmentClose"].to_list()
    i = 299
    hi, lo = max(x + 1 for x in c[i - 251 : i + 1]), min(x - 1 for x in c[i - 251 : i + 1])
    assert hi == 301.0 and lo == 101.0  # the peak at row 200, the low today
    assert out["dist_52w_high"][i] == pytest.approx(c[i] / hi - 1)
    assert out["dist_52w_low"][i] == pytest.approx(c[i] / lo - 1)
    assert out["pos_52w"][i] == pytest.approx((c[i] - lo) / (hi - lo))
    assert out["dist_52w_high"][250] is None and out["is_52w_valid"][251] == 1.0
    assert out["mom_12_1"][i] == pytest.approx(c[i - 21] / c[i - 252] - 1)
    assert out["mom_12_1"][251] is None
    assert out["mom_6_1"][i] == pytest.approx(c[i - 21] / c[i - 126] - 1)
    assert out["returns_120d"][i] == pytest.approx(c[i] / c[i - 120] - 1)
    assert out["is_returns120_valid"][119] == 0.0 and out["is_returns120_valid"][120] == 1.0
    assert out["drawdown_60d"][i] == pytest.approx(c[i] / max(c[i - 59 : i + 1]) - 1)
    assert out["ma_gap_20_60"][i] == pytest.approx((sum(c[i - 19 : i + 1]) / 20) / (sum(c[i - 59 : i + 1]) / 60) - 1)
    t = [1000.0 * x + 1.0 for x in c]
    logs = [math.log(x) for x in t[i - 59 : i + 1]]
    assert out["dollar_volume_z_60"][i] == pytest.approx((logs[-1] - statistics.mean(logs)) / statistics.stdev(logs))
    assert out["is_ema200_valid"][198] == 0.0 and out["is_ema200_valid"][199] == 1.0
