"""How much of the simulator's latent peer graph a model's daily graphs find (gogoku.evaluate.graph_check)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from gogoku.errors import InputError
from gogoku.evaluate.graph_check import graph_vs_peers, lagged_correlations, latent_pairs
from gogoku.model.gat_graph import GraphParams

CODES = [f"{1300 + i}0" for i in range(12)]


def peers_frame(pairs: list[tuple[int, int]]) -> pl.DataFrame:
    return pl.DataFrame({"Code": [CODES[i] for i, _ in pairs], "PeerCode": [CODES[j] for _, j in pairs]})


def test_latent_pairs_and_lagged_correlations_by_hand() -> None:
    frame = peers_frame([(0, 1), (2, 1), (3, 3)])  # a self pair is ignored
    pairs = latent_pairs(frame.vstack(pl.DataFrame({"Code": ["99990"], "PeerCode": [CODES[0]]})), CODES[:4])
    assert np.argwhere(pairs).tolist() == [[0, 1], [2, 1]]
    # Stock 0 repeats stock 1's previous move; market-residual returns (day mean removed) by hand:
    r = np.array([[1.0, 2, 0], [0, -1, 4], [2, 1, 0], [-1, 3, 1]])
    resid = r - r.mean(1, keepdims=True)
    corr = lagged_correlations(r)
    expected = np.corrcoef(resid[1:, 0], resid[:-1, 1])[0, 1]
    assert corr[0, 1] == pytest.approx(expected)
    assert corr.shape == (3, 3)


def test_a_graph_of_the_latent_pairs_scores_full_precision_and_noise_scores_chance() -> None:
    rng = np.random.default_rng(0)
    days, n = 300, len(CODES)
    pairs = [(2 * k, 2 * k + 1) for k in range(n // 2)]  # 0 follows 1, 2 follows 3, ...
    factor = rng.normal(size=(days, n // 2))
    linked = np.repeat(factor, 2, axis=1) + 0.3 * rng.normal(size=(days, n))  # each pair moves together
    sectors = [str(i // 2) for i in range(n)]  # one sector per pair
    params = GraphParams(lookback=40, min_obs=30, halflife=1e9, shrinkage=0.0, threshold=0.5, top_k=1)
    report = graph_vs_peers(linked, CODES, sectors, peers_frame(pairs), params, every=10)
    assert report["precision"] == 1.0 and report["recall"] == 1.0 and report["same_sector_share"] == 1.0
    assert report["chance_any_pair"] == pytest.approx(12 / 132, abs=1e-4)  # 6 pairs both ways of 12 x 11
    assert report["chance_same_sector_pair"] == 1.0
    assert report["edges_per_stock"] == 1.0 and report["latent_pairs"] == 6

    noise = rng.normal(size=(days, n))
    report = graph_vs_peers(noise, CODES, sectors, peers_frame(pairs), params.__class__(
        lookback=40, min_obs=30, halflife=1e9, shrinkage=0.0, threshold=0.0, top_k=3), every=10)
    assert report["precision"] < 0.3 and report["lagged_top_chance"] == pytest.approx(4 / 11, abs=1e-4)

    # A lead-lag strong enough to see pair by pair: stock 2k follows stock 2k+1's previous return.
    lead = rng.normal(size=(days, n))
    lead[1:, ::2] = lead[:-1, 1::2] + 0.2 * rng.normal(size=(days - 1, n // 2))
    report = graph_vs_peers(lead, CODES, sectors, peers_frame(pairs), params, every=10)
    assert report["lagged_top_precision"] == 1.0 and report["lagged_corr_latent_mean"] > 0.8
    with pytest.raises(InputError, match="too small"):
        graph_vs_peers(lead[:30], CODES, sectors, peers_frame(pairs), params)
