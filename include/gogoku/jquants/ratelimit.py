"""The client side of J-Quants' per-plan request limits: one budget per account, per process or per deployment.

The API allows a number of requests per minute per plan (free 5, light 60, standard 120, premium 500)
and answers 429 beyond it. `shared_limiter(base_url, credential, limit)` returns one bucket per
(base URL, credential) for the whole process, so that concurrent fetches, clients and event loops
(each `asyncio.run` of the cache) draw from the same budget. The bucket starts with a small burst and
refills at `(requests - burst) / window`, so that no sliding window of the server's length ever sees
more than `requests`: a fetch within its plan never meets a 429.

A bucket per process is not enough when several processes (Airflow tasks, pods) use one credential:
together they would send a multiple of the plan's rate. With `shared_limiter(..., backend=URL)`
(JQUANTS_RATE_LIMITER=redis://host:6379/0) every process draws from one state in Redis instead
(`RedisLimiter`: GCRA in an atomic Lua script, on Redis's clock; a 429 pauses them all).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from gogoku.errors import GogokuError, InputError

log = logging.getLogger(__name__)

PLAN_REQUESTS_PER_MINUTE: dict[str, int] = {"free": 5, "light": 60, "standard": 120, "premium": 500}
# Slack on the refill period for the time a request spends between the bucket and the server's clock.
SAFETY = 1.05


@dataclass(frozen=True)
class RateLimit:
    """At most `requests` requests in any `window_s` seconds."""

    requests: int
    window_s: float = 60.0

    def __post_init__(self) -> None:
        if self.requests < 1 or not self.window_s > 0:
            raise InputError(f"rate limit {self.requests} per {self.window_s}s: expected >= 1 request per positive window")

    @classmethod
    def for_plan(cls, plan: str, requests: int | None = None, window_s: float = 60.0) -> RateLimit:
        """The plan's limit, or `requests` per window when given (an account with another limit, or tests)."""
        if plan not in PLAN_REQUESTS_PER_MINUTE:
            raise InputError(f"plan {plan!r}: expected one of {', '.join(PLAN_REQUESTS_PER_MINUTE)}")
        return cls(requests if requests is not None else PLAN_REQUESTS_PER_MINUTE[plan], window_s)

    @property
    def burst(self) -> int:
        """Requests the bucket holds at the start: a tenth of the limit, at least 1."""
        return max(1, self.requests // 10)


class TokenBucket:
    """A token bucket that reserves a start time per request; safe across tasks, threads and event loops.

    `acquire()` takes a token at once (the balance may go negative) and sleeps until that token has been
    earned, so requests leave in the order they asked. `pause(seconds)` holds every caller back after a 429.
    """

    def __init__(self, limit: RateLimit) -> None:
        self._lock = threading.Lock()
        self._configure(limit)
        self._tokens = float(limit.burst)
        self._stamp = time.monotonic()
        self._paused_until = 0.0
        self.acquired = 0
        self.waited_s = 0.0

    def _configure(self, limit: RateLimit) -> None:
        self.limit = limit
        self._capacity = float(limit.burst)
        # Burst plus refill over one window stays within the limit, with some slack for clock skew.
        self._rate = max(limit.requests - limit.burst, 1) / (limit.window_s * SAFETY)

    def reconfigure(self, limit: RateLimit) -> None:
        with self._lock:
            if limit != self.limit:
                log.info("rate limit changed from %s to %s", self.limit, limit)
                self._configure(limit)
                self._tokens = min(self._tokens, self._capacity)

    def reserve(self) -> float:
        """Take one token; return the seconds to wait before using it."""
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self._capacity, self._tokens + (now - self._stamp) * self._rate)
            self._stamp = now
            self._tokens -= 1
            wait = 0.0 if self._tokens >= 0 else -self._tokens / self._rate
            wait = max(wait, self._paused_until - now)
            self.acquired += 1
            self.waited_s += wait
            return wait

    async def acquire(self) -> None:
        wait = self.reserve()
        if wait > 0:
            await asyncio.sleep(wait)

    def pause(self, seconds: float) -> None:
        """Hold every caller for `seconds` (a 429's Retry-After) and empty the bucket."""
        with self._lock:
            now = time.monotonic()
            self._paused_until = max(self._paused_until, now + seconds)
            self._tokens = min(self._tokens, 0.0)
            self._stamp = now


_REGISTRY: dict[tuple[str, str], TokenBucket] = {}
_REGISTRY_LOCK = threading.Lock()


def shared_limiter(base_url: str, credential: str, limit: RateLimit, backend: str | None = None) -> Limiter:
    """The limiter of an account at an API (keyed by base URL and a hash of the credential).

    `backend` None: the process-wide `TokenBucket` (several processes then need the Airflow pool
    `jquants_api` at 1 slot); a Redis URL (JQUANTS_RATE_LIMITER): the deployment-wide `RedisLimiter`.
    """
    if backend is not None:
        return redis_limiter(backend, base_url, credential, limit)
    key = (base_url.rstrip("/"), hashlib.sha256(credential.encode()).hexdigest()[:16])
    with _REGISTRY_LOCK:
        bucket = _REGISTRY.get(key)
        if bucket is None:
            bucket = _REGISTRY[key] = TokenBucket(limit)
            return bucket
    bucket.reconfigure(limit)
    return bucket


def min_duration_s(n_requests: int, limit: RateLimit) -> float:
    """The shortest time a bucket for `limit` needs to admit `n_requests` (for planning and reports)."""
    extra = max(n_requests - limit.burst, 0)
    return extra * limit.window_s * SAFETY / max(limit.requests - limit.burst, 1)


# ---------------------------------------------------------------- one budget for the whole deployment
# A per-process bucket lets N processes together send N times the plan's rate. With
# JQUANTS_RATE_LIMITER=redis://..., every process, task and pod using one credential draws from one
# state in Redis, updated by one atomic script on Redis's own clock.

LIMITER_SETTING = "JQUANTS_RATE_LIMITER"
LIMITER_SCHEMES = ("redis", "rediss", "unix")
KEY_PREFIX = "gogoku:jquants:ratelimit"
# The shared limiter admits one request at a time, evenly spaced: a burst buys little when several
# processes share the budget, and without one the steady rate can stay close to the plan's.
SHARED_BURST = 1
# Timeouts of one Redis call (seconds): a limiter that hangs would stall every request behind it.
REDIS_TIMEOUT_S = 5.0

# GCRA ("generic cell rate algorithm") as a reservation: `tat` is the theoretical arrival time of the
# next request; a request starts at max(now, tat - tolerance, blocked_until) and moves `tat` one
# interval past that. A pause (a 429's Retry-After) sets `blocked_until` and empties the bucket at its
# end, so that requests resume one interval apart. All times are Redis's TIME, so processes on
# different machines share one clock; the reply is the wait and the reserved start in microseconds on
# that clock (a pause reserves nothing: its start is now).
GCRA_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local pause = tonumber(ARGV[3])
local keep = tonumber(ARGV[4])
local state = redis.call('HMGET', KEYS[1], 'tat', 'blocked_until')
local tat = tonumber(state[1]) or now
local blocked = tonumber(state[2]) or 0
local wait = 0
local start = now
if pause >= 0 then
  blocked = math.max(blocked, now + pause)
  tat = math.max(tat, blocked + tolerance)
else
  start = math.max(now, tat - tolerance, blocked)
  tat = math.max(tat, start) + interval
  wait = start - now
end
redis.call('HSET', KEYS[1], 'tat', string.format('%.6f', tat), 'blocked_until', string.format('%.6f', blocked))
redis.call('PEXPIRE', KEYS[1], math.ceil((math.max(tat, blocked) - now + keep) * 1000))
return {math.floor(wait * 1000000 + 0.5), math.floor(start * 1000000 + 0.5)}
"""


def shown_limiter_url(url: str) -> str:
    """`url` as messages may show it: a password in it replaced by ***."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "<unparsable URL>"
    if not password:
        return url
    netloc = parts.netloc.replace(f":{password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def check_limiter_url(url: str) -> str:
    """`url` stripped, when it is a Redis URL (redis://, rediss://, unix://); else an InputError naming the setting."""
    value = url.strip()
    try:
        scheme = urlsplit(value).scheme.lower()
    except ValueError:
        scheme = ""
    if scheme not in LIMITER_SCHEMES:
        raise InputError(f"{LIMITER_SETTING}={shown_limiter_url(value)!r}: expected a Redis URL such as "
                         "redis://host:6379/0 (or unset it for a per-process limit)")
    return value


def limiter_key(base_url: str, credential: str, prefix: str = KEY_PREFIX) -> str:
    """The Redis key of an account at an API: a hash of both, so that the key never shows the credential."""
    digest = hashlib.sha256(f"{base_url.rstrip('/')}\0{credential}".encode()).hexdigest()[:32]
    return f"{prefix}:{digest}"


class RedisLimiter:
    """The rate limit of one account shared by every process that uses it, through Redis (GCRA).

    Any window of `limit.window_s` admits at most ceil(requests / SAFETY) <= requests: requests leave
    one `interval` apart (window x SAFETY / requests), so the steady rate is the plan's / SAFETY (95 %)
    and each window keeps SAFETY - 1 of its length as slack for the latency between a reservation and
    the server. Every process must use the same limit for an account (the interval travels with each call).
    """

    def __init__(self, client: Any, key: str, limit: RateLimit, url: str) -> None:
        self._redis = client
        self.key = key
        self.url = url
        self.limit = limit
        self._script = client.register_script(GCRA_SCRIPT)
        self.acquired = 0
        self.waited_s = 0.0

    @property
    def interval_s(self) -> float:
        return self.limit.window_s * SAFETY / (self.limit.requests - SHARED_BURST + 1)

    def reconfigure(self, limit: RateLimit) -> None:
        if limit != self.limit:
            log.info("rate limit changed from %s to %s", self.limit, limit)
            self.limit = limit

    def _run(self, pause_s: float) -> tuple[float, float]:
        import redis

        interval = self.interval_s
        args = [f"{interval:.9f}", f"{(SHARED_BURST - 1) * interval:.9f}", f"{pause_s:.6f}", f"{self.limit.window_s:.6f}"]
        try:
            wait_us, start_us = self._script(keys=[self.key], args=args)
            return int(wait_us) / 1e6, int(start_us) / 1e6
        except redis.RedisError as exc:
            # A retryable failure (not an InputError): Redis answered when the client started.
            raise GogokuError(f"{LIMITER_SETTING}={shown_limiter_url(self.url)}: the shared rate limiter failed "
                              f"({_one_line(exc, self.url)}); check that Redis is up, or unset {LIMITER_SETTING} "
                              "for a per-process limit") from None

    def reserve(self) -> float:
        """Take the next start time of this account; return the seconds to wait for it."""
        return self.reserve_start()[0]

    def reserve_start(self) -> tuple[float, float]:
        """Take the next start time of this account: (seconds to wait for it, the start as a Unix time on
        Redis's clock)."""
        wait, start = self._run(-1.0)
        self.acquired += 1
        self.waited_s += wait
        return wait, start

    def _deadline(self) -> float:
        # The start as a local monotonic time, taken as soon as Redis answers: any delay before the
        # event loop resumes the caller is then not added on top of the wait.
        return time.monotonic() + self.reserve()

    async def acquire(self) -> None:
        # A thread, so that a slow Redis never blocks the event loop (the other requests' waits).
        deadline = await asyncio.to_thread(self._deadline)
        wait = deadline - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)

    def pause(self, seconds: float) -> None:
        """Hold every process of this account back for `seconds` (a 429's Retry-After)."""
        self._run(max(seconds, 0.0))


Limiter = TokenBucket | RedisLimiter


def _one_line(exc: BaseException, url: str) -> str:
    """`exc` on one line, without the Redis password of `url` should the library quote it."""
    text = " ".join(str(exc).split())
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    if password:
        text = text.replace(password, "***")
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


_CONNECTIONS: dict[str, Any] = {}


def _redis_client(url: str) -> Any:
    """One connection pool per Redis URL and process, checked with a PING (InputError when unreachable)."""
    try:
        import redis
        from redis.backoff import ExponentialBackoff
        from redis.retry import Retry
    except ImportError:
        raise InputError(f"{LIMITER_SETTING} is set but the redis package is not installed "
                         "(pip install -r requirements-worker.txt)") from None
    with _REGISTRY_LOCK:
        client = _CONNECTIONS.get(url)
        if client is None:
            try:
                client = redis.Redis.from_url(
                    url, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S,
                    retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), 3), health_check_interval=30)
            except ValueError as exc:
                raise InputError(f"{LIMITER_SETTING}={shown_limiter_url(url)!r}: not a usable Redis URL "
                                 f"({_one_line(exc, url)})") from None
    try:
        client.ping()
    except redis.RedisError as exc:
        raise InputError(f"{LIMITER_SETTING}={shown_limiter_url(url)}: cannot reach Redis ({_one_line(exc, url)}); "
                         f"start it or fix the URL, or unset {LIMITER_SETTING} for a per-process limit "
                         "(then give the Airflow pool jquants_api 1 slot)") from None
    with _REGISTRY_LOCK:
        return _CONNECTIONS.setdefault(url, client)


_SHARED: dict[tuple[str, str], RedisLimiter] = {}


def redis_limiter(url: str, base_url: str, credential: str, limit: RateLimit, prefix: str = KEY_PREFIX) -> RedisLimiter:
    """The deployment-wide limiter of an account at an API, its state in Redis at `url`.

    Checks that Redis answers each time (a client starts), so that an unreachable Redis is a
    one-line InputError before any request rather than a failure halfway through a fetch.
    """
    client = _redis_client(url)
    key = limiter_key(base_url, credential, prefix)
    with _REGISTRY_LOCK:
        limiter = _SHARED.get((url, key))
        if limiter is None:
            limiter = _SHARED[(url, key)] = RedisLimiter(client, key, limit, url)
            return limiter
    limiter.reconfigure(limit)
    return limiter
