"""The J-Quants sources as the cache and the dataset builder see them, and their loading.

`CACHED_SOURCES` holds, per source, the column a request's dates refer to, the key columns, when a
day's data is final (`Publication`, from J-Quants' data-update schedule: a lag in JPX business days
after the date column's day and the time of day, Asia/Tokyo) and how the API restates it
(`Restatement`). `SourceLoader` fetches through the raw cache: it starts the built-in simulator once
when no API URL is configured, passes each fetch's as-of time (the API's `Date`) to the cache, keeps a
per-query checkpoint of each fetch under `raw/.partial/<source>/` (published to the bucket on an
object-store root) so that a failed load resumes where it stopped, and in offline mode it reads the
cache only and fails loudly where the cache lacks data.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import polars as pl

from gogoku.cache.raw import CacheResult, Fetched, Publication, RawCache, Restatement
from gogoku.cache.remote import RemoteSync, StoreCheckpoint, SyncReport
from gogoku.config import Settings
from gogoku.errors import InputError
from gogoku.jquants.checkpoint import DirectoryCheckpoint
from gogoku.jquants.endpoints import endpoint

log = logging.getLogger(__name__)

PARTIAL_DIR = "raw/.partial"  # per-query checkpoints of unfinished fetches, one folder per source


def _at(hours: int, minutes: int = 0) -> dt.timedelta:
    return dt.timedelta(hours=hours, minutes=minutes)


@dataclass(frozen=True)
class AdjustmentRestatement:
    """J-Quants back-adjusts a stock's Adjustment* history when a split or consolidation takes effect:
    a row whose AdjustmentFactor is not 1 (the ex-date) restates that stock's rows before its date."""

    name: str = "adjustment"
    code_col: str = "Code"
    factor_col: str = "AdjustmentFactor"

    def events(self, frame: pl.DataFrame, date_col: str) -> set[tuple[str, dt.date]]:
        if self.factor_col not in frame.columns or frame.height == 0:
            return set()
        factor = pl.col(self.factor_col)
        rows = frame.filter(factor.is_not_null() & (factor != 1.0)).select(self.code_col, date_col)
        return {(code, day) for code, day in rows.iter_rows()}


@dataclass(frozen=True)
class CachedSource:
    name: str
    key_cols: tuple[str, ...]
    # When a day's data is final: `lag` JPX business days after the date column's day, at `at` (Tokyo).
    publication: Publication
    restatement: Restatement | None = None

    def __post_init__(self) -> None:
        if not (isinstance(self.key_cols, tuple) and isinstance(self.publication, Publication)):
            raise TypeError(f"CachedSource {self.name}: expected key columns (a tuple) and a Publication")

    @property
    def date_col(self) -> str:
        """The column the source's records are dated by (the endpoint's: what a request's dates mean)."""
        return endpoint(self.name).date_column


# Times: J-Quants' data-update schedule (jpx-jquants.com/spec/data-update; "about" times, the cache adds
# SETTLE_MARGIN), the later of it and the simulator's where they differ.
CACHED_SOURCES: dict[str, CachedSource] = {
    s.name: s
    for s in (
        CachedSource("trading_calendar", ("Date",), Publication(ahead=True)),
        # The next day's list at 17:30, possibly updated at 08:00 on the day itself.
        CachedSource("listed_info", ("Code", "Date"), Publication(0, _at(8))),
        CachedSource("daily_quotes", ("Code", "Date"), Publication(0, _at(16, 30)),
                     AdjustmentRestatement()),
        CachedSource("topix", ("Date",), Publication(0, _at(16, 30))),
        # Preliminary at 18:00, final at 24:30 (00:30 the next morning).
        CachedSource("statements", ("LocalCode", "DisclosureNumber"), Publication(0, _at(24, 30))),
        # The night session's data at 27:00 (03:00 the next morning).
        CachedSource("futures", ("Code", "Date"), Publication(0, _at(27))),
        # The 4th business day after the week (Thursday): PublishedDate itself, 16:30 (simulator 15:30).
        CachedSource("trades_spec", ("Section", "PublishedDate"), Publication(0, _at(16, 30))),
        # The Friday's balances on the 2nd business day after it (Tuesday), 16:30.
        CachedSource("weekly_margin_interest", ("Code", "Date"), Publication(2, _at(16, 30))),
        CachedSource("daily_margin_interest", ("Code", "ApplicationDate", "PublishedDate"),
                     Publication(0, _at(16, 30))),
        CachedSource("short_selling", ("Sector33Code", "Date"), Publication(0, _at(16, 30))),
        CachedSource("short_selling_positions",
                     ("Code", "ShortSellerName", "CalculatedDate", "DisclosedDate"), Publication(0, _at(17, 30))),
        # The earnings calendar of a day: 19:00 the business day before.
        CachedSource("announcement", ("Code", "Date"), Publication(-1, _at(19))),
        CachedSource("indices", ("Code", "Date"), Publication(0, _at(16, 30))),
        CachedSource("prices_am", ("Code", "Date"), Publication(0, _at(12))),
        CachedSource("breakdown", ("Code", "Date"), Publication(0, _at(18))),
        # Updated hourly from 12:00 to 19:00.
        CachedSource("dividend", ("Code", "ReferenceNumber"), Publication(0, _at(19))),
        CachedSource("index_option", ("Code", "Date"), Publication(0, _at(27))),
        CachedSource("options", ("Code", "Date"), Publication(0, _at(27))),
    )
}


def parse_sources(raw: str | list[str]) -> list[str]:
    """Parse `a,b,c` (or a list) into known source names, in order, without duplicates."""
    items = raw.split(",") if isinstance(raw, str) else list(raw)
    names = [s.strip() for s in items if s.strip()]
    if not names:
        raise InputError("--sources is empty: give one or more of " + ", ".join(CACHED_SOURCES))
    unknown = [n for n in names if n not in CACHED_SOURCES]
    if unknown:
        raise InputError(f"--sources: unknown source {unknown[0]!r}; known: {', '.join(CACHED_SOURCES)}")
    return list(dict.fromkeys(names))


@dataclass
class SourceLoader:
    """Loads sources through the raw cache under `settings.data_root`; use as a context manager.

    `client_options` go to every client it opens (`gogoku.jquants.session.make_client`).
    """

    settings: Settings
    offline: bool = False
    max_age_days: float | None = None
    api_calls: int = 0
    client_options: dict[str, Any] = field(default_factory=dict)
    _server: Any = field(default=None, repr=False)
    _url: str | None = field(default=None, repr=False)
    # Files and bytes moved to and from the bucket (object-store data roots only).
    synced: SyncReport = field(default_factory=SyncReport)
    _remote: RemoteSync | None = field(default=None, repr=False)
    # Queries served by a checkpoint of an earlier, failed attempt (instead of the API).
    reused_queries: int = 0

    def __enter__(self) -> SourceLoader:
        if self.offline:
            return self
        if self.settings.api_url is None:
            from gogoku.sim.local import start_simulator

            self._server = start_simulator(self.settings)
            self._url = self._server.url
        else:
            self._url = self.settings.api_url
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    @property
    def origin(self) -> dict[str, Any]:
        """Where the data comes from, for manifests (the simulator's seed lets reports compute its oracle)."""
        s = self.settings
        if s.api_url is None:
            return {"api": "simulator", "seed": s.sim_seed, "stocks": s.sim_stocks, "plan": s.plan_tier}
        return {"api": s.api_url, "version": s.api_version, "plan": s.plan_tier}

    @property
    def cache(self) -> RawCache:
        """The cache on the local root, or on the working copy of an object-store root (cache/remote.py)."""
        local = self.settings.store.root.local
        if self.max_age_days is None:
            return RawCache(local)
        return RawCache(local, max_age_days=self.max_age_days)

    @property
    def remote(self) -> RemoteSync | None:
        """The bucket sync when the data root is an object store (created on first use)."""
        if self.settings.store.remote and self._remote is None:
            self._remote = RemoteSync(self.settings.store, self.cache)
        return self._remote

    def load(self, source: str, start: dt.date, end: dt.date, force: bool = False) -> CacheResult:
        if end < start:
            raise InputError(f"--end {end} is before --start {start}")
        spec = CACHED_SOURCES[source]
        cache, remote = self.cache, self.remote
        stale_before = None if cache.max_age_days is None else cache.now() - cache.max_age_days * 86400.0
        if remote is not None and not force:
            self.synced.add(remote.pull(source, start, end, fresh_after=stale_before))
        attempt = _Attempt(self, source)

        def pull_all() -> None:
            # A restatement patches every file of the source: the bucket's too.
            if remote is not None:
                self.synced.add(remote.pull(source, fresh_after=stale_before, locked=True))

        result = cache.load(
            source, start, end, fetch=lambda s, e: attempt.fetch(s, e),
            date_col=spec.date_col, key_cols=spec.key_cols, force=force, publication=spec.publication,
            restatement=spec.restatement, fetch_codes=lambda s, e, codes: attempt.fetch(s, e, codes),
            before_restate=pull_all, offline=self.offline,
        )
        if remote is not None and result.written:
            names = [result.path.name, *(p.name for p in result.patched)]
            self.synced.add(remote.push(source, names=names))
        attempt.done()  # the checkpoints fed a file that is now written (and published)
        log.info(
            "%s %s..%s: %s hit, coverage %.0f%%, %d fetch range(s), %d rows -> %s",
            source, start, end, result.hit, 100 * result.coverage, result.api_calls, result.frame.height, result.path,
        )
        return result

    def _checkpoint(self, source: str) -> DirectoryCheckpoint:
        rel = f"{PARTIAL_DIR}/{source}"
        store = self.settings.store
        if store.remote:
            return StoreCheckpoint(store, rel)
        return DirectoryCheckpoint(store.local_path(rel))

    def _offline_error(self, source: str, start: dt.date, end: dt.date) -> InputError:
        return InputError(
            f"offline: the cache {self.settings.store.uri(f'raw/{source}')} lacks {source} for "
            f"{start}..{end}; run `gogoku cache refresh --sources {source} --start {start} --end {end}` first"
        )

    def _fetch(self, source: str, start: dt.date, end: dt.date, checkpoint: DirectoryCheckpoint,
               codes: list[str] | None = None) -> Fetched:
        if self.offline:
            raise self._offline_error(source, start, end)
        return asyncio.run(self._fetch_async(source, start, end, checkpoint, codes))

    async def _fetch_async(self, source: str, start: dt.date, end: dt.date, checkpoint: DirectoryCheckpoint,
                           codes: list[str] | None) -> Fetched:
        from gogoku.jquants.session import make_client

        wall = dt.datetime.now(dt.UTC)  # the as-of when the API sends no Date: the fetch's start
        async with make_client(self.settings, self._url, **self.client_options) as client:
            checkpoint.clock = lambda: client.as_of(wall)
            reused_before = client.reused_queries
            try:
                frame = await client.fetch(source, start, end, codes, checkpoint=checkpoint)
            finally:
                self.api_calls += client.api_calls
                self.reused_queries += client.reused_queries - reused_before
        as_of = client.as_of(wall)
        reused = checkpoint.pop_oldest_reused()
        return Fetched(frame, as_of if reused is None else min(as_of, reused))


class _Attempt:
    """The fetches of one load: one checkpoint (opened at the first fetch; a load served by the cache
    touches nothing), cleared of what it held once the load's file is written."""

    def __init__(self, loader: SourceLoader, source: str) -> None:
        self.loader, self.source = loader, source
        self.checkpoint: DirectoryCheckpoint | None = None

    def fetch(self, start: dt.date, end: dt.date, codes: list[str] | None = None) -> Fetched:
        if self.loader.offline:
            raise self.loader._offline_error(self.source, start, end)
        if self.checkpoint is None:
            self.checkpoint = self.loader._checkpoint(self.source)
        return self.loader._fetch(self.source, start, end, self.checkpoint, codes)

    def done(self) -> None:
        if self.checkpoint is not None and self.checkpoint.touched:
            self.checkpoint.clear(self.checkpoint.touched)
