"""gogoku_hpo: a hyperparameter search of ATFT-GAT-FAN, its trials run in parallel tasks (pods).

- `prepare_search`: checks the params; the study lives in the RDB of the Variable
  `gogoku_hpo_storage` (a postgresql:// URL that every worker, pod or process, reaches; passed as
  GOGOKU_HPO_STORAGE, or from the pods' credentials Secret, never in an argv); one argv per worker,
  each running its share of the trials.
- `plan_search`: `gogoku train --plan-only` for the model: its pod profile (the model config's
  `pod_profile`: gpu for atft_gat_fan), and an early check of the dataset and the overrides.
- `hpo_worker` (mapped, one task / pod per worker, on that profile): `gogoku hpo
  --study S --storage URL --n-trials k`: TPE proposals and median pruning coordinated through the
  study. A retried or cleared worker resumes the same study; a trial whose worker died is retried by
  the next worker (heartbeats).
- `best_config`: `gogoku hpo --n-trials 0`: the study's summary, and its best trial registered as a
  model config, `<data root>/hpo/<study>/model.yaml` (train with `gogoku train --model-config <URI>`,
  or the gogoku_training param `model_config`).

Params: `dataset` (URI; empty: the newest of `plan_tier`), `plan_tier`, `model`, `study` (empty: one
per run), `n_trials`, `workers`, `overrides` (fixed for every trial).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import Param, dag, task

from gogoku_airflow.defaults import default_args
from gogoku_airflow.params import plan_tier_param
from gogoku_airflow.runners import gogoku_task, result_field

log = logging.getLogger("airflow.task")


@dag(
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    default_args=default_args(execution_timeout=timedelta(hours=24)),
    tags=["gogoku", "training", "hpo"],
    params={
        "dataset": Param(None, type=["null", "string"], description="Dataset URI; empty: the newest of plan_tier."),
        "plan_tier": plan_tier_param("Plan tier whose newest dataset an empty `dataset` means."),
        "model": Param("atft_gat_fan", type="string", enum=["atft_gat_fan", "atft_tiny"], description="Model searched."),
        "study": Param(None, type=["null", "string"], pattern=r"^$|^[A-Za-z0-9_.-]+$",
                       description="Study name (resume one by naming it); empty: one per run."),
        "n_trials": Param(20, type="integer", minimum=1, maximum=1000, description="Trials to run, all workers together."),
        "workers": Param(2, type="integer", minimum=1, maximum=32, description="Parallel worker tasks (pods)."),
        "overrides": Param([], type="array", items={"type": "string"},
                           description="Hydra overrides fixed for every trial, e.g. splits.n_splits=3."),
    },
    doc_md=__doc__,
)
def gogoku_hpo() -> None:
    @task(multiple_outputs=True)
    def prepare_search(**context: Any) -> dict[str, Any]:
        from gogoku_airflow.params import hpo_plan

        return hpo_plan(context["params"], context["run_id"])

    @task
    def worker_commands(argvs: list[list[str]]) -> list[list[str]]:
        """The mapped workers' argvs (a task's return value: Airflow maps over return values only)."""
        return argvs

    prepared = prepare_search()
    plan = gogoku_task("plan_search", prepared["plan_argv"], plan_tier=prepared["plan"])
    workers = gogoku_task("hpo_worker", worker_commands(prepared["workers"]), profile=result_field("plan_search", "profile"),
                          plan_tier=prepared["plan"], map_argv=True)
    best = gogoku_task("best_config", prepared["best"], plan_tier=prepared["plan"])
    plan >> workers >> best


gogoku_hpo()
