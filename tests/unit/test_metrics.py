"""Metrics against hand-computed values and an explicit textbook Pearson formula."""

from __future__ import annotations

import math
from datetime import date

import polars as pl
import pytest

from gogoku.errors import InputError
from gogoku.evaluate.metrics import (
    annualized_sharpe,
    daily_ic,
    evaluate_predictions,
    ic_summary,
    long_short_returns,
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
    out = evaluate_predictions(frame.lazy(), "pred", "target", horizon_days=5)
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
