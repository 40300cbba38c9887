"""Variable Selection Network: one gated residual network per input feature, softmax selection.

Each scalar feature x_f gets its own embedding and GRN (weights stacked as [F, ...] tensors and
applied with einsum, so F features cost one batched op); a GRN over the raw feature vector gives
softmax selection weights over the features; the output is the weighted sum of the per-feature
embeddings. `sparsity` (the mean entropy of the weights) is exposed for an optional loss term.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class GatedResidualNetwork(nn.Module):
    """LayerNorm(skip(x) + GLU(W2 ELU(W1 x)))."""

    def __init__(self, d_in: int, d_hidden: int, d_out: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(d_in, d_hidden)
        self.fc2 = nn.Linear(d_hidden, 2 * d_out)
        self.skip = nn.Linear(d_in, d_out) if d_in != d_out else nn.Identity()
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(d_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.dropout(F.elu(self.fc1(x)))
        return self.norm(self.skip(x) + F.glu(self.fc2(h), dim=-1))


class FeatureWiseGRN(nn.Module):
    """F independent GRNs from a scalar to a `dim`-vector: [..., F] -> [..., F, dim]."""

    def __init__(self, n_features: int, dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        bound = 1.0 / math.sqrt(dim)
        self.w_in = nn.Parameter(torch.randn(n_features, dim) * 0.5)
        self.b_in = nn.Parameter(torch.zeros(n_features, dim))
        self.w_hidden = nn.Parameter(torch.empty(n_features, dim, dim).uniform_(-bound, bound))
        self.b_hidden = nn.Parameter(torch.zeros(n_features, dim))
        self.w_gate = nn.Parameter(torch.empty(n_features, dim, 2 * dim).uniform_(-bound, bound))
        self.b_gate = nn.Parameter(torch.zeros(n_features, 2 * dim))
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        emb = x.unsqueeze(-1) * self.w_in + self.b_in  # [..., F, d]: the skip path
        h = F.elu(torch.einsum("...fd,fde->...fe", emb, self.w_hidden) + self.b_hidden)
        gated = F.glu(torch.einsum("...fd,fde->...fe", self.dropout(h), self.w_gate) + self.b_gate, dim=-1)
        return self.norm(emb + gated)


class VariableSelectionNetwork(nn.Module):
    """[..., F] -> ([..., d_out], selection weights [..., F])."""

    def __init__(self, n_features: int, feature_dim: int, d_out: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.features = FeatureWiseGRN(n_features, feature_dim, dropout)
        self.selector = GatedResidualNetwork(n_features, d_out, n_features, dropout)
        self.project = nn.Sequential(nn.Linear(feature_dim, d_out), nn.LayerNorm(d_out))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        weights = torch.softmax(self.selector(x), dim=-1)
        embedded = self.features(x)
        selected = (weights.unsqueeze(-1) * embedded).sum(-2)
        return self.project(selected), weights

    @staticmethod
    def sparsity(weights: torch.Tensor) -> torch.Tensor:
        """Mean entropy of the selection weights, divided by log F (1 = uniform, 0 = one feature)."""
        n = weights.shape[-1]
        entropy = -(weights * weights.clamp_min(1e-12).log()).sum(-1)
        return entropy.mean() / math.log(max(n, 2))
