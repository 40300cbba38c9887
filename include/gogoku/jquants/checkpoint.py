"""Per-query checkpoints of a J-Quants fetch, so that a failed fetch can be resumed.

`JQuantsClient.fetch(..., checkpoint=...)` saves every query of its plan as soon as all of that query's
pages have arrived, and a later fetch asks the checkpoint first: a rerun after a failure requests only
the queries that did not complete. The fetch itself stays all-or-nothing.

A `DirectoryCheckpoint` with a `clock` also keeps the API's time of each query (its footer's `as_of`)
and reports the oldest it served (`pop_oldest_reused`): rows kept from an earlier attempt are as old as
that attempt, which the raw cache must know to tell final days from provisional ones.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Protocol, runtime_checkable

import polars as pl

from gogoku.errors import InputError
from gogoku.io import write_parquet_atomic

log = logging.getLogger(__name__)

_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,199}")


@runtime_checkable
class QueryCheckpoint(Protocol):
    """Where a fetch keeps the result of each completed API query.

    Interface (what `JQuantsClient.fetch` relies on):
    - `get(key)` returns the frame stored under `key`, or None when there is none (or it cannot be read:
      the client then asks the API again). It must never return a partial frame.
    - `put(key, frame)` stores `frame` under `key`, replacing what was there; after a crash, `get` sees
      either the whole frame or nothing.
    - `key` is made by the client (`gogoku.jquants.client.query_key`): `<source>_<32 hex digits>`, a
      stable hash of the source, the API version, the query's parameters and the source's wire fields.
      Keys are safe as file names. The same request under another version or field list has another
      key, so stale entries are never read, only left behind.
    - `frame` holds every page of one query as the client parses it off the wire (the API version's
      field names; Float64/Utf8 columns). Treat it as opaque: only the client reads it back.
    - A checkpoint belongs to one account and API (like the raw cache): the key does not include the
      URL or the plan. The client calls `get`/`put` from worker threads, several at once, for distinct
      keys; `put` errors (OSError) are logged and do not fail the fetch.
    """

    def get(self, key: str) -> pl.DataFrame | None: ...

    def put(self, key: str, frame: pl.DataFrame) -> None: ...


META_KEY = "gogoku.checkpoint"


class DirectoryCheckpoint:
    """A `QueryCheckpoint` on a local folder: one parquet file per query, `<folder>/<key>.parquet`.

    Files are written with `gogoku.io.write_parquet_atomic` (temp file, fsync, rename): a process
    killed mid-write leaves at most a hidden `.<name>.*.tmp`, never a readable partial file under the
    final name. Such leftovers older than `stale_tmp_s` are removed when the checkpoint is opened.

    With a `clock` (the API's time of the fetch, or None when unknown yet), `put` records it in the
    file's footer; `get` then serves only files that carry one (others are asked again) and keeps the
    oldest it served for `pop_oldest_reused`. `touched` holds the keys this object read or wrote.
    """

    SUFFIX = ".parquet"

    def __init__(self, folder: Path | str, stale_tmp_s: float = 3600.0,
                 clock: Callable[[], dt.datetime | None] | None = None) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.clock = clock
        self.touched: set[str] = set()
        self._oldest: dt.datetime | None = None
        self._mutex = threading.Lock()  # the client calls get/put from several threads
        self._prune_temp_files(stale_tmp_s)

    def path(self, key: str) -> Path:
        if not _KEY.fullmatch(key):
            raise InputError(f"checkpoint key {key!r}: expected letters, digits, '_', '-' or '.' (a file name)")
        return self.folder / f"{key}{self.SUFFIX}"

    def get(self, key: str) -> pl.DataFrame | None:
        path = self.path(key)
        if not path.exists():
            return None
        try:
            as_of = _as_of(path) if self.clock is not None else None
            frame = pl.read_parquet(path)
        except (OSError, ValueError, pl.exceptions.PolarsError) as exc:
            # Unreadable (disk error, foreign file): drop it and let the client ask the API again.
            log.warning("checkpoint %s unreadable (%s): removed, the query will be fetched again", path,
                        type(exc).__name__)
            path.unlink(missing_ok=True)
            return None
        if self.clock is not None:
            if as_of is None:
                return None  # its age is unknown: ask the API again
            with self._mutex:
                self._oldest = as_of if self._oldest is None else min(self._oldest, as_of)
        with self._mutex:
            self.touched.add(key)
        return frame

    def put(self, key: str, frame: pl.DataFrame) -> None:
        as_of = self.clock() if self.clock is not None else None
        metadata = None if as_of is None else {META_KEY: json.dumps({"as_of": as_of.isoformat()})}
        write_parquet_atomic(frame, self.path(key), metadata=metadata)
        with self._mutex:
            self.touched.add(key)

    def pop_oldest_reused(self) -> dt.datetime | None:
        """The oldest API time among the entries `get` served since the last call (None: none)."""
        with self._mutex:
            oldest, self._oldest = self._oldest, None
        return oldest

    def keys(self) -> list[str]:
        """The stored keys, sorted."""
        return sorted(p.name[: -len(self.SUFFIX)] for p in self.folder.glob(f"*{self.SUFFIX}")
                      if not p.name.startswith("."))

    def clear(self, keys: Iterable[str] | None = None) -> int:
        """Delete the stored queries `keys` (default all) once the fetch's result is safely written
        elsewhere; returns the count deleted."""
        keys = self.keys() if keys is None else sorted(set(keys))
        count = 0
        for key in keys:
            path = self.path(key)
            if path.exists():
                path.unlink(missing_ok=True)
                count += 1
        return count

    def _prune_temp_files(self, older_than_s: float) -> None:
        # Recent temp files may belong to a writer that is still running: leave those.
        cutoff = time.time() - older_than_s
        for tmp in self.folder.glob(f".*{self.SUFFIX}.*.tmp"):
            try:
                if tmp.stat().st_mtime < cutoff:
                    tmp.unlink()
            except OSError:
                pass


def _as_of(path: Path) -> dt.datetime | None:
    """The API time recorded in a checkpoint file's footer, or None."""
    raw = pl.read_parquet_metadata(path).get(META_KEY)
    try:
        moment = dt.datetime.fromisoformat(json.loads(raw)["as_of"])
    except (KeyError, TypeError, ValueError):
        return None
    return moment if moment.tzinfo is not None else None
