"""ATFT-GAT-FAN (docs/model.md), with components that the training phases really switch.

x [N, T, F] (N stocks of one or more trading days, the last T sessions of F features)
  -> adaptive normalization over time (FAN + SAN)            [switch: adaptive_norm]
  -> variable selection network per step -> Linear + LayerNorm
  -> temporal encoder (LSTM || self-attention, gated), last step
  -> GATv2 on the day's correlation graph + gated residual fusion  [switch: gat]
  -> per-horizon quantile heads.
A switched-off component is skipped in `forward`: it gets no gradient and its weights have no
effect on the output (docs/model.md, pitfall 1: phase switches that switch nothing).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import torch
from torch import nn

from gogoku.errors import InputError
from gogoku.model.fan_san import AdaptiveNormalization
from gogoku.model.gat import GatedFusion, GraphEncoder
from gogoku.model.heads import MultiHorizonHeads
from gogoku.model.temporal import TemporalEncoder
from gogoku.model.vsn import VariableSelectionNetwork


@dataclass(frozen=True)
class ATFTConfig:
    n_features: int
    hidden: int = 64
    feature_dim: int = 16
    lstm_layers: int = 1
    attention_heads: int = 4
    gat_heads: tuple[int, ...] = (4, 2)
    gat_dropout: float = 0.2
    dropout: float = 0.1
    seq_len: int = 20
    fan_windows: tuple[int, ...] = (5, 10, 20)
    san_slices: int = 3
    horizons: tuple[int, ...] = (1, 5, 10, 20)
    quantiles: tuple[float, ...] = field(default=(0.05, 0.25, 0.5, 0.75, 0.95))

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], **extra: Any) -> ATFTConfig:
        known = {f.name for f in fields(cls)}
        merged = {**{k: v for k, v in values.items() if k in known}, **extra}
        for key in ("gat_heads", "fan_windows", "horizons", "quantiles"):
            if key in merged:
                merged[key] = tuple(merged[key])
        try:
            return cls(**merged)
        except TypeError as exc:
            raise InputError(f"model architecture: {exc}") from None


class ATFTGATFAN(nn.Module):
    def __init__(self, config: ATFTConfig) -> None:
        super().__init__()
        c = config
        if c.n_features < 1 or c.hidden % c.attention_heads:
            raise InputError(f"model: n_features {c.n_features}, hidden {c.hidden} not divisible by {c.attention_heads} heads")
        self.config = c
        self.adaptive_norm = AdaptiveNormalization(c.n_features, c.fan_windows, c.san_slices)
        self.vsn = VariableSelectionNetwork(c.n_features, c.feature_dim, c.hidden, c.dropout)
        self.temporal = TemporalEncoder(c.hidden, c.attention_heads, c.lstm_layers, c.seq_len, c.dropout)
        self.gat = GraphEncoder(c.hidden, c.gat_heads, c.gat_dropout)
        self.fusion = GatedFusion(c.hidden)
        self.heads = MultiHorizonHeads(c.hidden, c.horizons, c.quantiles, c.dropout)
        self.use_adaptive_norm = True
        self.use_gat = True

    def set_components(self, adaptive_norm: bool, gat: bool) -> None:
        self.use_adaptive_norm = bool(adaptive_norm)
        self.use_gat = bool(gat)

    @property
    def median_index(self) -> int:
        return self.heads.median

    def forward(
        self,
        x: torch.Tensor,
        edge_index: torch.Tensor | None = None,
        edge_attr: torch.Tensor | None = None,
    ) -> dict[str, Any]:
        """{'quantiles': {h: [N, Q]}, 'point': {h: [N]} (the medians), 'selection': [N, T, F]}."""
        if x.dim() != 3 or x.shape[-1] != self.config.n_features:
            raise ValueError(f"expected input [N, T, {self.config.n_features}], got {tuple(x.shape)}")
        if self.use_adaptive_norm:
            x = self.adaptive_norm(x)
        seq, selection = self.vsn(x)
        h = self.temporal(seq)
        if self.use_gat:
            if edge_index is None or edge_attr is None:
                raise ValueError("the GAT is on: pass the day's edge_index and edge_attr")
            h = self.fusion(h, self.gat(h, edge_index, edge_attr).to(h.dtype))
        # The heads run in fp32 even under bf16 autocast: bf16's 8-bit mantissa would tie the ranks
        # of nearby predictions inside a cross-section.
        with torch.autocast(device_type=h.device.type, enabled=False):
            quantiles = self.heads(h.float())
        m = self.median_index
        return {
            "quantiles": quantiles,
            "point": {hz: q[:, m] for hz, q in quantiles.items()},
            "selection": selection,
        }


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def components(model: ATFTGATFAN) -> dict[str, Sequence[nn.Parameter]]:
    """The switchable components' parameters (for tests and logs)."""
    return {
        "adaptive_norm": list(model.adaptive_norm.parameters()),
        "gat": [*model.gat.parameters(), *model.fusion.parameters()],
    }
