"""DAG params (the UI trigger form) and the checks that fail a run fast with a message naming the param.

Airflow validates each Param against its JSON schema when a run is created (malformed dates and
unknown choices are rejected there); `validate_*` repeat those checks at run time, where they also
cover what a schema cannot express (`end` before `start`), and raise `InvalidParam`, an
AirflowFailException, so that the task fails without retrying.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from airflow.sdk import Param
from airflow.sdk.exceptions import AirflowFailException

from gogoku_airflow.plans import DEFAULT_PLAN_TIER, PLAN_TIERS

DATE_PATTERN = r"^\d{4}-\d{2}-\d{2}$"
# Models `gogoku train --model` accepts; the neural ones get the GPU pod profile.
MODELS = ("lightgbm",)
GPU_MODELS: frozenset[str] = frozenset()


class InvalidParam(AirflowFailException):
    """A DAG param is unusable: retrying cannot help."""


def date_param(description: str, *, optional: bool = False) -> Param:
    """A YYYY-MM-DD param; required unless `optional` (then null or empty means "not given")."""
    if optional:
        return Param(None, type=["null", "string"], pattern=r"^$|" + DATE_PATTERN, description=description)
    return Param(type="string", format="date", pattern=DATE_PATTERN, description=description)


def plan_tier_param() -> Param:
    return Param(
        DEFAULT_PLAN_TIER,
        type="string",
        enum=list(PLAN_TIERS),
        description="J-Quants plan tier: premium adds the futures sources and features; free lacks TOPIX.",
    )


def parse_date(name: str, value: Any) -> dt.date:
    try:
        return dt.date.fromisoformat(str(value).strip())
    except ValueError:
        raise InvalidParam(f"param '{name}' ({value}) is not a date: expected YYYY-MM-DD") from None


def check_choice(name: str, value: Any, choices: Sequence[str]) -> str:
    if value not in choices:
        raise InvalidParam(f"param '{name}' ({value}) is not one of {', '.join(choices)}")
    return value


def validate_date_range(params: Mapping[str, Any]) -> tuple[dt.date, dt.date]:
    start = parse_date("start", params.get("start"))
    end = parse_date("end", params.get("end"))
    if end < start:
        raise InvalidParam(f"param 'end' ({end}) is before param 'start' ({start})")
    return start, end


def validate_overrides(value: Any) -> list[str]:
    """Hydra overrides: a list of non-empty strings such as `model.params.num_leaves=63`."""
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise InvalidParam(f"param 'overrides' ({value}) must be a list of Hydra overrides like key=value")
    overrides = [v.strip() for v in value]
    # Each override becomes one CLI argument: one that looks like an option would change the command.
    if bad := [v for v in overrides if v.startswith("-")]:
        raise InvalidParam(f"param 'overrides' item '{bad[0]}' starts with '-': give key=value, +key=value or ~key")
    return overrides
