"""Resumable cache loads: a load whose fetch fails keeps each completed query under
`raw/.partial/<source>/` (and in the bucket on a gs:// root), the next load, on this worker or on a
fresh one, asks the API only for the queries that did not complete, and its result equals a
fault-free load; nothing partial is ever visible as covered, and the checkpoints go once the cache
file is written. Real simulator servers with injected faults, a real GCS emulator."""

from __future__ import annotations

import datetime as dt
import json
import time
import urllib.request
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from gogoku.cache.raw import RawCache
from gogoku.cache.sources import SourceLoader
from gogoku.config import Settings
from gogoku.errors import GogokuError
from gogoku.jquants.client import query_plan
from gogoku.jquants.endpoints import ENDPOINTS
from gogoku.sim.market import SimMarket
from gogoku.sim.server import Faults, SimServer, run_in_thread
from gogoku.storage import Store

pytestmark = pytest.mark.integration

D = dt.date
SOURCE = "daily_quotes"
START, END = D(2024, 2, 1), D(2024, 3, 29)
N_QUERIES = len(query_plan(ENDPOINTS[SOURCE], START, END))
# The first load may retry each query once, one at a time: with a fifth of the requests failing (the
# n-th visit of a URL always draws the same), some queries fail twice in a row and the load raises.
FRAGILE = {"max_retries": 1, "max_concurrency": 1, "backoff_base_s": 0.01}
PATIENT = {"max_retries": 10, "backoff_base_s": 0.01}


@pytest.fixture(scope="module")
def market() -> SimMarket:
    return SimMarket(seed=11, n_stocks=30, start=D(2024, 1, 4), end=D(2024, 6, 28))


@pytest.fixture()
def servers(market: SimMarket) -> Any:
    started: list[SimServer] = []

    def start(**options: Any) -> SimServer:
        server = run_in_thread(market, plan="standard", rate_limits=False, date_windows=False, **options)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def settings(server: SimServer, root: str) -> Settings:
    return Settings.from_env({"JQUANTS_API_URL": server.url, "JQUANTS_API_KEY": "test-key",
                              "JQUANTS_PLAN_TIER": "standard", "GOGOKU_DATA_ROOT": root,
                              "JQUANTS_RATE_LIMIT": "1000000"})


def stats(server: SimServer) -> dict[str, Any]:
    """The server's counts (GET /__sim__/stats) once the answers to abandoned requests are in."""
    def read() -> dict[str, Any]:
        with urllib.request.urlopen(server.url + "/__sim__/stats") as resp:
            return json.loads(resp.read())

    now = read()
    for _ in range(50):
        time.sleep(0.05)
        now, previous = read(), now
        if now == previous:
            break
    return now


def answered(server: SimServer, before: dict[str, Any]) -> int:
    """200 answers since `before`."""
    return stats(server)["statuses"].get("200", 0) - before["statuses"].get("200", 0)


def fault_free(servers: Any, tmp_path: Path) -> pl.DataFrame:
    with SourceLoader(settings(servers(), str(tmp_path / "clean"))) as loader:
        return loader.load(SOURCE, START, END).frame


def test_a_failed_load_resumes_with_only_the_unfinished_queries(servers: Any, tmp_path: Path) -> None:
    clean = fault_free(servers, tmp_path)
    server = servers(faults=Faults(error=0.2))
    root = tmp_path / "data"
    with SourceLoader(settings(server, str(root)), client_options=FRAGILE) as loader, \
            pytest.raises(GogokuError, match="still failing after 2 attempts"):
        loader.load(SOURCE, START, END)
    partial = root / "raw" / ".partial" / SOURCE
    saved = sorted(p.name for p in partial.glob("*.parquet"))
    assert 0 < len(saved) < N_QUERIES
    # Nothing partial is visible as covered: no cache file, and an offline load finds nothing.
    assert RawCache(root).files(SOURCE) == []
    with SourceLoader(settings(server, str(root)), offline=True) as offline, pytest.raises(GogokuError, match="offline"):
        offline.load(SOURCE, START, END)

    before = stats(server)
    with SourceLoader(settings(server, str(root)), client_options=PATIENT) as loader:
        res = loader.load(SOURCE, START, END)
    assert loader.reused_queries == len(saved)
    assert answered(server, before) == N_QUERIES - len(saved)
    assert_frame_equal(res.frame, clean, check_exact=True)
    # The checkpoints fed a written file: they are gone.
    assert res.written and list(partial.glob("*")) == []


def test_checkpoints_survive_a_replaced_pod_on_a_gs_root(servers: Any, tmp_path: Path, gcs_bucket: str,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    clean = fault_free(servers, tmp_path)
    server = servers(faults=Faults(error=0.2))
    root = f"gs://{gcs_bucket}/prod"
    client = Store.from_url(f"gs://{gcs_bucket}")

    def objects(under: str) -> list[str]:
        return [o.rel for o in client.walk(f"prod/{under}")]

    monkeypatch.setenv("GOGOKU_LOCAL_CACHE", str(tmp_path / "pod1"))
    with SourceLoader(settings(server, root), client_options=FRAGILE) as loader, \
            pytest.raises(GogokuError, match="still failing"):
        loader.load(SOURCE, START, END)
    saved = objects(f"raw/.partial/{SOURCE}")
    assert 0 < len(saved) < N_QUERIES and objects(f"raw/{SOURCE}") == []

    # A new pod: an empty working copy. It downloads the checkpoints and asks only for the rest.
    monkeypatch.setenv("GOGOKU_LOCAL_CACHE", str(tmp_path / "pod2"))
    before = stats(server)
    with SourceLoader(settings(server, root), client_options=PATIENT) as loader:
        res = loader.load(SOURCE, START, END)
    assert loader.reused_queries == len(saved)
    assert answered(server, before) == N_QUERIES - len(saved)
    assert_frame_equal(res.frame, clean, check_exact=True)
    assert objects(f"raw/.partial/{SOURCE}") == []
    assert objects(f"raw/{SOURCE}") == [f"prod/raw/{SOURCE}/{res.path.name}"]
    assert list((tmp_path / "pod2").rglob(".partial/*/*.parquet")) == []


def test_a_restatement_on_a_gs_root_patches_the_buckets_files(servers: Any, tmp_path: Path, gcs_bucket: str,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    # seed 103, 24 stocks: 24530 splits on 2024-07-30 (see test_cache_daily_refresh).
    before_split = SimMarket(seed=103, n_stocks=24, start=D(2024, 5, 1), end=D(2024, 7, 29))
    after_split = SimMarket(seed=103, n_stocks=24, start=D(2024, 5, 1), end=D(2024, 7, 31))
    old, new = (run_in_thread(m, plan="standard", rate_limits=False, date_windows=False)
                for m in (before_split, after_split))
    try:
        root = f"gs://{gcs_bucket}/prod"
        monkeypatch.setenv("GOGOKU_LOCAL_CACHE", str(tmp_path / "pod1"))
        with SourceLoader(settings(old, root)) as loader:
            june = loader.load(SOURCE, D(2024, 6, 3), D(2024, 6, 28))
        # Another pod, which never pulled June, loads the split's day: June is patched in the bucket.
        monkeypatch.setenv("GOGOKU_LOCAL_CACHE", str(tmp_path / "pod2"))
        with SourceLoader(settings(new, root)) as loader:
            tail = loader.load(SOURCE, D(2024, 7, 30), D(2024, 7, 31))
        assert [p.name for p in tail.patched] == [june.path.name]
        monkeypatch.setenv("GOGOKU_LOCAL_CACHE", str(tmp_path / "pod3"))
        with SourceLoader(settings(new, root), offline=True) as loader:
            patched = loader.load(SOURCE, D(2024, 6, 3), D(2024, 6, 28)).frame
        with SourceLoader(settings(new, str(tmp_path / "direct"))) as loader:
            direct = loader.load(SOURCE, D(2024, 6, 3), D(2024, 6, 28)).frame
        assert_frame_equal(patched, direct, check_exact=True)
        assert not patched.equals(june.frame)
    finally:
        old.stop()
        new.stop()
