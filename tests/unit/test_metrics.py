"""Metrics against hand-computed values and an explicit textbook Pearson formula."""

from __future__ import annotations

import math
from datetime import date

import numpy as np
import polars as pl
import pytest

from gogoku.errors import InputError
from gogoku.evaluate.metrics import (
    Bootstrap,
    annualized_sharpe,
    block_bootstrap_ci,
    daily_ic,
    evaluate_predictions,
    forward_return_lags,
    ic_decay,
    ic_intervals,
    ic_summary,
    long_short_periods,
    long_short_returns,
    portfolio_summary,
    sign_hit_rate,
    staggered_book,
)

D1, D2, D3 = date(2024, 1, 4), date(2024, 1, 5), date(2024, 1, 9)


def pearson(xs: list[float], ys: list[float]) -> float:
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    cov = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    vx = sum((x - mx) ** 2 for x in xs)
    vy = sum((y - my) ** 2 for y in ys)
    return cov / math.sqrt(vx * vy)


def frame_of(days: dict[date, tuple[list[float | None], list[float | None]]]) -> pl.DataFrame:
    rows = [(d, p, t) for d, (ps, ts) in days.items() for p, t in zip(ps, ts, strict=True)]
    return pl.DataFrame(
        rows, schema={"Date": pl.Date, "pred": pl.Float64, "target": pl.Float64}, orient="row"
    )


def test_daily_ic_hand_values() -> None:
    frame = frame_of(
        {
            D2: ([1.0, 2.0, 3.0], [1.0, 3.0, 2.0]),  # r = cov 1 / sqrt(2 * 2) = 0.5, ranks identical
            D1: ([1.0, 2.0, 3.0, 10.0], [1.0, 2.0, 3.0, 4.0]),  # monotone: rank_ic 1, ic < 1
            D3: ([1.0, 2.0, 3.0, 4.0], [4.0, 3.0, 2.0, 1.0]),
        }
    )
    daily = daily_ic(frame, "pred", "target", min_names=3)
    assert daily.columns == ["Date", "n", "ic", "rank_ic"]
    assert daily["Date"].to_list() == [D1, D2, D3]
    assert daily["n"].to_list() == [4, 3, 4]
    assert daily["ic"].to_list() == pytest.approx([pearson([1, 2, 3, 10], [1, 2, 3, 4]), 0.5, -1.0])
    # By hand: deviations (-3, -2, -1, 6) and (-1.5, -0.5, 0.5, 1.5) -> cov 14, var 50 and 5.
    assert daily["ic"][0] == pytest.approx(14 / math.sqrt(250))
    assert daily["rank_ic"].to_list() == pytest.approx([1.0, 0.5, -1.0])


def test_rank_ic_uses_average_ranks_for_ties() -> None:
    frame = frame_of({D1: ([1.0, 1.0, 2.0, 3.0], [1.0, 2.0, 3.0, 4.0])})
    daily = daily_ic(frame, "pred", "target", min_names=4)
    # Ranks of pred: 1.5, 1.5, 3, 4 -> cov 4.5, var 4.5 and 5: 4.5 / sqrt(22.5).
    assert daily["rank_ic"][0] == pytest.approx(4.5 / math.sqrt(22.5))
    assert daily["rank_ic"][0] == pytest.approx(pearson([1.5, 1.5, 3, 4], [1, 2, 3, 4]))
    # Raw values: cov 3.5, var 2.75 and 5.
    assert daily["ic"][0] == pytest.approx(3.5 / math.sqrt(2.75 * 5))


def test_min_names_counts_only_complete_pairs() -> None:
    frame = frame_of(
        {
            D1: ([1.0, 2.0, 3.0, None, 5.0], [1.0, 2.0, 4.0, 4.0, float("nan")]),  # 3 complete pairs
            D2: ([1.0, 2.0, 3.0, 4.0], [2.0, 1.0, 4.0, 3.0]),
        }
    )
    assert daily_ic(frame, "pred", "target", min_names=4)["Date"].to_list() == [D2]
    daily = daily_ic(frame, "pred", "target", min_names=3)
    assert daily["n"].to_list() == [3, 4]
    assert daily["ic"][0] == pytest.approx(pearson([1, 2, 3], [1, 2, 4]))
    assert daily["ic"][1] == pytest.approx(pearson([1, 2, 3, 4], [2, 1, 4, 3]))  # = 0.6


def test_constant_day_has_null_ic() -> None:
    frame = frame_of({D1: ([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]), D2: ([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])})
    daily = daily_ic(frame, "pred", "target", min_names=3)
    assert daily["ic"].to_list()[0] is None and daily["rank_ic"].to_list()[0] is None
    summary = ic_summary(daily)
    assert summary["ic_mean"] == pytest.approx(1.0) and summary["n_days"] == 2 and summary["hit_rate"] == 1.0


def test_ic_summary_hand_values() -> None:
    daily = pl.DataFrame(
        {
            "Date": [D1, D2, D3, date(2024, 1, 10)],
            "n": [30, 30, 30, 30],
            "ic": [0.1, 0.3, -0.1, None],
            "rank_ic": [0.2, 0.4, -0.3, None],
        }
    )
    s = ic_summary(daily)
    # ic: mean 0.1, deviations 0, 0.2, -0.2 -> sample var 0.08 / 2 = 0.04, std 0.2, ICIR 0.5.
    assert (
        s["ic_mean"] == pytest.approx(0.1)
        and s["ic_std"] == pytest.approx(0.2)
        and s["icir"] == pytest.approx(0.5)
    )
    # rank_ic: mean 0.1, deviations 0.1, 0.3, -0.4 -> var 0.26 / 2 = 0.13.
    assert s["rank_ic_mean"] == pytest.approx(0.1)
    assert s["rank_ic_std"] == pytest.approx(math.sqrt(0.13))
    assert s["rank_icir"] == pytest.approx(0.1 / math.sqrt(0.13))
    assert s["hit_rate"] == pytest.approx(2 / 3) and s["n_days"] == 4


def test_ic_summary_of_nothing_is_nan() -> None:
    s = ic_summary(daily_ic(frame_of({D1: ([1.0, 2.0], [1.0, 2.0])}), "pred", "target", min_names=3))
    assert (
        s["n_days"] == 0 and math.isnan(s["ic_mean"]) and math.isnan(s["icir"]) and math.isnan(s["hit_rate"])
    )


def test_long_short_quintiles_with_ten_and_seven_names() -> None:
    preds10 = [float(p) for p in range(1, 11)]
    targets10 = [0.01 * p for p in [3, 1, 4, 1, 5, 9, 2, 6, 5, 3]]
    preds7 = [7.0, 1.0, 6.0, 2.0, 5.0, 3.0, 4.0]
    targets7 = [0.7, -0.1, 0.6, 0.2, 0.5, 0.3, 0.4]
    ls = long_short_returns(
        frame_of({D1: (preds10, targets10), D2: (preds7, targets7)}), "pred", "target", min_names=5
    )
    assert ls.columns == ["Date", "long", "short", "ls"]
    # 10 names: two per quintile; the top two preds (9, 10) have targets 0.05, 0.03, the bottom (1, 2) 0.03, 0.01.
    assert ls["long"][0] == pytest.approx(0.04) and ls["short"][0] == pytest.approx(0.02)
    assert ls["ls"][0] == pytest.approx(0.02)
    # 7 names: positions (r - 0.5) / 7 put one name in each end bucket (pred 7 and pred 1).
    assert ls["long"][1] == pytest.approx(0.7) and ls["short"][1] == pytest.approx(-0.1)
    assert ls["ls"][1] == pytest.approx(0.8)


def test_long_short_ties_share_a_bucket() -> None:
    preds = [1.0, 2.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 8.0]
    targets = [0.10, 0.20, 0.30, 0.0, 0.0, 0.0, 0.0, 0.0, 0.50, 0.70]
    ls = long_short_returns(frame_of({D1: (preds, targets)}), "pred", "target", min_names=10)
    # Pred 2 ties at ranks 2.5: (2.5 - 0.5) / 10 * 5 = 1.0 -> both in bucket 1, so the bottom holds
    # only pred 1; the tied top pair (rank 9.5) both sit in bucket 4.
    assert ls["short"][0] == pytest.approx(0.10)
    assert ls["long"][0] == pytest.approx(0.60)


def test_long_short_respects_min_names_and_other_quantiles() -> None:
    preds = [float(p) for p in range(1, 13)]
    targets = [float(p) for p in range(1, 13)]
    frame = frame_of({D1: (preds, targets), D2: (preds[:5], targets[:5])})
    ls = long_short_returns(frame, "pred", "target", quantiles=3, min_names=6)
    assert ls["Date"].to_list() == [D1]
    # Terciles of 12: four names each -> long mean(9..12) = 10.5, short mean(1..4) = 2.5.
    assert (ls["long"][0], ls["short"][0], ls["ls"][0]) == pytest.approx((10.5, 2.5, 8.0))
    with pytest.raises(InputError, match="quantiles"):
        long_short_returns(frame, "pred", "target", quantiles=1)


def test_annualized_sharpe_scaling() -> None:
    r = [0.01, 0.02, 0.03]  # mean 0.02, sample std 0.01
    assert annualized_sharpe(r) == pytest.approx(2.0 * math.sqrt(252))
    assert annualized_sharpe(r, horizon_days=5) == pytest.approx(2.0 * math.sqrt(252 / 5))
    assert annualized_sharpe(pl.Series(r), horizon_days=20, periods_per_year=250) == pytest.approx(
        2.0 * math.sqrt(12.5)
    )
    assert annualized_sharpe([0.01, float("nan"), 0.02, 0.03]) == pytest.approx(2.0 * math.sqrt(252))
    assert annualized_sharpe(pl.Series([0.01, None, 0.02, 0.03])) == pytest.approx(2.0 * math.sqrt(252))


@pytest.mark.parametrize("values", [[], [0.01], [0.1] * 7, [float("nan"), float("nan")]])
def test_annualized_sharpe_undefined_is_nan(values: list[float]) -> None:
    assert math.isnan(annualized_sharpe(values))


def test_evaluate_predictions_combines_the_pieces() -> None:
    preds = [float(p) for p in range(1, 26)]
    up = [0.001 * p for p in preds]
    down = [-0.001 * p for p in preds]
    frame = frame_of({D1: (preds, up), D2: (preds, down), D3: (preds, up)})
    frame = frame.with_columns(pl.col("pred").cast(pl.Int64))  # integer predictions are fine too
    out = evaluate_predictions(frame.lazy(), "pred", "target", horizon_days=5, bootstrap=None)
    # Without a Code column there is no turnover: the portfolio keys are there, undefined.
    assert math.isnan(out["ls_sharpe_net"]) and out["ls_rebalances"] == 0 and "rank_ic_mean_ci" not in out
    # Daily IC +1, -1, +1.
    assert out["ic_mean"] == pytest.approx(1 / 3) and out["rank_ic_mean"] == pytest.approx(1 / 3)
    assert out["ic_std"] == pytest.approx(math.sqrt(((2 / 3) ** 2 * 2 + (4 / 3) ** 2) / 2))
    assert out["hit_rate"] == pytest.approx(2 / 3) and out["n_days"] == 3
    # Quintiles of 25: top preds 21..25 (mean 23), bottom 1..5 (mean 3) -> ls = +-0.02.
    ls = [0.02, -0.02, 0.02]
    mean = sum(ls) / 3
    std = math.sqrt(sum((x - mean) ** 2 for x in ls) / 2)
    assert out["ls_mean"] == pytest.approx(mean)
    assert out["ls_sharpe"] == pytest.approx(mean / std * math.sqrt(252 / 5))


def test_missing_columns_and_bad_min_names_raise() -> None:
    frame = frame_of({D1: ([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])})
    with pytest.raises(InputError, match="'prediction'"):
        daily_ic(frame, "prediction", "target")
    with pytest.raises(InputError, match="'target_5d'"):
        long_short_returns(frame, "pred", "target_5d")
    with pytest.raises(InputError, match="min_names"):
        daily_ic(frame, "pred", "target", min_names=1)


D4 = date(2024, 1, 10)


def coded(rows: list[tuple[date, str, float, float]]) -> pl.DataFrame:
    return pl.DataFrame(
        rows, schema={"Date": pl.Date, "Code": pl.Utf8, "pred": pl.Float64, "target": pl.Float64}, orient="row"
    )


def test_sign_hit_rate_is_against_the_daily_medians() -> None:
    frame = frame_of(
        {
            # Medians 2.5 and 0.25: sides (-, -, +, +) and (-, +, -, +) -> rows 1 and 4 agree.
            D1: ([1.0, 2.0, 3.0, 4.0], [0.1, 0.3, 0.2, 0.4]),
            # Medians 2 and 2: sides (-, 0, +) and (+, -, 0): only row 1 counts, and it disagrees.
            D2: ([1.0, 2.0, 3.0], [3.0, 1.0, 2.0]),
        }
    )
    assert sign_hit_rate(frame, "pred", "target", min_names=3) == pytest.approx(2 / 5)
    assert sign_hit_rate(frame, "pred", "target", min_names=4) == pytest.approx(2 / 4)
    assert math.isnan(sign_hit_rate(frame, "pred", "target", min_names=5))


def portfolio_frame() -> pl.DataFrame:
    """Four sessions; with h = 2, D1 and D3 are sub-portfolio 0, D2 and D4 sub-portfolio 1."""
    five = ["A", "B", "C", "D", "E"]
    rows = []
    # D1: top A (+1), bottom E (-1); targets A 0.05, E -0.01.
    rows += [(D1, c, p, t) for c, p, t in zip(five, [5, 4, 3, 2, 1], [0.05, 0, 0, 0, -0.01], strict=True)]
    # D2: top B, bottom C; targets B 0.03, C 0.01.
    rows += [(D2, c, p, t) for c, p, t in zip(five, [4, 5, 1, 3, 2], [0, 0.03, 0.01, 0, 0], strict=True)]
    # D3, ten names: top A, F (+0.5 each), bottom E, D (-0.5 each); targets A .04, F .02, E -.02, D 0.
    ten = ["A", "F", "G", "H", "I", "J", "B", "C", "E", "D"]
    targets = [0.04, 0.02, 0, 0, 0, 0, 0, 0, -0.02, 0.0]
    rows += [(D3, c, float(10 - i), t) for i, (c, t) in enumerate(zip(ten, targets, strict=True))]
    # D4: the D2 book again; targets B 0.01, C 0.02.
    rows += [(D4, c, p, t) for c, p, t in zip(five, [4, 5, 1, 3, 2], [0, 0.01, 0.02, 0, 0], strict=True)]
    return coded([(d, c, float(p), float(t)) for d, c, p, t in rows])


def test_long_short_periods_turnover_and_costs_by_hand() -> None:
    periods = long_short_periods(portfolio_frame(), "pred", "target", horizon_days=2, min_names=5, cost_bps=10)
    assert periods.columns == ["offset", "period", "Date", "n_long", "n_short", "gross", "turnover", "net"]
    assert periods["Date"].to_list() == [D1, D2, D3, D4]
    assert periods["offset"].to_list() == [0, 1, 0, 1] and periods["period"].to_list() == [0, 0, 1, 1]
    assert periods["n_long"].to_list() == [1, 1, 2, 1]
    assert periods["gross"].to_list() == pytest.approx([0.06, 0.02, 0.04, -0.01])
    # First books are built from nothing (2); D3 moves A 1 -> 0.5, F 0 -> 0.5, E -1 -> -0.5,
    # D 0 -> -0.5 (2); D4 repeats D2's book (0).
    assert periods["turnover"].to_list() == pytest.approx([2.0, 2.0, 2.0, 0.0])
    assert periods["net"].to_list() == pytest.approx([0.058, 0.018, 0.038, -0.01])
    free = long_short_periods(portfolio_frame(), "pred", "target", horizon_days=2, min_names=5, cost_bps=0)
    assert free["net"].to_list() == pytest.approx(free["gross"].to_list())
    with pytest.raises(InputError, match="cost_bps"):
        long_short_periods(portfolio_frame(), "pred", "target", horizon_days=2, cost_bps=-1)
    with pytest.raises(InputError, match="'Code'"):
        long_short_periods(frame_of({D1: ([1.0, 2.0], [1.0, 2.0])}), "pred", "target", 1, min_names=2)


def test_portfolio_summary_by_hand() -> None:
    periods = long_short_periods(portfolio_frame(), "pred", "target", horizon_days=2, min_names=5)
    s = portfolio_summary(periods, horizon_days=2)
    scale = 252 / 2
    # Gross: sub-portfolio 0 (0.06, 0.04): mean 0.05, std 0.01 * sqrt(2); 1 (0.02, -0.01): 0.005, 0.015 * sqrt(2).
    assert s["ls_ann_return_gross"] == pytest.approx((0.05 + 0.005) / 2 * scale)
    sharpe = (0.05 / (0.01 * math.sqrt(2)) + 0.005 / (0.015 * math.sqrt(2))) / 2 * math.sqrt(scale)
    assert s["ls_sharpe_gross"] == pytest.approx(sharpe)
    # Net: (0.058, 0.038) and (0.018, -0.01): means 0.048, 0.004; stds 0.01 * sqrt(2), 0.014 * sqrt(2).
    assert s["ls_ann_return_net"] == pytest.approx((0.048 + 0.004) / 2 * scale)
    net = (0.048 / (0.01 * math.sqrt(2)) + 0.004 / (0.014 * math.sqrt(2))) / 2 * math.sqrt(scale)
    assert s["ls_sharpe_net"] == pytest.approx(net)
    assert s["ls_turnover"] == pytest.approx(1.5) and s["ls_rebalances"] == 4
    book = staggered_book(periods)
    assert book["Date"].to_list() == [D1, D3]
    assert book["gross"].to_list() == pytest.approx([0.04, 0.015])
    assert book["net"].to_list() == pytest.approx([0.038, 0.014])


def random_panel(n_days: int, n_names: int = 30, seed: int = 0, skill: float = 0.3) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    days = [date(2023, 1, 2) + (date(2023, 1, 3) - date(2023, 1, 2)) * i for i in range(n_days)]
    pred = rng.normal(size=(n_days, n_names))
    target = skill * 0.01 * pred + 0.01 * rng.normal(size=(n_days, n_names))
    return pl.DataFrame(
        {
            "Date": np.repeat(np.array(days, dtype="datetime64[D]"), n_names),
            "Code": np.tile([f"{1000 + i}0" for i in range(n_names)], n_days),
            "pred": pred.ravel(),
            "target": target.ravel(),
        }
    ).with_columns(pl.col("Date").cast(pl.Date))


def test_one_day_horizon_periods_match_the_daily_long_short() -> None:
    frame = random_panel(40)
    periods = long_short_periods(frame, "pred", "target", horizon_days=1)
    daily = long_short_returns(frame, "pred", "target")
    assert periods["gross"].to_list() == pytest.approx(daily["ls"].to_list())
    assert portfolio_summary(periods, 1)["ls_sharpe_gross"] == pytest.approx(annualized_sharpe(daily["ls"]))
    # Six names a side out of 30, a fresh draw each day: a name stays on its side with chance 1/5
    # and each move costs 1/6 to close and 1/6 to open, so about 4 * 4/5 = 3.2 (4 = a full reversal).
    turnover = periods["turnover"]
    assert turnover[0] == pytest.approx(2.0) and 2.8 < turnover[1:].mean() < 3.6 and turnover.max() <= 4.0


def test_block_bootstrap_resamples_consecutive_blocks() -> None:
    seen: list[np.ndarray] = []

    def record(x: np.ndarray) -> np.ndarray:
        seen.append(x)
        return x.mean(axis=1)

    values = np.arange(10, dtype=float)
    block_bootstrap_ci(values, record, block_length=4, config=Bootstrap(resamples=50, seed=1))
    draws = seen[0]
    assert draws.shape == (50, 10)
    # Blocks of four consecutive values (starts 0..6): steps of 1 inside each block.
    steps = np.diff(draws, axis=1)
    inside = [i for i in range(9) if (i + 1) % 4 != 0]
    assert (steps[:, inside] == 1).all()
    assert draws.min() >= 0 and draws.max() <= 9
    # A block as long as the series leaves one possible resample: the interval collapses.
    lo, hi = block_bootstrap_ci(values, lambda x: x.mean(axis=1), block_length=10)
    assert lo == pytest.approx(4.5) and hi == pytest.approx(4.5)
    assert all(math.isnan(b) for b in block_bootstrap_ci([1.0], lambda x: x.mean(axis=1), 1))
    assert all(math.isnan(b) for b in block_bootstrap_ci(values, lambda x: x.mean(axis=1), 4, Bootstrap(resamples=0)))
    with pytest.raises(InputError, match="bootstrap"):
        Bootstrap(resamples=-1)
    with pytest.raises(InputError, match="bootstrap"):
        Bootstrap(level=1.0)


def test_bootstrap_is_deterministic_contains_the_estimate_and_narrows_with_more_days() -> None:
    rng = np.random.default_rng(5)
    series = 0.05 + 0.1 * rng.normal(size=400)
    mean = lambda x: x.mean(axis=1)  # noqa: E731
    first = block_bootstrap_ci(series, mean, 10, Bootstrap(resamples=500, seed=3))
    assert first == block_bootstrap_ci(series, mean, 10, Bootstrap(resamples=500, seed=3))
    assert first != block_bootstrap_ci(series, mean, 10, Bootstrap(resamples=500, seed=4))
    assert first[0] < series.mean() < first[1]
    short = block_bootstrap_ci(series[:40], mean, 10, Bootstrap(resamples=500, seed=3))
    assert short[0] < series[:40].mean() < short[1]
    assert short[1] - short[0] > 2 * (first[1] - first[0])  # ~ sqrt(10) wider
    wider = block_bootstrap_ci(series, mean, 10, Bootstrap(resamples=500, seed=3, level=0.99))
    assert wider[0] < first[0] and wider[1] > first[1]


def test_ic_intervals_and_evaluate_predictions_intervals() -> None:
    frame = random_panel(120, seed=2)
    daily = daily_ic(frame, "pred", "target")
    summary = ic_summary(daily)
    ci = ic_intervals(daily, horizon_days=1, config=Bootstrap(resamples=300))
    assert ci["rank_ic_mean_ci"][0] < summary["rank_ic_mean"] < ci["rank_ic_mean_ci"][1]
    assert ci["rank_icir_ci"][0] < summary["rank_icir"] < ci["rank_icir_ci"][1]
    assert ci["icir_ci"][0] < summary["icir"] < ci["icir_ci"][1]
    out = evaluate_predictions(frame, "pred", "target", 1, bootstrap=Bootstrap(resamples=300))
    assert out["rank_ic_mean_ci"] == ci["rank_ic_mean_ci"]
    assert out["ls_sharpe_gross_ci"][0] < out["ls_sharpe_gross"] < out["ls_sharpe_gross_ci"][1]
    assert out["ls_sharpe_net_ci"][0] < out["ls_sharpe_net"] < out["ls_sharpe_net_ci"][1]
    assert out["ls_sharpe_net"] < out["ls_sharpe_gross"] and out["cost_bps"] == 10.0
    # A 5-day horizon on the same rows: the same daily IC, intervals from longer blocks.
    five = evaluate_predictions(frame, "pred", "target", 5, bootstrap=Bootstrap(resamples=300))
    assert five["rank_ic_mean"] == pytest.approx(out["rank_ic_mean"])
    assert five["ls_rebalances"] == 120 and five["ls_sharpe_gross_ci"][0] < five["ls_sharpe_gross"]
    # Short series: no interval rather than a made-up one.
    tiny = evaluate_predictions(random_panel(1), "pred", "target", 1)
    assert tiny["rank_ic_mean_ci"] == [None, None] and tiny["ls_sharpe_net_ci"] == [None, None]


def test_ic_decay_by_hand() -> None:
    codes = ["A", "B", "C", "D"]
    preds = coded([(d, c, float(i + 1), 0.0) for d in (D1, D2) for i, c in enumerate(codes)])
    rets = pl.DataFrame(
        [(D1, c, r) for c, r in zip(codes, [1.0, 2.0, 3.0, 4.0], strict=True)]
        + [(D2, c, r) for c, r in zip(codes, [4.0, 3.0, 2.0, 1.0], strict=True)]
        + [(D3, c, r) for c, r in zip(codes, [1.0, 2.0, 4.0, 3.0], strict=True)]
        + [(D4, c, r) for c, r in zip(codes[:3], [2.0, 1.0, 3.0], strict=True)],  # D has no return on D4
        schema={"Date": pl.Date, "Code": pl.Utf8, "ret": pl.Float64},
        orient="row",
    )
    decay = ic_decay(preds, "pred", rets, lags=[1, 2, 3, 4, 5], min_names=3)
    assert decay["lag"].to_list() == [1, 2, 3, 4, 5]
    # Rank ICs of (1, 2, 3, 4) against each session's returns: D1 +1, D2 -1, D3 0.8, D4 (3 names) 0.5.
    # lag k pairs D1 with session k and D2 with session k + 1.
    assert decay["rank_ic_mean"].to_list()[:4] == pytest.approx([0.0, -0.1, 0.65, 0.5])
    assert decay["n_days"].to_list() == [2, 2, 2, 1, 0] and decay["rank_ic_mean"][4] is None
    assert ic_decay(preds, "pred", rets, lags=[4], min_names=4)["n_days"].to_list() == [0]
    with pytest.raises(InputError, match="lags"):
        forward_return_lags(preds, rets, [0])
