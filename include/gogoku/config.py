"""Settings read from the environment (DESIGN contract 3).

With nothing configured the CLI talks to the built-in simulator, started in-process.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

from gogoku.errors import InputError

PLAN_TIERS = ("free", "light", "standard", "premium")
API_VERSIONS = ("v2", "v1")
# Years of history each plan may request (premium on v1: no lower bound); free data ends 12 weeks ago.
PLAN_HISTORY_YEARS = {"free": 2, "light": 5, "standard": 10, "premium": 20}
FREE_DELAY = dt.timedelta(weeks=12)


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
    api_key: str | None
    mailaddress: str | None
    password: str | None
    plan_tier: str
    data_root: Path  # local: the root itself; gs://bucket/prefix: its local working copy
    sim_seed: int
    sim_stocks: int
    rate_limit: int | None = None  # requests per minute when the account's limit is not the plan's
    sim_plan_windows: bool = False  # the built-in simulator answers 400 outside the plan's date window
    data_root_url: str = ""  # GOGOKU_DATA_ROOT as given (a path, or gs://bucket/prefix); "" = data_root

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        version = env.get("JQUANTS_API_VERSION", "v2").strip() or "v2"
        if version not in API_VERSIONS:
            raise InputError(f"JQUANTS_API_VERSION={version!r}: expected one of {', '.join(API_VERSIONS)}")
        plan = env.get("JQUANTS_PLAN_TIER", "standard").strip() or "standard"
        if plan not in PLAN_TIERS:
            raise InputError(f"JQUANTS_PLAN_TIER={plan!r}: expected one of {', '.join(PLAN_TIERS)}")
        url = (env.get("JQUANTS_API_URL") or "").strip().rstrip("/") or None
        raw_root = (env.get("GOGOKU_DATA_ROOT") or "").strip() or "./data"
        from gogoku.cache.gcs import parse_data_root  # a gs:// root works on its local copy

        return cls(
            api_url=url,
            api_version=version,
            api_key=env.get("JQUANTS_API_KEY") or None,
            mailaddress=env.get("JQUANTS_MAILADDRESS") or None,
            password=env.get("JQUANTS_PASSWORD") or None,
            plan_tier=plan,
            data_root=parse_data_root(raw_root, env.get("GOGOKU_LOCAL_CACHE") or None).local,
            data_root_url=raw_root,
            sim_seed=_int_env(env, "GOGOKU_SIM_SEED", 42),
            sim_stocks=_int_env(env, "GOGOKU_SIM_STOCKS", 300),
            rate_limit=_positive_or_none(env, "JQUANTS_RATE_LIMIT"),
            sim_plan_windows=(env.get("GOGOKU_SIM_PLAN_WINDOWS") or "0").strip().lower() in ("1", "true", "yes"),
        )


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
