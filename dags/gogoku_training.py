"""gogoku_training: train a model on a built dataset and log its walk-forward metrics.

- `prepare_training`: checks the params and turns them into the `gogoku train` argv and the pod
  profile (gpu for the neural models, cpu otherwise; the local runner ignores it).
- `train`: `gogoku train --dataset <path|latest> --model <model> [hydra overrides...]`; its result
  (model folder, metrics file, headline metrics per horizon) is an XCom.
- `report`: logs the headline metrics as a table.

Params: `dataset` (a dataset parquet; empty = the latest one built under the data root), `model`,
`overrides` (Hydra overrides, e.g. ["model.params.num_leaves=63"]).
Runs on demand (schedule None): training is the expensive step, and a new dataset is not always
worth a model. To retrain after every validated dataset, schedule it on the asset instead:
`schedule=[gogoku_airflow.assets.DATASETS]`.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import Param, dag, task

from gogoku_airflow.defaults import default_args
from gogoku_airflow.params import MODELS
from gogoku_airflow.runners import gogoku_task

log = logging.getLogger("airflow.task")


@dag(
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    default_args=default_args(execution_timeout=timedelta(hours=12)),
    tags=["gogoku", "training"],
    params={
        "dataset": Param("", type="string", description="Dataset parquet path; empty: the latest built dataset."),
        "model": Param(MODELS[0], type="string", enum=list(MODELS), description="Model to train."),
        "overrides": Param([], type="array", items={"type": "string"},
                           description="Hydra overrides, one per item, e.g. model.params.num_leaves=63."),
    },
    doc_md=__doc__,
)
def gogoku_training() -> None:
    @task(multiple_outputs=True)
    def prepare_training(**context: Any) -> dict[str, Any]:
        from gogoku_airflow.params import GPU_MODELS, check_choice, validate_overrides

        params = context["params"]
        model = check_choice("model", params.get("model"), MODELS)
        overrides = validate_overrides(params.get("overrides") or [])
        dataset = str(params.get("dataset") or "").strip() or "latest"
        return {
            "argv": ["train", "--dataset", dataset, "--model", model, *overrides],
            "profile": "gpu" if model in GPU_MODELS else "cpu",
        }

    @task
    def report(result: dict[str, Any]) -> dict[str, Any]:
        from gogoku_airflow.report import metrics_table

        log.info("model %s trained on %s -> %s", result["model"], result["dataset"], result["model_dir"])
        log.info("headline metrics per horizon:\n%s", metrics_table(result["headline"]))
        return result["headline"]

    prepared = prepare_training()
    train = gogoku_task("train", prepared["argv"], profile=prepared["profile"])
    report(train.output)


gogoku_training()
