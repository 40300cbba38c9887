"""Per-day correlation graphs (gogoku.model.gat_graph): hand-computed edges, realistic data, no look-ahead."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
import torch

from gogoku.errors import InputError
from gogoku.model.gat_graph import GraphParams, daily_graphs, ewm_correlation, return_panel

FLAT = 1e9  # a half-life this long weights every session equally


def edge_set(g) -> set[tuple[int, int]]:
    return set(map(tuple, g.edge_index.T.tolist()))


def test_hand_computed_correlations_and_edges() -> None:
    # A and B move together (rho 1); C against A: cov -2 / sqrt(5 * 4) = -0.4472.
    returns = np.array([[1, 2, 1], [2, 4, -1], [3, 6, 1], [4, 8, -1]], dtype=float)
    rho, valid = ewm_correlation(torch.from_numpy(returns)[None], FLAT, min_obs=3)
    np.testing.assert_allclose(rho[0].numpy(), [[1, 1, -0.4472136], [1, 1, -0.4472136], [-0.4472136, -0.4472136, 1]], atol=1e-6)
    assert valid.all()

    market = np.array(["0111", "0111", "0112"], dtype=object)
    sector = np.array(["3050", "3100", "3100"], dtype=object)
    params = GraphParams(lookback=4, min_obs=3, halflife=FLAT, shrinkage=0.1, threshold=0.5, top_k=2)
    g = daily_graphs(returns, [3], params, market, sector)[3]
    assert edge_set(g) == {(0, 1), (1, 0)}  # |0.9 * -0.447| = 0.40 < 0.5
    np.testing.assert_allclose(g.edge_attr.numpy(), [[0.95, 1, 0], [0.95, 1, 0]], atol=1e-6)

    lower = GraphParams(lookback=4, min_obs=3, halflife=FLAT, shrinkage=0.1, threshold=0.3, top_k=2)
    g = daily_graphs(returns, [3], lower, market, sector)[3]
    assert edge_set(g) == {(i, j) for i in range(3) for j in range(3) if i != j}
    attr = {e: a for e, a in zip(map(tuple, g.edge_index.T.tolist()), g.edge_attr.tolist(), strict=True)}
    np.testing.assert_allclose(attr[(1, 2)], [(1 - 0.9 * 0.4472136) / 2, 0, 1], atol=1e-6)

    # top_k = 1: each node keeps its strongest neighbour, the union is symmetric.
    top1 = GraphParams(lookback=4, min_obs=3, halflife=FLAT, shrinkage=0.1, threshold=0.3, top_k=1)
    g = daily_graphs(returns, [3], top1, market, sector)[3]
    pairs = edge_set(g)
    assert {(0, 1), (1, 0)} <= pairs and all((j, i) in pairs for i, j in pairs)
    assert len({p for p in pairs if 2 in p}) == 2  # C keeps exactly one (two-way) edge


def test_sector_peers_link_the_most_correlated_stocks_of_the_same_sector() -> None:
    # Same returns as above: B and C share sector 3100 but |0.9 * rho| = 0.40 is below the threshold.
    returns = np.array([[1, 2, 1], [2, 4, -1], [3, 6, 1], [4, 8, -1]], dtype=float)
    market = np.array(["0111", "0111", "0112"], dtype=object)
    sector = np.array(["3050", "3100", "3100"], dtype=object)
    base = dict(lookback=4, min_obs=3, halflife=FLAT, shrinkage=0.1, threshold=0.5, top_k=2)
    assert edge_set(daily_graphs(returns, [3], GraphParams(**base), market, sector)[3]) == {(0, 1), (1, 0)}
    g = daily_graphs(returns, [3], GraphParams(**base, sector_peers=1), market, sector)[3]
    assert edge_set(g) == {(0, 1), (1, 0), (1, 2), (2, 1)}  # A-C: other sectors, never a sector edge
    attr = {e: a for e, a in zip(map(tuple, g.edge_index.T.tolist()), g.edge_attr.tolist(), strict=True)}
    np.testing.assert_allclose(attr[(2, 1)], [(1 - 0.9 * 0.4472136) / 2, 0, 1], atol=1e-6)
    # An unknown sector ('') is nobody's sector peer; a stock without enough returns has no edge at all.
    unknown = np.array(["3050", "", ""], dtype=object)
    assert edge_set(daily_graphs(returns, [3], GraphParams(**base, sector_peers=1), market, unknown)[3]) == {(0, 1), (1, 0)}
    gaps = returns.copy()
    gaps[:2, 2] = np.nan
    assert edge_set(daily_graphs(gaps, [3], GraphParams(**base, sector_peers=1), market, sector)[3]) == {(0, 1), (1, 0)}
    with pytest.raises(InputError, match="sector_peers"):
        GraphParams(sector_peers=-1)


def test_ewm_weights_favour_recent_sessions() -> None:
    # The first half says rho=+1, the second half rho=-1: a short half-life follows the recent half.
    a = np.array([1, -1, 1, -1, 1, -1, 1, -1], dtype=float)
    b = np.concatenate([a[:4], -a[4:]])
    window = torch.from_numpy(np.stack([a, b], 1))[None]
    assert ewm_correlation(window, FLAT, 4)[0][0, 0, 1] == pytest.approx(0.0, abs=1e-6)
    assert ewm_correlation(window, 1.0, 4)[0][0, 0, 1] < -0.8


def factor_returns(days: int, stocks: int, sectors: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Daily returns = market + sector factor + idiosyncratic noise (realistic daily scale)."""
    rng = np.random.default_rng(seed)
    sector = np.arange(stocks) % sectors
    market = rng.normal(0, 0.008, (days, 1))
    factor = rng.normal(0, 0.012, (days, sectors))[:, sector]
    return market + factor + rng.normal(0, 0.012, (days, stocks)), sector.astype(str).astype(object)


def test_realistic_returns_build_edges_mostly_within_sectors() -> None:
    returns, sector = factor_returns(days=120, stocks=60, sectors=5)
    returns[:, 0] = np.nan  # never traded: no edges
    returns[:-30, 1] = np.nan  # 30 sessions < min_obs: no edges
    params = GraphParams()  # lookback 60, min_obs 40, halflife 30, threshold 0.3, top_k 15
    graphs = daily_graphs(returns, range(59, 120), params, sector=sector)
    counts = np.array([g.edge_index.shape[1] for g in graphs.values()])
    assert counts.min() > 300, counts.min()  # every day has edges (docs/model.md, pitfall 3)
    same_sector = torch.cat([g.edge_attr[:, 2] for g in graphs.values()]).mean()
    assert same_sector > 0.6  # 11 of 59 peers share a sector: 0.19 by chance
    last = graphs[119]
    assert not ({0, 1} & set(last.edge_index.flatten().tolist()))
    assert int((last.edge_index[0] == 5).sum()) <= 2 * params.top_k
    # Before min_obs sessions exist no stock qualifies.
    early = daily_graphs(returns, [10], params, sector=sector)[10]
    assert early.edge_index.shape[1] == 0


def test_a_days_graph_uses_only_returns_up_to_that_day() -> None:
    returns, sector = factor_returns(days=100, stocks=40, sectors=4, seed=1)
    params = GraphParams(lookback=60, min_obs=40, threshold=0.25, top_k=10)
    d = 80
    base = daily_graphs(returns, [d], params, sector=sector)[d]
    future = returns.copy()
    future[d + 1 :] = np.random.default_rng(9).normal(0, 0.5, future[d + 1 :].shape)
    again = daily_graphs(future, [d], params, sector=sector)[d]
    assert torch.equal(base.edge_index, again.edge_index) and torch.equal(base.edge_attr, again.edge_attr)
    old = returns.copy()
    old[: d - params.lookback + 1] = 0.3  # before the window: no effect either
    assert torch.equal(daily_graphs(old, [d], params, sector=sector)[d].edge_attr, base.edge_attr)
    today = returns.copy()
    today[d] = np.linspace(-0.2, 0.2, today.shape[1])  # the day's own return is inside the window
    assert not torch.equal(daily_graphs(today, [d], params, sector=sector)[d].edge_attr, base.edge_attr)


def test_parameters_that_can_never_build_edges_are_rejected() -> None:
    with pytest.raises(InputError, match="min_obs"):
        GraphParams(lookback=20, min_obs=40)  # min_obs > lookback: never an edge
    with pytest.raises(InputError, match="threshold"):
        GraphParams(threshold=1.2)


def test_return_panel_marks_missing_rows_nan() -> None:
    days = [dt.date(2024, 1, 4), dt.date(2024, 1, 5)]
    frame = pl.DataFrame({"Code": ["13010", "13020", "13010"], "Date": [days[0], days[0], days[1]],
                          "returns_1d": [0.01, -0.02, 0.03]})
    panel = return_panel(frame, days, ["13010", "13020"])
    np.testing.assert_array_equal(np.isnan(panel), [[False, False], [False, True]])
    assert panel[1, 0] == pytest.approx(0.03)
    with pytest.raises(InputError, match="returns_5d"):
        return_panel(frame, days, ["13010"], "returns_5d")
