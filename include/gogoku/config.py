"""Settings read from the environment (the README's "The CLI's environment" lists them).

With nothing configured the CLI talks to the built-in simulator, started in-process.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from urllib.parse import urlsplit

from gogoku.contracts import PLAN_TIERS
from gogoku.errors import InputError
from gogoku.jquants.ratelimit import check_limiter_url
from gogoku.storage import Store, parse_data_root

API_VERSIONS = ("v2", "v1")
# Years of history each plan may request (premium on v1: no lower bound); free data ends 12 weeks ago.
PLAN_HISTORY_YEARS = {"free": 2, "light": 5, "standard": 10, "premium": 20}
FREE_DELAY = dt.timedelta(weeks=12)
# The longest Retry-After the client honours as given; longer ones are cut to this (seconds).
DEFAULT_MAX_RETRY_AFTER_S = 120.0
_VERSION_SUFFIX = re.compile(r"/v\d+$", re.IGNORECASE)
API_URL_HINT = ("set the base URL without the API version, e.g. JQUANTS_API_URL=https://api.jquants.com "
                "(the version comes from JQUANTS_API_VERSION), or unset it for the built-in simulator")


def check_api_url(url: str) -> str:
    """`url` without a trailing slash, when it is an http(s) base URL without the API version.

    A value ending in /v2 or /v1 would send requests to /v2/v2/...; a value without a scheme or host is
    not a URL at all: both raise InputError at once (instead of a misleading 403 or retries).
    """
    value = url.strip().rstrip("/")
    try:
        parts = urlsplit(value)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        parts, port_ok = None, False
    if parts is None or parts.scheme.lower() not in ("http", "https") or not parts.hostname or not port_ok:
        raise InputError(f"JQUANTS_API_URL={url!r} is not an http(s) URL: {API_URL_HINT}")
    if parts.username is not None or parts.password is not None:
        # Credentials in the URL would end up in messages; J-Quants takes them in headers.
        raise InputError(f"JQUANTS_API_URL must not carry a user name or password: {API_URL_HINT}")
    if parts.query or parts.fragment:
        raise InputError(f"JQUANTS_API_URL={url!r} has a query or fragment: {API_URL_HINT}")
    if _VERSION_SUFFIX.search(parts.path):
        raise InputError(f"JQUANTS_API_URL={url!r} ends in the API version: {API_URL_HINT}")
    return value


def _years_before(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)


def plan_window(plan: str, today: dt.date, version: str = "v2") -> tuple[dt.date | None, dt.date]:
    """(first, last) date a plan's subscription covers on `today`; first is None when unbounded."""
    if plan not in PLAN_TIERS:
        raise InputError(f"JQUANTS_PLAN_TIER={plan!r}: expected one of {', '.join(PLAN_TIERS)}")
    last = today - FREE_DELAY if plan == "free" else today
    if plan == "premium" and version == "v1":
        return None, last
    return _years_before(last, PLAN_HISTORY_YEARS[plan]), last


@dataclass(frozen=True)
class Settings:
    api_url: str | None  # base URL without the version; None = built-in simulator
    api_version: str
    # Credentials stay out of the repr, so that logging the settings never prints them.
    api_key: str | None = field(repr=False)
    mailaddress: str | None = field(repr=False)
    password: str | None = field(repr=False)
    plan_tier: str
    data_root: Path  # local: the root itself; an object store: its local working copy
    sim_seed: int
    sim_stocks: int
    rate_limit: int | None = None  # requests per rate_window_s (a minute) when the account's limit is not the plan's
    sim_plan_windows: bool = False  # the built-in simulator answers 400 outside the plan's date window
    data_root_url: str = ""  # GOGOKU_DATA_ROOT as given (a path, or gs://bucket/prefix); "" = data_root
    max_retry_after_s: float = DEFAULT_MAX_RETRY_AFTER_S  # cap on a server's Retry-After
    local_cache: str | None = None  # GOGOKU_LOCAL_CACHE: where object-store roots keep their working copy
    # JQUANTS_RATE_LIMITER: Redis URL of the rate limit shared by every process (None = per process);
    # out of the repr, since the URL may carry a Redis password.
    rate_limiter: str | None = field(default=None, repr=False)
    rate_window_s: float = 60.0  # JQUANTS_RATE_WINDOW_S: the window of the API's limit (a simulator's may be shorter)

    @cached_property
    def store(self) -> Store:
        """The data root's artifacts (gogoku.storage)."""
        return Store.from_url(self.data_root_url or self.data_root, self.local_cache)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        version = env.get("JQUANTS_API_VERSION", "v2").strip() or "v2"
        if version not in API_VERSIONS:
            raise InputError(f"JQUANTS_API_VERSION={version!r}: expected one of {', '.join(API_VERSIONS)}")
        plan = env.get("JQUANTS_PLAN_TIER", "standard").strip() or "standard"
        if plan not in PLAN_TIERS:
            raise InputError(f"JQUANTS_PLAN_TIER={plan!r}: expected one of {', '.join(PLAN_TIERS)}")
        raw_url = (env.get("JQUANTS_API_URL") or "").strip()
        url = check_api_url(raw_url) if raw_url else None
        raw_root = (env.get("GOGOKU_DATA_ROOT") or "").strip() or "./data"
        local_cache = env.get("GOGOKU_LOCAL_CACHE") or None

        return cls(
            api_url=url,
            api_version=version,
            api_key=env.get("JQUANTS_API_KEY") or None,
            mailaddress=env.get("JQUANTS_MAILADDRESS") or None,
            password=env.get("JQUANTS_PASSWORD") or None,
            plan_tier=plan,
            data_root=parse_data_root(raw_root, local_cache).local,
            data_root_url=raw_root,
            local_cache=local_cache,
            sim_seed=_int_env(env, "GOGOKU_SIM_SEED", 42),
            sim_stocks=_int_env(env, "GOGOKU_SIM_STOCKS", 300),
            rate_limit=_positive_or_none(env, "JQUANTS_RATE_LIMIT"),
            sim_plan_windows=(env.get("GOGOKU_SIM_PLAN_WINDOWS") or "0").strip().lower() in ("1", "true", "yes"),
            max_retry_after_s=_positive_seconds(env, "JQUANTS_MAX_RETRY_AFTER_S", DEFAULT_MAX_RETRY_AFTER_S),
            rate_limiter=_rate_limiter(env),
            rate_window_s=_positive_seconds(env, "JQUANTS_RATE_WINDOW_S", 60.0),
        )


def _rate_limiter(env: dict[str, str]) -> str | None:
    raw = (env.get("JQUANTS_RATE_LIMITER") or "").strip()
    if not raw:
        return None
    return check_limiter_url(raw)


def _positive_seconds(env: dict[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise InputError(f"{name}={raw!r}: expected a positive number of seconds")
    return value


def _positive_or_none(env: dict[str, str], name: str) -> int | None:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return None
    value = _int_env(env, name, 0)
    if value < 1:
        raise InputError(f"{name}={raw!r}: expected a positive number of requests per minute")
    return value


def _int_env(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise InputError(f"{name}={raw!r}: expected an integer") from None
