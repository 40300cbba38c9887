"""The raw cache on a gs:// data root against a real GCS emulator (gcp-storage-emulator, in memory,
on 127.0.0.1 with an ephemeral port) and real parquet files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from gogoku.cache.raw import RawCache, read_cache_file
from gogoku.cache.remote import RemoteSync
from gogoku.cache.sources import SourceLoader
from gogoku.calendar import business_days
from gogoku.config import Settings
from gogoku.storage import Store, file_md5

pytestmark = pytest.mark.integration

SOURCE = "daily_quotes"
CODES = ["13010", "72030"]
JAN = (date(2024, 1, 1), date(2024, 1, 31))
FEB = (date(2024, 2, 1), date(2024, 2, 29))


def fetch_rows(tag: int = 0) -> tuple[list[tuple[date, date]], object]:
    calls: list[tuple[date, date]] = []

    def fetch(start: date, end: date) -> pl.DataFrame:
        calls.append((start, end))
        days = business_days(start, end)
        return pl.DataFrame({
            "Date": pl.Series([d for d in days for _ in CODES], dtype=pl.Date),
            "Code": [c for _ in days for c in CODES],
            "Version": [tag] * (len(days) * len(CODES)),
        })

    return calls, fetch


def no_fetch(start: date, end: date) -> pl.DataFrame:
    raise AssertionError(f"unexpected fetch {start}..{end}")


@pytest.fixture()
def bucket(gcs_bucket: str) -> str:
    return gcs_bucket


@pytest.fixture()
def client(bucket: str) -> Store:
    """The bucket as a whole (no prefix): what the tests look at and damage behind the workers' backs."""
    return Store.from_url(f"gs://{bucket}")


def worker(root: Path, bucket: str, client: Store, prefix: str = "prod") -> tuple[RawCache, RemoteSync]:
    """A worker with its own disk (`root`: its working copy) on gs://bucket/prefix."""
    store = Store.from_url(f"gs://{bucket}/{prefix}", local_cache=root)
    cache = RawCache(store.root.local)
    return cache, RemoteSync(store, cache)


def remote_names(client: Store, bucket: str) -> list[str]:
    return sorted(o.rel for o in client.walk(""))


def test_push_then_pull_into_an_empty_dir_then_idempotent(tmp_path: Path, bucket: str, client: Store) -> None:
    cache_a, sync_a = worker(tmp_path / "a", bucket, client)
    _, fetch = fetch_rows()
    written = cache_a.load(SOURCE, *JAN, fetch)
    old = time.time() - 2 * 86400  # fetched two days ago: the age must survive the trip
    os.utime(written.path, (old, old))
    pushed = sync_a.push(SOURCE)
    assert pushed.uploaded == [written.path.name] and pushed.bytes_up == written.path.stat().st_size
    assert remote_names(client, bucket) == [f"prod/raw/{SOURCE}/{written.path.name}"]
    assert sync_a.push(SOURCE).uploaded == []  # unchanged: nothing to upload

    cache_b, sync_b = worker(tmp_path / "b", bucket, client)
    pulled = sync_b.pull(SOURCE, *JAN)
    local = cache_b.source_dir(SOURCE) / written.path.name
    assert pulled.downloaded == [local.name] and pulled.bytes_down == local.stat().st_size
    assert local.read_bytes() == written.path.read_bytes()
    assert local.stat().st_mtime == pytest.approx(old, abs=1e-3)
    assert cache_b.load(SOURCE, *JAN, no_fetch).frame.equals(written.frame)
    # The second pull finds everything local and identical.
    again = sync_b.pull(SOURCE, *JAN)
    assert (again.downloaded, again.skipped, again.bytes_down) == ([], [local.name], 0)
    assert sorted(p.name for p in local.parent.iterdir()) == [local.name]


def test_pull_fetches_only_the_asked_source_and_range(tmp_path: Path, bucket: str, client: Store) -> None:
    cache_a, sync_a = worker(tmp_path / "a", bucket, client)
    for span in (JAN, (date(2024, 7, 1), date(2024, 7, 31))):
        cache_a.load(SOURCE, *span, fetch_rows()[1])
    cache_a.load("topix", *JAN, fetch_rows()[1], key_cols=["Date"])
    sync_a.push(SOURCE)
    sync_a.push("topix")
    assert len(remote_names(client, bucket)) == 3
    cache_b, sync_b = worker(tmp_path / "b", bucket, client)
    pulled = sync_b.pull(SOURCE, date(2024, 1, 20), date(2024, 2, 10))
    assert pulled.downloaded == ["daily_quotes_20240101_20240131.parquet"]
    assert [f.path.name for f in cache_b.files(SOURCE)] == pulled.downloaded
    assert cache_b.files("topix") == []


def test_remote_newer_replaces_local_and_local_newer_is_kept(
    tmp_path: Path, bucket: str, client: Store
) -> None:
    cache_a, sync_a = worker(tmp_path / "a", bucket, client)
    cache_a.load(SOURCE, *JAN, fetch_rows(tag=1)[1])
    sync_a.push(SOURCE)
    cache_b, sync_b = worker(tmp_path / "b", bucket, client)
    sync_b.pull(SOURCE, *JAN)
    # A refetches the month: the bucket gets a newer, different file.
    time.sleep(0.01)
    refreshed = cache_a.load(SOURCE, *JAN, fetch_rows(tag=2)[1], force=True)
    assert sync_a.push(SOURCE).uploaded == [refreshed.path.name]
    pulled = sync_b.pull(SOURCE, *JAN)
    assert pulled.downloaded == [refreshed.path.name]
    assert set(cache_b.load(SOURCE, *JAN, no_fetch).frame["Version"]) == {2}
    # B refetches later than the bucket's copy: its own newer file is not overwritten by a pull.
    time.sleep(0.01)
    mine = cache_b.load(SOURCE, *JAN, fetch_rows(tag=3)[1], force=True)
    kept = sync_b.pull(SOURCE, *JAN)
    assert kept.downloaded == [] and kept.skipped == [mine.path.name]
    assert set(read_cache_file(mine.path)["Version"]) == {3}


@pytest.mark.parametrize("damage", ["garbage", "truncated", "rows"])
def test_a_corrupt_remote_object_is_rejected(
    tmp_path: Path, bucket: str, client: Store, damage: str
) -> None:
    cache_a, _ = worker(tmp_path / "a", bucket, client)
    good = cache_a.load(SOURCE, *JAN, fetch_rows()[1])
    data = good.path.read_bytes()
    if damage == "garbage":
        data = b"not parquet at all" * 50
    elif damage == "truncated":
        data = data[: len(data) // 2]
    else:  # a valid parquet file whose rows do not match its footer: half the rows, the same footer
        from gogoku.cache.raw import META_KEY, cache_file_metadata

        meta = cache_file_metadata(SOURCE, *JAN, "Date", good.frame)
        bad = tmp_path / "bad.parquet"
        good.frame.head(5).write_parquet(bad, metadata={META_KEY: meta[META_KEY]})
        data = bad.read_bytes()
    damaged = tmp_path / "damaged.parquet"
    damaged.write_bytes(data)
    client.upload(damaged, f"prod/raw/{SOURCE}/{good.path.name}")
    cache_b, sync_b = worker(tmp_path / "b", bucket, client)
    report = sync_b.pull(SOURCE, *JAN)
    assert report.rejected == [good.path.name] and report.downloaded == []
    folder = cache_b.source_dir(SOURCE)
    assert not folder.exists() or list(folder.iterdir()) == []  # no file, no temp file left
    # A good local copy is never replaced by a corrupt remote one, even a newer one.
    cache_b.load(SOURCE, *JAN, fetch_rows(tag=7)[1])
    os.utime(folder / good.path.name, (time.time() - 3600, time.time() - 3600))
    report = sync_b.pull(SOURCE, *JAN)
    assert report.rejected == [good.path.name]
    assert set(read_cache_file(folder / good.path.name)["Version"]) == {7}


def test_push_after_compaction_deletes_only_the_fragments_it_saw(
    tmp_path: Path, bucket: str, client: Store
) -> None:
    cache_a, sync_a = worker(tmp_path / "a", bucket, client)
    for span in (JAN, FEB):
        cache_a.load(SOURCE, *span, fetch_rows()[1])
    sync_a.push(SOURCE)
    cache_b, sync_b = worker(tmp_path / "b", bucket, client)
    assert len(sync_b.pull(SOURCE, JAN[0], FEB[1]).downloaded) == 2
    # Meanwhile A writes another fragment inside the range that B is about to compact.
    cache_a.load(SOURCE, date(2024, 2, 5), date(2024, 2, 9), fetch_rows()[1], force=True)
    sync_a.push(SOURCE)
    merged = cache_b.load(SOURCE, JAN[0], FEB[1], no_fetch)  # two adjacent files combine, no fetch
    assert merged.written and [f.path.name for f in cache_b.files(SOURCE)] == [merged.path.name]
    report = sync_b.push(SOURCE, names=[merged.path.name])
    assert report.uploaded == [merged.path.name]
    assert report.deleted == ["daily_quotes_20240101_20240131.parquet", "daily_quotes_20240201_20240229.parquet"]
    assert remote_names(client, bucket) == [
        f"prod/raw/{SOURCE}/daily_quotes_20240101_20240229.parquet",
        f"prod/raw/{SOURCE}/daily_quotes_20240205_20240209.parquet",  # not seen by B: kept
    ]


def test_source_loader_on_a_gs_root_pulls_before_and_pushes_after(
    tmp_path: Path, bucket: str, client: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {"GOGOKU_DATA_ROOT": f"gs://{bucket}/team/prod", "GOGOKU_SIM_STOCKS": "12", "JQUANTS_PLAN_TIER": "standard"}
    monkeypatch.setenv("GOGOKU_LOCAL_CACHE", str(tmp_path / "worker1"))
    settings = Settings.from_env(env)
    with SourceLoader(settings) as loader:
        first = loader.load("topix", date(2024, 3, 1), date(2024, 3, 29))
    assert first.hit == "miss" and loader.api_calls >= 1
    assert first.path == tmp_path / "worker1" / "gs" / bucket / "team" / "prod" / "raw" / "topix" / first.path.name
    assert loader.synced.uploaded == [first.path.name] and loader.synced.bytes_up > 0
    assert remote_names(client, bucket) == [f"team/prod/raw/topix/{first.path.name}"]

    # A fresh worker, offline (no API at all): the bucket alone serves the request.
    monkeypatch.setenv("GOGOKU_LOCAL_CACHE", str(tmp_path / "worker2"))
    with SourceLoader(Settings.from_env(env), offline=True) as fresh:
        again = fresh.load("topix", date(2024, 3, 4), date(2024, 3, 15))
    assert again.hit == "complete" and fresh.api_calls == 0
    assert fresh.synced.downloaded == [first.path.name] and fresh.synced.uploaded == []
    assert again.frame.equals(first.frame.filter(pl.col("Date").is_between(date(2024, 3, 4), date(2024, 3, 15))))


def test_cache_sync_command(tmp_path: Path, bucket: str, client: Store, gcs_emulator: str) -> None:
    cache_a, sync_a = worker(tmp_path / "a", bucket, client, prefix="p")
    written = cache_a.load(SOURCE, *JAN, fetch_rows()[1])
    sync_a.push(SOURCE)
    env = {**os.environ, "GOGOKU_DATA_ROOT": f"gs://{bucket}/p", "GOGOKU_LOCAL_CACHE": str(tmp_path / "cli"),
           "STORAGE_EMULATOR_HOST": gcs_emulator}
    cmd = [sys.executable, "-m", "gogoku.cli", "cache", "sync", "--direction", "pull", "--sources", SOURCE]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert (result["downloaded"], result["bytes_down"]) == (1, written.path.stat().st_size)
    assert result["root"] == f"gs://{bucket}/p"
    local = tmp_path / "cli" / "gs" / bucket / "p" / "raw" / SOURCE / written.path.name
    assert file_md5(local) == file_md5(written.path)
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert json.loads(out.stdout.strip().splitlines()[-1])["downloaded"] == 0


def test_a_worker_compacting_its_own_uploads_deletes_them(tmp_path: Path, bucket: str, client: Store) -> None:
    cache, sync = worker(tmp_path / "w", bucket, client)
    sync.pull(SOURCE)  # the bucket is empty: nothing seen but what this worker uploads next
    for span in (JAN, FEB, (JAN[0], FEB[1])):
        res = cache.load(SOURCE, *span, fetch_rows()[1])
        report = sync.push(SOURCE, names=[res.path.name])
    assert report.uploaded == ["daily_quotes_20240101_20240229.parquet"]
    assert report.deleted == ["daily_quotes_20240101_20240131.parquet", "daily_quotes_20240201_20240229.parquet"]
    assert remote_names(client, bucket) == [f"prod/raw/{SOURCE}/daily_quotes_20240101_20240229.parquet"]
