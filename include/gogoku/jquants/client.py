"""Async J-Quants client: query plans per source, plan-aware rate limit, pagination, retries, typed frames.

`fetch(source, start, end, codes=None)` returns the v1-named, typed frame of its source (`gogoku.jquants.endpoints`), sorted as the
official client sorts. v2 authenticates with `x-api-key`; v1 signs in with the mail address and
password, renews its id token on 401 and signs in again when the refresh token has expired.

Every HTTP request, retries and sign-ins included, first takes a token from the limiter of its
account (`ratelimit`: per process, or shared by the deployment through Redis) and is counted, so a
fetch within the plan never meets a 429; aiohttp's own re-send of a request on a dropped connection
is turned off (`_one_send`), the retry loop here does it. 429, 5xx, timeouts, dropped connections
and truncated or unparsable bodies are retried with exponential backoff and jitter, honouring
Retry-After up to `max_retry_after_s`; a 429 pauses the account's limiter (every process sharing it).
A page that still fails after the retries raises and the fetch returns nothing: data is never
truncated. With a `checkpoint`, each completed query is saved at once, so a rerun asks only for the rest.
The client keeps the API's clock, the HTTP `Date` of its answers (`server_time`, the latest;
`first_server_time`, the earliest; `as_of()`): the raw cache decides from it which days are final.
A 413 (result too large) splits the query's date range in halves.

Secrets (API key, password, mail address, tokens, the auth endpoints' parameters) never appear in an
exception or a log line: parameters are shown redacted and server text is scrubbed of known secrets.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import email.utils
import hashlib
import io
import json
import logging
import math
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, TypeVar

import aiohttp
import polars as pl

from gogoku import calendar as cal
from gogoku.config import API_VERSIONS, DEFAULT_MAX_RETRY_AFTER_S, PLAN_TIERS, check_api_url
from gogoku.errors import GogokuError, InputError
from gogoku.jquants.checkpoint import QueryCheckpoint
from gogoku.jquants.endpoints import Axis, Endpoint, Kind, endpoint, full_code, minimum_plan
from gogoku.jquants.ratelimit import Limiter, RateLimit, shared_limiter

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_BACKOFF_S = 60.0
AUTH_USER_PATH = "/v1/token/auth_user"
AUTH_REFRESH_PATH = "/v1/token/auth_refresh"
MAX_REAUTH = 2  # renewals a request makes itself before a 401 is final
MAX_STALE_401 = 8  # 401s for a token another request had already renewed (it expired while this one waited)
TOKEN_PATHS = "/v1/token/"
REDACTED = "***"
# Parameter names whose values are never shown, on any path.
SECRET_PARAMS = frozenset({"refreshtoken", "idtoken", "token", "password", "mailaddress", "apikey", "api_key"})
# Shorter secrets are not scrubbed out of free text (they would mangle ordinary words); they are still
# never formatted into a message, since parameters and bodies of the auth endpoints are never shown.
MIN_SCRUB_LEN = 4
CHECKPOINT_FORMAT = 1  # bump when the stored frames change meaning
T = TypeVar("T")


class ApiError(GogokuError):
    """A final (not retried) answer of the API: its status and message.

    `params` are the query's parameters as shown in messages (secrets already redacted by the client).
    """

    def __init__(self, status: int, message: str, path: str, params: dict[str, str] | None) -> None:
        super().__init__(f"J-Quants {path} {params or {}} answered {status}: {message}")
        self.status, self.message, self.path, self.params = status, message, path, params or {}


def shown_params(path: str, params: dict[str, str] | None) -> dict[str, str]:
    """`params` as messages may show them: every value of the token endpoints and of secret names redacted."""
    if not params:
        return {}
    if path.startswith(TOKEN_PATHS):
        return {k: REDACTED for k in params}
    return {k: (REDACTED if k.lower() in SECRET_PARAMS else v) for k, v in params.items()}


def query_key(spec: Endpoint, version: str, params: dict[str, str]) -> str:
    """The checkpoint key of one query: `<source>_<hash>` of the source, API version, parameters and wire
    fields (a changed field list gives new keys, so frames of the old layout are never read back)."""
    ident = {
        "format": CHECKPOINT_FORMAT, "source": spec.source, "version": version,
        "params": sorted(params.items()), "strings": spec.strings_on_wire,
        "fields": [[f.wire(version), f.kind.name] for f in spec.fields],
    }
    digest = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:32]
    return f"{spec.source}_{digest}"


def _one_send() -> Callable[[aiohttp.ClientRequest, Any], Awaitable[aiohttp.ClientResponse]]:
    """A per-request aiohttp middleware that lets exactly one HTTP request of a call reach the server.

    aiohttp re-sends an idempotent request once when its connection drops (meant for stale pooled
    connections); that re-send would skip the token bucket and the counts. On such a second pass this
    raises the first failure instead, so that `_call`'s retry loop, which takes a token, decides.
    """
    first_failure: list[BaseException] = []

    async def middleware(request: aiohttp.ClientRequest, handler: Any) -> aiohttp.ClientResponse:
        if first_failure:
            raise first_failure[0]
        try:
            return await handler(request)
        except BaseException as exc:
            first_failure.append(exc)
            raise

    return middleware


class JQuantsClient:
    """Use as `async with JQuantsClient(url, api_key=...) as c: frame = await c.fetch(...)`.

    `base_url` has no version (e.g. https://api.jquants.com). `rate_limit` defaults to the plan's
    requests per minute; the bucket is shared with every client of the same URL and credential.
    A server's Retry-After is honoured up to `max_retry_after_s` seconds (JQUANTS_MAX_RETRY_AFTER_S).
    `rate_limiter` (JQUANTS_RATE_LIMITER, a Redis URL) shares the limit with every process of the
    deployment instead (`ratelimit.RedisLimiter`).
    """

    def __init__(self, base_url: str, version: str = "v2", api_key: str | None = None,
                 mailaddress: str | None = None, password: str | None = None, plan: str = "standard",
                 max_concurrency: int = 8, max_retries: int = 6, backoff_base_s: float = 0.5,
                 timeout_s: float = 60, rate_limit: RateLimit | None = None,
                 max_retry_after_s: float = DEFAULT_MAX_RETRY_AFTER_S, rate_limiter: str | None = None) -> None:
        base_url = check_api_url(base_url)
        if not (math.isfinite(max_retry_after_s) and max_retry_after_s > 0):
            raise InputError(f"JQUANTS_MAX_RETRY_AFTER_S={max_retry_after_s!r}: expected a positive number of seconds")
        if version not in API_VERSIONS:
            raise InputError(f"JQUANTS_API_VERSION={version!r}: expected one of {', '.join(API_VERSIONS)}")
        if plan not in PLAN_TIERS:
            raise InputError(f"JQUANTS_PLAN_TIER={plan!r}: expected one of {', '.join(PLAN_TIERS)}")
        if version == "v2" and not api_key:
            raise GogokuError("JQUANTS_API_KEY is not set: the J-Quants v2 API needs the API key from your dashboard")
        if version == "v1" and not (mailaddress and password):
            raise GogokuError("JQUANTS_MAILADDRESS and JQUANTS_PASSWORD must both be set for the J-Quants v1 API "
                              "(or use v2: JQUANTS_API_VERSION=v2 with JQUANTS_API_KEY)")
        if max_concurrency < 1 or max_retries < 0:
            raise InputError(f"max_concurrency={max_concurrency}, max_retries={max_retries}: expected >= 1 and >= 0")
        self.base_url = base_url
        self.version = version
        self.plan = plan
        self.max_retries = max_retries
        self.backoff_base_s = backoff_base_s
        self.max_retry_after_s = float(max_retry_after_s)
        self._secrets: set[str] = set()  # scrubbed out of every message: credentials, then issued tokens
        for secret in (api_key, mailaddress, password):
            self._remember(secret)
        self.rate_limit = rate_limit or RateLimit.for_plan(plan)
        self._api_key = api_key
        self._mailaddress, self._password = mailaddress, password
        self._id_token: str | None = None
        self._refresh_token: str | None = None
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._max_concurrency = max_concurrency
        self._session: aiohttp.ClientSession | None = None
        self.limiter: Limiter = shared_limiter(self.base_url, f"{version}:{api_key or mailaddress}", self.rate_limit,
                                               backend=rate_limiter)
        self.api_calls = 0  # HTTP requests, retries and sign-ins included
        self.calls_by_path: Counter[str] = Counter()
        self.statuses: Counter[str] = Counter()  # answers per status, and failures per kind
        self.reused_queries = 0  # queries served by a checkpoint instead of the API
        # The API's clock: the HTTP `Date` of its answers, the latest and the earliest seen (None before
        # any answer). Data read from answers dated t is complete for what was published before t.
        self.server_time: dt.datetime | None = None
        self.first_server_time: dt.datetime | None = None

    async def __aenter__(self) -> JQuantsClient:
        self._semaphore = asyncio.Semaphore(self._max_concurrency)
        self._auth_lock = asyncio.Lock()
        headers = {"Accept-Encoding": "gzip"}
        if self.version == "v2":
            headers["x-api-key"] = self._api_key or ""
        self._session = aiohttp.ClientSession(
            timeout=self._timeout, headers=headers, connector=aiohttp.TCPConnector(limit=self._max_concurrency + 1),
        )
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # ------------------------------------------------------------------ public
    async def fetch(self, source: str, start: dt.date, end: dt.date, codes: list[str] | None = None,
                    checkpoint: QueryCheckpoint | None = None) -> pl.DataFrame:
        """All rows of `source` for [start, end] (dates of its date column), typed with v1 names.

        With `codes`, only those stocks, by date or by code, whichever takes fewer requests. With a
        `checkpoint` (gogoku.jquants.checkpoint), every query is looked up there first and saved there
        as soon as all its pages have arrived; the result is still all-or-nothing (a query that fails
        for good raises, and nothing is returned), but a rerun requests only the unfinished queries.
        """
        spec = endpoint(source)
        if end < start:
            raise InputError(f"{source}: end {end} is before start {start}")
        if self.plan not in spec.plans:
            raise GogokuError(
                f"{source} needs the J-Quants {minimum_plan(source)} plan or higher but JQUANTS_PLAN_TIER is "
                f"{self.plan}: raise the plan tier or leave {source} out"
            )
        wanted = _normalized_codes(spec, codes)
        queries = query_plan(spec, start, end, wanted)
        log.info("%s %s..%s%s: %d request(s) to %s", source, start, end,
                 f" for {len(wanted)} code(s)" if wanted is not None else "", len(queries), spec.path(self.version))
        done = 0
        step = max(len(queries) // 10, 1)
        reused_before = self.reused_queries

        async def run(params: dict[str, str]) -> list[pl.DataFrame]:
            nonlocal done
            pages = await self._fetch_query(spec, params, checkpoint)
            done += 1
            if len(queries) >= 20 and (done % step == 0 or done == len(queries)):
                log.info("%s: %d/%d requests done (%.0f%%), %d API calls", source, done, len(queries),
                         100 * done / len(queries), self.api_calls)
            return pages

        results = await _all_or_nothing([run(q) for q in queries])
        if checkpoint is not None:
            log.info("%s: %d of %d queries from the checkpoint", source, self.reused_queries - reused_before,
                     len(queries))
        frames = [frame for pages in results for frame in pages]
        wire = pl.concat(frames, how="vertical") if frames else pl.DataFrame(schema=_wire_schema(spec, self.version))
        out = to_typed(spec, wire, self.version)
        if wanted is not None:
            out = out.filter(pl.col(_code_column(spec)).is_in(wanted), pl.col(spec.date_column).is_between(start, end))
        return out.sort(list(spec.sort_by), maintain_order=True)

    async def query(self, source: str, params: dict[str, str]) -> pl.DataFrame:
        """One API query (all its pages) with raw J-Quants (v2-named) parameters, as a typed frame."""
        spec = endpoint(source)
        pages = await self._fetch_query(spec, params)
        return to_typed(spec, pl.concat(pages, how="vertical"), self.version)

    # ------------------------------------------------------------------ queries and pages
    async def _fetch_query(self, spec: Endpoint, params: dict[str, str],
                           checkpoint: QueryCheckpoint | None = None) -> list[pl.DataFrame]:
        """Every page of one query; a 413 splits its date range in halves.

        With a checkpoint, a query answered in full is saved once its last page is in (the halves of a
        split query are saved, not the split query itself: a rerun asks it again, meets the 413 and
        finds its halves).
        """
        key = query_key(spec, self.version, params) if checkpoint is not None else None
        if checkpoint is not None and key is not None:
            saved = await self._checkpoint_get(checkpoint, key, spec)
            if saved is not None:
                self.reused_queries += 1
                return [saved]
        try:
            pages = await self._fetch_pages(spec, params)
        except ApiError as exc:
            if exc.status != 413:
                raise GogokuError(self._explain(spec, exc)) from None
            halves = split_range(params, spec.range_params)
            if halves is None:
                raise GogokuError(
                    f"{self._explain(spec, exc)} -- the query {params} of {spec.source} covers a single date or no "
                    "range and cannot be split: narrow it by code or ask for fewer fields"
                ) from None
            log.info("%s %s too large (413): splitting into %s and %s", spec.source, params, *halves)
            first, second = await _all_or_nothing([self._fetch_query(spec, h, checkpoint) for h in halves])
            return first + second
        if checkpoint is not None and key is not None:
            await self._checkpoint_put(checkpoint, key, pages)
        return pages

    async def _checkpoint_get(self, checkpoint: QueryCheckpoint, key: str, spec: Endpoint) -> pl.DataFrame | None:
        try:
            frame = await asyncio.to_thread(checkpoint.get, key)
        except (OSError, ValueError, pl.exceptions.PolarsError) as exc:
            log.warning("checkpoint %s could not be read (%s): asking the API", key, type(exc).__name__)
            return None
        if frame is None:
            return None
        expected = pl.Schema(_wire_schema(spec, self.version))
        if frame.schema != expected:
            log.warning("checkpoint %s has another layout than %s's wire fields: asking the API", key, spec.source)
            return None
        return frame

    async def _checkpoint_put(self, checkpoint: QueryCheckpoint, key: str, pages: list[pl.DataFrame]) -> None:
        try:
            await asyncio.to_thread(checkpoint.put, key, pl.concat(pages, how="vertical"))
        except (OSError, ValueError, pl.exceptions.PolarsError) as exc:
            # The checkpoint only saves work for a rerun: the fetch itself goes on.
            log.warning("checkpoint %s could not be written (%s: %s)", key, type(exc).__name__, exc)

    async def _fetch_pages(self, spec: Endpoint, params: dict[str, str]) -> list[pl.DataFrame]:
        path = spec.path(self.version)
        data_key = spec.data_key(self.version)
        wire_params = self._wire_params(spec, params)
        pages: list[pl.DataFrame] = []
        query = dict(wire_params)
        while True:
            page, key = await self._call(
                "GET", path, params=query, parse=lambda body: parse_page(spec, body, data_key, self.version))
            pages.append(page)
            if not key:
                return pages
            query = {**wire_params, "pagination_key": key}

    def _wire_params(self, spec: Endpoint, params: dict[str, str]) -> dict[str, str]:
        if self.version == "v2":
            return dict(params)
        return {spec.v1_params.get(k, k): v for k, v in params.items()}

    # ------------------------------------------------------------------ transport
    async def _call(self, method: str, path: str, *, parse: Callable[[bytes], T], params: dict[str, str] | None = None,
                    body: dict[str, str] | None = None, auth: bool = True) -> T:
        """One API call with retries; returns `parse(body)` of its 200 answer, raises ApiError on a final status."""
        if self._session is None:
            raise RuntimeError("use JQuantsClient as `async with`")
        shown = shown_params(path, params)
        attempt = reauths = stale = 0
        while True:
            headers: dict[str, str] = {}
            status: int | None = None
            retry_after: float | None = None
            try:
                status, raw, retry_after, headers = await self._send(method, path, params, body, auth)
            except (TimeoutError, aiohttp.ClientError) as exc:
                self.statuses[type(exc).__name__] += 1
                last = self._redact(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
            else:
                self.statuses[str(status)] += 1
                if status == 200:
                    try:
                        return parse(raw)
                    except (ValueError, pl.exceptions.PolarsError) as exc:
                        self.statuses["unparsable"] += 1
                        last = f"unparsable body of {len(raw)} bytes ({type(exc).__name__})"
                        retry_after = None
                elif status == 401 and auth and self.version == "v1" and reauths < MAX_REAUTH and stale < MAX_STALE_401:
                    if await self._renew(headers.get("Authorization", "")):
                        reauths += 1
                    else:
                        stale += 1
                    continue
                elif status in RETRY_STATUSES:
                    last = f"HTTP {status}: {self._redact(_message(raw))}"
                else:
                    raise ApiError(status, self._redact(_message(raw)), path, shown)
            wait = self._backoff(attempt) if retry_after is None else min(retry_after, self.max_retry_after_s)
            if status == 429:
                self.limiter.pause(wait)  # every request of this account holds back, not only this one
            if attempt == self.max_retries:
                raise GogokuError(self._redact(
                    f"J-Quants {path} {shown} still failing after {self.max_retries + 1} attempts ({last}); "
                    "nothing was returned or written: retry later or lower the concurrency"
                ))
            attempt += 1
            if retry_after is not None:
                log.warning("J-Quants %s answered %s with Retry-After %gs (%s JQUANTS_MAX_RETRY_AFTER_S=%g): "
                            "waiting %.1fs before retry %d/%d", path, status, retry_after,
                            "capped by" if retry_after > self.max_retry_after_s else "within",
                            self.max_retry_after_s, wait, attempt, self.max_retries)
            else:
                log.debug("%s %s: %s; retry %d/%d in %.2fs", path, shown, last, attempt, self.max_retries, wait)
            await asyncio.sleep(wait)

    async def _send(self, method: str, path: str, params: dict[str, str] | None, body: dict[str, str] | None,
                    auth: bool) -> tuple[int, bytes, float | None, dict[str, str]]:
        """One HTTP request: one token of the bucket, one count, one request on the wire (`_one_send`).

        Returns (status, body, Retry-After seconds, the headers sent).
        """
        assert self._session is not None
        await self.limiter.acquire()
        self.api_calls += 1
        self.calls_by_path[path] += 1
        # Token requests (auth=False) skip the slots, on a connection of their own: a renewal must not queue
        # behind the requests that wait for its token.
        async with self._semaphore if auth else contextlib.nullcontext():
            # The id token as of the send, after any renewal in progress: one taken before the waits for the
            # bucket and a slot may have expired meanwhile.
            headers = await self._auth_headers() if auth else {}
            async with self._session.request(
                method, self.base_url + path, params=params, json=body, headers=headers,
                allow_redirects=False, middlewares=(_one_send(),),
            ) as resp:
                self._saw_date(resp.headers.get("Date"))
                return resp.status, await resp.read(), _retry_after(resp.headers.get("Retry-After")), headers

    def _saw_date(self, raw: str | None) -> None:
        moment = _http_date(raw)
        if moment is None:
            return
        if self.server_time is None or moment > self.server_time:
            self.server_time = moment
        if self.first_server_time is None or moment < self.first_server_time:
            self.first_server_time = moment

    def as_of(self, fallback: dt.datetime | None = None) -> dt.datetime:
        """The time the data fetched so far is complete for: the earliest `Date` the API sent (its own
        clock; the safe side when a fetch spans a publication), else `fallback` or the wall clock."""
        if self.first_server_time is not None:
            return self.first_server_time
        return fallback if fallback is not None else dt.datetime.now(dt.UTC)

    def _backoff(self, attempt: int) -> float:
        # Exponential with jitter around the nominal value, so that parallel retries spread out.
        return min(self.backoff_base_s * 2**attempt * (0.5 + random.random()), MAX_BACKOFF_S)

    # ------------------------------------------------------------------ secrets
    def _remember(self, secret: str | None) -> None:
        if secret and len(secret) >= MIN_SCRUB_LEN:
            self._secrets.add(secret)

    def _redact(self, text: str) -> str:
        """`text` with every known secret (credentials, tokens issued so far) replaced by ***."""
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, REDACTED)
        return text

    # ------------------------------------------------------------------ v1 tokens
    async def _auth_headers(self) -> dict[str, str]:
        if self.version == "v2":
            return {}
        async with self._auth_lock:
            if self._id_token is None:
                await self._new_id_token()
            return {"Authorization": f"Bearer {self._id_token}"}

    async def _renew(self, used: str) -> bool:
        """After a 401: a new id token, unless another request already renewed the one that failed.

        True when this call renewed it (a 401 counts against the request only then).
        """
        async with self._auth_lock:
            if self._id_token is not None and used != f"Bearer {self._id_token}":
                return False
            self._id_token = None
            await self._new_id_token()
            return True

    async def _new_id_token(self) -> None:
        if self._refresh_token is not None:
            try:
                self._id_token = await self._refresh()
                return
            except ApiError as exc:
                log.info("J-Quants refresh token rejected (%s); signing in again", exc.message)
                self._refresh_token = None
        try:
            self._refresh_token = await self._call(
                "POST", AUTH_USER_PATH, body={"mailaddress": self._mailaddress or "", "password": self._password or ""},
                parse=lambda raw: _token(raw, "refreshToken"), auth=False)
            self._remember(self._refresh_token)
            self._id_token = await self._refresh()
        except ApiError as exc:
            raise GogokuError(self._redact(
                f"J-Quants v1 sign-in at {self.base_url} answered {exc.status}: {exc.message} -- check "
                "JQUANTS_MAILADDRESS and JQUANTS_PASSWORD (accounts registered since 2025-12-22 can use only v2: "
                "set JQUANTS_API_VERSION=v2 and JQUANTS_API_KEY)"
            )) from None
        log.info("J-Quants v1: signed in as %s", _masked_mail(self._mailaddress or ""))

    async def _refresh(self) -> str:
        token = await self._call("POST", AUTH_REFRESH_PATH, params={"refreshtoken": self._refresh_token or ""},
                                 parse=lambda raw: _token(raw, "idToken"), auth=False)
        self._remember(token)
        return token

    # ------------------------------------------------------------------ messages
    def _explain(self, spec: Endpoint, exc: ApiError) -> str:
        return self._redact(self._explanation(spec, exc))

    def _explanation(self, spec: Endpoint, exc: ApiError) -> str:
        head = str(exc)
        if exc.status == 400 and "subscription covers" in exc.message:
            return (f"{head} -- the dates lie outside the {self.plan} plan's window: move the start/end dates "
                    "inside it, or raise the plan (JQUANTS_PLAN_TIER) to reach further back")
        if exc.status == 400:
            return f"{head} -- check the query parameters of {spec.source}"
        if exc.status == 401:
            return f"{head} -- the id token was refused after signing in again: check JQUANTS_MAILADDRESS and JQUANTS_PASSWORD"
        if exc.status == 403 and "api key" in exc.message.lower():
            return f"{head} -- check JQUANTS_API_KEY (issued on the J-Quants dashboard)"
        if exc.status == 403:
            return (f"{head} -- {spec.source} needs the {minimum_plan(spec.source)} plan or higher "
                    f"(JQUANTS_PLAN_TIER={self.plan}): raise the plan or leave {spec.source} out; "
                    "if your plan includes it, check JQUANTS_API_KEY")
        return head


async def _all_or_nothing(coros: list[Any]) -> list[Any]:
    """Run concurrently; when one fails for good, cancel the others and raise (no partial results)."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def _code_column(spec: Endpoint) -> str:
    """v1 name of the stock-code column (`Code`, `LocalCode` in statements)."""
    for f in spec.fields:
        if f.v2 == "Code":
            return f.v1
    raise InputError(f"source {spec.source!r} has no stock code column: leave the codes out")


def _normalized_codes(spec: Endpoint, codes: list[str] | None) -> list[str] | None:
    if codes is None:
        return None
    _code_column(spec)
    out = [full_code(c) for c in codes]
    bad = [c for c in out if len(c) != 5]
    if bad:
        raise InputError(f"codes: {bad[0]!r} is not a 4- or 5-character J-Quants code")
    return sorted(set(out))


def query_plan(spec: Endpoint, start: dt.date, end: dt.date, codes: list[str] | None = None) -> list[dict[str, str]]:
    """The API queries that cover [start, end] for a source (see `Axis`).

    Sources that accept both `date` and `code` are asked by code (code + from/to where the endpoint
    takes a range, else the code's whole history) when that takes fewer queries than one per business
    day: 20 codes over 490 days is 20 queries by code, 1,000 codes is 490 queries by date.
    """
    if spec.axis is Axis.RANGE:
        lo, hi = spec.range_params
        return [{lo: start.isoformat(), hi: end.isoformat()}]
    days = cal.business_days(start, end)
    if spec.axis is Axis.BUSINESS_DAY:
        if codes is not None and "code" in spec.params and len(codes) < len(days):
            span = {"from": start.isoformat(), "to": end.isoformat()} if "from" in spec.params else {}
            return [{"code": c, **span} for c in codes]
        return [{"date": d.isoformat()} for d in days]
    # Monthly snapshots: the first business day of each month in range, plus `start` itself.
    firsts = [d for i, d in enumerate(days)
              if (days[i - 1] if i else cal.previous_business_day(d)).month != d.month]
    return [{"date": d.isoformat()} for d in sorted({start, *firsts})]


def split_range(params: dict[str, str], names: tuple[str, str] = ("from", "to")
                ) -> tuple[dict[str, str], dict[str, str]] | None:
    """A date-range query as two halves [from, mid] and [mid+1, to]; None when it has no range to split.

    `names` are the query's names of the range bounds (`from`/`to`, or e.g. `disc_date_from`/`disc_date_to`).
    """
    first, last = names
    if not (params.get(first) and params.get(last)):
        return None
    lo, hi = dt.date.fromisoformat(params[first]), dt.date.fromisoformat(params[last])
    if hi <= lo:
        return None
    mid = lo + (hi - lo) // 2
    return ({**params, last: mid.isoformat()}, {**params, first: (mid + dt.timedelta(days=1)).isoformat()})


def _wire_schema(spec: Endpoint, version: str = "v2") -> dict[str, type[pl.DataType]]:
    def dtype(kind: Kind) -> type[pl.DataType]:
        return pl.Float64 if kind is Kind.NUMBER and not spec.strings_on_wire else pl.Utf8

    return {f.wire(version): dtype(f.kind) for f in spec.fields}


def parse_page(spec: Endpoint, body: bytes, data_key: str = "data", version: str = "v2") -> tuple[pl.DataFrame, str | None]:
    """One response body -> (rows with wire names and types, pagination_key or None).

    A body that is not a JSON object holding `data_key` (cut short, or an error page) raises ValueError.
    """
    schema = _wire_schema(spec, version)
    if any("." in name for name in schema):
        return _parse_rows(body, data_key, schema)
    try:
        page = pl.read_json(io.BytesIO(body), schema={data_key: pl.List(pl.Struct(schema)), "pagination_key": pl.Utf8})
        if page.height != 1 or page[data_key].null_count():
            raise ValueError(f"no {data_key!r} rows in the body")
        return page.select(pl.col(data_key).explode()).unnest(data_key), page["pagination_key"][0]
    except pl.exceptions.ComputeError:
        # Some number fields arrive as "" or "-" when not applicable: make those null.
        return _parse_rows(body, data_key, schema)


def _parse_rows(body: bytes, data_key: str, schema: dict[str, type[pl.DataType]]) -> tuple[pl.DataFrame, str | None]:
    """The row-by-row parse: nested objects flatten to "Parent.Child" keys, strings in number fields
    ("", "-", "*": not applicable) become null."""
    try:
        payload = json.loads(body)
    except ValueError:
        raise ValueError("the body is not valid JSON") from None
    if not isinstance(payload, dict) or not isinstance(payload.get(data_key), list):
        raise ValueError(f"no {data_key!r} rows in the body")
    numbers = [k for k, v in schema.items() if v == pl.Float64]
    rows = []
    for raw in payload[data_key]:
        row = dict(raw)
        for key, value in raw.items():
            if isinstance(value, dict):
                del row[key]
                row.update({f"{key}.{child}": v for child, v in value.items()})
        row.update({k: None for k in numbers if isinstance(row.get(k), str)})
        rows.append(row)
    return pl.from_dicts(rows, schema=schema), payload.get("pagination_key")


def to_typed(spec: Endpoint, wire: pl.DataFrame, version: str = "v2") -> pl.DataFrame:
    """Wire frame -> gogoku's frame: v1 names in the endpoint's order, dates as Date, numbers as Float64."""
    names = {f.wire(version): f.v1 for f in spec.fields}
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


def _token(body: bytes, name: str) -> str:
    token = json.loads(body).get(name)
    if not isinstance(token, str) or not token:
        raise ValueError(f"no {name} in the body")
    return token


def _message(body: bytes) -> str:
    try:
        return str(json.loads(body).get("message", "")) or body.decode(errors="replace")[:200]
    except (ValueError, AttributeError):
        return body.decode(errors="replace")[:200]


def _http_date(raw: str | None) -> dt.datetime | None:
    """An HTTP `Date` header as an aware datetime, or None when absent or unparsable."""
    if not raw:
        return None
    try:
        moment = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


def _retry_after(raw: str | None) -> float | None:
    """Seconds of a Retry-After header: a number of seconds, or an HTTP date (RFC 9110)."""
    if raw is None:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    return max(seconds, 0.0) if math.isfinite(seconds) else None


def _masked_mail(mail: str) -> str:
    """A mail address for logs: its first character and domain (q***@example.com)."""
    user, _, domain = mail.partition("@")
    return f"{user[:1]}{REDACTED}@{domain}" if domain else REDACTED
