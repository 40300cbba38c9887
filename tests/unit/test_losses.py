"""Multi-horizon loss (gogoku.model.losses): hand-computed terms, per-day grouping, masking."""

from __future__ import annotations

import math

import pytest
import torch

from gogoku.errors import InputError
from gogoku.model.losses import (
    LossConfig,
    MultiHorizonLoss,
    day_pearson,
    day_zscore,
    hard_rank,
    pinball_loss,
    soft_rank,
)


def test_pinball_by_hand() -> None:
    pred = torch.zeros(2, 2)
    # target 1: 0.25 * 1 and 0.75 * 1; target -2: 0.75 * 2 and 0.25 * 2; mean of (0.25, 0.75, 1.5, 0.5).
    assert float(pinball_loss(pred, torch.tensor([1.0, -2.0]), [0.25, 0.75])) == pytest.approx(0.75)


def test_ranks_and_correlations_are_per_day() -> None:
    x = torch.tensor([3.0, 1.0, 2.0, 1.0, 1.0, 5.0])
    day = torch.tensor([0, 0, 0, 1, 1, 1])
    assert hard_rank(x, day).tolist() == [3.0, 1.0, 2.0, 1.5, 1.5, 3.0]
    soft = soft_rank(torch.tensor([3.0, 1.0, 2.0, 10.0, -4.0, 0.0]), day, temperature=1e-3)
    torch.testing.assert_close(soft, torch.tensor([3.0, 1.0, 2.0, 3.0, 1.0, 2.0]) - 0.5)
    a = torch.tensor([1.0, 2.0, 3.0, 1.0, 2.0, 3.0, 7.0, 8.0])
    b = torch.tensor([2.0, 4.0, 6.0, 3.0, 2.0, 1.0, 1.0, 2.0])
    corr = day_pearson(a, b, torch.tensor([0, 0, 0, 1, 1, 1, 2, 2]), 3)
    torch.testing.assert_close(corr[:2], torch.tensor([1.0, -1.0]))
    assert math.isnan(float(corr[2]))  # two names: too few


def test_ranks_by_sorting_equal_the_pairwise_definition() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 7, (300,), generator=gen).double()  # many ties
    day = torch.randint(0, 5, (300,), generator=gen)  # days interleaved, not sorted
    same = day.unsqueeze(0) == day.unsqueeze(1)
    pairwise = (((x.unsqueeze(1) > x.unsqueeze(0)) & same).sum(1)
                + 0.5 * (((x.unsqueeze(1) == x.unsqueeze(0)) & same).sum(1) + 1.0))
    torch.testing.assert_close(hard_rank(x, day), pairwise.double())
    assert hard_rank(torch.zeros(0), torch.zeros(0, dtype=torch.long)).numel() == 0
    # The soft ranks, day by day, equal the masked all-pairs form, gradients included.
    z = torch.randn(300, generator=gen, dtype=torch.float64, requires_grad=True)
    soft = soft_rank(z, day, temperature=0.1)
    zs = day_zscore(z, day, 5)
    full = (torch.sigmoid((zs.unsqueeze(1) - zs.unsqueeze(0)) / 0.1) * same).sum(1)
    torch.testing.assert_close(soft, full)
    (grad_soft,) = torch.autograd.grad((soft * torch.arange(300.0, dtype=torch.float64)).sum(), z)
    (grad_full,) = torch.autograd.grad((full * torch.arange(300.0, dtype=torch.float64)).sum(), z)
    torch.testing.assert_close(grad_soft, grad_full)


def make_loss(**weights: float) -> MultiHorizonLoss:
    cfg = LossConfig.from_mapping({"horizon_weights": {1: 1.0, 5: 0.5}, **weights}, [0.25, 0.5, 0.75], [1, 5])
    return MultiHorizonLoss(cfg, median_index=1)


def outputs_for(point: dict[int, torch.Tensor]) -> dict:
    return {"quantiles": {h: torch.stack([p - 1, p, p + 1], 1) for h, p in point.items()}}


def test_good_predictions_score_better_on_every_term_and_nan_targets_are_ignored() -> None:
    torch.manual_seed(0)
    day = torch.arange(4).repeat_interleave(30)
    target = torch.randn(120) * 0.02
    target[::7] = float("nan")
    loss = make_loss(rank_temperature=0.01)
    good = loss.horizon_terms(outputs_for({1: target.nan_to_num(0.0) * 50})["quantiles"][1], target, day)
    bad = loss.horizon_terms(outputs_for({1: -target.nan_to_num(0.0) * 50})["quantiles"][1], target, day)
    assert all(torch.isfinite(v) for v in good.values())
    assert float(good["rank"]) < 0.02 and float(good["ic"]) < 1e-4 and float(bad["ic"]) > 1.99
    assert float(good["sharpe"]) < 0 < float(bad["sharpe"])
    assert float(good["huber"]) < float(bad["huber"]) and float(good["pinball"]) < float(bad["pinball"])


def test_total_is_the_weighted_mean_of_horizons_and_has_gradients() -> None:
    torch.manual_seed(1)
    day = torch.arange(2).repeat_interleave(20)
    pred = {1: torch.randn(40, requires_grad=True), 5: torch.randn(40, requires_grad=True)}
    targets = {1: torch.randn(40), 5: torch.randn(40)}
    loss = make_loss(sharpe=0.2, huber=0.3)
    out = outputs_for(pred)
    total, logs = loss(out, targets, day)
    weights = {"pinball": 1.0, "huber": 0.3, "rank": 0.5, "ic": 0.5, "sharpe": 0.2}
    per_h = {h: sum(weights[k] * float(v.detach()) for k, v in loss.horizon_terms(out["quantiles"][h], targets[h], day).items())
             for h in (1, 5)}
    assert float(total.detach()) == pytest.approx((per_h[1] + 0.5 * per_h[5]) / 1.5, rel=1e-5)
    assert logs["loss_5d"] == pytest.approx(per_h[5], rel=1e-5)
    total.backward()
    assert pred[1].grad is not None and pred[1].grad.abs().sum() > 0 and pred[5].grad.abs().sum() > 0


def test_one_day_has_no_sharpe_term() -> None:
    terms = make_loss().horizon_terms(torch.randn(10, 3), torch.randn(10), torch.zeros(10, dtype=torch.long))
    assert float(terms["sharpe"]) == 0.0


def test_config_errors() -> None:
    with pytest.raises(InputError, match="horizon"):
        LossConfig.from_mapping({"horizon_weights": {1: 1.0}}, [0.5], [1, 5])
    with pytest.raises(InputError, match="unknown"):
        LossConfig.from_mapping({"horizon_weights": {1: 1.0}, "mse": 1.0}, [0.5], [1])
