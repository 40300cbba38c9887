"""Atomic file writes and the CLI result contract (DESIGN contracts 2 and 4)."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl

XCOM_DIR = Path("/airflow/xcom")


def atomic_write(path: Path, write: Callable[[Path], None]) -> Path:
    """Write through `write(tmp_path)` to a temp file in the same folder, then rename over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        write(tmp_path)
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)
    return path


def write_parquet_atomic(frame: pl.DataFrame, path: Path, compression: str = "zstd") -> Path:
    return atomic_write(path, lambda tmp: frame.write_parquet(tmp, compression=compression))


def write_json_atomic(obj: Any, path: Path) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(json.dumps(obj, indent=2, default=str) + "\n"))


def emit_result(result: dict[str, Any], xcom_dir: Path = XCOM_DIR) -> None:
    """Print the result as the last stdout line; also write it for the KubernetesPodOperator sidecar."""
    line = json.dumps(result, default=str, sort_keys=True)
    if xcom_dir.is_dir():
        (xcom_dir / "return.json").write_text(line)
    print(line, flush=True)


LATEST = "latest.json"


def write_latest_pointer(folder: Path, target: Path, key: str, **info: Any) -> Path:
    """Point `folder/latest.json` at `target` (a file or folder inside `folder`), atomically."""
    return write_json_atomic({key: Path(target).name, **info}, Path(folder) / LATEST)


def read_latest_pointer(folder: Path, key: str) -> Path:
    """The path that `folder/latest.json` names under `key`; InputError if absent or dangling."""
    from gogoku.errors import InputError

    pointer = Path(folder) / LATEST
    try:
        name = json.loads(pointer.read_text())[key]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{pointer}: no readable {key} pointer ({exc.__class__.__name__}); build one first") from None
    path = Path(folder) / name
    if not path.exists():
        raise InputError(f"{pointer}: names {name}, which does not exist")
    return path
