"""Async J-Quants client: query plans per source, bounded concurrency, pagination, retries, typed frames.

`fetch(source, start, end)` returns the v1-named, typed frame of contract 4, sorted as the official
client sorts. A page that still fails after the retries raises: data is never silently truncated.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
import logging
import random
from collections import Counter
from types import TracebackType

import aiohttp
import polars as pl

from gogoku import calendar as cal
from gogoku.config import API_VERSIONS, PLAN_TIERS
from gogoku.errors import GogokuError, InputError
from gogoku.jquants.endpoints import Axis, Endpoint, Kind, endpoint, minimum_plan

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_BACKOFF_S = 60.0


class JQuantsClient:
    """Use as `async with JQuantsClient(url, api_key=...) as c: frame = await c.fetch(...)`.

    `base_url` has no version (e.g. https://api.jquants.com). v2 authenticates with `x-api-key`.
    """

    def __init__(self, base_url: str, version: str = "v2", api_key: str | None = None,
                 mailaddress: str | None = None, password: str | None = None, plan: str = "standard",
                 max_concurrency: int = 8, max_retries: int = 6, backoff_base_s: float = 0.5,
                 timeout_s: float = 60) -> None:
        if version not in API_VERSIONS:
            raise InputError(f"JQUANTS_API_VERSION={version!r}: expected one of {', '.join(API_VERSIONS)}")
        if version == "v1":
            raise GogokuError("JQUANTS_API_VERSION=v1 is not supported yet by gogoku's client; use v2 with JQUANTS_API_KEY")
        if plan not in PLAN_TIERS:
            raise InputError(f"JQUANTS_PLAN_TIER={plan!r}: expected one of {', '.join(PLAN_TIERS)}")
        if not api_key:
            raise GogokuError("JQUANTS_API_KEY is not set: the J-Quants v2 API needs the API key from your dashboard")
        if max_concurrency < 1 or max_retries < 0:
            raise InputError(f"max_concurrency={max_concurrency}, max_retries={max_retries}: expected >= 1 and >= 0")
        self.base_url = base_url.rstrip("/")
        self.version = version
        self.plan = plan
        self.max_retries = max_retries
        self.backoff_base_s = backoff_base_s
        self._api_key = api_key
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._max_concurrency = max_concurrency
        self._session: aiohttp.ClientSession | None = None
        self.api_calls = 0  # HTTP requests, retries included
        self.calls_by_path: Counter[str] = Counter()

    async def __aenter__(self) -> JQuantsClient:
        self._semaphore = asyncio.Semaphore(self._max_concurrency)
        self._session = aiohttp.ClientSession(
            timeout=self._timeout,
            headers={"x-api-key": self._api_key, "Accept-Encoding": "gzip"},
            connector=aiohttp.TCPConnector(limit=self._max_concurrency),
        )
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # ------------------------------------------------------------------ public
    async def fetch(self, source: str, start: dt.date, end: dt.date) -> pl.DataFrame:
        """All rows of `source` for [start, end] (dates of its date column), typed with v1 names."""
        spec = endpoint(source)
        if end < start:
            raise InputError(f"{source}: end {end} is before start {start}")
        if self.plan not in spec.plans:
            raise GogokuError(
                f"{source} needs the J-Quants {minimum_plan(source)} plan or higher but JQUANTS_PLAN_TIER is "
                f"{self.plan}: raise the plan tier or leave {source} out"
            )
        queries = query_plan(spec, start, end)
        log.info("%s %s..%s: %d request(s) to %s", source, start, end, len(queries), spec.path(self.version))
        done = 0
        step = max(len(queries) // 10, 1)

        async def run(params: dict[str, str]) -> list[pl.DataFrame]:
            nonlocal done
            pages = await self._fetch_pages(spec, params)
            done += 1
            if len(queries) >= 20 and (done % step == 0 or done == len(queries)):
                log.info("%s: %d/%d requests done (%.0f%%), %d API calls", source, done, len(queries),
                         100 * done / len(queries), self.api_calls)
            return pages

        tasks = [asyncio.ensure_future(run(q)) for q in queries]
        try:
            results = await asyncio.gather(*tasks)
        except BaseException:
            # One query failed for good: stop the others rather than leave them running.
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        frames = [frame for pages in results for frame in pages]
        out = pl.concat(frames, how="vertical") if frames else pl.DataFrame(schema=_wire_schema(spec))
        return to_typed(spec, out, self.version).sort(list(spec.sort_by), maintain_order=True)

    async def query(self, source: str, params: dict[str, str]) -> pl.DataFrame:
        """One API query (all its pages) with raw J-Quants parameters, as a typed frame."""
        spec = endpoint(source)
        pages = await self._fetch_pages(spec, params)
        return to_typed(spec, pl.concat(pages, how="vertical"), self.version)

    # ------------------------------------------------------------------ transport
    async def _fetch_pages(self, spec: Endpoint, params: dict[str, str]) -> list[pl.DataFrame]:
        path = spec.path(self.version)
        pages: list[pl.DataFrame] = []
        query = dict(params)
        while True:
            page, key = parse_page(spec, await self._get_body(spec, path, query), spec.data_key(self.version))
            pages.append(page)
            if not key:
                return pages
            query = {**params, "pagination_key": key}

    async def _get_body(self, spec: Endpoint, path: str, params: dict[str, str]) -> bytes:
        """The body of a 200 answer, retrying 429/5xx/timeouts/connection errors with backoff."""
        if self._session is None:
            raise RuntimeError("use JQuantsClient as `async with`")
        url = self.base_url + path
        last = ""
        for attempt in range(self.max_retries + 1):
            self.api_calls += 1
            self.calls_by_path[path] += 1
            retry_after: float | None = None
            try:
                async with self._semaphore, self._session.get(url, params=params) as resp:
                    status, body = resp.status, await resp.read()
                    retry_after = _retry_after(resp.headers.get("Retry-After"))
            except (TimeoutError, aiohttp.ClientError) as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                if status == 200:
                    return body
                message = _message(body)
                if status not in RETRY_STATUSES:
                    raise GogokuError(self._explain(spec, path, params, status, message))
                last = f"HTTP {status}: {message}"
            if attempt == self.max_retries:
                break
            delay = retry_after if retry_after is not None else self._backoff(attempt)
            log.debug("%s %s: %s; retry %d/%d in %.2fs", path, params, last, attempt + 1, self.max_retries, delay)
            await asyncio.sleep(delay)
        raise GogokuError(
            f"J-Quants {path} {params} still failing after {self.max_retries + 1} attempts ({last}); "
            "nothing was written: retry later or lower the concurrency"
        )

    def _backoff(self, attempt: int) -> float:
        # Exponential with full jitter around the nominal value, so that parallel retries spread out.
        return min(self.backoff_base_s * 2**attempt * (0.5 + random.random()), MAX_BACKOFF_S)

    def _explain(self, spec: Endpoint, path: str, params: dict[str, str], status: int, message: str) -> str:
        head = f"J-Quants {path} {params} answered {status}: {message}"
        if status == 400:
            return f"{head} -- check the dates (the plan's window) and the query parameters"
        if status in (401, 403):
            return (f"{head} -- {spec.source} needs the {minimum_plan(spec.source)} plan or higher "
                    f"(JQUANTS_PLAN_TIER={self.plan}); if your plan includes it, check JQUANTS_API_KEY")
        return head


def query_plan(spec: Endpoint, start: dt.date, end: dt.date) -> list[dict[str, str]]:
    """The API queries that cover [start, end] for a source (see `Axis`)."""
    if spec.axis is Axis.RANGE:
        return [{"from": start.isoformat(), "to": end.isoformat()}]
    days = cal.business_days(start, end)
    if spec.axis is Axis.BUSINESS_DAY:
        return [{"date": d.isoformat()} for d in days]
    # Monthly snapshots: the first business day of each month in range, plus `start` itself.
    firsts = [d for i, d in enumerate(days)
              if (days[i - 1] if i else cal.previous_business_day(d)).month != d.month]
    return [{"date": d.isoformat()} for d in sorted({start, *firsts})]


def _wire_schema(spec: Endpoint) -> dict[str, type[pl.DataType]]:
    def dtype(kind: Kind) -> type[pl.DataType]:
        return pl.Float64 if kind is Kind.NUMBER and not spec.strings_on_wire else pl.Utf8

    return {f.v2: dtype(f.kind) for f in spec.fields}


def parse_page(spec: Endpoint, body: bytes, data_key: str = "data") -> tuple[pl.DataFrame, str | None]:
    """One response body -> (rows with wire names and types, pagination_key or None)."""
    schema = _wire_schema(spec)
    try:
        page = pl.read_json(io.BytesIO(body), schema={data_key: pl.List(pl.Struct(schema)), "pagination_key": pl.Utf8})
        return page.select(pl.col(data_key).explode()).unnest(data_key), page["pagination_key"][0]
    except pl.exceptions.ComputeError:
        # Some number fields arrive as "" or "-" when not applicable: make those null.
        payload = json.loads(body)
        numbers = [k for k, v in schema.items() if v == pl.Float64]
        rows = [{**r, **{k: None for k in numbers if isinstance(r.get(k), str)}} for r in payload.get(data_key) or []]
        return pl.from_dicts(rows, schema=schema), payload.get("pagination_key")


def to_typed(spec: Endpoint, wire: pl.DataFrame, version: str = "v2") -> pl.DataFrame:
    """Wire frame -> gogoku's frame: v1 names in the endpoint's order, dates as Date, numbers as Float64."""
    names = {f.v2: f.v1 for f in spec.fields} if version == "v2" else {f.v1: f.v1 for f in spec.fields}
    frame = wire.rename({k: v for k, v in names.items() if k in wire.columns})
    exprs = []
    for f in spec.fields:
        if f.v1 not in frame.columns:
            exprs.append(pl.lit(None, dtype=spec.schema[f.v1]).alias(f.v1))
            continue
        col = pl.col(f.v1)
        if f.kind is Kind.DATE:
            col = pl.when(col.cast(pl.Utf8) == "").then(None).otherwise(col.cast(pl.Utf8)).str.to_date("%Y-%m-%d")
        elif f.kind is Kind.NUMBER:
            if frame.schema[f.v1] == pl.Utf8:
                col = pl.when(col.is_in(["", "-"])).then(None).otherwise(col).cast(pl.Float64)
            else:
                col = col.cast(pl.Float64)
        else:
            col = col.cast(pl.Utf8)
        exprs.append(col.alias(f.v1))
    return frame.select(exprs)


def _message(body: bytes) -> str:
    try:
        return str(json.loads(body).get("message", "")) or body.decode(errors="replace")[:200]
    except (ValueError, AttributeError):
        return body.decode(errors="replace")[:200]


def _retry_after(raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        return max(float(raw), 0.0)
    except ValueError:
        return None
