"""The raw cache on an object-store data root (`gs://bucket/prefix`, `s3://...`).

The cache works on the root's working copy (see gogoku.storage); objects mirror local paths
(`prefix/raw/<source>/<name>.parquet`). `pull` downloads only the objects of one source whose range
overlaps a request, skipping those already local and identical (size and MD5) and those older than
the cache's freshness limit; `push` uploads what differs and then deletes remote fragments that
local compaction removed, only where a file already in the bucket covers their whole range and only
the generation listed before (GCS), so a concurrent writer's newer object is never deleted.
Each object records its fetch time (`gogoku-mtime` metadata) so freshness survives the trip, and
every downloaded file is verified (`read_cache_file`) before it replaces anything.

`StoreCheckpoint` keeps the per-query checkpoints of a cache fetch (`raw/.partial/<source>/`) in the
bucket as well as in the working copy: each completed query is uploaded at once and the next attempt,
on whatever pod, downloads them first, so a pod replaced mid-fetch loses only its unfinished queries.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from gogoku.cache.raw import (
    CacheFileError,
    RawCache,
    parse_cache_file_name,
    read_cache_file,
    read_cache_metadata,
)
from gogoku.errors import GogokuError, InputError
from gogoku.jquants.checkpoint import DirectoryCheckpoint
from gogoku.storage import CorruptObject, RemoteObject, Store, file_md5

logger = logging.getLogger(__name__)


@dataclass
class SyncReport:
    downloaded: list[str] = field(default_factory=list)
    uploaded: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    bytes_down: int = 0
    bytes_up: int = 0

    def add(self, other: SyncReport) -> SyncReport:
        for name in ("downloaded", "uploaded", "deleted", "skipped", "rejected"):
            getattr(self, name).extend(getattr(other, name))
        self.bytes_down += other.bytes_down
        self.bytes_up += other.bytes_up
        return self

    def as_dict(self) -> dict[str, Any]:
        return {
            "downloaded": len(self.downloaded), "uploaded": len(self.uploaded), "deleted": len(self.deleted),
            "skipped": len(self.skipped), "rejected": self.rejected,
            "bytes_down": self.bytes_down, "bytes_up": self.bytes_up,
        }


class RemoteSync:
    """Two-way sync between the raw cache of a remote root's working copy and the bucket, one source
    at a time, under the cache's per-source lock."""

    def __init__(self, store: Store, cache: RawCache | None = None) -> None:
        if not store.remote:
            raise InputError(f"data root {store.url} is not an object store; there is nothing to sync")
        self.store = store
        self.cache = cache if cache is not None else RawCache(store.root.local)
        # object name -> generation, as listed by the last pull of each source: push deletes only these.
        self._seen: dict[str, dict[str, RemoteObject]] = {}

    @staticmethod
    def folder(source: str) -> str:
        return f"raw/{source}"

    def remote_files(self, source: str) -> dict[str, RemoteObject]:
        """Cache objects of `source` by file name (objects whose names do not parse are ignored)."""
        return {name: obj for name, obj in self.store.list(self.folder(source)).items()
                if parse_cache_file_name(source, name) is not None}

    def pull(
        self, source: str, start: dt.date | None = None, end: dt.date | None = None, fresh_after: float | None = None,
        locked: bool = False,
    ) -> SyncReport:
        """Download the objects of `source` overlapping [start, end] (all when None) that are not
        already local and identical, unless the local copy is newer; skip objects fetched before
        `fresh_after` (epoch seconds: the cache would ignore them as stale). `locked`: the caller
        already holds the source's cache lock (a load about to patch every file of the source)."""
        t0 = time.perf_counter()
        report = SyncReport()
        folder = self.cache.source_dir(source)
        with contextlib.nullcontext() if locked else self.cache.lock(source):
            remote = self.remote_files(source)
            self._seen[source] = dict(remote)
            for name, obj in sorted(remote.items()):
                span = parse_cache_file_name(source, name)
                assert span is not None
                if (start is not None and span[1] < start) or (end is not None and span[0] > end):
                    continue
                if fresh_after is not None and obj.mtime < fresh_after:
                    continue
                local = folder / name
                if local.is_file():
                    if local.stat().st_size == obj.size and file_md5(local) == obj.md5:
                        report.skipped.append(name)
                        continue
                    if local.stat().st_mtime >= obj.mtime:
                        logger.info("sync pull %s: keeping local %s (newer than the bucket's)", source, name)
                        report.skipped.append(name)
                        continue
                try:
                    self.store.download(obj, local, verify=lambda tmp, n=name: read_cache_file(tmp, name=n))
                except (CacheFileError, CorruptObject) as exc:
                    logger.warning("sync pull: rejecting %s: %s", self.store.uri(obj.rel), exc)
                    report.rejected.append(name)
                    continue
                report.downloaded.append(name)
                report.bytes_down += obj.size
        logger.info(
            "sync pull %s %s..%s from %s: %d file(s) %d bytes down, %d identical/kept, %d rejected in %.2fs",
            source, start, end, self.store.uri(self.folder(source)), len(report.downloaded), report.bytes_down,
            len(report.skipped), len(report.rejected), time.perf_counter() - t0,
        )
        return report

    def push(self, source: str, names: list[str] | None = None) -> SyncReport:
        """Upload the local files of `source` (only `names` when given: what a load just wrote) that
        the bucket lacks or holds differently, then delete the remote fragments that compaction
        removed locally (see the module docstring)."""
        t0 = time.perf_counter()
        report = SyncReport()
        with self.cache.lock(source):
            remote = self.remote_files(source)
            local = {f.path.name: f for f in self.cache.files(source)}
            in_bucket: list[tuple[dt.date, dt.date]] = []
            for name, f in sorted(local.items()):
                if names is not None and name not in names:
                    continue
                try:
                    read_cache_metadata(f.path)
                except CacheFileError as exc:
                    logger.warning("sync push %s: not uploading %s: %s", source, name, exc)
                    continue
                obj = remote.get(name)
                size = f.path.stat().st_size
                if obj is not None and obj.size == size and obj.md5 == file_md5(f.path):
                    report.skipped.append(name)
                else:
                    rel = f"{self.folder(source)}/{name}"
                    self.store.upload(f.path, rel, mtime=f.mtime, create_only=obj is None)
                    report.uploaded.append(name)
                    report.bytes_up += size
                    if source in self._seen and (uploaded := self.store.stat(rel)) is not None:
                        self._seen[source][name] = uploaded  # our own object: a later compaction may delete it
                in_bucket.append((f.start, f.end))
            seen = self._seen.get(source, remote)
            for name, obj in sorted(remote.items()):
                span = parse_cache_file_name(source, name)
                assert span is not None
                covered = any(a <= span[0] and span[1] <= b for a, b in in_bucket)
                if name in local or not covered or name not in seen:
                    continue
                if self.store.delete(seen[name]):
                    logger.info("sync push: deleted compacted fragment %s", self.store.uri(obj.rel))
                    report.deleted.append(name)
                else:
                    logger.info("sync push: %s changed or vanished meanwhile; not deleting it", obj.rel)
        logger.info(
            "sync push %s to %s: %d file(s) %d bytes up, %d unchanged, %d compacted fragment(s) deleted in %.2fs",
            source, self.store.uri(self.folder(source)), len(report.uploaded), report.bytes_up,
            len(report.skipped), len(report.deleted), time.perf_counter() - t0,
        )
        return report


class StoreCheckpoint(DirectoryCheckpoint):
    """A `DirectoryCheckpoint` at `rel_dir` of an object-store root's working copy whose entries are
    also in the bucket: `put` uploads each completed query at once, opening one downloads what the
    bucket holds (another pod's unfinished attempt), and `clear` deletes both copies."""

    def __init__(self, store: Store, rel_dir: str, clock: Callable[[], dt.datetime | None] | None = None) -> None:
        if not store.remote:
            raise InputError(f"data root {store.url} is not an object store: use DirectoryCheckpoint")
        super().__init__(store.local_path(rel_dir), clock=clock)
        self.store, self.rel_dir = store, rel_dir.strip("/")
        restored = [obj for obj in store.walk(self.rel_dir) if obj.rel.endswith(self.SUFFIX)]
        for obj in restored:
            local = store.local_path(obj.rel)
            if local.is_file() and local.stat().st_size == obj.size and file_md5(local) == obj.md5:
                continue
            try:
                store.download(obj, local, verify=_readable)
            except CorruptObject as exc:  # the query is simply asked again
                logger.warning("checkpoint %s: skipping %s", store.uri(obj.rel), exc)
        if restored:
            logger.info("checkpoint %s: %d completed query(ies) from the bucket", store.uri(self.rel_dir), len(restored))

    def put(self, key: str, frame: pl.DataFrame) -> None:
        super().put(key, frame)
        try:
            self.store.upload(self.path(key), f"{self.rel_dir}/{key}{self.SUFFIX}")
        except GogokuError as exc:
            # Only the resumability elsewhere is lost: the local copy still serves a rerun here.
            logger.warning("checkpoint %s not published to the bucket: %s", key, exc)

    def clear(self, keys: Iterable[str] | None = None) -> int:
        keys = self.keys() if keys is None else sorted(set(keys))
        count = super().clear(keys)
        remote = self.store.list(self.rel_dir)
        for key in keys:
            obj = remote.get(f"{key}{self.SUFFIX}")
            if obj is not None:
                self.store.delete(obj)
        return count


def _readable(path: Path) -> None:
    try:
        pl.read_parquet_schema(path)
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise CorruptObject(f"{path}: not a readable checkpoint ({type(exc).__name__})") from None
