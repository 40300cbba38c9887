"""The raw parquet cache: one file per fetched date range, combined across files, gaps fetched once.

Files live at `root/raw/<source>/<source>_YYYYMMDD_YYYYMMDD.parquet`, named by the (calendar) range
they were written for, which may include days without rows. Coverage is counted in JPX business
days: a request is served from up to `max_files` fresh files (adjacent files combine, fixing the
reference's defects 1 and 2), and the business days still missing are fetched as few contiguous
ranges. Rows dated on non-business days are kept when a fetch returns them, but such days are never
fetched on their own.

Integrity: every file is written atomically (temp file, fsync, rename) and carries its source, range,
date column, row count and schema in the parquet footer (key `gogoku.cache`); a file that cannot be
read or does not match its footer or its name is deleted with a warning and its days are refetched,
never served. Select-fetch-write runs under a per-source file lock (`raw/.locks/<source>.lock`),
so two processes refreshing the same source neither corrupt nor duplicate each other's files.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import polars as pl
from filelock import FileLock, Timeout

from gogoku.calendar import business_days
from gogoku.errors import GogokuError, InputError
from gogoku.io import write_parquet_atomic

logger = logging.getLogger(__name__)

HitType = Literal["complete", "partial", "miss"]
Fetch = Callable[[dt.date, dt.date], pl.DataFrame]

_SOURCE_NAME = re.compile(r"[a-z0-9_]+")
_PRIORITY = "__gogoku_cache_priority"
META_KEY = "gogoku.cache"
LOCKS_DIR = ".locks"
FORMAT_VERSION = 1


class CacheFileError(GogokuError):
    """A cache file that cannot be read or does not match its footer metadata or its name."""


@dataclass(frozen=True)
class CacheFile:
    path: Path
    start: dt.date
    end: dt.date
    mtime: float

    def covers(self, start: dt.date, end: dt.date) -> bool:
        return self.start <= start and end <= self.end


@dataclass(frozen=True)
class CacheResult:
    frame: pl.DataFrame
    path: Path
    api_calls: int
    hit: HitType
    coverage: float
    # The ranges fetched, one per fetch call (so len(missing_ranges) == api_calls).
    missing_ranges: list[tuple[dt.date, dt.date]] = field(default_factory=list)
    # True when this load wrote `path` (a fetch or a merge of several files), False on a plain hit.
    written: bool = False


def cache_file_name(source: str, start: dt.date, end: dt.date) -> str:
    return f"{source}_{start:%Y%m%d}_{end:%Y%m%d}.parquet"


def parse_cache_file_name(source: str, name: str) -> tuple[dt.date, dt.date] | None:
    """(start, end) of a cache file name of `source`, or None when the name is not one."""
    m = re.fullmatch(rf"{re.escape(source)}_(\d{{8}})_(\d{{8}})\.parquet", name)
    if m is None:
        return None
    try:
        start = dt.datetime.strptime(m.group(1), "%Y%m%d").date()
        end = dt.datetime.strptime(m.group(2), "%Y%m%d").date()
    except ValueError:
        return None
    return (start, end) if start <= end else None


def cache_file_metadata(
    source: str, start: dt.date, end: dt.date, date_col: str, frame: pl.DataFrame
) -> dict[str, str]:
    """The footer key-value metadata that `read_cache_file` verifies."""
    info = {
        "format": FORMAT_VERSION,
        "source": source,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "date_col": date_col,
        "rows": frame.height,
        "schema": {name: str(dtype) for name, dtype in frame.schema.items()},
    }
    return {META_KEY: json.dumps(info, sort_keys=True)}


def read_cache_metadata(path: Path, name: str | None = None) -> dict[str, Any]:
    """The `gogoku.cache` footer of a cache file, checked against its name (`name`, default the
    file's own; the source is the folder's name). Reads the footer only (cheap). CacheFileError when
    the footer is unreadable, absent or names another source or range."""
    path = Path(path)
    source = path.parent.name
    name = path.name if name is None else name
    span = parse_cache_file_name(source, name)
    if span is None:
        raise CacheFileError(f"{path}: {name!r} is not a cache file name for source {source!r}")
    try:
        raw = pl.read_parquet_metadata(path).get(META_KEY)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise CacheFileError(f"{path}: unreadable parquet footer ({_first_line(exc)})") from None
    if raw is None:
        raise CacheFileError(f"{path}: no {META_KEY!r} footer metadata (not written by this cache)")
    try:
        info = json.loads(raw)
        claimed = (info["source"], dt.date.fromisoformat(info["start"]), dt.date.fromisoformat(info["end"]))
        int(info["rows"]), str(info["date_col"]), dict(info["schema"])
    except (ValueError, KeyError, TypeError) as exc:
        raise CacheFileError(f"{path}: malformed {META_KEY!r} footer metadata ({exc})") from None
    if claimed != (source, *span):
        raise CacheFileError(f"{path}: footer says {claimed[0]} {claimed[1]}..{claimed[2]}, the name {name} disagrees")
    return info


def read_cache_file(path: Path, name: str | None = None) -> pl.DataFrame:
    """Read a cache file and verify it against its footer metadata and name: row count, schema, and
    every row's date inside the file's range. CacheFileError on any mismatch; never returns bad data."""
    path = Path(path)
    info = read_cache_metadata(path, name)
    try:
        frame = pl.read_parquet(path)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise CacheFileError(f"{path}: unreadable parquet data ({_first_line(exc)})") from None
    if frame.height != info["rows"]:
        raise CacheFileError(f"{path}: {frame.height} rows, the footer says {info['rows']}")
    schema = {name: str(dtype) for name, dtype in frame.schema.items()}
    if schema != info["schema"]:
        raise CacheFileError(f"{path}: schema {schema} differs from the footer's {info['schema']}")
    date_col = info["date_col"]
    if frame.height and date_col in frame.columns and frame.schema[date_col] == pl.Date:
        lo, hi = frame.select(pl.col(date_col).min().alias("lo"), pl.col(date_col).max().alias("hi")).row(0)
        start, end = dt.date.fromisoformat(info["start"]), dt.date.fromisoformat(info["end"])
        if lo is not None and (lo < start or hi > end):
            raise CacheFileError(f"{path}: {date_col} spans {lo}..{hi}, outside the file's range {start}..{end}")
    return frame


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def merge_business_day_runs(
    missing: Sequence[dt.date], days: Sequence[dt.date]
) -> list[tuple[dt.date, dt.date]]:
    """Join missing business days into (first, last) runs; days between two consecutive business
    days of `days` (weekends, holidays) never split a run."""
    position = {d: i for i, d in enumerate(days)}
    runs: list[tuple[dt.date, dt.date]] = []
    previous = -2
    for d in sorted(missing):
        i = position[d]
        if runs and i == previous + 1:
            runs[-1] = (runs[-1][0], d)
        else:
            runs.append((d, d))
        previous = i
    return runs


class RawCache:
    def __init__(
        self,
        root: Path,
        max_age_days: float | None = 7,
        min_coverage: float = 0.3,
        max_files: int = 3,
        now: Callable[[], float] = time.time,
        lock_timeout: float = 1800.0,
    ) -> None:
        if max_files < 1:
            raise InputError(f"max_files must be >= 1, got {max_files}")
        if not 0.0 <= min_coverage <= 1.0:
            raise InputError(f"min_coverage must be in [0, 1], got {min_coverage}")
        if max_age_days is not None and max_age_days < 0:
            raise InputError(f"max_age_days must be >= 0, got {max_age_days}")
        self.root = Path(root)
        self.max_age_days = max_age_days
        self.min_coverage = min_coverage
        self.max_files = max_files
        self.now = now
        self.lock_timeout = lock_timeout

    def source_dir(self, source: str) -> Path:
        if not _SOURCE_NAME.fullmatch(source):
            raise InputError(f"source name {source!r} must be lower-case letters, digits and '_'")
        return self.root / "raw" / source

    def files(self, source: str) -> list[CacheFile]:
        """All files of `source` whose names parse (temp files and strangers are skipped)."""
        folder = self.source_dir(source)
        if not folder.is_dir():
            return []
        found = []
        for path in sorted(folder.iterdir()):
            span = parse_cache_file_name(source, path.name)
            if span is None or not path.is_file():
                continue
            try:
                mtime = path.stat().st_mtime
            except FileNotFoundError:
                continue
            found.append(CacheFile(path, span[0], span[1], mtime))
        return found

    def is_fresh(self, file: CacheFile) -> bool:
        return self.max_age_days is None or self.now() - file.mtime <= self.max_age_days * 86400.0

    @contextmanager
    def lock(self, source: str) -> Iterator[Path]:
        """Hold the per-source lock (an OS file lock, released if the holder dies) for a
        select-fetch-write or a sync; GogokuError naming the lock file after `lock_timeout` s."""
        path = self.source_dir(source).parent / LOCKS_DIR / f"{source}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(path, timeout=self.lock_timeout, preserve_lock_file=True)
        t0 = time.perf_counter()
        try:
            lock.acquire()
        except Timeout:
            raise GogokuError(
                f"cache lock {path} is still held by another process after {self.lock_timeout:g}s "
                f"(a refresh of {source} running elsewhere?); retry when it has finished"
            ) from None
        waited = time.perf_counter() - t0
        if waited > 1.0:
            logger.info("cache %s: waited %.1fs for lock %s", source, waited, path)
        try:
            yield path
        finally:
            lock.release()

    def load(
        self,
        source: str,
        start: dt.date,
        end: dt.date,
        fetch: Fetch,
        date_col: str = "Date",
        key_cols: Sequence[str] = ("Code", "Date"),
        force: bool = False,
    ) -> CacheResult:
        if end < start:
            raise InputError(f"cache request for {source}: start {start} is after end {end}")
        with self.lock(source):
            return self._load_locked(source, start, end, fetch, date_col, key_cols, force)

    def _load_locked(
        self,
        source: str,
        start: dt.date,
        end: dt.date,
        fetch: Fetch,
        date_col: str,
        key_cols: Sequence[str],
        force: bool,
    ) -> CacheResult:
        folder = self.source_dir(source)
        days = business_days(start, end)
        fresh = [] if force else [f for f in self.files(source) if self.is_fresh(f)]

        # Select and read; a file that fails verification is deleted and the selection redone.
        while True:
            chosen, covered = self._select(fresh, start, end, days)
            parts, bad = self._read(chosen, start, end, date_col)
            if bad is None:
                break
            fresh.remove(bad)

        coverage = len(covered) / len(days) if days else float(bool(chosen))
        if len(chosen) == 1 and chosen[0].covers(start, end):
            # Files are written unique and sorted on the keys; _read already cut [start, end].
            frame = parts[0].drop(_PRIORITY)
            self._log(source, start, end, "complete", coverage, [], frame.height, chosen[0].path)
            return CacheResult(frame, chosen[0].path, 0, "complete", coverage, [])

        if force or not chosen or coverage < self.min_coverage:
            hit: HitType = "miss"
            ranges = [(start, end)]
            parts = []
        else:
            missing = [d for d in days if d not in covered]
            ranges = merge_business_day_runs(missing, days)
            hit = "partial" if ranges else "complete"

        # Fetch everything before writing anything: a failed fetch leaves the cache untouched.
        fetched = [_checked(fetch(a, b), source, date_col, a, b) for a, b in ranges]
        frame = _combine([*parts, *fetched], date_col, key_cols, start, end)
        path = write_parquet_atomic(
            frame,
            folder / cache_file_name(source, start, end),
            metadata=cache_file_metadata(source, start, end, date_col, frame),
        )
        if parts:
            # A file's mtime is the fetch time of its oldest rows, so merging never extends the
            # life of stale rows: each row is refetched at most max_age_days after it was fetched.
            oldest = min(f.mtime for f in chosen)
            os.utime(path, (oldest, oldest))
        self._compact(source, start, end, keep=path)
        self._log(source, start, end, hit, coverage, ranges, frame.height, path)
        return CacheResult(frame, path, len(ranges), hit, coverage, ranges, written=True)

    def _select(
        self, files: list[CacheFile], start: dt.date, end: dt.date, days: list[dt.date]
    ) -> tuple[list[CacheFile], set[dt.date]]:
        """Greedy set cover of the requested business days by up to max_files files (newest first
        on ties); a single file covering the whole calendar range wins outright."""
        covering = [f for f in files if f.covers(start, end)]
        if covering:
            best = max(covering, key=lambda f: (f.mtime, -(f.end - f.start).days))
            return [best], set(days)
        spans = {f: {d for d in days if f.start <= d <= f.end} for f in files}
        chosen: list[CacheFile] = []
        covered: set[dt.date] = set()
        while len(chosen) < self.max_files and len(covered) < len(days):
            candidates = [f for f in files if f not in chosen]
            if not candidates:
                break
            best = max(candidates, key=lambda f: (len(spans[f] - covered), f.mtime))
            gain = spans[best] - covered
            if not gain:
                break
            chosen.append(best)
            covered |= gain
        return chosen, covered

    def _read(
        self, chosen: list[CacheFile], start: dt.date, end: dt.date, date_col: str
    ) -> tuple[list[pl.DataFrame], CacheFile | None]:
        """Rows of each chosen file inside both its own range and the request, newer files first
        in priority; returns the first file that fails verification (deleted) instead."""
        parts = []
        for rank, f in enumerate(sorted(chosen, key=lambda f: f.mtime)):
            lo, hi = max(start, f.start), min(end, f.end)
            try:
                raw = read_cache_file(f.path)
                if raw.height and date_col not in raw.columns:
                    raise CacheFileError(f"{f.path}: no {date_col!r} column")
                part = _in_range(raw, date_col, lo, hi)
            except (CacheFileError, InputError) as exc:
                logger.warning("cache file %s is unreadable or corrupt, deleting it: %s", f.path, exc)
                f.path.unlink(missing_ok=True)
                return [], f
            parts.append(part.with_columns(pl.lit(rank, dtype=pl.Int32).alias(_PRIORITY)))
        return parts, None

    def _compact(self, source: str, start: dt.date, end: dt.date, keep: Path) -> None:
        """Remove files whose whole range the new file covers (only once it is safely in place)."""
        for f in self.files(source):
            if f.path != keep and start <= f.start and f.end <= end:
                f.path.unlink(missing_ok=True)
                logger.info("cache compaction removed %s (covered by %s)", f.path.name, keep.name)

    @staticmethod
    def _log(
        source: str,
        start: dt.date,
        end: dt.date,
        hit: HitType,
        coverage: float,
        ranges: list[tuple[dt.date, dt.date]],
        rows: int,
        path: Path,
    ) -> None:
        logger.info(
            "cache %s %s..%s: hit=%s coverage=%.3f fetched=%s rows=%d file=%s",
            source,
            start,
            end,
            hit,
            coverage,
            [f"{a}..{b}" for a, b in ranges],
            rows,
            path.name,
        )


def _in_range(frame: pl.DataFrame, date_col: str, lo: dt.date, hi: dt.date) -> pl.DataFrame:
    if frame.height == 0 and date_col not in frame.columns:
        return frame
    dtype = frame.schema[date_col]
    if dtype == pl.Null:  # an empty fetch may not know its types
        frame = frame.with_columns(pl.col(date_col).cast(pl.Date))
    elif dtype != pl.Date:
        raise InputError(f"column {date_col!r} has type {dtype}, expected Date")
    return frame.filter(pl.col(date_col).is_between(lo, hi))


def _checked(frame: pl.DataFrame, source: str, date_col: str, start: dt.date, end: dt.date) -> pl.DataFrame:
    if not isinstance(frame, pl.DataFrame):
        raise InputError(
            f"fetch for {source} {start}..{end} returned {type(frame).__name__}, not a polars DataFrame"
        )
    if frame.height and date_col not in frame.columns:
        raise InputError(f"fetch for {source} {start}..{end} returned no {date_col!r} column")
    # Fresh rows win over cached ones in de-duplication.
    return frame.with_columns(pl.lit(1 << 30, dtype=pl.Int32).alias(_PRIORITY))


def _combine(
    parts: list[pl.DataFrame], date_col: str, key_cols: Sequence[str], start: dt.date, end: dt.date
) -> pl.DataFrame:
    """Concatenate, keep [start, end], de-duplicate on the key columns (highest priority wins), sort."""
    parts = [p for p in parts if p.height or date_col in p.columns]
    if not parts:
        return pl.DataFrame()
    frame = _in_range(pl.concat(parts, how="diagonal_relaxed"), date_col, start, end)
    keys = [c for c in key_cols if c in frame.columns]
    if keys:
        frame = frame.sort(_PRIORITY, descending=True).unique(subset=keys, keep="first", maintain_order=True)
    return frame.drop(_PRIORITY).sort(keys or [date_col])
