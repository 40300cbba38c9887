"""The raw parquet cache: one file per fetched date range, combined across files, gaps fetched once.

Files live at `root/raw/<source>/<source>_YYYYMMDD_YYYYMMDD.parquet`, named by the (calendar) range
they were written for, which may include days without rows. Coverage is counted in JPX business
days: a request is served from up to `max_files` fresh files (adjacent files combine), and the
business days still missing are fetched as few contiguous ranges. Rows dated on non-business days
are kept when a fetch returns them, but such days are never fetched on their own.

Publication: a day counts as covered only once its data is final. Each source declares when that is
(`Publication`: a lag in JPX business days and a time of day, Asia/Tokyo); a fetch reports its
`as_of` (the API's clock: the server's HTTP `Date`, else the wall clock at the fetch's start), and
every file records `as_of` and `final_through` (the last day whose data was final when its rows were
fetched) in its footer. Days after `final_through` are fetched again by the next load that asks for
them, and the rows of a fetched range replace every cached row of that range, so a provisional row
that changed or vanished upstream never survives. Files of format 1 (no `as_of`) count as fetched at
their mtime (the fetch time; a merged file keeps its oldest part's), the safe side: a file written
more than a week after its end is final through its end, a younger one only through the days
published before its mtime. A load that cannot fetch (offline, or a read-only root) serves the days a
file holds even when they are not final yet (as they were fetched, and says so in the log).

Restatements (`Restatement`): where the API rewrites history when an event happens (a split makes
J-Quants back-adjust the `Adjustment*` columns of that stock), a load that fetches an event's row
(final) refetches, by code, the older rows of that code in every cache file of the source fetched
before the event, patches those files in place (atomically, keeping their mtime) and records the
event in their footers (`revisions`) so that it is not applied twice. Other files are patched before
the file holding the event's row is written: a crash in between leaves that row uncached, and the
next load finds the event again.

Integrity: every file is written atomically (temp file, fsync, rename) and carries its source, range,
date column, row count, schema, `as_of`, `final_through` and `revisions` in the parquet footer (key
`gogoku.cache`); a file that cannot be read or does not match its footer or its name is deleted with
a warning and its days are refetched, never served. Select-fetch-write runs under a per-source file
lock (`raw/.locks/<source>.lock`), so two processes refreshing the same source neither corrupt nor
duplicate each other's files. On a data root this process cannot write, the lock lives in a
per-user folder under the temp dir (keyed by the root), hits are served without writing anything,
and a load that would need to fetch fails with one line saying that the root is read-only.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, Protocol

import polars as pl
from filelock import FileLock, Timeout

from gogoku.calendar import (
    TOKYO,
    add_business_days,
    business_days,
    next_business_day,
    previous_business_day,
    tokyo_date,
)
from gogoku.errors import GogokuError, InputError
from gogoku.io import write_parquet_atomic

logger = logging.getLogger(__name__)

HitType = Literal["complete", "partial", "miss"]

_SOURCE_NAME = re.compile(r"[a-z0-9_]+")
_PRIORITY = "__gogoku_cache_priority"
META_KEY = "gogoku.cache"
LOCKS_DIR = ".locks"
FORMAT_VERSION = 2  # 2: as_of, final_through and revisions in the footer
FORMATS = (1, 2)
# Published times are the API's "about"s: a day counts as final only this long after its time.
SETTLE_MARGIN = dt.timedelta(hours=1)
_ONE_DAY = dt.timedelta(days=1)


class CacheFileError(GogokuError):
    """A cache file that cannot be read or does not match its footer metadata or its name."""


@dataclass(frozen=True)
class Publication:
    """When the API's data for a day (the value of the source's date column) is final.

    The day's data is final at `at` past midnight Asia/Tokyo of the JPX business day `lag` business
    days after it (a day that is not a business day counts from the next one; `lag=-1` is the business
    day before), plus SETTLE_MARGIN; `at` may pass 24 h (27:00 is 03:00 the next morning). A day after
    the as-of day is never final, whatever the lag. `ahead`: the data is known in advance (the trading
    calendar) and final as soon as it is fetched.
    """

    lag: int = 0
    at: dt.timedelta = dt.timedelta(hours=24)
    ahead: bool = False

    def final_at(self, day: dt.date) -> dt.datetime:
        """The moment `day`'s data counts as final."""
        base = add_business_days(day, self.lag)
        return dt.datetime.combine(base, dt.time(), TOKYO) + self.at + SETTLE_MARGIN

    def is_final(self, day: dt.date, as_of: dt.datetime) -> bool:
        if self.ahead:
            return True
        return day <= tokyo_date(as_of) and self.final_at(day) <= as_of

    def final_through(self, as_of: dt.datetime) -> dt.date:
        """The last calendar day up to which every business day's data is final at `as_of`: the day
        before the first business day that is not (dt.date.max when the data is known ahead)."""
        if self.ahead:
            return dt.date.max
        first_open = next_business_day(tokyo_date(as_of))  # after the as-of day: never final
        day = previous_business_day(first_open)
        while not self.is_final(day, as_of):
            first_open, day = day, previous_business_day(day)
        return first_open - _ONE_DAY


# Without a declared publication, a day's data is final once the day is over in Tokyo.
END_OF_DAY = Publication()


@dataclass(frozen=True)
class Fetched:
    """What a fetch returns when it knows its clock: the rows and the API's time they were read at."""

    frame: pl.DataFrame
    as_of: dt.datetime  # aware


# A fetch returns a frame (its as-of is then the wall clock at its start) or a Fetched.
Fetch = Callable[[dt.date, dt.date], "pl.DataFrame | Fetched"]
FetchCodes = Callable[[dt.date, dt.date, list[str]], "pl.DataFrame | Fetched"]


class Restatement(Protocol):
    """A rule by which the API rewrites history: rows that announce an event, whose code's rows dated
    before the event's day are restated (the cache refetches those by code; see the module docstring).

    `name` prefixes the event ids recorded in file footers; `code_col` is the column to refetch by.
    """

    name: str
    code_col: str

    def events(self, frame: pl.DataFrame, date_col: str) -> set[tuple[str, dt.date]]:
        """(code, day) of each row of `frame` that announces a restatement of that code before `day`."""
        ...


@dataclass(frozen=True)
class CacheFile:
    path: Path
    start: dt.date
    end: dt.date
    mtime: float
    # From the footer (RawCache.load reads it): the API's time of the oldest rows, the last final
    # day, and the restatement events the rows reflect.
    as_of: dt.datetime | None = None
    final: dt.date | None = None
    revisions: frozenset[str] = frozenset()

    def covers(self, start: dt.date, end: dt.date) -> bool:
        return self.start <= start and end <= self.end

    @property
    def final_end(self) -> dt.date:
        """The last day of the file whose data is final (the day before `start` when none is)."""
        return self.end if self.final is None else min(self.end, self.final)


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
    # Other cache files this load rewrote (restatements), and the restatement events it applied.
    patched: list[Path] = field(default_factory=list)
    revisions: list[str] = field(default_factory=list)
    # The last day of `path` whose data is final (None on a hit served without writing).
    final_through: dt.date | None = None


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
    source: str,
    start: dt.date,
    end: dt.date,
    date_col: str,
    frame: pl.DataFrame,
    as_of: dt.datetime | None = None,
    final_through: dt.date | None = None,
    revisions: Sequence[str] = (),
) -> dict[str, str]:
    """The footer key-value metadata that `read_cache_file` verifies. Without `as_of` the file counts
    as fetched at its mtime (as files of format 1 do)."""
    info: dict[str, Any] = {
        "format": FORMAT_VERSION,
        "source": source,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "date_col": date_col,
        "rows": frame.height,
        "schema": {name: str(dtype) for name, dtype in frame.schema.items()},
        "revisions": sorted(set(revisions)),
    }
    if as_of is not None:
        info["as_of"] = as_of.astimezone(dt.UTC).isoformat()
        info["final_through"] = (end if final_through is None else max(min(final_through, end), start - _ONE_DAY)).isoformat()
    return {META_KEY: json.dumps(info, sort_keys=True)}


def read_cache_metadata(path: Path, name: str | None = None) -> dict[str, Any]:
    """The `gogoku.cache` footer of a cache file, checked against its name (`name`, default the
    file's own; the source is the folder's name). Reads the footer only (cheap). CacheFileError when
    the footer is unreadable, absent, malformed or names another source or range."""
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
        if info.get("format", 1) not in FORMATS:
            raise ValueError(f"format {info.get('format')!r}")
        if "as_of" in info:
            _aware(dt.datetime.fromisoformat(info["as_of"]))
            dt.date.fromisoformat(info["final_through"])
        [str(r) for r in info.get("revisions", [])]
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


def _aware(moment: dt.datetime) -> dt.datetime:
    if moment.tzinfo is None:
        raise ValueError(f"as_of {moment.isoformat()} has no time zone")
    return moment


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


def user_lock_dir(root: Path) -> Path:
    """Where the locks of a data root this process cannot write live: a per-user folder under the
    temp dir, one subfolder per root (so processes of one user sharing the root share its locks)."""
    key = hashlib.sha256(str(Path(root).resolve()).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"gogoku-locks-{_uid()}" / key


def _uid() -> int:
    return os.geteuid() if hasattr(os, "geteuid") else 0


def _access(path: Path, mode: int) -> bool:
    # The effective ids decide what this process may do (they differ from the real ones under setuid).
    if os.access in os.supports_effective_ids:
        return os.access(path, mode, effective_ids=True)
    return os.access(path, mode)


def _can_write(path: Path) -> bool:
    """Whether this process could create or change `path` (checks its nearest existing ancestor)."""
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            return False
        probe = probe.parent
    if probe.is_dir():
        return _access(probe, os.W_OK | os.X_OK)
    return probe == path and _access(probe, os.W_OK)


@dataclass(frozen=True)
class _Rules:
    date_col: str
    key_cols: tuple[str, ...]
    publication: Publication
    restatement: Restatement | None
    fetch_codes: FetchCodes | None
    before_restate: Callable[[], None] | None


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

    def writable(self, source: str) -> bool:
        """Whether this process can write the source's files and its lock under the root."""
        lock = self._lock_path(source)
        return _can_write(self.source_dir(source)) and _can_write(lock)

    def _lock_path(self, source: str) -> Path:
        return self.source_dir(source).parent / LOCKS_DIR / f"{source}.lock"

    @contextmanager
    def lock(self, source: str) -> Iterator[Path]:
        """Hold the per-source lock (an OS file lock, released if the holder dies) for a
        select-fetch-write or a sync; GogokuError naming the lock file after `lock_timeout` s. On a
        root this process cannot write, the lock is taken in `user_lock_dir(root)` instead."""
        path = self._lock_path(source)
        if self.writable(source):
            path.parent.mkdir(parents=True, exist_ok=True)
        else:
            folder = user_lock_dir(self.root)
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            if hasattr(os, "geteuid") and folder.parent.stat().st_uid != _uid():
                raise GogokuError(f"lock folder {folder.parent} belongs to another user: remove it, or set TMPDIR")
            path = folder / path.name
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
        *,
        publication: Publication | None = None,
        restatement: Restatement | None = None,
        fetch_codes: FetchCodes | None = None,
        before_restate: Callable[[], None] | None = None,
        offline: bool = False,
    ) -> CacheResult:
        """The rows of `source` for [start, end], from the cache where it holds them final, else
        fetched (see the module docstring).

        `publication` says when a day's data is final (default: once the day is over in Tokyo);
        `restatement` with `fetch_codes(start, end, codes)` patches rows that the API restated;
        `before_restate` runs (under the lock) before files are patched, e.g. to pull every file of
        the source from an object store. `offline`: the caller cannot fetch, so days a file holds count
        as covered even when not final yet (served as fetched, logged); so do they on a read-only root.
        """
        if end < start:
            raise InputError(f"cache request for {source}: start {start} is after end {end}")
        if restatement is not None and fetch_codes is None:
            raise InputError(f"cache request for {source}: a restatement rule needs fetch_codes")
        rules = _Rules(date_col, tuple(key_cols), publication or END_OF_DAY, restatement, fetch_codes, before_restate)
        with self.lock(source):
            return self._load_locked(source, start, end, fetch, rules, force, offline)

    def _load_locked(
        self, source: str, start: dt.date, end: dt.date, fetch: Fetch, rules: _Rules, force: bool, offline: bool
    ) -> CacheResult:
        folder = self.source_dir(source)
        writable = self.writable(source)
        days = business_days(start, end)
        fresh = [] if force else self._annotated(
            [f for f in self.files(source) if self.is_fresh(f)], rules.publication, writable)

        chosen, covered, parts = self._select_read(fresh, start, end, days, rules.date_col, writable)
        coverage = len(covered) / len(days) if days else float(bool(chosen))
        if len(chosen) == 1 and chosen[0].start <= start and end <= chosen[0].final_end:
            # Files are written unique and sorted on the keys; _read already cut [start, end].
            frame = parts[0][1].drop(_PRIORITY)
            self._log(source, start, end, "complete", coverage, [], frame.height, chosen[0].path)
            return CacheResult(frame, chosen[0].path, 0, "complete", coverage, [])

        if (offline or not writable) and (len(covered) < len(days) or not days):
            # No fetch can bring the tail up to date: serve what the files hold, provisional days too.
            served = self._provisional(source, start, end, days, fresh, rules, writable, offline)
            if served is not None:
                return served

        if force or not chosen or coverage < self.min_coverage:
            hit: HitType = "miss"
            ranges = [(start, end)]
            parts = []
        else:
            missing = [d for d in days if d not in covered]
            ranges = merge_business_day_runs(missing, days)
            hit = "partial" if ranges else "complete"

        if not writable:
            if ranges:
                raise InputError(
                    f"data root {self.root} is read-only: the cache of {source} lacks "
                    f"{', '.join(f'{a}..{b}' for a, b in ranges)} and cannot be written; refresh the cache "
                    "from a process that can write it, or use a writable GOGOKU_DATA_ROOT"
                )
            frame = _combine([p for _, p in parts], rules.date_col, rules.key_cols, start, end)
            self._log(source, start, end, hit, coverage, [], frame.height, chosen[0].path)
            return CacheResult(frame, chosen[0].path, 0, hit, coverage, [])

        # Fetch everything before writing anything: a failed fetch leaves the cache untouched.
        fetched = [self._fetch(fetch, source, rules.date_col, a, b) for a, b in ranges]
        final = end
        for (_, b), got in zip(ranges, fetched, strict=True):
            through = rules.publication.final_through(got.as_of)
            if through < b:
                final = min(final, through)
        final = max(final, start - _ONE_DAY)
        # Rows of a fetched range replace the cached rows of that range; a part's rows past its
        # final day (provisional) are dropped where the fetch covers them.
        kept = [(f, _trim(p, f, ranges, days, rules.date_col)) for f, p in parts]
        as_of = min([g.as_of for g in fetched] + [f.as_of for f, _ in kept if f.as_of is not None])
        frame = _combine([p for _, p in kept] + [_fresh(g.frame) for g in fetched], rules.date_col,
                         rules.key_cols, start, end)

        patched: list[Path] = []
        applied: set[str] = set()
        if rules.restatement is not None:
            events = _final_events(rules, ranges, fetched)
            if events:
                frame, final, applied, patched = self._restate(
                    source, start, end, frame, kept, events, rules, final)
        revisions = _inherited(kept, fetched, rules) | applied

        path = write_parquet_atomic(
            frame,
            folder / cache_file_name(source, start, end),
            metadata=cache_file_metadata(source, start, end, rules.date_col, frame, as_of, final, sorted(revisions)),
        )
        if kept:
            # A file's mtime is the fetch time of its oldest rows, so merging never extends the
            # life of stale rows: each row is refetched at most max_age_days after it was fetched.
            oldest = min(f.mtime for f, _ in kept)
            os.utime(path, (oldest, oldest))
        self._compact(source, start, end, keep=path)
        self._log(source, start, end, hit, coverage, ranges, frame.height, path, final)
        return CacheResult(frame, path, len(ranges), hit, coverage, ranges, written=True, patched=patched,
                           revisions=sorted(applied), final_through=final)

    def _select_read(
        self, files: list[CacheFile], start: dt.date, end: dt.date, days: list[dt.date], date_col: str,
        writable: bool,
    ) -> tuple[list[CacheFile], set[dt.date], list[tuple[CacheFile, pl.DataFrame]]]:
        """Select and read; a file that fails verification is deleted and the selection redone."""
        files = list(files)
        while True:
            chosen, covered = self._select(files, start, end, days)
            parts, bad = self._read(chosen, start, end, date_col, writable)
            if bad is None:
                return chosen, covered, parts
            files.remove(bad)

    def _provisional(
        self, source: str, start: dt.date, end: dt.date, days: list[dt.date], files: list[CacheFile],
        rules: _Rules, writable: bool, offline: bool,
    ) -> CacheResult | None:
        """The request served from files that hold every business day, final or not (None when some
        day was never fetched); nothing is written."""
        loose = [replace(f, final=f.end) for f in files]
        true_final = {f.path: f.final_end for f in files}
        chosen, covered, parts = self._select_read(loose, start, end, days, rules.date_col, writable)
        if len(covered) < len(days) or not chosen:
            return None
        frame = _combine([p for _, p in parts], rules.date_col, rules.key_cols, start, end)
        final = min(true_final[f.path] for f in chosen)
        why = "offline" if offline else f"the data root {self.root} is read-only"
        (logger.info if offline else logger.warning)(
            "cache %s %s..%s: %s, served as cached: days after %s are not final yet (provisional rows)",
            source, start, end, why, final)
        self._log(source, start, end, "complete", 1.0, [], frame.height, chosen[0].path, final)
        return CacheResult(frame, chosen[0].path, 0, "complete", 1.0, [], final_through=final)

    def _fetch(self, fetch: Fetch, source: str, date_col: str, start: dt.date, end: dt.date) -> Fetched:
        wall = dt.datetime.fromtimestamp(self.now(), dt.UTC)
        got = fetch(start, end)
        if isinstance(got, Fetched):
            _checked(got.frame, source, date_col, start, end)
            if got.as_of.tzinfo is None:
                raise InputError(f"fetch for {source} {start}..{end} returned an as_of without a time zone")
            return got
        return Fetched(_checked(got, source, date_col, start, end), wall)

    def _annotated(self, files: list[CacheFile], publication: Publication, writable: bool) -> list[CacheFile]:
        """The files with their footer's as_of, final day and revisions; unreadable ones are deleted
        (left alone on a read-only root) and left out."""
        out = []
        for f in files:
            try:
                info = read_cache_metadata(f.path)
            except CacheFileError as exc:
                self._discard(f, exc, writable)
                continue
            except FileNotFoundError:
                continue
            out.append(annotate(f, info, publication))
        return out

    @staticmethod
    def _discard(f: CacheFile, exc: Exception, writable: bool) -> None:
        if writable:
            logger.warning("cache file %s is unreadable or corrupt, deleting it: %s", f.path, exc)
            f.path.unlink(missing_ok=True)
        else:
            logger.warning("cache file %s is unreadable or corrupt (read-only root: left in place): %s", f.path, exc)

    def _select(
        self, files: list[CacheFile], start: dt.date, end: dt.date, days: list[dt.date]
    ) -> tuple[list[CacheFile], set[dt.date]]:
        """Greedy set cover of the requested business days by the final days of up to max_files
        files (newest first on ties); a single file final over the whole calendar range wins outright."""
        covering = [f for f in files if f.start <= start and end <= f.final_end]
        if covering:
            best = max(covering, key=lambda f: (f.mtime, -(f.end - f.start).days))
            return [best], set(days)
        spans = {f: {d for d in days if f.start <= d <= f.final_end} for f in files}
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
        self, chosen: list[CacheFile], start: dt.date, end: dt.date, date_col: str, writable: bool = True
    ) -> tuple[list[tuple[CacheFile, pl.DataFrame]], CacheFile | None]:
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
                self._discard(f, exc, writable)
                return [], f
            parts.append((f, part.with_columns(pl.lit(rank, dtype=pl.Int32).alias(_PRIORITY))))
        return parts, None

    # ------------------------------------------------------------------ restatements
    def _restate(
        self,
        source: str,
        start: dt.date,
        end: dt.date,
        frame: pl.DataFrame,
        kept: list[tuple[CacheFile, pl.DataFrame]],
        events: dict[str, tuple[str, dt.date]],
        rules: _Rules,
        final: dt.date,
    ) -> tuple[pl.DataFrame, dt.date, set[str], list[Path]]:
        """Patch the rows that `events` restated: in every other file of the source (rewritten in
        place) and in the cached part of `frame`; returns (frame, final day, events applied, files)."""
        assert rules.restatement is not None and rules.fetch_codes is not None
        code_col, date_col = rules.restatement.code_col, rules.date_col
        if rules.before_restate is not None:
            rules.before_restate()
        # Files inside [start, end] are replaced by this load's file (compaction): not patched.
        others = [f for f in self._annotated(self.files(source), rules.publication, True)
                  if not (start <= f.start and f.end <= end)]
        # What each target needs: {code: last event day} over the events it does not reflect yet.
        needs: dict[Path | None, dict[str, dt.date]] = {}
        for f in others:
            wanted = _needed(f, events, rules.publication)
            if not wanted:
                continue
            try:
                holds = _holds_rows(pl.scan_parquet(f.path), code_col, date_col, f.start, f.final_end, wanted)
            except (pl.exceptions.PolarsError, OSError) as exc:
                self._discard(f, CacheFileError(f"{f.path}: unreadable parquet data ({_first_line(exc)})"), True)
                continue
            if holds:
                needs[f.path] = wanted
        in_frame: dict[str, dt.date] = {}
        for f, part in kept:
            for code, day in _needed(f, events, rules.publication).items():
                if _holds_rows(part.lazy(), code_col, date_col, start, min(end, final), {code: day}):
                    in_frame[code] = max(day, in_frame.get(code, day))
        if in_frame:
            needs[None] = in_frame
        if not needs:
            return frame, final, set(events), []

        codes = sorted({c for wanted in needs.values() for c in wanted})
        lo = min([f.start for f in others if f.path in needs] + ([start] if None in needs else []))
        hi = max(day for wanted in needs.values() for day in wanted.values()) - _ONE_DAY
        got = self._fetch(lambda a, b: rules.fetch_codes(a, b, codes), source, date_col, lo, max(lo, hi))  # type: ignore[misc]
        late = {e: (c, d) for e, (c, d) in events.items() if not rules.publication.is_final(d, got.as_of)}
        if late:
            # The rows read for the patch predate an event: leave its day unfinal so it is found again.
            logger.warning("cache %s: restatement fetch is older than %s; they stay pending", source, sorted(late))
            final = min([final] + [d - _ONE_DAY for _, d in late.values()])
        done = {e for e in events if e not in late}
        live = {events[e][0] for e in done}  # the codes whose patch is current
        patch = got.frame

        patched: list[Path] = []
        for f in others:
            wanted = {c: d for c, d in needs.get(f.path, {}).items() if c in live}
            if not wanted:
                continue
            try:
                info = read_cache_metadata(f.path)
                data = read_cache_file(f.path)
            except CacheFileError as exc:
                self._discard(f, exc, True)
                continue
            data = _patched(data, patch, code_col, date_col, f.start, f.final_end, wanted, rules.key_cols)
            applied = set(info.get("revisions", [])) | {e for e in done if events[e][0] in wanted}
            as_of = dt.datetime.fromisoformat(info["as_of"]) if "as_of" in info else f.as_of
            write_parquet_atomic(data, f.path, metadata=cache_file_metadata(
                source, f.start, f.end, info["date_col"], data, as_of, f.final_end, sorted(applied)))
            os.utime(f.path, (f.mtime, f.mtime))  # the other rows are as old as before
            patched.append(f.path)
            logger.info("cache %s: restated %s in %s (%s)", source, sorted(wanted), f.path.name, rules.restatement.name)
        if None in needs:
            wanted = {c: d for c, d in needs[None].items() if c in live}
            frame = _patched(frame, patch, code_col, date_col, start, min(end, final), wanted, rules.key_cols)
        return frame, final, done, patched

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
        final: dt.date | None = None,
    ) -> None:
        logger.info(
            "cache %s %s..%s: hit=%s coverage=%.3f fetched=%s rows=%d file=%s%s",
            source,
            start,
            end,
            hit,
            coverage,
            [f"{a}..{b}" for a, b in ranges],
            rows,
            path.name,
            "" if final is None or final >= end else f" final_through={final}",
        )


def annotate(f: CacheFile, info: dict[str, Any], publication: Publication) -> CacheFile:
    """`f` with the as_of, final day and revisions of its footer `info`; a file without as_of
    (format 1) counts as fetched at its mtime."""
    if "as_of" in info:
        as_of = dt.datetime.fromisoformat(info["as_of"])
        final = dt.date.fromisoformat(info["final_through"])
    else:
        as_of = dt.datetime.fromtimestamp(f.mtime, dt.UTC)
        final = max(min(publication.final_through(as_of), f.end), f.start - _ONE_DAY)
    return replace(f, as_of=as_of, final=final, revisions=frozenset(info.get("revisions", [])))


def _event_id(restatement: Restatement, code: str, day: dt.date) -> str:
    return f"{restatement.name}:{code}:{day.isoformat()}"


def _parse_event(event: str) -> tuple[str, dt.date] | None:
    """(code, day) of an event id `name:code:YYYY-MM-DD`, or None when it is not one."""
    parts = event.rsplit(":", 2)
    if len(parts) != 3:
        return None
    try:
        return parts[1], dt.date.fromisoformat(parts[2])
    except ValueError:
        return None


def _final_events(rules: _Rules, ranges: list[tuple[dt.date, dt.date]], fetched: list[Fetched]
                  ) -> dict[str, tuple[str, dt.date]]:
    """The restatement events in the fetched rows whose day was final when they were fetched (a
    provisional one is fetched again, and handled then)."""
    assert rules.restatement is not None
    out: dict[str, tuple[str, dt.date]] = {}
    for got in fetched:
        if got.frame.height == 0:
            continue
        for code, day in rules.restatement.events(got.frame, rules.date_col):
            if rules.publication.is_final(day, got.as_of):
                out[_event_id(rules.restatement, code, day)] = (code, day)
    return out


def _needed(f: CacheFile, events: dict[str, tuple[str, dt.date]], publication: Publication) -> dict[str, dt.date]:
    """{code: last event day} of the events whose restated rows `f` may hold in their old form: not
    recorded in its footer, its rows read before the event was final, and days before the event."""
    out: dict[str, dt.date] = {}
    for event, (code, day) in events.items():
        if event in f.revisions or f.start >= day:
            continue
        if f.as_of is not None and publication.is_final(day, f.as_of):
            continue
        out[code] = max(day, out.get(code, day))
    return out


def _holds_rows(frame: pl.LazyFrame, code_col: str, date_col: str, lo: dt.date, hi: dt.date,
                wanted: dict[str, dt.date]) -> bool:
    """Whether `frame` holds rows of a wanted code dated in [lo, hi] and before its event."""
    if hi < lo or code_col not in frame.collect_schema().names():
        return False
    cond = pl.lit(False)
    for code, day in wanted.items():
        cond = cond | ((pl.col(code_col) == code) & (pl.col(date_col) < day))
    hit = frame.filter(pl.col(date_col).is_between(lo, hi), cond).select(pl.len()).collect().item()
    return bool(hit)


def _patched(data: pl.DataFrame, patch: pl.DataFrame, code_col: str, date_col: str, lo: dt.date, hi: dt.date,
             wanted: dict[str, dt.date], key_cols: Sequence[str]) -> pl.DataFrame:
    """`data` with the rows of each wanted code dated in [lo, min(hi, event day - 1)] replaced by
    those of `patch`, in `data`'s columns, sorted on the keys."""
    window = pl.lit(False)
    for code, day in wanted.items():
        last = min(hi, day - _ONE_DAY)
        window = window | ((pl.col(code_col) == code) & pl.col(date_col).is_between(lo, last))
    fresh = patch.filter(window)
    columns = data.columns
    if not columns:
        return data
    missing = [c for c in columns if c not in fresh.columns]
    if missing:
        raise InputError(f"restatement fetch lacks the cached column(s) {missing}")
    out = pl.concat([data.filter(~window), fresh.select(columns).cast(data.schema)], how="vertical")
    keys = [c for c in key_cols if c in columns]
    return out.sort(keys or [date_col])


def _inherited(kept: list[tuple[CacheFile, pl.DataFrame]], fetched: list[Fetched], rules: _Rules) -> set[str]:
    """The recorded restatements that every part of a merged file reflects (listed in its footer, or
    read after the event was final, or holding no row it restated)."""
    if rules.restatement is None:
        return set()
    listed = set().union(*(f.revisions for f, _ in kept)) if kept else set()
    out = set()
    for event in listed:
        parsed = _parse_event(event)
        if parsed is None:
            continue
        code, day = parsed
        ok = all(rules.publication.is_final(day, g.as_of) for g in fetched)
        for f, part in kept:
            if not ok:
                break
            ok = (event in f.revisions or (f.as_of is not None and rules.publication.is_final(day, f.as_of))
                  or not _holds_rows(part.lazy(), rules.restatement.code_col, rules.date_col, dt.date.min,
                                     dt.date.max, {code: day}))
        if ok:
            out.add(event)
    return out


def _in_range(frame: pl.DataFrame, date_col: str, lo: dt.date, hi: dt.date) -> pl.DataFrame:
    if frame.height == 0 and date_col not in frame.columns:
        return frame
    dtype = frame.schema[date_col]
    if dtype == pl.Null:  # an empty fetch may not know its types
        frame = frame.with_columns(pl.col(date_col).cast(pl.Date))
    elif dtype != pl.Date:
        raise InputError(f"column {date_col!r} has type {dtype}, expected Date")
    return frame.filter(pl.col(date_col).is_between(lo, hi))


def _trim(part: pl.DataFrame, f: CacheFile, ranges: list[tuple[dt.date, dt.date]], days: list[dt.date],
          date_col: str) -> pl.DataFrame:
    """A cached part's rows that stay: outside every fetched range, and final (rows on days that are
    not business days, which are never fetched on their own, stay where no fetch covers them)."""
    if part.height == 0 and date_col not in part.columns:
        return part
    col = pl.col(date_col)
    fetched = pl.lit(False)
    for a, b in ranges:
        fetched = fetched | col.is_between(a, b)
    final = (col <= f.final_end) | ~col.is_in(pl.Series(days, dtype=pl.Date))
    return part.filter(~fetched & final)


def _checked(frame: pl.DataFrame, source: str, date_col: str, start: dt.date, end: dt.date) -> pl.DataFrame:
    if not isinstance(frame, pl.DataFrame):
        raise InputError(
            f"fetch for {source} {start}..{end} returned {type(frame).__name__}, not a polars DataFrame"
        )
    if frame.height and date_col not in frame.columns:
        raise InputError(f"fetch for {source} {start}..{end} returned no {date_col!r} column")
    return frame


def _fresh(frame: pl.DataFrame) -> pl.DataFrame:
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
