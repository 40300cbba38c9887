"""graph_*/peer_*: correlation graph over the 60 returns up to each graph date, peers held until the next."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import polars as pl
import pytest

from gogoku.calendar import business_days
from gogoku.features.peer_graph import GRAPH_FEATURES, WINDOW, graph_features

DAYS = business_days(dt.date(2024, 10, 1), dt.date(2025, 3, 31))[: WINDOW + 2]


def returns() -> dict[str, np.ndarray]:
    i = np.arange(len(DAYS))
    u = 0.01 * np.sin(2 * np.pi * i / WINDOW)
    v = 0.01 * np.sin(4 * np.pi * i / WINDOW)
    w = 0.01 * np.cos(6 * np.pi * i / WINDOW)
    return {"10010": u, "10020": u + 0.1 * v, "10030": -u, "10040": v, "10050": w}


def prices() -> pl.DataFrame:
    frames = []
    for code, r in returns().items():
        r = r.copy()
        r[0] = 0.0
        frames.append(pl.DataFrame({"Code": code, "Date": DAYS, "AdjustmentClose": 100 * np.cumprod(1 + r)}))
    return pl.concat(frames)


def test_graph_edges_peers_and_timing() -> None:
    out = graph_features(prices(), step=5)
    assert set(GRAPH_FEATURES) <= set(out.columns) and out.height == 5 * len(DAYS)
    last = out.filter(pl.col("Date") == DAYS[WINDOW]).sort("Code")
    assert last["graph_degree"].to_list() == [1.0, 1.0, 0.0, 0.0, 0.0]  # A-B only (A-C is -1)
    assert last["graph_eigen"].to_list() == pytest.approx([1.0, 1.0, 0.0, 0.0, 0.0])
    rho = 1 / math.sqrt(1.01)  # u and v are orthogonal over the window, with zero means
    assert last["peer_corr_mean"][0] == pytest.approx(rho, abs=1e-5)
    assert last["graph_wdegree"][1] == pytest.approx(rho, abs=1e-5)
    assert last["peer_count"].to_list() == [1.0, 1.0, 0.0, 0.0, 0.0]
    assert last["peer_ret_1d"][2] is None  # no peers
    # The peer graph: one component {A, B} of the five stocks, no triangles, A and B in the 1-core.
    assert last["graph_comp_share"].to_list() == pytest.approx([0.4, 0.4, 0.2, 0.2, 0.2])
    assert last["graph_clustering"].to_list() == [0.0] * 5
    assert last["graph_core"].to_list() == [1.0, 1.0, 0.0, 0.0, 0.0]
    assert sum(last["graph_pagerank"].to_list()) == pytest.approx(5.0, rel=1e-5)
    # A stock with too few returns in the window (listed 30 sessions late) has no peer-graph metrics,
    # and the shares count the four others only.
    late = graph_features(prices().filter((pl.col("Code") != "10050") | (pl.col("Date") >= DAYS[30])), step=5)
    row = late.filter(pl.col("Date") == DAYS[WINDOW]).sort("Code")
    assert row["graph_comp_share"].to_list() == pytest.approx([0.5, 0.5, 0.25, 0.25, None])
    assert row["graph_pagerank"][4] is None and sum(row["graph_pagerank"].to_list()[:4]) == pytest.approx(4.0, rel=1e-5)
    # The graph built at DAYS[60] is held on DAYS[61]; peer returns are read on the row's own date.
    r = returns()
    nxt = out.filter(pl.col("Date") == DAYS[WINDOW + 1]).sort("Code")
    assert nxt["peer_ret_1d"][0] == pytest.approx(r["10020"][WINDOW + 1], rel=1e-5)
    assert nxt["peer_ret_1d"][1] == pytest.approx(r["10010"][WINDOW + 1], rel=1e-5)
    five = np.prod(1 + r["10020"][WINDOW - 3 : WINDOW + 2]) - 1
    assert nxt["peer_ret_5d"][0] == pytest.approx(five, rel=1e-5)
    # Before the first full window: no graph.
    early = out.filter(pl.col("Date") == DAYS[WINDOW - 1])
    assert early["is_graph_valid"].to_list() == [0.0] * 5 and early["graph_degree"].null_count() == 5


def test_peer_graph_metrics_by_hand_and_against_networkx() -> None:
    import networkx as nx

    from gogoku.features.peer_graph import peer_graph_metrics

    # Triangle 0-1-2, stock 3 hangs on 2, stock 4 has no peer and is nobody's.
    peers = np.array([[1, 2], [0, 2], [0, 3], [2, -1], [-1, -1]])
    weights = np.where(peers >= 0, 0.5, 0.0)
    m = peer_graph_metrics(peers, weights)
    assert m["comp_share"].tolist() == pytest.approx([0.8, 0.8, 0.8, 0.8, 0.2])
    assert m["clustering"].tolist() == pytest.approx([1, 1, 1 / 3, 0, 0])
    assert m["core"].tolist() == [2, 2, 2, 1, 0]
    assert float(m["pagerank"].mean()) == pytest.approx(1.0)

    # A random peer graph of 300 stocks with 4 peers each: the same figures as networkx.
    rng = np.random.default_rng(3)
    n, k = 300, 4
    peers = np.stack([rng.choice(np.delete(np.arange(n), i), k, replace=False) for i in range(n)])
    peers[rng.random((n, k)) < 0.3] = -1  # some stocks have fewer peers
    weights = np.where(peers >= 0, rng.uniform(0.3, 0.9, (n, k)), 0.0)
    m = peer_graph_metrics(peers, weights)
    und, directed = nx.Graph(), nx.DiGraph()
    und.add_nodes_from(range(n))
    directed.add_nodes_from(range(n))
    for i in range(n):
        for j, w in zip(peers[i], weights[i], strict=True):
            if j >= 0:
                und.add_edge(i, int(j))
                directed.add_edge(i, int(j), weight=float(w))
    comp = {v: len(c) for c in nx.connected_components(und) for v in c}
    assert m["comp_share"].tolist() == pytest.approx([comp[i] / n for i in range(n)])
    clustering = nx.clustering(und)
    np.testing.assert_allclose(m["clustering"], [clustering[i] for i in range(n)], rtol=1e-6)
    core = nx.core_number(und)
    assert m["core"].tolist() == [core[i] for i in range(n)]
    pr = nx.pagerank(directed, alpha=0.85, weight="weight", tol=1e-12, max_iter=500)
    np.testing.assert_allclose(m["pagerank"], [pr[i] * n for i in range(n)], rtol=1e-4)
