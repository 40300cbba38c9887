"""The evaluation figures are written as real PNG files of the expected shape."""

from __future__ import annotations

import struct
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest

from gogoku.errors import InputError
from gogoku.evaluate.plots import plot_cumulative_long_short, plot_ic_decay, plot_rank_ic_by_horizon

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from the IHDR chunk, after checking the signature and chunk order."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, path
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    width, height = struct.unpack(">II", data[16:24])
    assert data[-8:-4] == b"IEND"
    return width, height


def book(n: int, step: float) -> pl.DataFrame:
    days = [date(2024, 1, 4) + timedelta(days=7 * i) for i in range(n)]
    return pl.DataFrame({"Date": days, "gross": [step] * n, "net": [step / 2] * n})


def test_cumulative_long_short_png(tmp_path: Path) -> None:
    series = {"lightgbm": {"1d": book(30, 0.001), "5d": book(6, 0.004)}, "atft": {"5d": book(6, 0.002)}}
    path = plot_cumulative_long_short(series, tmp_path / "figs" / "cumulative.png")
    width, height = png_size(path)
    assert width > height > 200  # two panels side by side
    assert list(tmp_path.joinpath("figs").iterdir()) == [path]  # no temp file left behind


def test_rank_ic_by_horizon_png(tmp_path: Path) -> None:
    points = {
        "lightgbm": [(1, 0.02, 0.01, 0.03), (5, 0.05, 0.03, 0.07)],
        "oracle (planted)": [(1, 0.05, None, None), (5, 0.1, 0.09, 0.11)],
    }
    width, height = png_size(plot_rank_ic_by_horizon(points, tmp_path / "rank_ic.png"))
    assert width > 300 and height > 200


def test_ic_decay_png(tmp_path: Path) -> None:
    decay = pl.DataFrame({"lag": list(range(1, 21)), "rank_ic_mean": [0.05 / k for k in range(1, 21)]})
    three = {"a": {"1d": decay, "5d": decay}, "b": {"1d": decay}, "c": {"20d": decay}}
    width, height = png_size(plot_ic_decay(three, tmp_path / "decay.png"))
    assert height > 500  # three models: two rows of panels


def test_nothing_to_draw_raises(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no series"):
        plot_cumulative_long_short({}, tmp_path / "x.png")
    with pytest.raises(InputError, match="no points"):
        plot_rank_ic_by_horizon({"m": []}, tmp_path / "x.png")
    with pytest.raises(InputError, match="no decay"):
        plot_ic_decay({"m": {"1d": pl.DataFrame({"lag": [], "rank_ic_mean": []})}}, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
