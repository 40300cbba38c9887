"""Task defaults shared by the gogoku DAGs: owner, retries with exponential backoff, time limits, and
an alert when a task fails for good (gogoku_airflow/alerts.py).

`GOGOKU_RETRY_DELAY_S` (seconds, default 60) sets the first retry's delay; it is read where the DAG
files are parsed (the dag-processor's environment), so a test or staging deployment can retry after a
few seconds (scripts/deployment.py up --env GOGOKU_RETRY_DELAY_S=3).
"""

from __future__ import annotations

import math
import os
from datetime import timedelta
from typing import Any

from gogoku_airflow.alerts import on_failure

OWNER = "gogoku"
RETRY_DELAY_ENV = "GOGOKU_RETRY_DELAY_S"
DEFAULT_RETRY_DELAY_S = 60.0


def retry_delay() -> timedelta:
    """The first retry's delay: $GOGOKU_RETRY_DELAY_S seconds, else one minute. A value that is not a
    positive number fails the DAG file's import, naming the variable (never a silent default)."""
    raw = os.environ.get(RETRY_DELAY_ENV, "").strip()
    if not raw:
        return timedelta(seconds=DEFAULT_RETRY_DELAY_S)
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"{RETRY_DELAY_ENV}={raw!r}: expected a positive number of seconds")
    return timedelta(seconds=seconds)


def default_args(**overrides: Any) -> dict[str, Any]:
    """Two retries at least on every task, 1 min then 2 min (x2 backoff, capped at 30 min; the first
    delay from GOGOKU_RETRY_DELAY_S); a failure after the last retry is recorded as an alert (log,
    alerts file, webhook)."""
    return {
        "owner": OWNER,
        "retries": 2,
        "retry_delay": retry_delay(),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": timedelta(minutes=30),
        "on_failure_callback": on_failure,
        **overrides,
    }
