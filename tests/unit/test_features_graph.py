"""graph_*/peer_*: correlation graph over the 60 returns up to each graph date, peers held until the next."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import polars as pl
import pytest

from gogoku.calendar import business_days
from gogoku.features.graph import GRAPH_FEATURES, WINDOW, graph_features

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
