"""A data root this process cannot write (owned by root, mode 555) still serves cache hits: the CLI,
run as an unprivileged user (setpriv; the tests run as root, which ignores folder permissions),
takes the cache lock in its own folder under the temp dir, writes nothing under the root, and a load
that would need to fetch fails with one line naming the root and saying it is read-only."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from gogoku.cache.raw import user_lock_dir
from gogoku.cache.sources import SourceLoader
from gogoku.config import Settings
from gogoku.sim.market import SimMarket
from gogoku.sim.server import SimServer, run_in_thread

pytestmark = pytest.mark.integration

D = dt.date
NOBODY = 65534
SETPRIV = shutil.which("setpriv")


@pytest.fixture()
def server() -> Iterator[SimServer]:
    market = SimMarket(seed=11, n_stocks=12, start=D(2024, 1, 4), end=D(2024, 6, 28))
    server = run_in_thread(market, plan="standard", rate_limits=False, date_windows=False)
    yield server
    server.stop()


@pytest.fixture()
def base() -> Iterator[Path]:
    # Outside pytest's tmp_path: its parents are private to root, and the other user must get in.
    folder = Path(tempfile.mkdtemp(prefix="gogoku-ro-", dir="/tmp"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def env(server: SimServer, root: Path, home: Path) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "TMPDIR": str(home / "tmp"),
            "GOGOKU_DATA_ROOT": str(root), "JQUANTS_API_URL": server.url, "JQUANTS_API_KEY": "test-key",
            "JQUANTS_PLAN_TIER": "standard", "JQUANTS_RATE_LIMIT": "1000000"}


def as_nobody(args: list[str], environ: dict[str, str]) -> subprocess.CompletedProcess[str]:
    assert SETPRIV is not None
    cmd = [SETPRIV, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--",
           sys.executable, "-m", "gogoku.cli", *args]
    return subprocess.run(cmd, env=environ, capture_output=True, text=True, timeout=120)


def snapshot(root: Path) -> dict[str, tuple[int, float]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime) for p in sorted(root.rglob("*"))}


@pytest.mark.skipif(SETPRIV is None or os.geteuid() != 0, reason="needs root and util-linux setpriv")
def test_a_read_only_root_serves_hits_and_refuses_misses_in_one_line(server: SimServer, base: Path) -> None:
    root, home = base / "data", base / "home"
    (home / "tmp").mkdir(parents=True)
    for folder in (home, home / "tmp"):
        folder.chmod(0o777)
    settings = Settings.from_env(env(server, root, home))
    with SourceLoader(settings) as loader:
        cached = loader.load("daily_quotes", D(2024, 3, 1), D(2024, 3, 29))
        loader.load("topix", D(2024, 3, 1), D(2024, 3, 29))
    for path in [root, *root.rglob("*")]:
        path.chmod(0o555 if path.is_dir() else 0o444)
    before = snapshot(root)

    out = home / "q.parquet"
    proc = as_nobody(["fetch", "daily_quotes", "--from", "2024-03-04", "--to", "2024-03-15", "--out", str(out)],
                     env(server, root, home))
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    expected = cached.frame.filter(pl.col("Date").is_between(D(2024, 3, 4), D(2024, 3, 15)))
    assert (result["cache"], result["api_calls"], result["rows"]) == ("complete", 0, expected.height)
    assert_frame_equal(pl.read_parquet(out), expected)
    proc = as_nobody(["cache", "refresh", "--sources", "daily_quotes,topix", "--start", "2024-03-01",
                      "--end", "2024-03-29"], env(server, root, home))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1])["api_calls"] == 0
    # The lock was taken in the user's own folder (keyed by the root), nothing under the root changed.
    locks = list((home / "tmp").glob(f"gogoku-locks-{NOBODY}/*/*.lock"))
    assert sorted(p.name for p in locks) == ["daily_quotes.lock", "topix.lock"]
    assert locks[0].parent.name == user_lock_dir(root).name
    assert snapshot(root) == before

    # A miss would have to write: one line that names the root and says it is read-only.
    proc = as_nobody(["fetch", "daily_quotes", "--from", "2024-04-01", "--to", "2024-04-30", "--out", str(out)],
                     env(server, root, home))
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("gogoku fetch: error:")]
    assert len(errors) == 1 and errors == proc.stderr.strip().splitlines()[-1:]
    assert f"data root {root} is read-only" in errors[0] and "Traceback" not in proc.stderr
    assert snapshot(root) == before
