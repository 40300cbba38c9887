"""Correlation-graph features `graph_*` / `peer_*`, vectorized per graph date.

Each graph date g uses the daily returns of the `WINDOW` sessions ending at g (g's own close is part
of row g, which the as-of rule of docs/data.md allows). Stocks with at least `MIN_OBS` returns in the window get Pearson
correlations by one matrix product (a missing return counts as the stock's window mean); an edge
joins two stocks whose correlation is at least `THRESHOLD`. Per stock: degree, weighted degree, its
`MAX_PEERS` most correlated neighbours (peers: the top-k edges), and an eigenvector-like centrality
(power iterations on the peer graph, scaled to a maximum of 1; 0 for a stock that is nobody's peer).
On the peer graph of the stocks with enough returns in the window (each linked to its peers,
undirected; scipy sparse): the share of those stocks in the stock's connected component, its
clustering coefficient and core number, and PageRank (damping 0.85 over the directed stock -> peer
links weighted by correlation, times the number of stocks so that the mean is 1); null for a stock
without enough returns. Shares and the scaled rank do not drift as the number of listed stocks does.

Graphs are rebuilt every `step` sessions (default 5; on fixed sessions of the exchange calendar, so a
row does not depend on where the build starts) and held until the next rebuild (4,000 stocks x
1,250 sessions: 238 graphs, about 40 s on two shared cores); peer returns are read daily from the
peers of the graph in force, using the peers' returns up to the row's own date only.
"""

from __future__ import annotations

import bisect
import datetime as dt
import logging
import time
import warnings

import numpy as np
import polars as pl
import torch

from gogoku.calendar import session_ordinals

log = logging.getLogger(__name__)

WINDOW = 60
MIN_OBS = 40
THRESHOLD = 0.3
MAX_PEERS = 4
POWER_ITERATIONS = 10
DEFAULT_STEP = 5
_BELOW_THRESHOLD = float(np.nextafter(np.float32(THRESHOLD), np.float32(0)))

GRAPH_FEATURES: tuple[str, ...] = (
    "graph_degree", "graph_wdegree", "graph_eigen", "peer_count", "peer_corr_mean", "peer_ret_1d", "peer_ret_5d",
    "peer_ret_20d", "peer_rel_5d", "graph_comp_share", "graph_clustering", "graph_core", "graph_pagerank",
    "is_graph_valid",
)
PEER_GRAPH_METRICS = ("comp_share", "clustering", "core", "pagerank")
PAGERANK_DAMPING = 0.85
PAGERANK_ITERATIONS = 50


def _corr(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Correlations of the columns of x (rows = sessions, NaN = missing) and each column's count.

    A missing return counts as the column's mean (zero after demeaning): one matrix product instead of
    the four of pairwise-complete statistics, slightly shrinking pairs with gaps toward zero.
    """
    present = torch.isfinite(x)
    n = present.sum(0)
    x0 = torch.where(present, x, torch.zeros((), dtype=x.dtype))
    mean = x0.sum(0) / n.clamp(min=1)
    xc = torch.where(present, x0 - mean, torch.zeros((), dtype=x.dtype))
    norm = xc.pow(2).sum(0).sqrt()
    z = xc / torch.where(norm > 0, norm, torch.ones((), dtype=x.dtype))
    return z.T @ z, n


def _peer_edges(peers: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(src, dst, weight) of the stock -> peer links: `peers` (N, k), -1 or a zero weight for none."""
    src = np.repeat(np.arange(peers.shape[0]), peers.shape[1])
    dst, w = peers.ravel(), weights.ravel().astype(np.float64)
    keep = (dst >= 0) & (w > 0)
    return src[keep], dst[keep], w[keep]


def _peer_centrality(peers: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Eigenvector-like centrality on the peer graph: power iterations of v <- W^T v, max scaled to 1.

    W holds each stock's edges to its top-k peers, so a stock chosen as a peer by central stocks
    scores high; O(N k) per iteration with exact, order-independent sums (np.bincount).
    """
    n = peers.shape[0]
    src, dst, w = _peer_edges(peers, weights)
    v = np.ones(n)
    for _ in range(POWER_ITERATIONS):
        v = np.bincount(dst, weights=w * v[src], minlength=n) + 1e-6 * v.mean()
        top = v.max()
        v = v / top if top > 0 else v
    return np.where(np.bincount(dst, minlength=n) > 0, v, 0.0).astype(np.float32)


def peer_graph_metrics(peers: np.ndarray, weights: np.ndarray) -> dict[str, np.ndarray]:
    """Component share, clustering coefficient, core number and PageRank (mean 1) of each stock on the
    peer graph: `peers` (N, k) holds each stock's peers (-1: none), `weights` their correlations."""
    from scipy import sparse
    from scipy.sparse import csgraph

    n = peers.shape[0]
    src, dst, w = _peer_edges(peers, weights)
    directed = sparse.csr_matrix((w, (src, dst)), shape=(n, n))
    und = ((directed + directed.T) > 0).astype(np.float64).tocsr()
    deg = np.asarray(und.sum(1)).ravel()
    _, labels = csgraph.connected_components(und, directed=False)
    comp_share = np.bincount(labels)[labels] / max(n, 1)
    triangles = np.asarray((und @ und).multiply(und).sum(1)).ravel() / 2.0
    clustering = np.where(deg > 1, 2.0 * triangles / np.maximum(deg * (deg - 1), 1.0), 0.0)
    # Core numbers by peeling: at level k remove every stock left with degree <= k, until none is left.
    core, alive, d, k = np.zeros(n), np.ones(n, dtype=bool), deg.copy(), 0.0
    while alive.any():
        k = max(k, d[alive].min())
        while (gone := alive & (d <= k)).any():
            core[gone], alive[gone] = k, False
            d = d - und @ gone.astype(np.float64)
    # PageRank: a stock without peers (dangling) spreads its rank evenly.
    out_w = np.asarray(directed.sum(1)).ravel()
    transition = sparse.diags(np.where(out_w > 0, 1.0 / np.where(out_w > 0, out_w, 1.0), 0.0)) @ directed
    rank = np.full(n, 1.0 / n) if n else np.zeros(0)
    for _ in range(PAGERANK_ITERATIONS):
        dangling = rank[out_w == 0].sum()
        rank = (1 - PAGERANK_DAMPING) / n + PAGERANK_DAMPING * (transition.T @ rank + dangling / n)
    return {"comp_share": comp_share.astype(np.float32), "clustering": clustering.astype(np.float32),
            "core": core.astype(np.float32), "pagerank": (rank * n).astype(np.float32)}


def _graph(x: np.ndarray) -> dict[str, np.ndarray]:
    # Float64 products: float32 BLAS results may differ in the last bit between calls with equal
    # inputs, and a dataset must not change where its inputs did not.
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64))
    n = t.shape[1]
    corr64, count = _corr(t)
    corr = corr64.to(torch.float32)
    del corr64
    enough = count >= MIN_OBS
    # Weighted adjacency in place: the correlation on edges, 0 elsewhere (and on the diagonal).
    w = torch.nn.functional.threshold_(corr, _BELOW_THRESHOLD, 0.0)  # keeps values > the float just below
    lacking = torch.nonzero(~enough).ravel()
    if lacking.numel():
        w[lacking] = 0.0
        w[:, lacking] = 0.0
    w.fill_diagonal_(0.0)
    # Row sums in numpy float64: exact enough to be reproducible bit for bit after the cast to float32.
    w_np = w.numpy()
    wdegree = w_np.sum(1, dtype=np.float64).astype(np.float32)
    degree = np.count_nonzero(w_np, axis=1)
    k = min(MAX_PEERS, max(n - 1, 0))
    peer_corr, peers = torch.topk(w, k, dim=1)
    has = peer_corr > 0
    cnt = has.sum(1)
    v = _peer_centrality(peers.numpy(), (peer_corr * has).numpy())
    mean_corr = (peer_corr * has).sum(1) / cnt.clamp(min=1)
    # The peer-graph metrics over the stocks with enough returns only (the others have no edges).
    active = torch.nonzero(enough).ravel().numpy()
    position = np.full(n, -1, dtype=np.int64)
    position[active] = np.arange(active.size)
    sub_peers = np.where(has.numpy(), position[peers.numpy()], -1)[active]
    sub = peer_graph_metrics(sub_peers, (peer_corr * has).numpy()[active])
    metrics = {}
    for key, values in sub.items():
        metrics[key] = np.full(n, np.nan, dtype=np.float32)
        metrics[key][active] = values
    return {
        **metrics,
        "degree": degree.astype(np.float32),
        "wdegree": wdegree,
        "eigen": v,
        "peers": torch.where(has, peers, torch.full((), -1, dtype=peers.dtype)).numpy(),
        "peer_count": cnt.float().numpy(),
        "peer_corr_mean": torch.where(cnt > 0, mean_corr, torch.full((), torch.nan)).numpy(),
    }


def _peer_mean(values: np.ndarray, peers: np.ndarray) -> np.ndarray:
    """values (D, N), peers (D, N, k) with -1 for none -> (D, N) mean over the available peers."""
    d_idx = np.arange(values.shape[0])[:, None, None]
    got = values[d_idx, np.maximum(peers, 0)]
    got = np.where((peers >= 0) & np.isfinite(got), got, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows: no peer -> NaN
        return np.nanmean(got, axis=2)


def graph_features(prices: pl.DataFrame, step: int = DEFAULT_STEP, start: dt.date | None = None) -> pl.DataFrame:
    """(Code, Date) + `GRAPH_FEATURES` (Float32) from (Code, Date, AdjustmentClose) rows.

    Dates are those present in `prices` (the sessions); a code's return on a date is its close over
    its close on the previous session in the frame (NaN when either is missing). With `start`, only
    the rows from `start` on are filled (the graphs in force from then; earlier ones are not built).
    """
    t0 = time.perf_counter()
    p = prices.select(pl.col("Code").cast(pl.Utf8), "Date", pl.col("AdjustmentClose").cast(pl.Float64)).unique(
        ["Code", "Date"], keep="last"
    )
    # A dense (date x code) matrix by rank indices (a pivot costs far more on millions of rows).
    ci = (p["Code"].rank("dense") - 1).cast(pl.Int64).to_numpy()
    di = (p["Date"].rank("dense") - 1).cast(pl.Int64).to_numpy()
    codes = p["Code"].unique().sort().to_list()
    dates = p["Date"].unique().sort()
    close = np.full((len(dates), len(codes)), np.nan)
    close[di, ci] = p["AdjustmentClose"].to_numpy()
    d, n = close.shape

    def back(h: int) -> np.ndarray:
        out = np.full_like(close, np.nan)
        if d > h:
            out[h:] = close[h:] / close[:-h] - 1.0
        return out

    r1, r5, r20 = back(1), back(5), back(20)
    feats = {k: np.full((d, n), np.nan, dtype=np.float32)
             for k in ("degree", "wdegree", "eigen", "peer_count", "peer_corr_mean", *PEER_GRAPH_METRICS)}
    peers = np.full((d, n, MAX_PEERS), -1, dtype=np.int64)
    last: dict[str, np.ndarray] | None = None
    built = 0
    # Rebuild days are fixed sessions of the exchange calendar, not counted from the frame's first
    # date: a row's graph features must not depend on where a build (or a one-day prediction) starts.
    day_list = dates.to_list()
    ordinals = session_ordinals(day_list)
    rebuilds = [t for t in range(WINDOW, d) if ordinals[t] % step == 0]
    if start is not None:
        # Only the rows from `start` are wanted: from the graph in force on `start` (rows before it
        # get none; a build cuts them anyway).
        first = bisect.bisect_left(day_list, start)
        rebuilds = [t for t in rebuilds if t >= max([r for r in rebuilds if r <= first], default=0)]
    rebuild_at = set(rebuilds)
    for t in range(d):
        if t in rebuild_at:
            g = _graph(r1[t - WINDOW + 1 : t + 1])
            last = g
            built += 1
        if last is None:
            continue
        for k in feats:
            feats[k][t] = last[k]
        p = last["peers"]
        peers[t, :, : p.shape[1]] = p
    log.info("graph: %d dates x %d codes, %d graphs (every %d sessions) in %.1fs",
             d, n, built, step, time.perf_counter() - t0)
    has_graph = np.broadcast_to((np.arange(d) >= WINDOW)[:, None], (d, n))
    out = {
        "graph_degree": feats["degree"], "graph_wdegree": feats["wdegree"], "graph_eigen": feats["eigen"],
        "peer_count": feats["peer_count"], "peer_corr_mean": feats["peer_corr_mean"],
        "peer_ret_1d": _peer_mean(r1, peers), "peer_ret_5d": _peer_mean(r5, peers),
        "peer_ret_20d": _peer_mean(r20, peers),
    }
    out["peer_rel_5d"] = r5 - out["peer_ret_5d"]
    out.update({f"graph_{k}": feats[k] for k in PEER_GRAPH_METRICS})
    out["is_graph_valid"] = has_graph.astype(np.float32)
    present = np.isfinite(close)
    dd, cc = np.nonzero(present)
    return pl.DataFrame({
        "Code": pl.Series(np.array(codes, dtype=object)[cc], dtype=pl.Utf8),
        "Date": dates.gather(dd),
        **{k: pl.Series(k, np.where(np.isfinite(v[dd, cc]), v[dd, cc], np.nan).astype(np.float32),
                        nan_to_null=True) for k, v in out.items()},
    }).sort("Code", "Date")
