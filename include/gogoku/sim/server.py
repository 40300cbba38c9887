"""A J-Quants-compatible HTTP server over a `SimMarket` (aiohttp), bound to 127.0.0.1 by default.

Both API versions, generic over `ENDPOINTS`:
- v2 paths `/v2/...` with the `x-api-key` header; rows under `"data"` with v2 field names.
- v1 paths `/v1/...` with `Authorization: Bearer <idToken>` from `POST /v1/token/auth_user` (JSON
  {mailaddress, password} -> refreshToken) and `POST /v1/token/auth_refresh?refreshtoken=` (-> idToken);
  rows under the endpoint's v1 key with v1 names. Id and refresh tokens expire (24 h and a week by default).

Plans as the real API applies them: endpoints outside the plan answer 403; dates outside the plan's
window 400 ("Your subscription covers the following dates: ..."); more than the plan's requests per
minute 429 with Retry-After; a query whose full result exceeds `max_rows` 413. Pages carry a
`pagination_key` while rows remain; gzip when the client accepts it.

Faults, deterministic for the market's seed (the n-th visit of a URL always draws the same): slow
answers, 5xx, connection resets and truncated bodies, each at its own rate (`Faults`).
Its clock is the market's: every answer's HTTP `Date` is the end of the market's `end` day in Tokyo
(23:59:59 JST), the moment as of which it serves what is published on or before `end`.
Test hooks: `GET /__sim__/stats` (requests per path, answers per status, faults per kind, tokens issued),
`POST /__sim__/reset`, and `POST /__sim__/faults` with a JSON object of fault rates (`Faults`' fields)
that replaces the server's faults from the next request on (an outage that starts or ends).
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import email.utils
import hashlib
import json
import logging
import math
import secrets
import signal
import threading
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import polars as pl
from aiohttp import web

from gogoku.calendar import TOKYO
from gogoku.config import PLAN_TIERS, plan_window
from gogoku.errors import InputError
from gogoku.jquants.endpoints import ENDPOINTS, Endpoint, Kind, minimum_plan
from gogoku.jquants.ratelimit import RateLimit
from gogoku.sim.market import SimMarket
from gogoku.sim.query import BadRequest, parse_date, select_rows

log = logging.getLogger(__name__)

STATS_PATH = "/__sim__/stats"
RESET_PATH = "/__sim__/reset"
FAULTS_PATH = "/__sim__/faults"
AUTH_USER_PATH = "/v1/token/auth_user"
AUTH_REFRESH_PATH = "/v1/token/auth_refresh"
INVALID_KEY = "The incoming api key is invalid or expired."
INVALID_TOKEN = "The incoming token is invalid or expired."
BAD_CREDENTIALS = "'mailaddress' or 'password' is incorrect."
BAD_REFRESH_TOKEN = "'refreshtoken' is incorrect or expired."
UNEXPECTED = "Unexpected error. Please try again later."
RATE_LIMITED = "Too Many Requests: the rate limit was exceeded. Please retry after a while."
TOO_LARGE = "Response data is too large. Specify parameters to reduce the acquired data range."
ID_TOKEN_TTL_S = 24 * 3600.0
REFRESH_TOKEN_TTL_S = 7 * 24 * 3600.0
# Sources whose data is public ahead of time: not limited to the plan's date window.
WINDOW_EXEMPT = frozenset({"trading_calendar"})


@dataclass(frozen=True)
class Faults:
    """Share of API requests answered with each fault (they add up to at most 1).

    slow: answered after `slow_ms` (a client with a shorter timeout sees a timeout); error: 500, 502 or
    503; reset: the connection is closed before any byte of the answer; truncate: the body stops halfway,
    either under the full Content-Length then closed, or mid-stream of a chunked answer, or as a complete
    answer whose JSON is cut.
    """

    slow: float = 0.0
    error: float = 0.0
    reset: float = 0.0
    truncate: float = 0.0
    slow_ms: float = 1000.0

    KINDS = ("slow", "error", "reset", "truncate")

    def __post_init__(self) -> None:
        rates = [getattr(self, k) for k in self.KINDS]
        if any(r < 0 for r in rates) or sum(rates) >= 1:
            raise InputError(f"fault rates {dict(zip(self.KINDS, rates, strict=True))}: expected non-negative shares "
                             "adding up to less than 1")
        if self.slow_ms < 0:
            raise InputError(f"slow_ms={self.slow_ms}: expected a non-negative delay")

    @classmethod
    def mixed(cls, rate: float, slow_ms: float = 1000.0) -> Faults:
        """`rate` spread evenly over the four kinds."""
        if not 0 <= rate < 1:
            raise InputError(f"fault_rate={rate}: expected a fraction in [0, 1)")
        return cls(*(rate / 4,) * 4, slow_ms=slow_ms)

    @property
    def total(self) -> float:
        return sum(getattr(self, k) for k in self.KINDS)

    def draw(self, u: float) -> str | None:
        """The fault for a uniform draw `u` in [0, 1), or None."""
        edge = 0.0
        for kind in self.KINDS:
            edge += getattr(self, kind)
            if u < edge:
                return kind
        return None


@dataclass(frozen=True)
class Credentials:
    """Who may sign in. None accepts any non-empty value (v2 key, v1 mail address or password)."""

    api_key: str | None = None
    mailaddress: str | None = None
    password: str | None = None
    id_token_ttl_s: float = ID_TOKEN_TTL_S
    refresh_token_ttl_s: float = REFRESH_TOKEN_TTL_S


@dataclass
class _State:
    market: SimMarket
    plan: str
    page_size: int
    latency_ms: float
    faults: Faults
    credentials: Credentials
    rate_limit: RateLimit | None  # None: unlimited
    today: dt.date
    max_rows: int | None
    date_windows: bool
    requests: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    fault_counts: Counter[str] = field(default_factory=Counter)
    seen: Counter[str] = field(default_factory=Counter)  # occurrences of each URL, for fault draws
    recent: dict[str, deque[float]] = field(default_factory=dict)  # request times per account
    refresh_tokens: dict[str, tuple[str, float]] = field(default_factory=dict)  # token -> (mail, expiry)
    id_tokens: dict[str, tuple[str, float]] = field(default_factory=dict)
    issued: list[str] = field(default_factory=list)  # every token handed out (for leak checks in tests)

    def stats(self) -> dict[str, Any]:
        return {
            "requests": dict(sorted(self.requests.items())),
            "total": sum(self.requests.values()),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "faults": dict(sorted(self.fault_counts.items())),
        }

    def reset(self) -> None:
        self.requests.clear()
        self.statuses.clear()
        self.fault_counts.clear()
        self.seen.clear()
        self.recent.clear()

    def draw(self, url: str) -> tuple[str | None, int]:
        """(fault kind or None, a second draw to pick the variant) for the next visit of `url`."""
        if self.faults.total <= 0:
            return None, 0
        n = self.seen[url]
        self.seen[url] += 1
        digest = hashlib.blake2b(f"{self.market.seed}|{url}|{n}".encode(), digest_size=16).digest()
        u = int.from_bytes(digest[:8], "big") / 2**64
        return self.faults.draw(u), int.from_bytes(digest[8:], "big")

    def over_limit(self, account: str) -> float | None:
        """Seconds until `account` may send again when it is over the limit; else records the request."""
        if self.rate_limit is None:
            return None
        now = time.monotonic()
        times = self.recent.setdefault(account, deque())
        while times and times[0] <= now - self.rate_limit.window_s:
            times.popleft()
        if len(times) >= self.rate_limit.requests:
            return times[0] + self.rate_limit.window_s - now
        times.append(now)
        return None

    def window(self, version: str) -> tuple[dt.date | None, dt.date]:
        return plan_window(self.plan, self.today, version)

    def now(self) -> dt.datetime:
        """The simulator's clock: the end of the market's last day in Tokyo (what it serves is
        everything published up to then)."""
        return dt.datetime.combine(self.market.end, dt.time(23, 59, 59), TOKYO)


STATE_KEY = web.AppKey("sim_state", _State)


def _message(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"message": message}, status=status, headers=headers)


def _to_wire(spec: Endpoint, frame: pl.DataFrame, version: str, plan: str) -> pl.DataFrame:
    """The fields the version sends to the plan, with the version's names; dates as YYYY-MM-DD; fins send
    every value as a string, "" when empty."""
    exprs = []
    for f in spec.wire_fields(version, plan):
        col = pl.col(f.v1)
        if f.kind is Kind.DATE:
            col = col.dt.strftime("%Y-%m-%d")
        elif f.kind is Kind.NUMBER and spec.strings_on_wire:
            # Integral amounts print without a fraction ("1200000000"), ratios and per-share values with one.
            col = pl.when(col == col.floor()).then(col.cast(pl.Int64).cast(pl.Utf8)).otherwise(col.cast(pl.Utf8))
        if spec.strings_on_wire:
            col = col.fill_null("")
        exprs.append(col.alias(f.wire(version)))
    return _nest(frame.select(exprs))


def _nest(frame: pl.DataFrame) -> pl.DataFrame:
    """Columns named "Parent.Child" become one struct column "Parent" (a nested JSON object), in place."""
    parents = list(dict.fromkeys(c.split(".", 1)[0] for c in frame.columns if "." in c))
    if not parents:
        return frame
    exprs: list[pl.Expr] = []
    for name in frame.columns:
        parent = name.split(".", 1)[0]
        if "." not in name:
            exprs.append(pl.col(name))
        elif parent in parents:
            members = [c for c in frame.columns if c.startswith(parent + ".")]
            exprs.append(pl.struct([pl.col(c).alias(c.split(".", 1)[1]) for c in members]).alias(parent))
            parents.remove(parent)
    return frame.select(exprs)


def _query_fingerprint(path: str, query: dict[str, str]) -> str:
    items = sorted((k, v) for k, v in query.items() if k != "pagination_key")
    return hashlib.blake2b(f"{path}?{items}".encode(), digest_size=6).hexdigest()


def _pagination_key(offset: int, fingerprint: str) -> str:
    return base64.urlsafe_b64encode(f"{offset}:{fingerprint}".encode()).decode().rstrip("=")


def _offset(key: str, fingerprint: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(key + "=" * (-len(key) % 4)).decode()
        offset, seen = raw.split(":")
        if seen != fingerprint:
            raise ValueError
        return int(offset)
    except ValueError:
        raise BadRequest("The pagination_key is invalid for this query.") from None


def _is_date_param(name: str) -> bool:
    return name in ("date", "from", "to") or "date" in name


def _parse_day(raw: str) -> dt.date | None:
    try:
        return parse_date("date", raw)
    except BadRequest:
        return None  # select_rows reports the malformed value


def window_message(first: dt.date | None, last: dt.date) -> str:
    """The API's 400 message for a date outside the plan's window."""
    return (f"Your subscription covers the following dates: {first or ''} ~ {last}. "
            "If you want more data, please check other plans: https://jpx-jquants.com/")


def _outside_window(state: _State, spec: Endpoint, query: dict[str, str], version: str) -> str | None:
    """The 400 message when a date parameter lies outside the plan's window."""
    if not state.date_windows or spec.source in WINDOW_EXEMPT:
        return None
    first, last = state.window(version)
    for name, raw in query.items():
        day = _parse_day(raw) if _is_date_param(name) else None
        if day is None:
            continue
        if (first is not None and day < first) or (state.plan == "free" and day > last):
            return window_message(first, last)
    return None


def _within_window(state: _State, spec: Endpoint, frame: pl.DataFrame, version: str) -> pl.DataFrame:
    """Queries without dates (by code) return only the rows inside the plan's window."""
    if not state.date_windows or spec.source in WINDOW_EXEMPT:
        return frame
    first, last = state.window(version)
    col = pl.col(spec.date_column)
    inside = col <= last if state.plan == "free" else pl.lit(True)
    if first is not None:
        inside = inside & (col >= first)
    return frame.filter(col.is_null() | inside)


def _handler(spec: Endpoint, version: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    to_v2 = {v1: v2 for v2, v1 in spec.v1_params.items()} if version == "v1" else {}
    data_key = spec.data_key(version)

    async def handle(request: web.Request) -> web.Response:
        state = request.app[STATE_KEY]
        if state.plan not in spec.plans:
            return _message(403, f"This API is not available on your subscription plan ({state.plan}). "
                                 f"{spec.path(version)} requires the {minimum_plan(spec.source)} plan or higher.")
        query = {to_v2.get(k, k): v for k, v in request.query.items()}
        try:
            if spec.required_any and not any(query.get(p) for p in spec.required_any):
                names = [spec.v1_params.get(p, p) if version == "v1" else p for p in spec.required_any]
                raise BadRequest(f"This API requires at least 1 parameter as follows; {', '.join(names)}")
            outside = _outside_window(state, spec, query, version)
            if outside:
                raise BadRequest(outside)
            fingerprint = _query_fingerprint(request.path, query)
            offset = _offset(query["pagination_key"], fingerprint) if query.get("pagination_key") else 0
            frame = _within_window(state, spec, select_rows(state.market, spec, query), version)
        except BadRequest as exc:
            return _message(400, str(exc))
        except Exception:  # a simulator defect answers as the API's own failures do
            log.exception("simulator failed on %s", request.rel_url)
            return _message(500, UNEXPECTED)
        if state.max_rows is not None and frame.height > state.max_rows:
            return _message(413, TOO_LARGE)
        page = frame.slice(offset, state.page_size)
        rows = _to_wire(spec, page, version, state.plan).write_json() if page.height else "[]"
        body = "{" + json.dumps(data_key) + ":" + rows
        if offset + page.height < frame.height:
            body += ',"pagination_key":' + json.dumps(_pagination_key(offset + page.height, fingerprint))
        response = web.Response(text=body + "}", content_type="application/json")
        response.enable_compression()
        return response

    return handle


async def _auth_user(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    creds = state.credentials
    try:
        payload = json.loads(await request.read() or b"{}")
        mail, password = str(payload.get("mailaddress") or ""), str(payload.get("password") or "")
    except (ValueError, AttributeError):
        mail = password = ""
    if (not mail or not password or (creds.mailaddress is not None and mail != creds.mailaddress)
            or (creds.password is not None and password != creds.password)):
        return _message(400, BAD_CREDENTIALS)
    token = secrets.token_urlsafe(32)
    state.refresh_tokens[token] = (mail, time.monotonic() + creds.refresh_token_ttl_s)
    state.issued.append(token)
    return web.json_response({"refreshToken": token})


async def _auth_refresh(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    refresh = request.query.get("refreshtoken", "")
    if not refresh:
        return _message(400, "'refreshtoken' is required.")
    mail, expiry = state.refresh_tokens.get(refresh, ("", 0.0))
    if time.monotonic() >= expiry:
        state.refresh_tokens.pop(refresh, None)
        return _message(400, BAD_REFRESH_TOKEN)
    token = secrets.token_urlsafe(32)
    state.id_tokens[token] = (mail, time.monotonic() + state.credentials.id_token_ttl_s)
    state.issued.append(token)
    return web.json_response({"idToken": token})


def _account(request: web.Request, state: _State) -> tuple[str | None, web.Response | None]:
    """(the account a data request speaks for, or the 401/403 answer)."""
    if request.path.startswith("/v1/"):
        header = request.headers.get("Authorization", "")
        token = header[7:].strip() if header[:7].lower() == "bearer " else ""
        mail, expiry = state.id_tokens.get(token, ("", 0.0))
        if time.monotonic() >= expiry:
            state.id_tokens.pop(token, None)
            return None, _message(401, INVALID_TOKEN)
        return "v1:" + mail, None
    key = request.headers.get("x-api-key", "")
    if not key or (state.credentials.api_key is not None and key != state.credentials.api_key):
        return None, _message(403, INVALID_KEY)
    return "v2:" + key, None


async def _truncated(request: web.Request, response: web.Response, variant: int) -> web.StreamResponse:
    """Send half of the answer's JSON: under the full Content-Length, chunked then cut, or as a whole answer."""
    body = response.body if isinstance(response.body, bytes) else b""
    prefix = body[: len(body) // 2]
    if variant % 3 == 2:
        return web.Response(body=prefix, status=response.status, content_type="application/json")
    stream = web.StreamResponse(status=response.status)
    stream.content_type = "application/json"
    if variant % 3 == 0:
        stream.content_length = len(body)
    else:
        stream.enable_chunked_encoding()
    try:
        await stream.prepare(request)
        await stream.write(prefix)
        await asyncio.sleep(0.01)  # let the prefix reach the socket before the connection drops
    except ConnectionResetError:  # the client left first
        pass
    _drop(request)
    return stream


def _drop(request: web.Request) -> None:
    if request.transport is not None:
        request.transport.abort()


@web.middleware
async def _gate(request: web.Request, handler: Any) -> web.StreamResponse:
    """Counting, latency, the credential, the rate limit and injected faults, in that order, for API paths."""
    state = request.app[STATE_KEY]
    if request.path.startswith("/__sim__/"):
        return await handler(request)
    state.requests[request.path] += 1
    if state.latency_ms > 0:
        await asyncio.sleep(state.latency_ms / 1000)
    response: web.StreamResponse | None = None
    if not request.path.startswith("/v1/token/"):
        account, response = _account(request, state)
        if response is None and account is not None:
            wait = state.over_limit(account)
            if wait is not None:
                response = _message(429, RATE_LIMITED, headers={"Retry-After": str(max(1, math.ceil(wait)))})
    if response is None:
        # Token endpoints draw by path: their URLs carry one-time tokens, which would make the draws random.
        fault, variant = state.draw(request.path if request.path.startswith("/v1/token/") else str(request.rel_url))
        if fault is not None:
            state.fault_counts[fault] += 1
        if fault == "slow":
            await asyncio.sleep(state.faults.slow_ms / 1000)
        if fault == "error":
            response = _message((500, 502, 503)[variant % 3], UNEXPECTED)
        elif fault == "reset":
            _drop(request)
            return web.Response(status=200)  # never sent: the connection is gone
        else:
            response = await handler(request)
            if fault == "truncate" and isinstance(response, web.Response):
                return await _truncated(request, response, variant)
    state.statuses[response.status] += 1
    return response


async def _date_header(request: web.Request, response: web.StreamResponse) -> None:
    # Sent as the answer's Date: what it serves and what it says is "now" agree.
    moment = request.app[STATE_KEY].now()
    response.headers["Date"] = email.utils.format_datetime(moment.astimezone(dt.UTC), usegmt=True)


async def _stats(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    return web.json_response({**state.stats(), "issued_tokens": list(state.issued)})


async def _set_faults(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    try:
        body = await request.json()
        state.faults = Faults(**{k: float(v) for k, v in dict(body).items()})
    except (ValueError, TypeError, InputError) as exc:
        return _message(400, f"faults: {exc}")
    log.info("simulator faults now %s", state.faults)
    return web.json_response({"faults": {k: getattr(state.faults, k) for k in (*Faults.KINDS, "slow_ms")}})


async def _reset(request: web.Request) -> web.Response:
    request.app[STATE_KEY].reset()
    return web.json_response({"reset": True})


async def _unknown(request: web.Request) -> web.Response:
    # API Gateway answers unknown resources with 403, as J-Quants does.
    return _message(403, "Missing Authentication Token")


def create_app(market: SimMarket, plan: str = "standard", page_size: int = 5000, latency_ms: float = 0,
               fault_rate: float = 0.0, api_key: str | None = None, *, faults: Faults | None = None,
               mailaddress: str | None = None, password: str | None = None,
               id_token_ttl_s: float = ID_TOKEN_TTL_S, refresh_token_ttl_s: float = REFRESH_TOKEN_TTL_S,
               rate_limit: int | None = None, rate_window_s: float = 60.0, rate_limits: bool = True,
               today: dt.date | None = None, date_windows: bool = True, max_rows: int | None = None,
               slow_ms: float = 1000.0) -> web.Application:
    """The simulator app.

    `fault_rate` spreads over the four fault kinds (`Faults.mixed`); `faults` sets each kind's rate.
    `rate_limit` overrides the plan's requests per `rate_window_s` (60 s); `rate_limits=False` lifts it.
    `today` (default: the market's last day) anchors the plan's date window; `max_rows` caps one query's
    result (413 beyond it).
    """
    if plan not in PLAN_TIERS:
        raise InputError(f"plan={plan!r}: expected one of {', '.join(PLAN_TIERS)}")
    if page_size < 1:
        raise InputError(f"page_size={page_size}: expected a positive number of rows per page")
    if latency_ms < 0:
        raise InputError(f"latency_ms={latency_ms}: expected a non-negative delay")
    if min(id_token_ttl_s, refresh_token_ttl_s) <= 0:
        raise InputError(f"token lifetimes {id_token_ttl_s}s / {refresh_token_ttl_s}s: expected positive seconds")
    if max_rows is not None and max_rows < 1:
        raise InputError(f"max_rows={max_rows}: expected a positive number of rows")
    if faults is None:
        faults = Faults.mixed(fault_rate, slow_ms=slow_ms)
    elif fault_rate:
        raise InputError("give either fault_rate or faults, not both")
    limit = RateLimit.for_plan(plan, rate_limit, rate_window_s) if rate_limits else None
    app = web.Application(middlewares=[_gate])
    app.on_response_prepare.append(_date_header)
    app[STATE_KEY] = _State(
        market, plan, page_size, latency_ms, faults,
        Credentials(api_key, mailaddress, password, id_token_ttl_s, refresh_token_ttl_s),
        limit, today or market.end, max_rows, date_windows,
    )
    for spec in ENDPOINTS.values():
        for version in ("v2", "v1"):
            app.router.add_get(spec.path(version), _handler(spec, version))
    app.router.add_post(AUTH_USER_PATH, _auth_user)
    app.router.add_post(AUTH_REFRESH_PATH, _auth_refresh)
    app.router.add_get(STATS_PATH, _stats)
    app.router.add_post(RESET_PATH, _reset)
    app.router.add_post(FAULTS_PATH, _set_faults)
    app.router.add_route("*", "/v2/{tail:.*}", _unknown)
    app.router.add_route("*", "/v1/{tail:.*}", _unknown)
    return app


class SimServer:
    """A simulator server running on its own event loop in a daemon thread."""

    def __init__(self, app: web.Application, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self._loop = asyncio.new_event_loop()
        self._runner = web.AppRunner(app, access_log=None)
        ready = threading.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            asyncio.set_event_loop(self._loop)
            try:
                self._loop.run_until_complete(self._runner.setup())
                site = web.TCPSite(self._runner, host, port)
                self._loop.run_until_complete(site.start())
            except BaseException as exc:  # reported to the starting thread
                failure.append(exc)
                ready.set()
                return
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=serve, name="jquants-sim", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise failure[0]
        bound_host, bound_port = self._runner.addresses[0][:2]
        self.url = f"http://{bound_host}:{bound_port}"

    @property
    def state(self) -> _State:
        return self.app[STATE_KEY]

    def stats(self) -> dict[str, Any]:
        return self.state.stats()

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def __enter__(self) -> SimServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_in_thread(market: SimMarket, port: int = 0, **options: Any) -> SimServer:
    """Start the simulator on 127.0.0.1 (an ephemeral port by default); `.url`, `.stop()`.

    `options` are `create_app`'s keywords.
    """
    return SimServer(create_app(market, **options), "127.0.0.1", port)


def serve_forever(host: str = "127.0.0.1", port: int = 8080, seed: int = 42, n_stocks: int = 300,
                  start: dt.date | None = None, end: dt.date | None = None, **options: Any) -> dict[str, Any]:
    """Serve until SIGINT/SIGTERM (the `gogoku sim serve` command); returns the request counts.

    `options` are `create_app`'s keywords. Once listening it prints one JSON line `{"url": ...}` on
    stdout, so that a parent process (or a test) can read where it is before sending requests.
    """
    market = SimMarket(seed=seed, n_stocks=n_stocks, end=end, **({"start": start} if start else {}))
    app = create_app(market, **options)
    state = app[STATE_KEY]

    async def main() -> str:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        bound_host, bound_port = runner.addresses[0][:2]
        url = f"http://{bound_host}:{bound_port}"
        log.info("J-Quants simulator (seed %d, %d stocks, %s..%s, plan %s, %s, faults %s) serving at %s",
                 seed, n_stocks, market.start, market.end, state.plan,
                 f"{state.rate_limit.requests} requests per {state.rate_limit.window_s:g}s" if state.rate_limit
                 else "no rate limit", state.faults, url)
        print(json.dumps({"url": url, "plan": state.plan, "start": str(market.start), "end": str(market.end)}),
              flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            await runner.cleanup()
        return url

    url = asyncio.run(main())
    return {"url": url, **state.stats()}
