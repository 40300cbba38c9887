"""Cross-sectional z-scores and ranks use one Date's rows only."""

from __future__ import annotations

import datetime as dt
import statistics

import polars as pl
import pytest

from gogoku.dataset.normalize import cs_rank, cs_zscore

D1, D2 = dt.date(2024, 1, 4), dt.date(2024, 1, 5)


def frame() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "Code": ["13010", "13020", "13030", "13040", "13010", "13020", "13030"],
            "Date": [D1, D1, D1, D1, D2, D2, D2],
            "x": [1.0, 2.0, 3.0, None, 5.0, 5.0, 5.0],
            "y": [0.0, 0.0, 0.0, 100.0, 1.0, 2.0, 3.0],
        }
    )


def test_zscore_per_date_with_nulls_and_no_spread() -> None:
    out = cs_zscore(frame(), ["x"]).collect()
    assert out["x_cs_z"].dtype == pl.Float32
    z = out["x_cs_z"].to_list()
    assert z[0] == pytest.approx(-1.0) and z[1] == pytest.approx(0.0) and z[2] == pytest.approx(1.0)
    assert z[3] is None  # null input stays null
    assert z[4:] == [None, None, None]  # no spread on D2: undefined, not 0


def test_zscore_is_clipped() -> None:
    out = cs_zscore(frame(), ["y"], clip=1.2).collect()
    vals = [0.0, 0.0, 0.0, 100.0]
    want = (100.0 - statistics.mean(vals)) / statistics.stdev(vals)
    assert want > 1.2
    assert out["y_cs_z"][3] == pytest.approx(1.2)
    unclipped = cs_zscore(frame(), ["y"], clip=None).collect()
    assert unclipped["y_cs_z"][3] == pytest.approx(want, rel=1e-6)
    # D2 does not see D1's 100.
    assert unclipped["y_cs_z"].to_list()[4:] == pytest.approx([-1.0, 0.0, 1.0])


def test_rank_is_centred_per_date() -> None:
    out = cs_rank(frame(), ["y"]).collect()
    # D1: three tied at rank 2 of 4, one at 4 -> (r - 0.5) / n - 0.5.
    assert out["y_cs_rank"].to_list()[:4] == pytest.approx([-0.125, -0.125, -0.125, 0.375])
    assert out["y_cs_rank"].to_list()[4:] == pytest.approx([-1 / 3, 0.0, 1 / 3])
