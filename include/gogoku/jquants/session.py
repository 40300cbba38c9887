"""Building a J-Quants client from Settings, for the configured API or the built-in simulator.

A configured API (`settings.api_url`) takes its limit from Settings: the plan's (or JQUANTS_RATE_LIMIT)
requests per JQUANTS_RATE_WINDOW_S (60 s), in a bucket per process, or shared by every process of the
deployment through Redis when JQUANTS_RATE_LIMITER is set.

Without one, the client talks to the built-in simulator at the URL it is given (`gogoku.sim.local`
starts it): with the plan's requests per `SIM_RATE_WINDOW_S` instead of a minute (the simulator's limit
uses the same window), so local runs exercise the rate limiter without waiting on it, and the
placeholder credentials below unless Settings has its own (the simulator accepts any non-empty key, or
mail address and password for v1). The built-in simulator runs inside each process, so its limit is
never shared.
"""

from __future__ import annotations

from typing import Any

from gogoku.config import Settings
from gogoku.jquants.client import JQuantsClient
from gogoku.jquants.ratelimit import RateLimit

SIM_API_KEY = "simulator"  # the built-in simulator accepts any non-empty key
SIM_MAILADDRESS = "simulator@localhost"
SIM_PASSWORD = "simulator"
SIM_RATE_WINDOW_S = 0.05


def make_client(settings: Settings, url: str | None = None, **client_options: Any) -> JQuantsClient:
    """A client for `settings`; `url` is the built-in simulator's when `settings.api_url` is None."""
    builtin = settings.api_url is None
    base_url = url if builtin else settings.api_url
    if base_url is None:
        raise ValueError("make_client: the built-in simulator's url is needed when JQUANTS_API_URL is not set")
    window = SIM_RATE_WINDOW_S if builtin else settings.rate_window_s
    options: dict[str, Any] = {
        "version": settings.api_version, "plan": settings.plan_tier,
        "api_key": settings.api_key or (SIM_API_KEY if builtin else None),
        "mailaddress": settings.mailaddress or (SIM_MAILADDRESS if builtin else None),
        "password": settings.password or (SIM_PASSWORD if builtin else None),
        "rate_limit": RateLimit.for_plan(settings.plan_tier, None if builtin else settings.rate_limit, window),
        "max_retry_after_s": settings.max_retry_after_s,
        # Each process has its own built-in simulator: there is no budget to share with others.
        "rate_limiter": None if builtin else settings.rate_limiter,
    }
    return JQuantsClient(base_url, **{**options, **client_options})
