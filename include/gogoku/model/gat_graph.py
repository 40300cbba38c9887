"""Per-day correlation graphs for the GAT (docs/model.md, pitfalls 3 and 4).

For a trading day d the graph uses the daily returns of the `lookback` sessions ENDING AT d (d's own
return is known at its close, later ones are not). Per stock: at least `min_obs` finite returns in
the window, else the stock has no edges that day. Returns are demeaned with exponentially decaying
weights (half-life `halflife` sessions, the most recent weighted 1), the weighted correlation is
computed with missing values contributing nothing, off-diagonals are shrunk by `shrinkage`, and an
edge i-j is kept when |rho| >= `threshold` and j is among i's `top_k` strongest neighbours (or i
among j's: the graph is symmetric); with `sector_peers` > 0, also when j is among i's `sector_peers`
most correlated stocks of the same sector33 (any |rho|). Edge attributes: [(rho + 1) / 2, same market, same sector33].

All days of a chunk are computed at once as batched matrix products in torch.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
import torch

from gogoku.errors import InputError

log = logging.getLogger(__name__)

EDGE_DIM = 3


@dataclass(frozen=True)
class GraphParams:
    lookback: int = 60
    min_obs: int = 40
    halflife: float = 30.0
    shrinkage: float = 0.1
    threshold: float = 0.3
    top_k: int = 15
    # Also link each stock to its `sector_peers` most correlated stocks of the same sector33 (no
    # threshold): industry peers, where lead-lag between stocks mostly runs, that a market-dominated
    # correlation graph leaves out. 0: correlation edges only.
    sector_peers: int = 0

    def __post_init__(self) -> None:
        if self.lookback < 2 or not 2 <= self.min_obs <= self.lookback:
            # A window shorter than min_obs could never produce an edge (docs/model.md, pitfall 3).
            raise InputError(f"graph: need 2 <= min_obs ({self.min_obs}) <= lookback ({self.lookback})")
        if (self.halflife <= 0 or not 0.0 <= self.shrinkage < 1.0 or not 0.0 <= self.threshold < 1.0 or self.top_k < 1
                or self.sector_peers < 0):
            raise InputError(
                f"graph: bad parameters halflife={self.halflife}, shrinkage={self.shrinkage}, "
                f"threshold={self.threshold}, top_k={self.top_k}, sector_peers={self.sector_peers}"
            )


def ewm_correlation(windows: torch.Tensor, halflife: float, min_obs: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted correlations of [D, L, N] return windows (NaN = missing): ([D, N, N] rho, [D, N] valid).

    A stock is valid on a day with at least `min_obs` finite returns; rho is 0 for invalid stocks
    and 1 on the diagonal of valid ones.
    """
    _, length, _ = windows.shape
    finite = torch.isfinite(windows)
    x = torch.where(finite, windows, torch.zeros((), dtype=windows.dtype))
    age = torch.arange(length - 1, -1, -1, dtype=windows.dtype)
    w = (0.5 ** (age / halflife)).view(1, length, 1) * finite
    wsum = w.sum(1, keepdim=True).clamp_min(1e-12)
    mean = (w * x).sum(1, keepdim=True) / wsum
    dev = torch.where(finite, x - mean, torch.zeros((), dtype=windows.dtype)) * w.sqrt()
    cov = dev.transpose(1, 2) @ dev  # [D, N, N]
    var = torch.diagonal(cov, dim1=1, dim2=2)
    valid = (finite.sum(1) >= min_obs) & (var > 1e-20)
    scale = torch.where(valid, var.clamp_min(1e-20).rsqrt(), torch.zeros((), dtype=windows.dtype))
    rho = (cov * scale.unsqueeze(2) * scale.unsqueeze(1)).clamp(-1.0, 1.0)
    return rho, valid


def _top_k_of(strength: torch.Tensor, keep: torch.Tensor, k: int) -> torch.Tensor:
    """[N, N] bool: each row's `k` strongest entries among those `keep` allows."""
    masked = torch.where(keep, strength, torch.full((), -1.0, dtype=strength.dtype))
    top = masked.topk(min(k, max(strength.shape[0] - 1, 1)), dim=1).indices  # [N, k]
    chosen = torch.zeros_like(keep)
    chosen.scatter_(1, top, True)
    return chosen & keep


def edges_from_correlation(
    rho: torch.Tensor, valid: torch.Tensor, params: GraphParams, same_sector: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric top-k threshold edges of one day's [N, N] correlation (and, with `params.sector_peers`
    and the [N, N] `same_sector` mask, each stock's most correlated same-sector stocks):
    (edge_index [2, E], rho [E])."""
    shrunk = rho * (1.0 - params.shrinkage)
    strength = shrunk.abs()
    pairs = valid.unsqueeze(0) & valid.unsqueeze(1)
    pairs.fill_diagonal_(False)
    chosen = _top_k_of(strength, pairs & (strength >= params.threshold), params.top_k)
    if params.sector_peers and same_sector is not None:
        chosen |= _top_k_of(strength, pairs & same_sector, params.sector_peers)
    chosen |= chosen.T.clone()
    src, dst = chosen.nonzero(as_tuple=True)
    return torch.stack([src, dst]), shrunk[src, dst]


@dataclass
class DayGraph:
    """One day's graph over the universe's column order: edges between universe indices."""

    edge_index: torch.Tensor  # [2, E] int64
    edge_attr: torch.Tensor  # [E, 3] float32


def edge_attributes(
    edge_index: torch.Tensor, rho: torch.Tensor, market: np.ndarray, sector: np.ndarray
) -> torch.Tensor:
    src, dst = edge_index.numpy()
    same_market = torch.from_numpy((market[src] == market[dst]) & (market[src] != "")).float()
    same_sector = torch.from_numpy((sector[src] == sector[dst]) & (sector[src] != "")).float()
    return torch.stack([(rho.float() + 1.0) / 2.0, same_market, same_sector], dim=1)


def daily_graphs(
    returns: np.ndarray,
    day_indices: Sequence[int],
    params: GraphParams,
    market: np.ndarray | None = None,
    sector: np.ndarray | None = None,
    chunk: int = 32,
) -> dict[int, DayGraph]:
    """Graphs for the given rows of a [D, N] daily-return panel (row = day, NaN = no return).

    The graph of row d uses rows d - lookback + 1 .. d only; rows before the panel start are
    missing. `market`/`sector` are per-column labels ('' = unknown, never "same").
    """
    panel = np.asarray(returns, dtype=np.float64)
    if panel.ndim != 2:
        raise InputError(f"graph returns: expected a [days, stocks] panel, got shape {panel.shape}")
    n_days, n = panel.shape
    market = np.full(n, "", dtype=object) if market is None else np.asarray(market, dtype=object)
    sector = np.full(n, "", dtype=object) if sector is None else np.asarray(sector, dtype=object)
    same_sector = torch.from_numpy((sector[:, None] == sector[None, :]) & (sector[:, None] != ""))
    pad = np.full((params.lookback - 1, n), np.nan)
    padded = torch.from_numpy(np.concatenate([pad, panel]))
    out: dict[int, DayGraph] = {}
    days = sorted(set(int(d) for d in day_indices))
    if any(d < 0 or d >= n_days for d in days):
        raise InputError(f"graph: day indices outside 0..{n_days - 1}")
    for lo in range(0, len(days), chunk):
        part = days[lo : lo + chunk]
        # Row d of the panel is row d + lookback - 1 of `padded`: its window is padded[d : d + lookback].
        windows = torch.stack([padded[d : d + params.lookback] for d in part])
        rho, valid = ewm_correlation(windows, params.halflife, params.min_obs)
        for i, d in enumerate(part):
            edge_index, r = edges_from_correlation(rho[i], valid[i], params, same_sector)
            out[d] = DayGraph(edge_index, edge_attributes(edge_index, r, market, sector))
    if days:
        edges = np.array([g.edge_index.shape[1] for g in out.values()])
        log.info("graphs: %d days, %d stocks, edges per day mean %.0f (min %d, max %d)",
                 len(days), n, edges.mean(), edges.min(), edges.max())
    return out


def return_panel(
    frame: pl.DataFrame, dates: Sequence[dt.date], codes: Sequence[str], return_col: str = "returns_1d"
) -> np.ndarray:
    """[len(dates), len(codes)] panel of `return_col` (NaN where a (Date, Code) row is absent)."""
    if return_col not in frame.columns:
        raise InputError(f"graph: the dataset has no {return_col!r} column to correlate")
    date_idx = pl.DataFrame({"Date": list(dates), "_d": np.arange(len(dates), dtype=np.int64)}).with_columns(pl.col("Date").cast(pl.Date))
    code_idx = pl.DataFrame({"Code": list(codes), "_c": np.arange(len(codes), dtype=np.int64)})
    cells = (
        frame.lazy()
        .select("Date", "Code", pl.col(return_col).cast(pl.Float64).fill_nan(None))
        .join(date_idx.lazy(), on="Date")
        .join(code_idx.lazy(), on="Code")
        .drop_nulls()
        .collect()
    )
    panel = np.full((len(dates), len(codes)), np.nan)
    panel[cells["_d"].to_numpy(), cells["_c"].to_numpy()] = cells[return_col].to_numpy()
    return panel


def code_labels(frame: pl.DataFrame, codes: Sequence[str], column: str) -> np.ndarray | None:
    """Each of `codes`' last known `column` value ('' when never known), in `codes` order; None when
    `frame` has no such column."""
    if column not in frame.columns:
        return None
    last = frame.group_by("Code").agg(pl.col(column).drop_nulls().last())
    return (pl.DataFrame({"Code": list(codes)}).join(last, on="Code", how="left")[column]
            .cast(pl.Utf8).fill_null("").to_numpy())


def frame_graphs(frame: pl.DataFrame, dates: Sequence[dt.date], codes: Sequence[str], day_indices: Sequence[int],
                 params: GraphParams, return_col: str = "returns_1d") -> dict[int, DayGraph]:
    """`daily_graphs` of `frame`'s `return_col` on the [dates, codes] panel, each code labelled with its
    last known MarketCode and Sector33Code (when the frame has them)."""
    return daily_graphs(return_panel(frame, dates, codes, return_col), day_indices, params,
                        code_labels(frame, codes, "MarketCode"), code_labels(frame, codes, "Sector33Code"))

