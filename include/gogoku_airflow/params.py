"""DAG params (the UI trigger form) and the checks that fail a run fast with a message naming the param.

Airflow validates each Param against its JSON schema when a run is created (malformed dates and
unknown choices are rejected there); `validate_*` repeat those checks at run time, where they also
cover what a schema cannot express (`end` before `start`), and raise `InvalidParam`, an
AirflowFailException, so that the task fails without retrying.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from airflow.sdk import Param
from airflow.sdk.exceptions import AirflowFailException

from gogoku_airflow.plans import DEFAULT_PLAN_TIER, PLAN_TIERS

DATE_PATTERN = r"^\d{4}-\d{2}-\d{2}$"
# Where a model list comes from when no config folder is found (a DAG processor without configs/).
FALLBACK_MODELS = ("lightgbm", "atft_gat_fan", "atft_tiny")


def model_choices() -> tuple[str, ...]:
    """The models `gogoku train --model` accepts: the names of configs/model/*.yaml ($GOGOKU_CONFIG_DIR,
    else the configs/ folder of this checkout), lightgbm first. Each config says the rest (its class,
    pod profile, folds): `gogoku train --plan-only` reports it."""
    env = os.environ.get("GOGOKU_CONFIG_DIR")
    folder = Path(env) if env else Path(__file__).resolve().parents[2] / "configs"
    names = sorted(p.stem for p in (folder / "model").glob("*.yaml"))
    if not names:
        return FALLBACK_MODELS
    return tuple(sorted(names, key=lambda n: (n != "lightgbm", n)))


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


def run_name(model: str, run_id: str) -> str:
    """A model folder name for a DAG run: `<model>_<run id>` with only [A-Za-z0-9._-]."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", f"{model}_{run_id}").strip("._") or model


def dataset_window(params: Mapping[str, Any]) -> dict[str, str]:
    """{start, end, fetch_start, plan_tier} of a dataset run from its params (checked, naming the param)."""
    from gogoku_airflow.plans import LOOKBACK_DAYS

    start, end = validate_date_range(params)
    plan = check_choice("plan_tier", params.get("plan_tier"), PLAN_TIERS)
    fetch_start = start - dt.timedelta(days=LOOKBACK_DAYS)
    return {"start": start.isoformat(), "end": end.isoformat(), "fetch_start": fetch_start.isoformat(),
            "plan_tier": plan}


def hpo_plan(params: Mapping[str, Any], run_id: str) -> dict[str, Any]:
    """The argv of each HPO worker and of the summary, from the gogoku_hpo params (checked)."""
    from airflow.sdk import Variable

    from gogoku_airflow.connection import HPO_STORAGE_VARIABLE
    from gogoku_airflow.plans import PLAN_TIERS

    model = check_choice("model", params.get("model"), ("atft_gat_fan", "atft_tiny"))
    plan = check_choice("plan_tier", params.get("plan_tier"), PLAN_TIERS)
    overrides = validate_overrides(params.get("overrides") or [])
    n_trials, workers = int(params.get("n_trials") or 0), int(params.get("workers") or 0)
    if n_trials < 1 or workers < 1:
        raise InvalidParam(f"params 'n_trials' ({n_trials}) and 'workers' ({workers}) must be at least 1")
    # The storage URL reaches the CLI as GOGOKU_HPO_STORAGE (connection.py), never in an argv: it may hold a password.
    storage = str(Variable.get(HPO_STORAGE_VARIABLE, default="") or "")
    if not storage.startswith(("postgresql://", "postgres://", "mysql://", "postgresql+")):
        raise InvalidParam(f"Variable {HPO_STORAGE_VARIABLE}: workers in parallel pods need a shared RDB such as "
                           f"postgresql://user@host/db (got {storage.split('@')[-1]!r})")
    study = str(params.get("study") or "").strip() or run_name(f"hpo_{model}", run_id)
    dataset = str(params.get("dataset") or "").strip() or "latest"
    base = ["hpo", "--dataset", dataset, "--plan", plan, "--model", model, "--study", study]
    share = -(-n_trials // workers)
    argvs = [[*base, "--n-trials", str(min(share, n_trials - k * share)), *overrides]
             for k in range(workers) if n_trials - k * share > 0]
    # The workers' pod profile is the model config's (`gogoku train --plan-only` reports it).
    plan_argv = ["train", "--dataset", dataset, "--plan", plan, "--model", model, "--plan-only", *overrides]
    return {"workers": argvs, "best": [*base, "--n-trials", "0", *overrides], "plan": plan, "study": study,
            "plan_argv": plan_argv}


# Hydra overrides every gogoku_training run gets before its own `overrides` param (a JSON list of
# strings), e.g. the settings of a deployment's hardware, or a small model for a test deployment:
# runs the scheduler starts for a new dataset have only the params' defaults.
TRAINING_OVERRIDES_VARIABLE = "gogoku_training_overrides"


def override_key(item: str) -> str:
    """The config key a Hydra override sets (`+a.b=1`, `~a.b`, `a.b=1` -> `a.b`)."""
    return item.split("=", 1)[0].strip().lstrip("+~")


def variable_overrides(raw: Any) -> list[str]:
    """The Variable gogoku_training_overrides (JSON list of Hydra overrides; empty: none), checked."""
    import json

    text = str(raw or "").strip()
    if not text:
        return []
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    try:
        return validate_overrides(value)
    except InvalidParam:
        raise InvalidParam(f"Variable {TRAINING_OVERRIDES_VARIABLE} ({text[:200]}) must be a JSON list of Hydra "
                           'overrides, e.g. ["splits.n_splits=3"]') from None


def merge_overrides(base: Sequence[str], own: Sequence[str]) -> list[str]:
    """`base` (the Variable's) then `own` (the run's param); a key the run sets itself drops the base's."""
    keys = {override_key(item) for item in own}
    return [*(item for item in base if override_key(item) not in keys), *own]
