"""GATv2 over the day's correlation graph (edge attributes [(rho+1)/2, same market, same sector])
and the gated residual fusion of the graph view into the temporal state."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.nn import GATv2Conv

from gogoku.model.gat_graph import EDGE_DIM


class GraphEncoder(nn.Module):
    """Stacked GATv2Conv layers (concatenated heads, hidden size kept), residual + LayerNorm each."""

    def __init__(self, hidden: int, heads: Sequence[int] = (4, 2), dropout: float = 0.2) -> None:
        super().__init__()
        for h in heads:
            if hidden % h:
                raise ValueError(f"hidden size {hidden} is not divisible by {h} GAT heads")
        self.convs = nn.ModuleList(
            GATv2Conv(hidden, hidden // h, heads=h, edge_dim=EDGE_DIM, dropout=dropout,
                      add_self_loops=True, fill_value="mean")
            for h in heads
        )
        self.norms = nn.ModuleList(nn.LayerNorm(hidden) for _ in heads)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor, edge_attr: torch.Tensor) -> torch.Tensor:
        for conv, norm in zip(self.convs, self.norms, strict=True):
            # GATv2Conv computes in fp32 (its scatter ops do not take bf16 on every backend).
            h = conv(x.float(), edge_index, edge_attr.float())
            x = norm(x + self.dropout(F.elu(h)))
        return x


class GatedFusion(nn.Module):
    """LayerNorm(temporal + sigmoid(W [temporal; graph]) * W_g graph)."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.gate = nn.Linear(2 * hidden, hidden)
        self.value = nn.Linear(hidden, hidden)
        self.norm = nn.LayerNorm(hidden)

    def forward(self, temporal: torch.Tensor, graph: torch.Tensor) -> torch.Tensor:
        g = torch.sigmoid(self.gate(torch.cat([temporal, graph], dim=-1)))
        return self.norm(temporal + g * self.value(graph))
