"""gogoku_training: train a model on a built dataset and log its walk-forward metrics.

- `prepare_training`: checks the params and turns them into the `gogoku train` argv. The dataset is,
  in this order: the `dataset` param; the URI in the
  triggering `gogoku_datasets` asset event (a run the scheduler started for a new dataset: the
  newest event when several coalesced); the newest dataset of the `plan_tier` param. The model
  folder is `<data root>/models/<model>_<run id>`.
- `plan_training`: `gogoku train ... --plan-only`: the run's walk-forward folds, whether the model's
  folds can train as separate tasks, and its pod profile (`pod_profile` in configs/model/<model>.yaml,
  e.g. gpu for atft_gat_fan; the local runner ignores it), from the config and the dataset's dates.
- `fold_commands`, `train_fold` (neural models with `fold_parallel`; mapped, one task / pod per fold):
  `gogoku train ... --run-name <folder> --fold k`; skipped for LightGBM.
- `train`: `gogoku train --dataset <path|latest> --model <model> --run-name <folder> [overrides...]`:
  trains every fold (or, after the fold tasks, loads their folds) and writes the metrics; its result
  (model folder, metrics file, headline metrics per horizon) is an XCom. A retry resumes from the
  checkpoints in the folder.
- `report`: logs the headline metrics as a table.
- `register_model` (with `refit`, on by default: the run also fits the production model on every
  labelled date): `gogoku model register`; `promote_model`: `gogoku model promote`: the new model
  becomes the champion when it beats the current one on their common test rows by the configured
  margin (paired bootstrap of the daily RankIC difference, every horizon), or always with
  `promote=force`; the decision and its figures are the task's result and log.

Params: `dataset` (a dataset URI; empty = see above), `plan_tier` (whose newest dataset `latest`
means), `model`, `overrides` (Hydra overrides, e.g. ["model.params.num_leaves=63"]), `fold_parallel`.
The Variable `gogoku_training_overrides` (a JSON list, optional) holds overrides every run gets before
its own (a key the run's `overrides` set wins): the only way to shape the runs the scheduler starts
for new datasets, which have the params' defaults.
Scheduled on the asset `gogoku_datasets`: once unpaused, every validated dataset gets a model; keep
it paused to train on demand only (the trigger form and `airflow dags trigger` work either way).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import Param, dag, task

from gogoku_airflow.assets import DATASETS
from gogoku_airflow.defaults import default_args
from gogoku_airflow.params import model_choices, plan_tier_param
from gogoku_airflow.runners import gogoku_task, result_field

log = logging.getLogger("airflow.task")
PROMOTE_CHOICES = ("if_better", "force", "never")
MODEL_DIR = "{{ ti.xcom_pull(task_ids='train')['model_dir'] }}"
FORCE_OPTION = "{{ '--force' if params.promote == 'force' else '' }}"


@dag(
    schedule=[DATASETS],
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    default_args=default_args(execution_timeout=timedelta(hours=12)),
    tags=["gogoku", "training"],
    params={
        "dataset": Param(None, type=["null", "string"],
                         description="Dataset URI; empty: the asset event's dataset, else the newest of plan_tier."),
        "plan_tier": plan_tier_param("Plan tier whose newest dataset an empty `dataset` means."),
        "model": Param("lightgbm", type="string", enum=list(model_choices()),
                       description="Model to train (configs/model/<model>.yaml)."),
        "overrides": Param([], type="array", items={"type": "string"},
                           description="Hydra overrides, one per item, e.g. model.params.num_leaves=63."),
        "fold_parallel": Param(True, type="boolean",
                               description="Neural models: train each walk-forward fold in its own task (pod)."),
        "refit": Param(True, type="boolean",
                       description="Also fit the production model on all labelled data and register it."),
        "promote": Param("if_better", type="string", enum=["if_better", "force", "never"],
                         description="Make the new model the champion: if it beats the champion on the same "
                                     "test rows by the configured margin, always, or never."),
    },
    doc_md=__doc__,
)
def gogoku_training() -> None:
    @task(multiple_outputs=True)
    def prepare_training(**context: Any) -> dict[str, Any]:
        from airflow.sdk import Variable

        from gogoku_airflow.assets import uri_from_events
        from gogoku_airflow.params import (
            TRAINING_OVERRIDES_VARIABLE,
            check_choice,
            merge_overrides,
            run_name,
            validate_overrides,
            variable_overrides,
        )
        from gogoku_airflow.plans import PLAN_TIERS

        params = context["params"]
        model = check_choice("model", params.get("model"), model_choices())
        overrides = merge_overrides(variable_overrides(Variable.get(TRAINING_OVERRIDES_VARIABLE, default="")),
                                    validate_overrides(params.get("overrides") or []))
        if overrides:
            log.info("Hydra overrides (Variable %s, then the param): %s", TRAINING_OVERRIDES_VARIABLE, overrides)
        plan = check_choice("plan_tier", params.get("plan_tier"), PLAN_TIERS)
        dataset = str(params.get("dataset") or "").strip()
        if dataset:
            log.info("dataset from the param: %s", dataset)
        else:
            dataset, event = uri_from_events(context.get("triggering_asset_events"))
            if dataset:
                plan = str(event.get("plan") or plan)
                log.info("dataset from the triggering asset event: %s (%s)", dataset, event)
            else:
                dataset = "latest"
                log.info("dataset: the newest %s dataset under the data root", plan)
        argv = ["train", "--dataset", dataset, "--plan", plan, "--model", model,
                "--run-name", run_name(model, context["run_id"])]
        refit = bool(params.get("refit"))
        if refit:
            overrides = [*overrides, "refit=true"]
        return {"argv": [*argv, *overrides], "plan_argv": [*argv, "--plan-only", *overrides],
                "fold_parallel": bool(params.get("fold_parallel")), "plan": plan, "register": refit,
                "promote": refit and check_choice("promote", params.get("promote"), PROMOTE_CHOICES) != "never"}

    @task
    def fold_commands(argv: list[str], plan: dict[str, Any], fold_parallel: bool) -> list[list[str]]:
        """One `gogoku train ... --fold k` per walk-forward fold of the plan, for a model whose folds can
        train apart and with `fold_parallel` on (none: the mapped fold task is skipped)."""
        folds = [int(f["fold"]) for f in plan["folds"]]
        if not (fold_parallel and plan["fold_parallel"]):
            log.info("%d folds, trained by the `train` task (%s)", len(folds),
                     "param fold_parallel is off" if plan["fold_parallel"] else f"{plan['model']} trains folds together")
            return []
        log.info("%d fold tasks: %s (pod profile %s)", len(folds), folds, plan["profile"])
        return [[*argv, "--fold", str(k)] for k in folds]

    @task
    def report(result: dict[str, Any]) -> dict[str, Any]:
        from gogoku_airflow.log_tables import metrics_table

        log.info("model %s trained on %s -> %s", result["model"], result["dataset"], result["model_dir"])
        log.info("headline metrics per horizon:\n%s", metrics_table(result["headline"]))
        return result["headline"]

    @task.short_circuit(ignore_downstream_trigger_rules=False)
    def should_register(register: bool) -> bool:
        """Only a run with a production model (refit) can serve predictions."""
        if not register:
            log.info("refit is off: the model is not registered (it has no production model)")
        return register

    @task.short_circuit
    def should_promote(promote: bool) -> bool:
        if not promote:
            log.info("promote is never (or refit is off): the champion stays")
        return promote

    prepared = prepare_training()
    plan = gogoku_task("plan_training", prepared["plan_argv"], plan_tier=prepared["plan"])
    commands = fold_commands(prepared["argv"], plan.output, prepared["fold_parallel"])
    profile = result_field("plan_training", "profile")
    folds = gogoku_task("train_fold", commands, profile=profile, plan_tier=prepared["plan"], map_argv=True)
    train = gogoku_task("train", prepared["argv"], profile=profile, plan_tier=prepared["plan"],
                        trigger_rule="none_failed")
    folds >> train
    report(train.output)
    register = gogoku_task("register_model", ["model", "register", "--model-dir", MODEL_DIR])
    promote = gogoku_task("promote_model", ["model", "promote", MODEL_DIR, FORCE_OPTION])
    train >> should_register(prepared["register"]) >> register >> should_promote(prepared["promote"]) >> promote


gogoku_training()
