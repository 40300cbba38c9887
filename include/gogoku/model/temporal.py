"""Temporal encoder: an LSTM in parallel with multi-head self-attention, mixed by a learned gate.

Input [B, T, H] (one sequence per stock), output [B, H] at the last time step. The attention
branch adds a learned position embedding (the LSTM knows order by construction); the gate is a
sigmoid of a GRN over both branches' last states.
"""

from __future__ import annotations

import torch
from torch import nn

from gogoku.model.vsn import GatedResidualNetwork


class TemporalEncoder(nn.Module):
    def __init__(self, hidden: int, heads: int, lstm_layers: int, max_len: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.lstm = nn.LSTM(hidden, hidden, num_layers=lstm_layers, batch_first=True,
                            dropout=dropout if lstm_layers > 1 else 0.0)
        self.position = nn.Parameter(torch.zeros(1, max_len, hidden))
        self.attention = nn.MultiheadAttention(hidden, heads, dropout=dropout, batch_first=True)
        self.attn_norm = nn.LayerNorm(hidden)
        self.gate = GatedResidualNetwork(2 * hidden, hidden, hidden, dropout)
        self.out_norm = nn.LayerNorm(hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = x.shape[1]
        if t > self.position.shape[1]:
            raise ValueError(f"sequence length {t} exceeds the encoder's max_len {self.position.shape[1]}")
        lstm_out, _ = self.lstm(x)
        q = x + self.position[:, :t]
        attn_out, _ = self.attention(q, q, q, need_weights=False)
        attn_last = self.attn_norm(attn_out[:, -1] + x[:, -1])
        lstm_last = lstm_out[:, -1]
        g = torch.sigmoid(self.gate(torch.cat([lstm_last, attn_last], dim=-1)))
        return self.out_norm(g * lstm_last + (1.0 - g) * attn_last + x[:, -1])
