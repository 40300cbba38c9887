"""Multi-horizon quantile heads: per horizon an MLP to non-crossing quantiles.

The median is a free output; the other quantiles sit below / above it by cumulative softplus
gaps, so q_0.05 <= q_0.25 <= q_0.5 <= q_0.75 <= q_0.95 always holds.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class QuantileHead(nn.Module):
    def __init__(self, hidden: int, quantiles: Sequence[float], dropout: float = 0.0) -> None:
        super().__init__()
        qs = [float(q) for q in quantiles]
        if sorted(qs) != qs or 0.5 not in qs:
            raise ValueError(f"quantiles must be increasing and contain 0.5, got {qs}")
        self.median = qs.index(0.5)
        self.mlp = nn.Sequential(nn.Linear(hidden, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, len(qs)))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        raw = self.mlp(h)
        m = self.median
        center = raw[:, m : m + 1]
        gaps = F.softplus(raw) + 1e-6
        below = center - gaps[:, :m].flip(1).cumsum(1).flip(1)
        above = center + gaps[:, m + 1 :].cumsum(1)
        return torch.cat([below, center, above], dim=1)


class MultiHorizonHeads(nn.Module):
    def __init__(self, hidden: int, horizons: Sequence[int], quantiles: Sequence[float], dropout: float = 0.0) -> None:
        super().__init__()
        self.horizons = [int(h) for h in horizons]
        self.heads = nn.ModuleDict({f"{h}d": QuantileHead(hidden, quantiles, dropout) for h in self.horizons})
        self.median = self.heads[f"{self.horizons[0]}d"].median

    def forward(self, h: torch.Tensor) -> dict[int, torch.Tensor]:
        return {hz: self.heads[f"{hz}d"](h) for hz in self.horizons}
