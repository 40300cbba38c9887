"""Google Cloud Storage sync of the raw cache (DESIGN contract 4: `gs://bucket/prefix` data roots).

With `GOGOKU_DATA_ROOT=gs://bucket/prefix` the cache works on a local copy under
`GOGOKU_LOCAL_CACHE` (default `~/.cache/gogoku`)`/bucket/prefix`; objects mirror local paths
(`prefix/raw/<source>/<name>.parquet`). `pull` fetches only the objects of one source whose range
overlaps a request, skipping those already local and identical (same size and MD5); `push` uploads
what differs and then deletes remote fragments that local compaction removed, only where a local
file that is already in the bucket covers their whole range and only if the object is still the
generation seen before (a precondition, so a concurrent writer's object is never deleted).
Each object records its fetch time (`gogoku-mtime` metadata) so freshness survives the trip.
Every downloaded file is verified (`read_cache_file`) before it replaces anything.
`STORAGE_EMULATOR_HOST` (e.g. `http://127.0.0.1:9023`) points the client at an emulator.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import logging
import os
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gogoku.cache.raw import (
    CacheFileError,
    RawCache,
    parse_cache_file_name,
    read_cache_file,
    read_cache_metadata,
)
from gogoku.errors import GogokuError, InputError

if TYPE_CHECKING:
    from google.cloud.storage import Blob, Client

logger = logging.getLogger(__name__)

MTIME_KEY = "gogoku-mtime"
DEFAULT_LOCAL_CACHE = "~/.cache/gogoku"
# `Path("gs://b/p")` collapses the double slash, so accept `gs:/b/p` too.
_GS_URL = re.compile(r"gs:/{1,2}([^/]+)(?:/(.*))?")
_BUCKET = re.compile(r"[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]")


@dataclass(frozen=True)
class DataRoot:
    """Where data lives: `local` always (the working copy); `bucket`/`prefix` when remote."""

    local: Path
    bucket: str | None = None
    prefix: str = ""

    @property
    def remote(self) -> bool:
        return self.bucket is not None

    @property
    def url(self) -> str:
        if self.bucket is None:
            return str(self.local)
        return f"gs://{self.bucket}/{self.prefix}".rstrip("/")


def parse_data_root(value: str | os.PathLike[str], local_cache: str | os.PathLike[str] | None = None) -> DataRoot:
    """`./data` -> a local root; `gs://bucket/prefix` (or the `gs:/bucket/prefix` that Path makes of
    it) -> a remote root whose working copy is `local_cache` (default $GOGOKU_LOCAL_CACHE or
    ~/.cache/gogoku) / bucket / prefix."""
    text = os.fspath(value).strip()
    m = _GS_URL.fullmatch(text)
    if m is None:
        if text.startswith("gs:"):
            raise InputError(f"GOGOKU_DATA_ROOT={text!r}: expected gs://bucket/prefix")
        return DataRoot(Path(text))
    bucket, prefix = m.group(1), (m.group(2) or "").strip("/")
    if not _BUCKET.fullmatch(bucket):
        raise InputError(f"GOGOKU_DATA_ROOT={text!r}: {bucket!r} is not a valid bucket name")
    if prefix and any(part in ("", ".", "..") for part in prefix.split("/")):
        raise InputError(f"GOGOKU_DATA_ROOT={text!r}: the prefix may not contain empty, '.' or '..' parts")
    base = Path(local_cache or os.environ.get("GOGOKU_LOCAL_CACHE") or DEFAULT_LOCAL_CACHE).expanduser()
    return DataRoot(base / bucket / prefix if prefix else base / bucket, bucket, prefix)


def storage_client() -> Client:
    """A storage client: anonymous against `STORAGE_EMULATOR_HOST` when set, else default credentials."""
    from google.cloud import storage

    if os.environ.get("STORAGE_EMULATOR_HOST"):
        from google.auth.credentials import AnonymousCredentials

        project = os.environ.get("GOOGLE_CLOUD_PROJECT") or "gogoku-emulator"
        return storage.Client(project=project, credentials=AnonymousCredentials())
    return storage.Client()


def file_md5(path: Path) -> str:
    """Base64 MD5 of a file, as GCS reports `md5Hash`."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return base64.b64encode(digest.digest()).decode("ascii")


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


class GcsSync:
    """Two-way sync between `cache.root` and gs://bucket/prefix, one source at a time, under the
    cache's per-source lock."""

    def __init__(self, cache: RawCache, bucket: str, prefix: str = "", client: Client | None = None) -> None:
        self.cache = cache
        self.bucket_name = bucket
        self.prefix = prefix.strip("/")
        self.client = client if client is not None else storage_client()
        self.bucket = self.client.bucket(bucket)
        # object name -> generation, as listed by the last pull of each source: push deletes only these.
        self._seen: dict[str, dict[str, int]] = {}

    @classmethod
    def for_root(cls, root: DataRoot, cache: RawCache | None = None, client: Client | None = None) -> GcsSync:
        if root.bucket is None:
            raise InputError(f"data root {root.url} is not a gs:// URL; nothing to sync")
        return cls(cache or RawCache(root.local), root.bucket, root.prefix, client)

    def object_name(self, source: str, name: str) -> str:
        rel = f"raw/{source}/{name}"
        return f"{self.prefix}/{rel}" if self.prefix else rel

    def remote_files(self, source: str) -> dict[str, Blob]:
        """Cache objects of `source` by file name (objects whose names do not parse are ignored)."""
        folder = self.object_name(source, "")
        try:
            blobs = list(self.client.list_blobs(self.bucket_name, prefix=folder))
        except Exception as exc:  # google.api_core errors, transport errors
            raise GogokuError(f"gs://{self.bucket_name}/{folder}: listing failed ({_first_line(exc)})") from None
        found = {}
        for blob in blobs:
            name = blob.name[len(folder):]
            if "/" not in name and parse_cache_file_name(source, name) is not None:
                found[name] = blob
        return found

    def pull(
        self, source: str, start: dt.date | None = None, end: dt.date | None = None, fresh_after: float | None = None
    ) -> SyncReport:
        """Download the objects of `source` overlapping [start, end] (all when None) that are not
        already local and identical, unless the local copy is newer; skip objects fetched before
        `fresh_after` (epoch seconds: the cache would ignore them as stale)."""
        t0 = time.perf_counter()
        report = SyncReport()
        folder = self.cache.source_dir(source)
        with self.cache.lock(source):
            remote = self.remote_files(source)
            self._seen[source] = {n: int(b.generation or 0) for n, b in remote.items()}
            for name, blob in sorted(remote.items()):
                span = parse_cache_file_name(source, name)
                assert span is not None
                if (start is not None and span[1] < start) or (end is not None and span[0] > end):
                    continue
                remote_mtime = _remote_mtime(blob)
                if fresh_after is not None and remote_mtime < fresh_after:
                    continue
                local = folder / name
                if local.is_file():
                    if local.stat().st_size == blob.size and file_md5(local) == blob.md5_hash:
                        report.skipped.append(name)
                        continue
                    if local.stat().st_mtime >= remote_mtime:
                        logger.info("gcs pull %s: keeping local %s (newer than the bucket's)", source, name)
                        report.skipped.append(name)
                        continue
                if self._download(blob, local, remote_mtime):
                    report.downloaded.append(name)
                    report.bytes_down += int(blob.size or 0)
                else:
                    report.rejected.append(name)
        logger.info(
            "gcs pull %s %s..%s from gs://%s/%s: %d file(s) %d bytes down, %d identical/kept, %d rejected in %.2fs",
            source, start, end, self.bucket_name, self.object_name(source, ""), len(report.downloaded),
            report.bytes_down, len(report.skipped), len(report.rejected), time.perf_counter() - t0,
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
                    logger.warning("gcs push %s: not uploading %s: %s", source, name, exc)
                    continue
                blob = remote.get(name)
                size = f.path.stat().st_size
                if blob is not None and blob.size == size and blob.md5_hash == file_md5(f.path):
                    report.skipped.append(name)
                elif (generation := self._upload(source, f.path, f.mtime, blob)) is not None:
                    report.uploaded.append(name)
                    report.bytes_up += size
                    if source in self._seen:  # our own object: a later compaction may delete it
                        self._seen[source][name] = generation
                else:
                    continue
                in_bucket.append((f.start, f.end))
            seen = self._seen.get(source, {n: int(b.generation or 0) for n, b in remote.items()})
            for name, blob in sorted(remote.items()):
                span = parse_cache_file_name(source, name)
                assert span is not None
                covered = any(a <= span[0] and span[1] <= b for a, b in in_bucket)
                if name in local or not covered or name not in seen:
                    continue
                if self._delete(blob, seen[name]):
                    report.deleted.append(name)
        logger.info(
            "gcs push %s to gs://%s/%s: %d file(s) %d bytes up, %d unchanged, %d compacted fragment(s) deleted in %.2fs",
            source, self.bucket_name, self.object_name(source, ""), len(report.uploaded), report.bytes_up,
            len(report.skipped), len(report.deleted), time.perf_counter() - t0,
        )
        return report

    def _download(self, blob: Blob, local: Path, mtime: float) -> bool:
        """Download into a temp file beside `local`, verify it, then rename it into place."""
        local.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{local.name}.", suffix=".gcs.tmp", dir=local.parent)
        os.close(fd)
        tmp = Path(tmp_name)
        from google.cloud.storage.exceptions import DataCorruption

        try:
            try:
                blob.download_to_filename(str(tmp), checksum="md5")
                if file_md5(tmp) != blob.md5_hash:
                    raise CacheFileError(f"{tmp}: MD5 differs from the object's {blob.md5_hash}")
                read_cache_file(tmp, name=local.name)
            except (CacheFileError, DataCorruption) as exc:
                logger.warning("gcs pull: rejecting gs://%s/%s: %s", self.bucket_name, blob.name, _first_line(exc))
                return False
            except Exception as exc:  # transport and API errors
                raise GogokuError(
                    f"gs://{self.bucket_name}/{blob.name}: download failed ({_first_line(exc)})"
                ) from None
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o644)
            os.utime(tmp, (mtime, mtime))
            os.replace(tmp, local)
            return True
        finally:
            tmp.unlink(missing_ok=True)

    def _upload(self, source: str, path: Path, mtime: float, existing: Blob | None) -> int | None:
        """Upload `path`; the new object's generation, or None when someone else changed it first."""
        blob = self.bucket.blob(self.object_name(source, path.name))
        blob.metadata = {MTIME_KEY: repr(mtime)}
        # Replace only the generation we listed (0 = the object must not exist yet).
        generation = int(existing.generation or 0) if existing is not None else 0
        try:
            blob.upload_from_filename(str(path), content_type="application/vnd.apache.parquet",
                                      if_generation_match=generation, checksum="md5")
        except Exception as exc:
            if _status(exc) == 412:
                logger.warning("gcs push %s: %s changed in the bucket meanwhile; keeping the bucket's", source, path.name)
                return None
            raise GogokuError(f"gs://{self.bucket_name}/{blob.name}: upload failed ({_first_line(exc)})") from None
        return int(blob.generation or 0)

    def _delete(self, blob: Blob, generation: int) -> bool:
        try:
            blob.delete(if_generation_match=generation)
        except Exception as exc:
            if _status(exc) in (404, 412):
                logger.info("gcs push: %s changed or vanished meanwhile; not deleting it", blob.name)
                return False
            raise GogokuError(f"gs://{self.bucket_name}/{blob.name}: delete failed ({_first_line(exc)})") from None
        logger.info("gcs push: deleted compacted fragment gs://%s/%s", self.bucket_name, blob.name)
        return True


def _remote_mtime(blob: Blob) -> float:
    """The fetch time recorded at upload, else the object's update time."""
    raw = (blob.metadata or {}).get(MTIME_KEY)
    try:
        return float(raw) if raw is not None else _updated(blob)
    except ValueError:
        return _updated(blob)


def _updated(blob: Blob) -> float:
    return blob.updated.timestamp() if blob.updated is not None else 0.0


def _status(exc: BaseException) -> int | None:
    code = getattr(exc, "code", None)
    return code if isinstance(code, int) else None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
