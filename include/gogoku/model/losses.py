"""Multi-horizon loss over day-grouped batches (docs/model.md).

Per horizon, on the names with a known target:
  pinball over the quantiles + Huber on the median   (against the per-day z-scored target)
  + rank term   1 - mean_day corr(soft_rank(pred), rank(target))   (differentiable soft ranks)
  + IC term     1 - mean_day Pearson(pred, target)
  + Sharpe term -mean_d(r_d) / std_d(r_d), r_d = mean_i(z_d(pred)_i * target_i)  (>= 2 days)
and the horizons are combined with their weights (divided by the weights' sum). Every statistic is
per trading day (`day` ids): nothing mixes different days' cross-sections. A selection-sparsity
term on the VSN weights is added once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from gogoku.errors import InputError

MIN_NAMES = 3  # a day needs this many names with a target for its correlation terms


@dataclass(frozen=True)
class LossConfig:
    quantiles: tuple[float, ...] = (0.05, 0.25, 0.5, 0.75, 0.95)
    horizon_weights: Mapping[int, float] = field(default_factory=lambda: {1: 1.0, 5: 0.6, 10: 0.3, 20: 0.2})
    pinball: float = 1.0
    huber: float = 0.5
    huber_delta: float = 1.0
    rank: float = 0.5
    rank_temperature: float = 0.1
    ic: float = 0.5
    sharpe: float = 0.1
    sparsity: float = 0.0

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], quantiles: Sequence[float], horizons: Sequence[int]) -> LossConfig:
        values = dict(values)
        weights = {int(k): float(v) for k, v in dict(values.pop("horizon_weights", {}) or {}).items()}
        missing = [h for h in horizons if h not in weights]
        if missing:
            raise InputError(f"loss.horizon_weights: no weight for horizon(s) {missing}")
        unknown = set(values) - {f for f in cls.__dataclass_fields__ if f not in ("quantiles", "horizon_weights")}
        if unknown:
            raise InputError(f"loss: unknown key(s) {sorted(unknown)}")
        return cls(quantiles=tuple(float(q) for q in quantiles),
                   horizon_weights={h: weights[h] for h in horizons}, **{k: float(v) for k, v in values.items()})


def _day_sum(values: torch.Tensor, day: torch.Tensor, n_days: int) -> torch.Tensor:
    return torch.zeros(n_days, dtype=values.dtype, device=values.device).index_add(0, day, values)


def day_zscore(x: torch.Tensor, day: torch.Tensor, n_days: int, eps: float = 1e-8) -> torch.Tensor:
    """(x - day mean) / day std (population), over all rows of x."""
    count = _day_sum(torch.ones_like(x), day, n_days).clamp_min(1.0)
    mean = _day_sum(x, day, n_days) / count
    dev = x - mean[day]
    var = _day_sum(dev * dev, day, n_days) / count
    return dev / (var[day] + eps).sqrt()


def day_pearson(a: torch.Tensor, b: torch.Tensor, day: torch.Tensor, n_days: int) -> torch.Tensor:
    """Per-day Pearson correlation of a and b ([n_days]); NaN for days with < MIN_NAMES rows."""
    count = _day_sum(torch.ones_like(a), day, n_days)
    za, zb = day_zscore(a, day, n_days), day_zscore(b, day, n_days)
    corr = _day_sum(za * zb, day, n_days) / count.clamp_min(1.0)
    return torch.where(count >= MIN_NAMES, corr, torch.full_like(corr, float("nan")))


def _day_blocks(day: torch.Tensor) -> list[torch.Tensor]:
    """The row indices of each day present in `day` (a batch holds a few days)."""
    return [torch.nonzero(day == d, as_tuple=True)[0] for d in torch.unique(day).tolist()]


def soft_rank(x: torch.Tensor, day: torch.Tensor, temperature: float) -> torch.Tensor:
    """Differentiable rank within each day: sum_j sigmoid((z_i - z_j) / temperature) over the
    same day's names, on the day-z-scored values (so the temperature is scale-free). The pairs are
    formed day by day: memory is the largest day's names squared, not the batch's rows squared."""
    n_days = int(day.max()) + 1 if day.numel() else 0
    z = day_zscore(x, day, n_days)
    out = torch.zeros_like(z)
    for rows in _day_blocks(day):
        zd = z[rows]
        out = out.index_put((rows,), torch.sigmoid((zd.unsqueeze(1) - zd.unsqueeze(0)) / temperature).sum(1))
    return out


def hard_rank(x: torch.Tensor, day: torch.Tensor) -> torch.Tensor:
    """Rank within each day (1 = smallest; ties get their average rank), no gradient. By sorting:
    O(n log n) in the rows of all days together (a validation slice holds tens of thousands)."""
    with torch.no_grad():
        n = x.numel()
        if n == 0:
            return x.clone()
        order = torch.argsort(x, stable=True)
        order = order[torch.argsort(day[order], stable=True)]  # by day, then by value
        ds, xs = day[order], x[order]
        pos = torch.arange(n, device=x.device)
        new_day = torch.ones(n, dtype=torch.bool, device=x.device)
        new_day[1:] = ds[1:] != ds[:-1]
        start = pos[new_day][torch.cumsum(new_day.long(), 0) - 1]  # each row's day's first position
        new_tie = new_day.clone()
        new_tie[1:] |= xs[1:] != xs[:-1]
        tie = torch.cumsum(new_tie.long(), 0) - 1
        first = pos[new_tie]
        last = first + torch.bincount(tie) - 1
        ranks = torch.empty_like(x)
        ranks[order] = (first[tie] + last[tie]).to(x.dtype) / 2 - start.to(x.dtype) + 1
        return ranks


def pinball_loss(pred: torch.Tensor, target: torch.Tensor, quantiles: Sequence[float]) -> torch.Tensor:
    """Mean over rows and quantiles of max(q * e, (q - 1) * e), e = target - pred ([N, Q] vs [N])."""
    q = torch.tensor(list(quantiles), dtype=pred.dtype, device=pred.device)
    err = target.unsqueeze(1) - pred
    return torch.maximum(q * err, (q - 1.0) * err).mean()


def _nanmean(x: torch.Tensor) -> torch.Tensor:
    keep = ~torch.isnan(x)
    return x[keep].mean() if bool(keep.any()) else x.new_zeros(())


class MultiHorizonLoss:
    def __init__(self, config: LossConfig, median_index: int) -> None:
        self.config = config
        self.median_index = median_index

    def horizon_terms(self, quantiles: torch.Tensor, target: torch.Tensor, day: torch.Tensor) -> dict[str, torch.Tensor]:
        c = self.config
        keep = torch.isfinite(target)
        q, y = quantiles[keep].float(), target[keep].float()
        zero = quantiles.new_zeros((), dtype=torch.float32)
        if y.numel() < MIN_NAMES:
            return dict.fromkeys(("pinball", "huber", "rank", "ic", "sharpe"), zero)
        # Re-index the kept rows' days to 0..D-1.
        days, d = torch.unique(day[keep], return_inverse=True)
        n_days = days.numel()
        y_z = day_zscore(y, d, n_days)
        point = q[:, self.median_index]
        terms = {
            "pinball": pinball_loss(q, y_z, c.quantiles),
            "huber": F.huber_loss(point, y_z, delta=c.huber_delta),
            "rank": 1.0 - _nanmean(day_pearson(soft_rank(point, d, c.rank_temperature), hard_rank(y, d), d, n_days)),
            "ic": 1.0 - _nanmean(day_pearson(point, y, d, n_days)),
        }
        if n_days >= 2:
            ret = _day_sum(day_zscore(point, d, n_days) * y, d, n_days) / _day_sum(torch.ones_like(y), d, n_days)
            terms["sharpe"] = -ret.mean() / (ret.std() + 1e-8)
        else:
            terms["sharpe"] = zero  # one cross-section has no return series to take a Sharpe of
        return terms

    def __call__(
        self, outputs: Mapping[str, Any], targets: Mapping[int, torch.Tensor], day: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """(total loss, {component: value} per horizon and overall) for one batch."""
        c = self.config
        weights = {"pinball": c.pinball, "huber": c.huber, "rank": c.rank, "ic": c.ic, "sharpe": c.sharpe}
        total = torch.zeros((), device=day.device)
        logs: dict[str, float] = {}
        weight_sum = sum(c.horizon_weights.values())
        for h, hw in c.horizon_weights.items():
            terms = self.horizon_terms(outputs["quantiles"][h], targets[h], day)
            horizon_loss = sum(weights[k] * v for k, v in terms.items())
            total = total + (hw / weight_sum) * horizon_loss
            logs.update({f"{k}_{h}d": float(v.detach()) for k, v in terms.items()})
            logs[f"loss_{h}d"] = float(horizon_loss.detach())
        if c.sparsity > 0 and "selection" in outputs:
            sparsity = outputs["selection"].float()
            ent = -(sparsity * sparsity.clamp_min(1e-12).log()).sum(-1).mean()
            total = total + c.sparsity * ent
            logs["selection_entropy"] = float(ent.detach())
        logs["loss"] = float(total.detach())
        return total, logs
