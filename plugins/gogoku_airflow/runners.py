"""The runner factory: one Airflow task per `gogoku` CLI command, wherever it runs.

`gogoku_task(task_id, argv)` builds the task for `gogoku <argv>`; argv items may be Jinja templates
(e.g. an XCom pull of an upstream path) or the whole argv an XComArg. The Airflow Variable
`gogoku_runner` picks the runner when the DAG file is parsed (default `local`; tests and
`python dags/x.py` can set AIRFLOW_VAR_GOGOKU_RUNNER):
- `local`: a subprocess of the worker (local.py);
- `kubernetes`: a KubernetesPodOperator, `gke`: a GKEStartPodOperator (pods.py; the provider
  modules are imported only for these runners).
Every runner gives the task the CLI's JSON result as its return value, and the environment of
connection.py, resolved at run time. `profile` (cpu|gpu, may be a template) sizes the pod; the
local runner ignores it.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperator, Variable

from gogoku_airflow.connection import DATA_ROOT_VARIABLE, DEFAULT_DATA_ROOT, PLAN_TIER_VARIABLE
from gogoku_airflow.plans import DEFAULT_PLAN_TIER

RUNNER_VARIABLE = "gogoku_runner"
RUNNERS = ("local", "kubernetes", "gke")
API_POOL = "jquants_api"

# Templates for argv items, resolved when the task runs.
DATA_ROOT = f"{{{{ var.value.get('{DATA_ROOT_VARIABLE}', '{DEFAULT_DATA_ROOT}') }}}}"
PLAN_TIER_FROM_VARIABLE = f"{{{{ var.value.get('{PLAN_TIER_VARIABLE}', '{DEFAULT_PLAN_TIER}') }}}}"


def selected_runner() -> str:
    runner = str(Variable.get(RUNNER_VARIABLE, default="local")).strip()
    if runner not in RUNNERS:
        raise ValueError(f"Variable {RUNNER_VARIABLE}={runner!r}: expected one of {', '.join(RUNNERS)}")
    return runner


def gogoku_task(
    task_id: str,
    argv: Any,
    *,
    plan_tier: str = PLAN_TIER_FROM_VARIABLE,
    profile: str = "cpu",
    map_argv: bool = False,
    **kwargs: Any,
) -> Any:
    """A task running `gogoku <argv>` with the selected runner; kwargs go to the operator.

    With `map_argv=True`, `argv` is a list of argv lists (an XCom) and the task is mapped over it:
    one task instance (one pod) per command; an empty list skips the task."""
    runner = selected_runner()
    if runner == "local":
        from gogoku_airflow.local import GogokuCliOperator

        if map_argv:
            return GogokuCliOperator.partial(task_id=task_id, plan_tier=plan_tier, **kwargs).expand(argv=argv)
        return GogokuCliOperator(task_id=task_id, argv=argv, plan_tier=plan_tier, **kwargs)
    from gogoku_airflow.pods import pod_operator

    return pod_operator(runner, task_id=task_id, argv=argv, plan_tier=plan_tier, profile=profile,
                        map_argv=map_argv, **kwargs)


def cache_refresh_task(task_id: str, source: str, start: str, end: str, **kwargs: Any) -> BaseOperator:
    """`gogoku cache refresh` for one source, in the API pool (the pool bounds concurrent API use)."""
    argv = ["cache", "refresh", "--sources", source, "--start", start, "--end", end]
    return gogoku_task(task_id, argv, pool=API_POOL, **kwargs)
