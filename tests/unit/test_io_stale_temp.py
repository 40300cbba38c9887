"""Temp files of killed atomic writes: a writer killed with SIGKILL mid-write leaves its
`.<name>.<random>.tmp`; the next write of the same file removes it once stale, and leaves a
concurrent writer's fresh temp file and other files' temp files alone. Real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from gogoku.io import STALE_TEMP_S, atomic_write, write_parquet_atomic

# Writes half a file through atomic_write, says where, then hangs until killed.
WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from gogoku.io import atomic_write

    def write(tmp):
        tmp.write_bytes(b"half a file" * 1000)
        print(tmp, flush=True)
        time.sleep(600)

    atomic_write(Path(sys.argv[1]), write)
    """
)


def start_writer(script: Path, target: Path) -> tuple[subprocess.Popen[str], Path]:
    proc = subprocess.Popen([sys.executable, str(script), str(target)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    tmp = Path(proc.stdout.readline().strip())
    assert tmp.parent == target.parent and tmp.name.startswith(f".{target.name}.") and tmp.suffix == ".tmp"
    return proc, tmp


def age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_a_killed_writers_temp_file_is_removed_by_the_next_write(tmp_path: Path) -> None:
    script, target = tmp_path / "writer.py", tmp_path / "data" / "frame.bin"
    script.write_text(WRITER)
    killed, orphan = start_writer(script, target)
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait(timeout=10)
    assert killed.returncode == -signal.SIGKILL and orphan.exists() and not target.exists()

    running, fresh = start_writer(script, target)  # a concurrent writer, still at work
    try:
        other = target.parent / ".other.bin.abcd1234.tmp"  # another file's leftover: not ours
        other.write_bytes(b"x")
        age(other, 2 * STALE_TEMP_S)
        # A leftover younger than STALE_TEMP_S may still be written to: the next write keeps it.
        atomic_write(target, lambda tmp: tmp.write_bytes(b"v1"))
        assert orphan.exists() and fresh.exists() and target.read_bytes() == b"v1"

        age(orphan, STALE_TEMP_S + 60)
        atomic_write(target, lambda tmp: tmp.write_bytes(b"v2"))
        assert not orphan.exists() and target.read_bytes() == b"v2"
        assert fresh.exists() and other.exists()
        assert running.poll() is None  # the concurrent writer was not disturbed
    finally:
        running.kill()
        running.wait(timeout=10)
    assert sorted(p.name for p in target.parent.iterdir()) == sorted([target.name, fresh.name, other.name])


def test_parquet_writes_clean_up_too(tmp_path: Path) -> None:
    import polars as pl

    target = tmp_path / "raw" / "topix" / "topix_20240101_20240131.parquet"
    target.parent.mkdir(parents=True)
    leftover = target.parent / f".{target.name}.k9x2m1qz.tmp"
    leftover.write_bytes(b"torn")
    age(leftover, 3 * STALE_TEMP_S)
    write_parquet_atomic(pl.DataFrame({"a": [1]}), target)
    assert not leftover.exists() and pl.read_parquet(target)["a"].to_list() == [1]
