"""gogoku_dataset: build an ML dataset (features + targets) for a date range on a J-Quants plan tier.

- `validate_params`: fails fast, naming the param, on a malformed date, `end` before `start` or an
  unknown tier, and sets the fetch window: `start` - LOOKBACK_DAYS calendar days .. `end`, the
  history the 60/120/200-day feature windows need.
- then the build's tasks (gogoku_airflow/dataset_tasks.py): `choose_sources` branches on the tier,
  `fetch_<source>` per source it may call, `futures_features` on premium, `build_dataset` (cache
  only) into `<data root>/datasets/`, `validate_dataset` on the URI the build returned, and
  `publish_dataset`: the asset event of `gogoku_datasets` with the dataset's URI and summary, so a
  training run on the asset trains on exactly this dataset, whatever other builds finish meanwhile.

Params: `start`, `end` (YYYY-MM-DD, required), `plan_tier` (default standard: a param default cannot
read the Variable `gogoku_plan_tier` cheaply while the file is parsed).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import dag, task

from gogoku_airflow.dataset_tasks import dataset_tasks
from gogoku_airflow.defaults import default_args
from gogoku_airflow.params import date_param, plan_tier_param


@dag(
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    default_args=default_args(execution_timeout=timedelta(hours=4)),
    tags=["gogoku", "jquants", "dataset"],
    params={
        "start": date_param("First date of the dataset (YYYY-MM-DD)."),
        "end": date_param("Last date of the dataset (YYYY-MM-DD)."),
        "plan_tier": plan_tier_param(),
    },
    doc_md=__doc__,
)
def gogoku_dataset() -> None:
    @task
    def validate_params(**context: Any) -> dict[str, str]:
        from gogoku_airflow.params import dataset_window

        return dataset_window(context["params"])

    dataset_tasks(validate_params(), "validate_params")


gogoku_dataset()
