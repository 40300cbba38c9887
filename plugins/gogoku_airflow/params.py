"""DAG params (the UI trigger form) and the checks that fail a run fast with a message naming the param.

Airflow validates each Param against its JSON schema when a run is created (malformed dates and
unknown choices are rejected there); `validate_*` repeat those checks at run time, where they also
cover what a schema cannot express (`end` before `start`), and raise `InvalidParam`, an
AirflowFailException, so that the task fails without retrying.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from typing import Any

from airflow.sdk import Param
from airflow.sdk.exceptions import AirflowFailException

from gogoku_airflow.plans import DEFAULT_PLAN_TIER, PLAN_TIERS

DATE_PATTERN = r"^\d{4}-\d{2}-\d{2}$"
# Models `gogoku train --model` accepts (configs/model/); the production network gets the GPU pod
# profile; the neural ones can train one task per walk-forward fold.
MODELS = ("lightgbm", "atft_gat_fan", "atft_tiny")
GPU_MODELS: frozenset[str] = frozenset({"atft_gat_fan"})
NEURAL_MODELS: frozenset[str] = frozenset({"atft_gat_fan", "atft_tiny"})
# configs/train/config.yaml splits.n_splits: the fold tasks mapped when the overrides do not set it (a
# fold the run lacks fails naming the run's folds; a fold without a task is trained by the assembly).
DEFAULT_N_SPLITS = 5


class InvalidParam(AirflowFailException):
    """A DAG param is unusable: retrying cannot help."""


def date_param(description: str, *, optional: bool = False) -> Param:
    """A YYYY-MM-DD param; required unless `optional` (then null or empty means "not given")."""
    if optional:
        return Param(None, type=["null", "string"], pattern=r"^$|" + DATE_PATTERN, description=description)
    return Param(type="string", format="date", pattern=DATE_PATTERN, description=description)


def plan_tier_param(
    description: str = "J-Quants plan tier: premium adds the futures sources and features; free lacks TOPIX.",
) -> Param:
    return Param(DEFAULT_PLAN_TIER, type="string", enum=list(PLAN_TIERS), description=description)


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


def n_splits_from_overrides(overrides: list[str]) -> int:
    """The walk-forward fold count a `gogoku train` run with these Hydra overrides will use."""
    for item in reversed(overrides):
        key, _, value = item.partition("=")
        if key.strip().lstrip("+") == "splits.n_splits":
            try:
                n = int(value)
            except ValueError:
                raise InvalidParam(f"param 'overrides': splits.n_splits={value!r} is not an integer") from None
            if n < 1:
                raise InvalidParam(f"param 'overrides': splits.n_splits={n} must be at least 1")
            return n
    return DEFAULT_N_SPLITS


def run_name(model: str, run_id: str) -> str:
    """A model folder name for a DAG run: `<model>_<run id>` with only [A-Za-z0-9._-]."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", f"{model}_{run_id}").strip("._") or model
