"""The per-source cache lock, with real processes: concurrent refreshes of overlapping ranges are
serialized (no duplicate fetches, no corrupt or duplicated rows), a held lock times out with an
error naming the lock file, and a dead holder's lock is free again."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from datetime import date
from pathlib import Path

import polars as pl
import pytest
from test_cache_raw import CODES, SOURCE, RecordingFetch, assert_complete_rows

from gogoku.cache.raw import RawCache, read_cache_file
from gogoku.calendar import business_days
from gogoku.errors import GogokuError

# Each child waits for a go-file, then loads through the cache with a slow fetch that logs its range.
CHILD = textwrap.dedent(
    """
    import os, sys, time, datetime as dt
    import polars as pl
    from gogoku.cache.raw import RawCache
    from gogoku.calendar import business_days

    root, start, end, log, out, ready, go = sys.argv[1:]
    codes = {codes!r}

    def fetch(a, b):
        with open(log, "a") as fh:
            fh.write(f"{{os.getpid()}} {{a}} {{b}}\\n")
        time.sleep(0.4)  # long enough that an unlocked second process would select before the write
        days = business_days(a, b)
        return pl.DataFrame({{
            "Date": pl.Series([d for d in days for _ in codes], dtype=pl.Date),
            "Code": [c for _ in days for c in codes],
            "Close": [float(d.toordinal() % 1000) + i for d in days for i, _ in enumerate(codes)],
        }})

    open(ready, "w").close()
    while not os.path.exists(go):
        time.sleep(0.005)
    res = RawCache(root).load("{source}", dt.date.fromisoformat(start), dt.date.fromisoformat(end), fetch)
    res.frame.write_parquet(out)
    print(res.hit, res.api_calls)
    """
).format(codes=CODES, source=SOURCE)

HOLDER = textwrap.dedent(
    """
    import sys, time
    from gogoku.cache.raw import RawCache
    with RawCache(sys.argv[1]).lock("{source}") as path:
        print(path, flush=True)
        time.sleep(60)
    """
).format(source=SOURCE)


def test_concurrent_overlapping_refreshes_fetch_each_day_once(tmp_path: Path) -> None:
    root, script = tmp_path / "data", tmp_path / "child.py"
    script.write_text(CHILD)
    log, go = tmp_path / "fetches.log", tmp_path / "go"
    requests = {
        "a": (date(2024, 1, 1), date(2024, 6, 30)),
        "b": (date(2024, 4, 1), date(2024, 9, 30)),
        "c": (date(2024, 3, 1), date(2024, 8, 31)),
    }
    procs = {
        key: subprocess.Popen(
            [sys.executable, str(script), str(root), str(a), str(b), str(log),
             str(tmp_path / f"{key}.parquet"), str(tmp_path / f"{key}.ready"), str(go)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for key, (a, b) in requests.items()
    }
    deadline = time.monotonic() + 30
    while not all((tmp_path / f"{k}.ready").exists() for k in requests) and time.monotonic() < deadline:
        time.sleep(0.02)
    go.touch()
    outcomes = {}
    for key, proc in procs.items():
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        outcomes[key] = out.split()[0]
    # Exactly one process found nothing; the others were served (in part, or wholly by combining the
    # first two files when the third came last) by what those before them wrote.
    hits = list(outcomes.values())
    assert hits.count("miss") == 1 and hits.count("partial") >= 1
    assert hits.count("miss") + hits.count("partial") + hits.count("complete") == 3
    fetched: list[set[date]] = []
    for line in log.read_text().splitlines():
        _, a, b = line.split()
        fetched.append(set(business_days(date.fromisoformat(a), date.fromisoformat(b))))
    everything = set(business_days(date(2024, 1, 1), date(2024, 9, 30)))
    # Every business day fetched exactly once: the fetched ranges are disjoint and cover the union.
    assert sum(len(f) for f in fetched) == len(everything) and set().union(*fetched) == everything
    for key, (a, b) in requests.items():
        assert_complete_rows(pl.read_parquet(tmp_path / f"{key}.parquet"), a, b)
    cache = RawCache(root)
    for f in cache.files(SOURCE):
        read_cache_file(f.path)  # every file left verifies
    fetch = RecordingFetch(fail=True)
    res = cache.load(SOURCE, date(2024, 1, 1), date(2024, 9, 30), fetch)
    assert fetch.calls == [] and res.api_calls == 0
    assert_complete_rows(res.frame, date(2024, 1, 1), date(2024, 9, 30))


def test_a_held_lock_times_out_naming_the_file_and_is_freed_when_the_holder_dies(tmp_path: Path) -> None:
    script = tmp_path / "holder.py"
    script.write_text(HOLDER)
    holder = subprocess.Popen([sys.executable, str(script), str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None
        lock_path = holder.stdout.readline().strip()
        assert lock_path == str(tmp_path / "raw" / ".locks" / f"{SOURCE}.lock")
        cache = RawCache(tmp_path, lock_timeout=0.3)
        fetch = RecordingFetch()
        t0 = time.perf_counter()
        with pytest.raises(GogokuError, match=f"cache lock {lock_path} is still held"):
            cache.load(SOURCE, date(2024, 1, 1), date(2024, 1, 31), fetch)
        assert 0.3 <= time.perf_counter() - t0 < 5 and fetch.calls == []
        # Other sources have their own locks.
        other = cache.load("topix", date(2024, 1, 1), date(2024, 1, 31), RecordingFetch(), key_cols=["Date"])
        assert other.api_calls == 1
    finally:
        holder.kill()
        holder.wait(timeout=10)
    res = cache.load(SOURCE, date(2024, 1, 1), date(2024, 1, 31), fetch)
    assert res.hit == "miss" and len(fetch.calls) == 1


def test_the_lock_is_reusable_and_leaves_the_source_folder_clean(tmp_path: Path) -> None:
    cache = RawCache(tmp_path)
    for _ in range(3):
        cache.load(SOURCE, date(2024, 1, 1), date(2024, 1, 31), RecordingFetch())
    assert [p.name for p in (tmp_path / "raw" / SOURCE).iterdir()] == ["daily_quotes_20240101_20240131.parquet"]
    assert [p.name for p in (tmp_path / "raw" / ".locks").iterdir()] == ["daily_quotes.lock"]
