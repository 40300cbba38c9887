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
    want: list[float | None] = [None] * 14 + [atr / b[14]]
    for i in range(15, N):
        atr = (atr * 13 + tr[i - 1]) / 14
        want.append(atr / b[i])
    assert_close(col(feats, "1302", "natr_14"), want)

    window = b[5:25]
    mid, sd = sum(window) / 20, statistics.stdev(window)
    assert col(feats, "1302", "bb_pct_b")[24] == pytest.approx((b[24] - (mid - 2 * sd)) / (4 * sd))
    assert col(feats, "1302", "bb_bw")[24] == pytest.approx(4 * sd / mid)
    assert col(feats, "1303", "bb_pct_b")[24] is None  # no spread: undefined, not 0

    hh, ll = max(hi[10:24]), min(lo[10:24])
    assert col(feats, "1302", "stoch_k")[23] == pytest.approx(100 * (b[23] - ll) / (hh - ll))

    ema12, ema26 = ema_loop(b, 12), ema_loop(b, 26)
    macd = [None if e26 is None else (e12 - e26) / c for e12, e26, c in zip(ema12, ema26, b, strict=True)]
    assert_close(col(feats, "1302", "macd"), macd)
    # The signal needs 9 MACD values: MACD starts at row 25, so the signal is still warming up.
    assert col(feats, "1302", "macd_signal") == [None] * N
