"""A J-Quants-compatible HTTP server over a `SimMarket` (aiohttp), bound to 127.0.0.1 by default.

v2 paths under `/v2/...` with the `x-api-key` header, `{"data": [...], "pagination_key": ...}` bodies,
v2 field names, 400/403 bodies like the real API's, gzip when the client accepts it. Test hooks:
`GET /__sim__/stats` (request counts per path) and `POST /__sim__/reset`; `fault_rate` answers a
deterministic fraction of requests with 500 or 429 (Retry-After: 1) and `latency_ms` delays each one.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import json
import logging
import signal
import threading
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import polars as pl
from aiohttp import web

from gogoku.config import PLAN_TIERS
from gogoku.errors import InputError
from gogoku.jquants.endpoints import ENDPOINTS, Endpoint, Kind, minimum_plan
from gogoku.jquants.market import SimMarket
from gogoku.jquants.sim_query import BadRequest, select_rows

log = logging.getLogger(__name__)

STATS_PATH = "/__sim__/stats"
RESET_PATH = "/__sim__/reset"
INVALID_KEY = "The incoming api key is invalid or expired."
UNEXPECTED = "Unexpected error. Please try again later."
RATE_LIMITED = "Too Many Requests: the rate limit was exceeded. Please retry after a while."


@dataclass
class _State:
    market: SimMarket
    plan: str
    page_size: int
    latency_ms: float
    fault_rate: float
    api_key: str | None
    requests: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    seen: Counter[str] = field(default_factory=Counter)  # occurrences of each URL, for fault draws

    def stats(self) -> dict[str, Any]:
        return {
            "requests": dict(sorted(self.requests.items())),
            "total": sum(self.requests.values()),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
        }

    def reset(self) -> None:
        self.requests.clear()
        self.statuses.clear()
        self.seen.clear()

    def fault(self, url: str) -> int | None:
        """500 or 429 for a seeded fraction of requests; the n-th visit of a URL always draws the same."""
        if self.fault_rate <= 0:
            return None
        n = self.seen[url]
        self.seen[url] += 1
        digest = hashlib.blake2b(f"{self.market.seed}|{url}|{n}".encode(), digest_size=8).digest()
        draw = int.from_bytes(digest, "big")
        if draw / 2**64 >= self.fault_rate:
            return None
        return 429 if draw % 2 else 500


STATE_KEY = web.AppKey("sim_state", _State)


def _message(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"message": message}, status=status, headers=headers)


def _to_wire(spec: Endpoint, frame: pl.DataFrame) -> pl.DataFrame:
    """v2 names; dates as YYYY-MM-DD; fins send every value as a string, "" when empty."""
    exprs = []
    for f in spec.fields:
        col = pl.col(f.v1)
        if f.kind is Kind.DATE:
            col = col.dt.strftime("%Y-%m-%d")
        elif f.kind is Kind.NUMBER and spec.strings_on_wire:
            # Integral amounts print without a fraction ("1200000000"), ratios and per-share values with one.
            col = pl.when(col == col.floor()).then(col.cast(pl.Int64).cast(pl.Utf8)).otherwise(col.cast(pl.Utf8))
        if spec.strings_on_wire:
            col = col.fill_null("")
        exprs.append(col.alias(f.v2))
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


def _handler(spec: Endpoint) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(request: web.Request) -> web.Response:
        state = request.app[STATE_KEY]
        if state.plan not in spec.plans:
            return _message(403, f"This API is not available on your subscription plan ({state.plan}). "
                                 f"{spec.v2_path} requires the {minimum_plan(spec.source)} plan or higher.")
        query = dict(request.query)
        try:
            if spec.required_any and not any(query.get(p) for p in spec.required_any):
                raise BadRequest(f"This API requires at least 1 parameter as follows; {', '.join(spec.required_any)}")
            fingerprint = _query_fingerprint(request.path, query)
            offset = _offset(query["pagination_key"], fingerprint) if query.get("pagination_key") else 0
            frame = select_rows(state.market, spec, query)
        except BadRequest as exc:
            return _message(400, str(exc))
        page = frame.slice(offset, state.page_size)
        rows = _to_wire(spec, page).write_json() if page.height else "[]"
        body = '{"data":' + rows
        if offset + page.height < frame.height:
            body += ',"pagination_key":' + json.dumps(_pagination_key(offset + page.height, fingerprint))
        response = web.Response(text=body + "}", content_type="application/json")
        response.enable_compression()
        return response

    return handle


@web.middleware
async def _gate(request: web.Request, handler: Any) -> web.StreamResponse:
    """Counting, latency, injected faults and the API key, in that order, for API paths."""
    state = request.app[STATE_KEY]
    if request.path.startswith("/__sim__/"):
        return await handler(request)
    state.requests[request.path] += 1
    if state.latency_ms > 0:
        await asyncio.sleep(state.latency_ms / 1000)
    fault = state.fault(str(request.rel_url))
    if fault == 429:
        response = _message(429, RATE_LIMITED, headers={"Retry-After": "1"})
    elif fault == 500:
        response = _message(500, UNEXPECTED)
    else:
        key = request.headers.get("x-api-key", "")
        if not key or (state.api_key is not None and key != state.api_key):
            response = _message(403, INVALID_KEY)
        else:
            response = await handler(request)
    state.statuses[response.status] += 1
    return response


async def _stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE_KEY].stats())


async def _reset(request: web.Request) -> web.Response:
    request.app[STATE_KEY].reset()
    return web.json_response({"reset": True})


async def _unknown(request: web.Request) -> web.Response:
    # API Gateway answers unknown resources with 403, as J-Quants does.
    return _message(403, "Missing Authentication Token")


def create_app(market: SimMarket, plan: str = "standard", page_size: int = 5000, latency_ms: float = 0,
               fault_rate: float = 0.0, api_key: str | None = None) -> web.Application:
    if plan not in PLAN_TIERS:
        raise InputError(f"plan={plan!r}: expected one of {', '.join(PLAN_TIERS)}")
    if page_size < 1:
        raise InputError(f"page_size={page_size}: expected a positive number of rows per page")
    if not 0 <= fault_rate < 1:
        raise InputError(f"fault_rate={fault_rate}: expected a fraction in [0, 1)")
    if latency_ms < 0:
        raise InputError(f"latency_ms={latency_ms}: expected a non-negative delay")
    app = web.Application(middlewares=[_gate])
    app[STATE_KEY] = _State(market, plan, page_size, latency_ms, fault_rate, api_key)
    for spec in ENDPOINTS.values():
        app.router.add_get(spec.path("v2"), _handler(spec))
    app.router.add_get(STATS_PATH, _stats)
    app.router.add_post(RESET_PATH, _reset)
    app.router.add_route("*", "/v2/{tail:.*}", _unknown)
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

    def stats(self) -> dict[str, Any]:
        return self.app[STATE_KEY].stats()

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


def run_in_thread(market: SimMarket, plan: str = "standard", page_size: int = 5000, latency_ms: float = 0,
                  fault_rate: float = 0.0, api_key: str | None = None, port: int = 0) -> SimServer:
    """Start the simulator on 127.0.0.1 (an ephemeral port by default); `.url`, `.stop()`."""
    app = create_app(market, plan=plan, page_size=page_size, latency_ms=latency_ms, fault_rate=fault_rate,
                     api_key=api_key)
    return SimServer(app, "127.0.0.1", port)


def serve_forever(host: str = "127.0.0.1", port: int = 8080, seed: int = 42, n_stocks: int = 300,
                  start: dt.date | None = None, end: dt.date | None = None, plan: str = "standard",
                  page_size: int = 5000, latency_ms: float = 0, fault_rate: float = 0.0,
                  api_key: str | None = None) -> dict[str, Any]:
    """Serve until SIGINT/SIGTERM (the `gogoku sim serve` command); returns the request counts.

    Once listening it prints one JSON line `{"url": ...}` on stdout, so that a parent process (or a
    test) can read where it is before sending requests.
    """
    market = SimMarket(seed=seed, n_stocks=n_stocks, end=end, **({"start": start} if start else {}))
    app = create_app(market, plan=plan, page_size=page_size, latency_ms=latency_ms, fault_rate=fault_rate,
                     api_key=api_key)

    async def main() -> str:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        bound_host, bound_port = runner.addresses[0][:2]
        url = f"http://{bound_host}:{bound_port}"
        log.info("J-Quants simulator (seed %d, %d stocks, %s..%s, plan %s) serving at %s",
                 seed, n_stocks, market.start, market.end, plan, url)
        print(json.dumps({"url": url, "plan": plan, "start": str(market.start), "end": str(market.end)}), flush=True)
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
    return {"url": url, **app[STATE_KEY].stats()}
