"""Task defaults shared by the gogoku DAGs: owner, retries with exponential backoff, time limits."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

OWNER = "gogoku"


def default_args(**overrides: Any) -> dict[str, Any]:
    """Two retries at least on every task, 1 min then 2 min (x2 backoff, capped at 30 min)."""
    return {
        "owner": OWNER,
        "retries": 2,
        "retry_delay": timedelta(minutes=1),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": timedelta(minutes=30),
        **overrides,
    }
