"""Does the network's daily graph find the simulator's latent lead-lag peers? (simulator data only)

The simulator plants a peer lead-lag family: each stock's next return follows an EMA of the
idiosyncratic returns of its latent peers (`SimMarket.peers()`). A graph attention layer can only use
that signal where the day's graph links a stock to those peers. `graph_vs_peers` builds the model's
daily graphs (`gogoku.model.gat_graph`, the same parameters and as-of rule as training) on the
dataset's returns and reports:

- `precision`: the share of graph edges that join a latent pair (either direction), beside
  `chance_any_pair` (the share of all pairs that are latent: a random graph's precision) and
  `chance_same_sector_pair` (a graph of same-sector pairs: what sector labels alone give);
- `recall`: the share of latent pairs that are edges, on the average checked day;
- `same_sector_share`: the share of edges within one sector33;
- the per-pair evidence in the returns themselves: the mean lag-1 correlation of a stock's
  market-residual return with its latent peers' previous returns (`lagged_corr_latent_mean`) against
  the spread of that correlation over all pairs (`lagged_corr_all_sd`, the noise a per-pair
  estimate carries over this span), and the share of each stock's 4 strongest lag-1 correlations
  that are latent peers (`lagged_top_precision`) against chance. A lead-lag that no estimate over
  the span can tell from noise is not one any model can learn pair by pair.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl

from gogoku.errors import InputError
from gogoku.model.gat_graph import GraphParams, daily_graphs

TOP = 4  # strongest lag-1 correlations per stock compared with its latent peers


def latent_pairs(peers: pl.DataFrame, codes: Sequence[str]) -> np.ndarray:
    """[N, N] bool: i follows j (peers' Code i, PeerCode j), for the codes present in `codes`."""
    index = {c: k for k, c in enumerate(codes)}
    out = np.zeros((len(codes), len(codes)), dtype=bool)
    for code, peer in peers.select("Code", "PeerCode").iter_rows():
        if code in index and peer in index and code != peer:
            out[index[code], index[peer]] = True
    return out


def lagged_correlations(returns: np.ndarray) -> np.ndarray:
    """[N, N]: corr(r_i[t], r_j[t-1]) of the market-residual returns (each day's cross-sectional mean
    removed; missing returns count as 0 after demeaning), NaN for a stock without variance."""
    r = np.where(np.isfinite(returns), returns, np.nan)
    r = r - np.nanmean(r, axis=1, keepdims=True)
    r = np.nan_to_num(r)
    now, before = r[1:], r[:-1]
    now = now - now.mean(0)
    before = before - before.mean(0)
    sd_now, sd_before = now.std(0), before.std(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = (now.T @ before) / len(now) / np.outer(sd_now, sd_before)
    corr[~np.isfinite(corr)] = np.nan
    return corr


def graph_vs_peers(returns: np.ndarray, codes: Sequence[str], sectors: Sequence[str], peers: pl.DataFrame,
                   params: GraphParams, every: int = 20) -> dict[str, Any]:
    """The report described in the module docstring for the graphs of every `every`-th day of the
    [days, stocks] return panel (from the first day with a full lookback)."""
    n_days, n = returns.shape
    if n < 3 or n_days <= params.lookback + 1:
        raise InputError(f"graph check: {n} stocks x {n_days} days is too small for a {params.lookback}-day lookback")
    latent = latent_pairs(peers, codes)
    either = latent | latent.T
    np.fill_diagonal(either, False)
    sector = np.asarray(sectors, dtype=object)
    same = (sector[:, None] == sector[None, :]) & (sector[:, None] != "")
    np.fill_diagonal(same, False)
    days = list(range(params.lookback - 1, n_days, max(int(every), 1)))
    graphs = daily_graphs(returns, days, params, sector=sector)
    edges = hits = in_sector = 0
    recalls = []
    for g in graphs.values():
        src, dst = g.edge_index.numpy()
        edges += len(src)
        hits += int(either[src, dst].sum())
        in_sector += int(same[src, dst].sum())
        linked = np.zeros_like(either)
        linked[src, dst] = True
        recalls.append(float((linked & either).sum() / max(either.sum(), 1)))
    pairs = n * (n - 1)
    corr = lagged_correlations(returns)
    np.fill_diagonal(corr, np.nan)
    follows = latent & np.isfinite(corr)
    ranked = np.argsort(-np.nan_to_num(corr, nan=-np.inf), axis=1)[:, :TOP]
    has_peers = latent.any(1)
    top_hits = [latent[i, ranked[i]].sum() / min(TOP, latent[i].sum()) for i in np.flatnonzero(has_peers)]
    return {
        "days_checked": len(graphs), "stocks": n, "latent_pairs": int(latent.sum()),
        "edges_per_stock": round(edges / max(len(graphs), 1) / n, 2),
        "precision": _ratio(hits, edges),
        "recall": round(float(np.mean(recalls)), 4) if recalls else math.nan,
        "chance_any_pair": _ratio(int(either.sum()), pairs),
        "chance_same_sector_pair": _ratio(int((either & same).sum()), int(same.sum())),
        "same_sector_share": _ratio(in_sector, edges),
        "lagged_corr_latent_mean": round(float(np.nanmean(corr[follows])), 4) if follows.any() else math.nan,
        "lagged_corr_all_sd": round(float(np.nanstd(corr)), 4),
        "lagged_top_precision": round(float(np.mean(top_hits)), 4) if top_hits else math.nan,
        # A random choice of TOP names holds TOP * k / (n - 1) of a stock's k peers in expectation.
        "lagged_top_chance": round(float(np.mean([TOP * k / (n - 1) / min(TOP, k) for k in latent.sum(1)[has_peers]])), 4)
        if top_hits else math.nan,
        "sessions": n_days,
    }


def _ratio(a: int, b: int) -> float:
    return round(a / b, 4) if b else math.nan
