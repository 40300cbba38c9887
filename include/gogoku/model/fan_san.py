"""Adaptive normalization over the TIME axis of the input sequence [B, T, F] (docs/model.md,
pitfall 2: on one vector repeated over time it would reduce to a bias).

FAN (frequency/window adaptive normalization): for each window w in `windows`, every step t is
standardized by the causal mean and std of the last w steps (fewer at the start); a per-feature
softmax mixes the windows. SAN (slice adaptive normalization): the sequence is cut into `slices`
contiguous slices, each standardized by its own statistics and given a learned per-slice affine.
The module returns x + tanh(gate) * (mix * FAN + (1 - mix) * SAN) with per-feature gate and mix,
so the raw levels stay available and the model learns how much of the normalized view to add.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def causal_window_stats(x: torch.Tensor, window: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and variance over steps max(0, t - window + 1) .. t along dim 1 of [B, T, F]."""
    t = x.shape[1]
    zero = torch.zeros_like(x[:, :1])
    c1 = torch.cat([zero, x.cumsum(1)], dim=1)
    c2 = torch.cat([zero, (x * x).cumsum(1)], dim=1)
    end = torch.arange(1, t + 1, device=x.device)
    start = (end - window).clamp_min(0)
    count = (end - start).to(x.dtype).view(1, t, 1)
    mean = (c1[:, end] - c1[:, start]) / count
    var = ((c2[:, end] - c2[:, start]) / count - mean * mean).clamp_min(0.0)
    return mean, var


class FrequencyAdaptiveNorm(nn.Module):
    def __init__(self, n_features: int, windows: Sequence[int] = (5, 10, 20), eps: float = 1e-3) -> None:
        super().__init__()
        self.windows = tuple(int(w) for w in windows)
        self.mix_logits = nn.Parameter(torch.zeros(n_features, len(self.windows)))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        views = []
        for w in self.windows:
            mean, var = causal_window_stats(x, w)
            views.append((x - mean) * torch.rsqrt(var + self.eps))
        mix = torch.softmax(self.mix_logits, dim=-1)  # [F, W]
        return (torch.stack(views, dim=-1) * mix).sum(-1)


class SliceAdaptiveNorm(nn.Module):
    def __init__(self, n_features: int, slices: int = 3, eps: float = 1e-3) -> None:
        super().__init__()
        self.slices = slices
        self.gamma = nn.Parameter(torch.ones(slices, n_features))
        self.beta = nn.Parameter(torch.zeros(slices, n_features))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = x.shape[1]
        n = min(self.slices, t)
        slice_of = (torch.arange(t, device=x.device) * n) // t  # step -> slice, contiguous and ordered
        onehot = F.one_hot(slice_of, n).to(x.dtype)  # [T, S]
        count = onehot.sum(0).view(1, n, 1)
        mean = torch.einsum("ts,btf->bsf", onehot, x) / count
        var = (torch.einsum("ts,btf->bsf", onehot, x * x) / count - mean * mean).clamp_min(0.0)
        z = (x - mean[:, slice_of]) * torch.rsqrt(var[:, slice_of] + self.eps)
        return z * self.gamma[slice_of] + self.beta[slice_of]


class AdaptiveNormalization(nn.Module):
    """FAN + SAN over time, added to the input through a learned per-feature gate."""

    def __init__(self, n_features: int, windows: Sequence[int] = (5, 10, 20), slices: int = 3,
                 gate_init: float = 0.1) -> None:
        super().__init__()
        self.fan = FrequencyAdaptiveNorm(n_features, windows)
        self.san = SliceAdaptiveNorm(n_features, slices)
        self.gate = nn.Parameter(torch.full((n_features,), float(gate_init)))
        self.mix = nn.Parameter(torch.zeros(n_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lam = torch.sigmoid(self.mix)
        return x + torch.tanh(self.gate) * (lam * self.fan(x) + (1.0 - lam) * self.san(x))
