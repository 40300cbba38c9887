"""Settings read from the environment (DESIGN contract 3).

With nothing configured the CLI talks to the built-in simulator, started in-process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from gogoku.errors import InputError

PLAN_TIERS = ("free", "light", "standard", "premium")
API_VERSIONS = ("v2", "v1")


@dataclass(frozen=True)
class Settings:
    api_url: str | None  # base URL without the version; None = built-in simulator
    api_version: str
    api_key: str | None
    mailaddress: str | None
    password: str | None
    plan_tier: str
    data_root: Path
    sim_seed: int
    sim_stocks: int

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
        return cls(
            api_url=url,
            api_version=version,
            api_key=env.get("JQUANTS_API_KEY") or None,
            mailaddress=env.get("JQUANTS_MAILADDRESS") or None,
            password=env.get("JQUANTS_PASSWORD") or None,
            plan_tier=plan,
            data_root=Path(env.get("GOGOKU_DATA_ROOT") or "./data"),
            sim_seed=_int_env(env, "GOGOKU_SIM_SEED", 42),
            sim_stocks=_int_env(env, "GOGOKU_SIM_STOCKS", 300),
        )


def _int_env(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise InputError(f"{name}={raw!r}: expected an integer") from None
