"""The client side of J-Quants' per-plan request limits: a token bucket shared by every fetch in the process.

The API allows a number of requests per minute per plan (free 5, light 60, standard 120, premium 500)
and answers 429 beyond it. `shared_limiter(base_url, credential, limit)` returns one bucket per
(base URL, credential) for the whole process, so that concurrent fetches, clients and event loops
(each `asyncio.run` of the cache) draw from the same budget. The bucket starts with a small burst and
refills at `(requests - burst) / window`, so that no sliding window of the server's length ever sees
more than `requests`: a fetch within its plan never meets a 429.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
import time
from dataclasses import dataclass

from gogoku.errors import InputError

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


def shared_limiter(base_url: str, credential: str, limit: RateLimit) -> TokenBucket:
    """The process-wide bucket of an account at an API (keyed by base URL and a hash of the credential)."""
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
