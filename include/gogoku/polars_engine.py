"""Which polars engine runs the dataset build: the GPU (cudf-polars) where it is installed, else the CPU.

`GOGOKU_POLARS_ENGINE`: `auto` (default: the GPU engine when the `cudf_polars` package is importable,
as in the GPU worker image, else the CPU), `cpu`, or `gpu` (fails when cudf-polars is missing). The GPU
engine is created with `raise_on_fail=False`: a query part it cannot run falls back to the CPU. The
CPU choice is polars' in-memory engine (the streaming engine can differ in the last bit of a group
mean, and the build's outputs are compared bit for bit in the tests).
"""

from __future__ import annotations

import importlib.util
import logging
import os
from typing import Any

from gogoku.errors import InputError

log = logging.getLogger(__name__)

ENGINES = ("auto", "cpu", "gpu")


def gpu_engine_available() -> bool:
    return importlib.util.find_spec("cudf_polars") is not None


def collect_engine(choice: str | None = None) -> Any:
    """The `engine=` argument for `LazyFrame.collect` (see the module docstring)."""
    raw = (choice if choice is not None else os.environ.get("GOGOKU_POLARS_ENGINE", "auto")).strip().lower() or "auto"
    if raw not in ENGINES:
        raise InputError(f"GOGOKU_POLARS_ENGINE={raw!r}: expected one of {', '.join(ENGINES)}")
    if raw == "cpu" or (raw == "auto" and not gpu_engine_available()):
        return "in-memory"
    if not gpu_engine_available():
        raise InputError("GOGOKU_POLARS_ENGINE=gpu needs cudf-polars (pip install -r requirements-gpu.txt on a CUDA machine)")
    import polars as pl

    return pl.GPUEngine(raise_on_fail=False)
