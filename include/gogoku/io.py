"""Atomic file writes and the CLI result line."""

from __future__ import annotations

import glob
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl

# Read once (os.umask can only be read by setting it, which is not thread-safe).
_UMASK = os.umask(0o022)
os.umask(_UMASK)


# A temp file of an atomic write untouched this long belongs to a writer that died (a running writer
# keeps writing to it); younger ones may be a concurrent writer's and are left alone.
STALE_TEMP_S = 3600.0


def atomic_write(path: Path, write: Callable[[Path], None]) -> Path:
    """Write through `write(tmp_path)` to a temp file in the same folder, fsync it, rename it over
    `path` and fsync the folder: a crash leaves either the old file or the new one, never a torn one.
    A writer killed mid-write leaves its temp file (`.<name>.<random>.tmp`); the next write of the same
    `path` removes such leftovers once they are older than STALE_TEMP_S."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_files(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        write(tmp_path)
        _fsync_file(tmp_path)
        # mkstemp creates 0600; give the file the mode an ordinary create would (umask applied).
        os.chmod(tmp_path, 0o666 & ~_UMASK)
        os.replace(tmp_path, path)
        _fsync_dir(path.parent)
    finally:
        tmp_path.unlink(missing_ok=True)
    return path


def remove_stale_temp_files(path: Path, older_than_s: float = STALE_TEMP_S) -> list[Path]:
    """Delete the temp files that killed atomic writes of `path` left in its folder (those last
    modified more than `older_than_s` ago); returns what was deleted."""
    path = Path(path)
    cutoff = time.time() - older_than_s
    removed = []
    for tmp in path.parent.glob(glob.escape(f".{path.name}.") + "*.tmp"):
        try:
            if tmp.is_file() and tmp.stat().st_mtime < cutoff:
                tmp.unlink()
                removed.append(tmp)
        except OSError:  # gone meanwhile, or not ours to delete
            continue
    return removed


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # platforms without directory handles
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_parquet_atomic(
    frame: pl.DataFrame, path: Path, compression: str = "zstd", metadata: dict[str, str] | None = None
) -> Path:
    """Write `frame` atomically; `metadata` goes into the parquet footer as key-value pairs."""
    return atomic_write(path, lambda tmp: frame.write_parquet(tmp, compression=compression, metadata=metadata))


def write_json_atomic(obj: Any, path: Path) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(json.dumps(obj, indent=2, default=str) + "\n"))


def emit_result(result: dict[str, Any], result_file: Path | None = None) -> None:
    """Print the result as the last stdout line; also write it to `result_file` (atomically), e.g. the
    file that the KubernetesPodOperator's XCom sidecar reads."""
    line = json.dumps(result, default=str, sort_keys=True)
    if result_file is not None:
        atomic_write(Path(result_file), lambda tmp: tmp.write_text(line))
    print(line, flush=True)


LATEST = "latest.json"


def write_latest_pointer(folder: Path, target: Path, key: str, name: str = LATEST, **info: Any) -> Path:
    """Point `folder/<name>` (default latest.json) at `target` (a file or folder inside `folder`), atomically."""
    return write_json_atomic({key: Path(target).name, **info}, Path(folder) / name)


def read_latest_pointer(folder: Path, key: str, name: str = LATEST) -> Path:
    """The path that `folder/<name>` names under `key`; InputError if absent or dangling."""
    from gogoku.errors import InputError

    pointer = Path(folder) / name
    try:
        name = json.loads(pointer.read_text())[key]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{pointer}: no readable {key} pointer ({exc.__class__.__name__}); build one first") from None
    path = Path(folder) / name
    if not path.exists():
        raise InputError(f"{pointer}: names {name}, which does not exist")
    return path
