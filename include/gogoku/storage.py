"""The data root: one place for every artifact, on a local disk, a shared volume or an object store.

`GOGOKU_DATA_ROOT` is a local path (a folder, or a mounted shared volume such as a ReadWriteMany
PersistentVolumeClaim), or an object-store URI: `gs://bucket/prefix` (gcsfs) or `s3://bucket/prefix`
(s3fs, when installed). Whatever the root, artifacts keep one layout under it (docs/data.md):
`raw/`, `features/`, `datasets/`, `models/`, `predictions/`, `reports/`, `hpo/`.

Commands work on local files. For a local root these are the artifacts themselves. For an object
store they are a working copy under `GOGOKU_LOCAL_CACHE/<scheme>/<bucket>/<prefix>` (default
`~/.cache/gogoku`), which doubles as a read cache: `fetch` downloads an object only when the local
copy is missing or differs (size and MD5), and `publish` uploads what a command wrote. An object
appears under its final name only once its upload is complete, so readers never see a torn file;
multi-file artifacts are published with their completion markers and pointers (`latest`) last.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import logging
import os
import re
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gogoku.errors import GogokuError, InputError
from gogoku.io import atomic_write, write_json_atomic

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

log = logging.getLogger(__name__)

DATA_ROOT_ENV = "GOGOKU_DATA_ROOT"
LOCAL_CACHE_ENV = "GOGOKU_LOCAL_CACHE"
DEFAULT_DATA_ROOT = "./data"
DEFAULT_LOCAL_CACHE = "~/.cache/gogoku"
# Object-store schemes and the fsspec package that serves each.
REMOTE_SCHEMES = {"gs": "gcsfs", "s3": "s3fs"}
# Object metadata: the time a raw cache file's rows were fetched (its freshness survives the trip).
MTIME_KEY = "gogoku-mtime"
_URL = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*):/{1,2}(?P<bucket>[^/]*)(?:/(?P<prefix>.*))?")
_BUCKET = re.compile(r"[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]")


@dataclass(frozen=True)
class DataRoot:
    """Where artifacts live: `local` always (the root, or the working copy of a remote root);
    `scheme`, `bucket` and `prefix` for an object store."""

    local: Path
    scheme: str = "file"
    bucket: str | None = None
    prefix: str = ""

    @property
    def remote(self) -> bool:
        return self.bucket is not None

    @property
    def url(self) -> str:
        if self.bucket is None:
            return str(self.local)
        return f"{self.scheme}://{self.key('')}".rstrip("/")

    def key(self, rel: str) -> str:
        """The object-store path (bucket/prefix/rel) of a relative artifact path."""
        parts = [p for p in (self.bucket or "", self.prefix, rel.strip("/")) if p]
        return "/".join(parts)

    def uri(self, rel: str) -> str:
        """The full URI of an artifact: gs://bucket/prefix/rel, or the absolute local path."""
        return f"{self.scheme}://{self.key(rel)}" if self.remote else str(self.local / rel)

    def local_path(self, rel: str) -> Path:
        return self.local / rel

    def relative(self, location: str | os.PathLike[str]) -> str | None:
        """`location` (a URI of this root, or a path under the root or its working copy) as a
        relative artifact path; None when it lies elsewhere."""
        text = os.fspath(location).strip()
        if self.remote:
            for form in (self.url, f"{self.scheme}:/{self.key('')}".rstrip("/")):  # Path() keeps one slash
                if text == form or text.startswith(form + "/"):
                    return text[len(form):].strip("/")
        if "://" in text:
            return None
        try:
            return Path(text).absolute().relative_to(self.local.absolute()).as_posix()
        except ValueError:
            return None


def parse_data_root(value: str | os.PathLike[str], local_cache: str | os.PathLike[str] | None = None) -> DataRoot:
    """`./data`, `/mnt/gogoku` or `file:///mnt/gogoku` -> a local root (absolute); `gs://bucket/prefix`
    (or the `gs:/bucket/prefix` that Path makes of it) and `s3://...` -> a remote root whose working
    copy is `local_cache` (default $GOGOKU_LOCAL_CACHE or ~/.cache/gogoku)/scheme/bucket/prefix.
    InputError for an unknown scheme, a bad bucket name or a path that is a file."""
    text = os.fspath(value).strip() or DEFAULT_DATA_ROOT
    m = _URL.fullmatch(text)
    if m is None:
        return _local_root(text)
    scheme = m.group("scheme").lower()
    if scheme == "file":
        return _local_root("/" + text[len("file:"):].lstrip("/"))
    if scheme not in REMOTE_SCHEMES:
        known = ", ".join(f"{s}://bucket/prefix" for s in REMOTE_SCHEMES)
        raise InputError(f"{DATA_ROOT_ENV}={text!r}: unknown scheme {scheme}://; expected a local path, {known}")
    bucket, prefix = m.group("bucket"), (m.group("prefix") or "").strip("/")
    if not _BUCKET.fullmatch(bucket):
        raise InputError(f"{DATA_ROOT_ENV}={text!r}: {bucket!r} is not a valid bucket name")
    if prefix and any(part in ("", ".", "..") for part in prefix.split("/")):
        raise InputError(f"{DATA_ROOT_ENV}={text!r}: the prefix may not contain empty, '.' or '..' parts")
    base = local_cache_base(local_cache)
    local = base / scheme / bucket / prefix if prefix else base / scheme / bucket
    return DataRoot(local, scheme, bucket, prefix)


def local_cache_base(local_cache: str | os.PathLike[str] | None = None) -> Path:
    """The folder under which remote roots keep their working copies."""
    return Path(local_cache or os.environ.get(LOCAL_CACHE_ENV) or DEFAULT_LOCAL_CACHE).expanduser().absolute()


def _local_root(text: str) -> DataRoot:
    path = Path(text).expanduser().absolute()
    if path.exists() and not path.is_dir():
        raise InputError(f"{DATA_ROOT_ENV}={text!r}: {path} is a file, not a folder")
    return DataRoot(path)


def file_md5(path: Path) -> str:
    """Base64 MD5 of a file, as GCS reports `md5Hash`."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return base64.b64encode(digest.digest()).decode("ascii")


@dataclass(frozen=True)
class RemoteObject:
    """One object as listed: its relative path, size, MD5 (base64, None if unknown), generation and
    the time its content was made (the `gogoku-mtime` metadata, else the upload time)."""

    rel: str
    size: int
    md5: str | None
    generation: str | None
    mtime: float


def _remote_object(root: DataRoot, info: dict[str, Any]) -> RemoteObject:
    name = str(info["name"]).split("#", 1)[0]
    rel = name[len(root.key("")):].strip("/")
    md5 = info.get("md5Hash")
    if md5 is None:  # S3: the ETag of a single-part upload is the hex MD5
        etag = str(info.get("ETag") or info.get("etag") or "").strip('"')
        if re.fullmatch(r"[0-9a-f]{32}", etag):
            md5 = base64.b64encode(bytes.fromhex(etag)).decode("ascii")
    meta = info.get("metadata") or info.get("Metadata") or {}
    mtime = None
    if meta.get(MTIME_KEY) is not None:
        try:
            mtime = float(meta[MTIME_KEY])
        except ValueError:
            mtime = None
    if mtime is None:
        stamp = info.get("updated") or info.get("mtime") or info.get("LastModified")
        if isinstance(stamp, dt.datetime):
            mtime = stamp.timestamp()
        elif isinstance(stamp, str):
            mtime = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
        else:
            mtime = 0.0
    generation = info.get("generation") or info.get("VersionId")
    return RemoteObject(rel, int(info.get("size") or 0), md5, str(generation) if generation else None, mtime)


def _object_store(root: DataRoot) -> AbstractFileSystem:
    """An fsspec filesystem for a remote root; InputError when its package or credentials are missing."""
    package = REMOTE_SCHEMES[root.scheme]
    if root.scheme == "gs":
        try:
            # The plain class: the default export probes every bucket over gRPC first (zonal buckets).
            from gcsfs.core import GCSFileSystem
        except ImportError:
            raise InputError(f"{DATA_ROOT_ENV}={root.url}: gs:// data roots need the {package} package") from None
        emulator = os.environ.get("STORAGE_EMULATOR_HOST")
        token = "anon" if emulator else "google_default"
        project = os.environ.get("GOOGLE_CLOUD_PROJECT") or ("gogoku-emulator" if emulator else None)
        try:
            return GCSFileSystem(token=token, project=project, version_aware=True, skip_instance_cache=True,
                                 use_listings_cache=False)
        except Exception as exc:  # google.auth DefaultCredentialsError and friends
            raise InputError(
                f"{DATA_ROOT_ENV}={root.url}: no Google credentials ({_first_line(exc)}); give the pod a service "
                "account with Workload Identity, or set GOOGLE_APPLICATION_CREDENTIALS to a key file"
            ) from None
    try:
        import fsspec

        return fsspec.filesystem(root.scheme, skip_instance_cache=True, use_listings_cache=False)
    except ImportError:
        raise InputError(
            f"{DATA_ROOT_ENV}={root.url}: {root.scheme}:// data roots need the {package} package (pip install {package})"
        ) from None


class Store:
    """Artifacts under one data root (see the module docstring). Paths are relative to the root."""

    def __init__(self, root: DataRoot, fs: AbstractFileSystem | None = None,
                 local_cache: str | os.PathLike[str] | None = None) -> None:
        self.root = root
        self._fs = fs
        self.cache_base = local_cache_base(local_cache)

    @classmethod
    def from_url(cls, url: str | os.PathLike[str], local_cache: str | os.PathLike[str] | None = None) -> Store:
        return cls(parse_data_root(url, local_cache), local_cache=local_cache)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Store:
        env = dict(os.environ if env is None else env)
        return cls.from_url(env.get(DATA_ROOT_ENV) or DEFAULT_DATA_ROOT, env.get(LOCAL_CACHE_ENV) or None)

    @property
    def remote(self) -> bool:
        return self.root.remote

    @property
    def url(self) -> str:
        return self.root.url

    def uri(self, rel: str) -> str:
        return self.root.uri(rel)

    def local_path(self, rel: str) -> Path:
        return self.root.local_path(rel)

    # ---------------------------------------------------------------- object store
    @cached_property
    def fs(self) -> AbstractFileSystem:
        if not self.remote:
            raise RuntimeError(f"{self.url} is a local data root: it has no object store")
        fs = self._fs if self._fs is not None else _object_store(self.root)
        self._check(fs)
        return fs

    def _check(self, fs: AbstractFileSystem) -> None:
        """Fail early and clearly when the bucket does not exist or cannot be reached."""
        try:
            exists = fs.exists(self.root.bucket)
        except PermissionError as exc:
            raise InputError(f"{DATA_ROOT_ENV}={self.url}: access to bucket {self.root.bucket!r} denied "
                             f"({_first_line(exc)}); check the service account's permissions") from None
        except Exception as exc:
            raise GogokuError(f"{DATA_ROOT_ENV}={self.url}: the object store cannot be reached "
                              f"({_first_line(exc)})") from None
        if not exists:
            raise InputError(f"{DATA_ROOT_ENV}={self.url}: bucket {self.root.bucket!r} does not exist "
                             "(or these credentials cannot see it); create it or fix the data root")

    def _call(self, what: str, rel: str, func: Callable[[], Any]) -> Any:
        try:
            return func()
        except (InputError, GogokuError, FileNotFoundError):
            raise
        except PermissionError as exc:
            raise InputError(f"{self.uri(rel)}: {what} denied ({_first_line(exc)}); check the credentials") from None
        except Exception as exc:
            raise GogokuError(f"{self.uri(rel)}: {what} failed ({_first_line(exc)})") from None

    def list(self, rel_dir: str) -> dict[str, RemoteObject]:
        """Objects directly under `rel_dir` (remote roots), by file name."""
        key = self.root.key(rel_dir)

        def ls() -> list[dict[str, Any]]:
            try:
                return self.fs.ls(key, detail=True)
            except FileNotFoundError:
                return []

        found = {}
        for info in self._call("listing", rel_dir, ls):
            if info.get("type") == "directory":
                continue
            obj = _remote_object(self.root, info)
            found[obj.rel.rsplit("/", 1)[-1]] = obj
        return found

    def walk(self, rel_dir: str) -> list[RemoteObject]:
        """Every object under `rel_dir`, at any depth (remote roots)."""
        key = self.root.key(rel_dir)

        def find() -> dict[str, dict[str, Any]]:
            try:
                return self.fs.find(key, detail=True)
            except FileNotFoundError:
                return {}

        return sorted((_remote_object(self.root, info) for info in self._call("listing", rel_dir, find).values()),
                      key=lambda o: o.rel)

    def stat(self, rel: str) -> RemoteObject | None:
        def info() -> dict[str, Any] | None:
            try:
                return self.fs.info(self.root.key(rel))
            except FileNotFoundError:
                return None

        found = self._call("lookup", rel, info)
        return None if found is None or found.get("type") == "directory" else _remote_object(self.root, found)

    def download(self, obj: RemoteObject, dest: Path | None = None,
                 verify: Callable[[Path], None] | None = None) -> Path:
        """Download `obj` into `dest` (default its place in the working copy) through a temp file that
        is checked (size, MD5, then `verify`) before it replaces anything."""
        dest = dest if dest is not None else self.local_path(obj.rel)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".download.tmp", dir=dest.parent)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            self._call("download", obj.rel, lambda: self.fs.get_file(self.root.key(obj.rel), str(tmp)))
            if tmp.stat().st_size != obj.size or (obj.md5 is not None and file_md5(tmp) != obj.md5):
                raise CorruptObject(f"{self.uri(obj.rel)}: the download differs from the object's size/MD5")
            if verify is not None:
                verify(tmp)
            os.chmod(tmp, 0o644)
            os.utime(tmp, (obj.mtime, obj.mtime))
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
        return dest

    def upload(self, local: Path, rel: str, mtime: float | None = None, create_only: bool = False) -> str:
        """Upload one local file as `rel`; the object appears whole or not at all. `create_only`
        refuses to replace an existing object (where the store supports the precondition)."""
        kwargs: dict[str, Any] = {}
        if mtime is not None:
            kwargs["metadata"] = {MTIME_KEY: repr(mtime)}
        if create_only and self.root.scheme == "gs":
            kwargs["mode"] = "create"
        self._call("upload", rel, lambda: self.fs.put_file(str(local), self.root.key(rel), **kwargs))
        return self.uri(rel)

    def delete(self, obj: RemoteObject) -> bool:
        """Delete the object, only the generation listed where the store has generations (GCS): a
        newer object written meanwhile by someone else stays. False when it changed or vanished."""
        key = self.root.key(obj.rel)
        if obj.generation and self.root.scheme == "gs":
            key = f"{key}#{obj.generation}"
        try:
            self._call("delete", obj.rel, lambda: self.fs.rm_file(key))
        except FileNotFoundError:
            return False
        return True

    # ---------------------------------------------------------------- artifacts
    def exists(self, rel: str) -> bool:
        if self.remote:
            return self.stat(rel) is not None
        return self.local_path(rel).exists()

    def fetch(self, rel: str, verify: Callable[[Path], None] | None = None) -> Path:
        """The local file of artifact `rel`: downloaded into the working copy unless the copy there
        is already identical. InputError naming the URI when it does not exist."""
        local = self.local_path(rel)
        if not self.remote:
            if not local.is_file():
                raise InputError(f"{self.uri(rel)}: no such file")
            return local
        obj = self.stat(rel)
        if obj is None:
            raise InputError(f"{self.uri(rel)}: no such object")
        if _same(local, obj):
            return local
        t0 = time.perf_counter()
        path = self.download(obj, local, verify)
        log.info("fetched %s (%.1f MB) in %.1fs", self.uri(rel), obj.size / 2**20, time.perf_counter() - t0)
        return path

    def fetch_tree(self, rel_dir: str, skip: Callable[[str], bool] | None = None) -> Path:
        """The local folder of `rel_dir` with every object under it (remote roots: downloaded where
        the working copy differs; `skip(rel)` leaves an object out)."""
        if self.remote:
            fetched = 0
            for obj in self.walk(rel_dir):
                if (skip is not None and skip(obj.rel)) or _same(self.local_path(obj.rel), obj):
                    continue
                self.download(obj)
                fetched += 1
            if fetched:
                log.info("fetched %d object(s) under %s", fetched, self.uri(rel_dir))
        return self.local_path(rel_dir)

    def publish(self, *rels: str) -> list[str]:
        """Upload the working-copy files `rels` in the given order (remote roots); their URIs."""
        uris = []
        for rel in rels:
            local = self.local_path(rel)
            if self.remote:
                if not local.is_file():
                    raise GogokuError(f"publish {self.uri(rel)}: {local} does not exist")
                self.upload(local, rel)
            uris.append(self.uri(rel))
        return uris

    def publish_tree(self, rel_dir: str, last: Sequence[str] = ()) -> list[str]:
        """Upload every file under `rel_dir` that the bucket lacks or holds differently; files named
        in `last` (completion markers) go after all the others. Temp files are never uploaded."""
        folder = self.local_path(rel_dir)
        if not self.remote or not folder.is_dir():
            return []
        remote = {o.rel: o for o in self.walk(rel_dir)}
        files = sorted(p for p in folder.rglob("*") if p.is_file() and not _is_temp(p.name))
        files.sort(key=lambda p: p.name in last)
        uploaded = []
        for path in files:
            rel = path.relative_to(self.root.local).as_posix()
            if _same(path, remote.get(rel)):
                continue
            self.upload(path, rel)
            uploaded.append(self.uri(rel))
        if uploaded:
            log.info("published %d file(s) under %s", len(uploaded), self.uri(rel_dir))
        return uploaded

    def write_json(self, rel: str, obj: Any) -> str:
        """Write (and publish) a small JSON artifact such as a pointer: local first, then uploaded."""
        path = self._writable(rel)
        write_json_atomic(obj, path)
        self.publish(rel)
        return self.uri(rel)

    def write_text(self, rel: str, text: str) -> str:
        path = self._writable(rel)
        atomic_write(path, lambda tmp: tmp.write_text(text))
        self.publish(rel)
        return self.uri(rel)

    def read_json(self, rel: str) -> Any:
        path = self.fetch(rel)
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise InputError(f"{self.uri(rel)}: not readable JSON ({exc.__class__.__name__}: {exc})") from None

    def _writable(self, rel: str) -> Path:
        path = self.local_path(rel)
        ensure_writable_dir(path.parent, self.url if not self.remote else f"the working copy of {self.url}")
        return path

    def localize(self, location: str | os.PathLike[str], verify: Callable[[Path], None] | None = None) -> Path:
        """A local file for `location`: an artifact of this root (URI or path), another object-store
        URI (downloaded into the local cache), or a local path. InputError when it does not exist."""
        text = os.fspath(location).strip()
        rel = self.root.relative(text)
        if rel is not None:
            return self.fetch(rel, verify)
        m = _URL.fullmatch(text)
        if m is not None and m.group("scheme").lower() != "file":
            other = Store.from_url(f"{m.group('scheme')}://{m.group('bucket')}", local_cache=self.cache_base)
            return other.fetch(m.group("prefix") or "", verify)
        path = Path(text[len("file://"):] if text.startswith("file://") else text).expanduser()
        if not path.is_file():
            raise InputError(f"{text}: no such file")
        return path


class CorruptObject(GogokuError):
    """A downloaded object does not match what the store reported, or fails its content check."""


def _same(local: Path, obj: RemoteObject | None) -> bool:
    """The local file holds the object's content (size, then MD5 where the store reports one)."""
    if obj is None or not local.is_file():
        return False
    if local.stat().st_size != obj.size:
        return False
    return obj.md5 is None or file_md5(local) == obj.md5


def _is_temp(name: str) -> bool:
    return name.startswith(".") and name.endswith(".tmp")


def ensure_writable_dir(folder: Path, what: str) -> Path:
    """Create `folder` if needed; InputError naming `what` when that is impossible (a file in the
    way, a read-only or full disk)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise InputError(f"{what}: {folder} exists and is not a folder") from None
    except OSError as exc:
        raise InputError(f"{what}: cannot create {folder} ({exc.strerror or exc})") from None
    if not os.access(folder, os.W_OK):
        raise InputError(f"{what}: {folder} is not writable (a read-only data root?)")
    return folder


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
