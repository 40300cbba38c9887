"""The J-Quants sources as the cache and the dataset builder see them, and their loading.

`SourceLoader` fetches through the raw cache: it starts the built-in simulator once when no API URL
is configured (DESIGN contract 3), and in offline mode it reads the cache only and fails loudly
where the cache lacks data.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import polars as pl

from gogoku.cache.raw import CacheResult, RawCache
from gogoku.cache.remote import RemoteSync, SyncReport
from gogoku.config import Settings
from gogoku.errors import InputError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CachedSource:
    name: str
    date_col: str
    key_cols: tuple[str, ...]


CACHED_SOURCES: dict[str, CachedSource] = {
    s.name: s
    for s in (
        CachedSource("trading_calendar", "Date", ("Date",)),
        CachedSource("listed_info", "Date", ("Code", "Date")),
        CachedSource("daily_quotes", "Date", ("Code", "Date")),
        CachedSource("topix", "Date", ("Date",)),
        CachedSource("statements", "DisclosedDate", ("LocalCode", "DisclosureNumber")),
        CachedSource("futures", "Date", ("Code", "Date")),
        CachedSource("trades_spec", "PublishedDate", ("Section", "PublishedDate")),
        CachedSource("weekly_margin_interest", "Date", ("Code", "Date")),
        CachedSource("daily_margin_interest", "PublishedDate", ("Code", "ApplicationDate", "PublishedDate")),
        CachedSource("short_selling", "Date", ("Sector33Code", "Date")),
        CachedSource("short_selling_positions", "DisclosedDate",
                     ("Code", "ShortSellerName", "CalculatedDate", "DisclosedDate")),
        CachedSource("announcement", "Date", ("Code", "Date")),
        CachedSource("indices", "Date", ("Code", "Date")),
        CachedSource("prices_am", "Date", ("Code", "Date")),
        CachedSource("breakdown", "Date", ("Code", "Date")),
        CachedSource("dividend", "AnnouncementDate", ("Code", "ReferenceNumber")),
        CachedSource("index_option", "Date", ("Code", "Date")),
        CachedSource("options", "Date", ("Code", "Date")),
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
    """Loads sources through the raw cache under `settings.data_root`; use as a context manager."""

    settings: Settings
    offline: bool = False
    max_age_days: float | None = None
    api_calls: int = 0
    _server: Any = field(default=None, repr=False)
    _url: str | None = field(default=None, repr=False)
    # Files and bytes moved to and from the bucket (object-store data roots only).
    synced: SyncReport = field(default_factory=SyncReport)
    _remote: RemoteSync | None = field(default=None, repr=False)

    def __enter__(self) -> SourceLoader:
        if self.offline:
            return self
        if self.settings.api_url is None:
            from gogoku.jquants.session import start_simulator

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
        if remote is not None and not force:
            stale_before = None if cache.max_age_days is None else cache.now() - cache.max_age_days * 86400.0
            self.synced.add(remote.pull(source, start, end, fresh_after=stale_before))
        result = cache.load(
            source, start, end, fetch=lambda s, e: self._fetch(source, s, e),
            date_col=spec.date_col, key_cols=spec.key_cols, force=force,
        )
        if remote is not None and result.written:
            self.synced.add(remote.push(source, names=[result.path.name]))
        log.info(
            "%s %s..%s: %s hit, coverage %.0f%%, %d fetch range(s), %d rows -> %s",
            source, start, end, result.hit, 100 * result.coverage, result.api_calls, result.frame.height, result.path,
        )
        return result

    def _fetch(self, source: str, start: dt.date, end: dt.date) -> pl.DataFrame:
        if self.offline:
            raise InputError(
                f"offline: the cache {self.settings.store.uri(f'raw/{source}')} lacks {source} for "
                f"{start}..{end}; run `gogoku cache refresh --sources {source} --start {start} --end {end}` first"
            )
        return asyncio.run(self._fetch_async(source, start, end))

    async def _fetch_async(self, source: str, start: dt.date, end: dt.date) -> pl.DataFrame:
        from gogoku.jquants.session import make_client

        async with make_client(self.settings, self._url) as client:
            try:
                return await client.fetch(source, start, end)
            finally:
                self.api_calls += client.api_calls
