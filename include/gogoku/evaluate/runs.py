"""A model folder's walk-forward test rows, as every evaluation reads them (`gogoku evaluate`,
`report`, and the champion comparison of `gogoku model promote`)."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from gogoku.errors import InputError


def load_test_rows(model_dir: Path) -> pl.DataFrame:
    """The test rows of a model folder's predictions.parquet: the rows with a walk-forward `fold`
    (and, in a file that marks them, `split == "test"`)."""
    path = model_dir / "predictions.parquet"
    if not path.is_file():
        raise InputError(f"{model_dir}: no predictions.parquet")
    frame = pl.read_parquet(path)
    for col in ("Code", "Date", "fold"):
        if col not in frame.columns:
            raise InputError(f"{path}: no {col!r} column (columns: {', '.join(frame.columns)})")
    keep = pl.col("fold").is_not_null()
    if "split" in frame.columns:
        keep &= pl.col("split") == "test"
    frame = frame.filter(keep)
    if frame.is_empty():
        raise InputError(f"{path}: no test rows")
    return frame
