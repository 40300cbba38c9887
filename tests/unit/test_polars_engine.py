"""The polars engine choice of the dataset build (gogoku.polars_engine)."""

from __future__ import annotations

import polars as pl
import pytest
from test_build import END, START, make_inputs  # tests/unit is on sys.path (rootdir-less)

from gogoku.dataset.build import build_dataset
from gogoku.errors import InputError
from gogoku.polars_engine import collect_engine, gpu_engine_available


def test_cpu_and_auto_without_cudf_polars_use_the_in_memory_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    assert collect_engine("cpu") == "in-memory"
    monkeypatch.delenv("GOGOKU_POLARS_ENGINE", raising=False)
    if not gpu_engine_available():
        assert collect_engine() == collect_engine("auto") == "in-memory"
        with pytest.raises(InputError, match="GOGOKU_POLARS_ENGINE=gpu needs cudf-polars"):
            collect_engine("gpu")
    else:
        assert isinstance(collect_engine("auto"), pl.GPUEngine)


def test_bad_engine_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOGOKU_POLARS_ENGINE", "tpu")
    with pytest.raises(InputError, match="GOGOKU_POLARS_ENGINE='tpu'"):
        collect_engine()


@pytest.mark.skipif(not gpu_engine_available(), reason="cudf-polars is not installed (GPU worker image only)")
def test_the_gpu_engine_builds_the_same_dataset(monkeypatch: pytest.MonkeyPatch) -> None:
    q, listed, topix = make_inputs()
    monkeypatch.setenv("GOGOKU_POLARS_ENGINE", "cpu")
    cpu, _ = build_dataset(q, listed, topix, start=START, end=END, plan="standard")
    monkeypatch.setenv("GOGOKU_POLARS_ENGINE", "gpu")
    gpu, _ = build_dataset(q, listed, topix, start=START, end=END, plan="standard")
    assert gpu.columns == cpu.columns and gpu.select("Code", "Date").equals(cpu.select("Code", "Date"))
    floats = [c for c, t in cpu.schema.items() if t in (pl.Float32, pl.Float64)]
    diff = (gpu.select(floats) - cpu.select(floats)).select(pl.all().abs().max()).row(0)
    assert max(d or 0.0 for d in diff) < 1e-4
