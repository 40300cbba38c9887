"""gogoku_dataset: build an ML dataset (features + targets) for a date range on a J-Quants plan tier.

- `validate_params`: fails fast, naming the param, on a malformed date, `end` before `start` or an
  unknown tier, and sets the fetch window: `start` - LOOKBACK_DAYS calendar days .. `end`, the
  history the 60/120/200-day feature windows need.
- `choose_sources`: branches on `plan_tier`: one `fetch_<source>` per source the tier may call
  (`gogoku cache refresh`, pool `jquants_api`); TOPIX from light up, futures on premium only.
- `futures_features` (premium): `gogoku features futures` from the cached futures and TOPIX into
  `<data root>/features/`; skipped with `fetch_futures` on the other tiers.
- `build_dataset`: `gogoku dataset build --offline`: reads the cache only, so it fails loudly if a
  fetch left a gap; on premium it adds `--futures-features <URI>`. It writes the dataset into
  `<data root>/datasets/`; its result (the dataset's URI, rows, ...) is an XCom.
- `validate_dataset`: `gogoku dataset validate <that URI>`.
- `publish_dataset`: the asset event of `gogoku_datasets`, carrying the dataset's URI and its
  manifest's summary (plan, range, rows, features): a training run on the asset trains on exactly
  this dataset, whatever other builds finish meanwhile.

Params: `start`, `end` (YYYY-MM-DD, required), `plan_tier` (default standard: a param default cannot
read the Variable `gogoku_plan_tier` cheaply while the file is parsed).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import dag, task

from gogoku_airflow.assets import DATASETS
from gogoku_airflow.defaults import default_args
from gogoku_airflow.params import date_param, plan_tier_param
from gogoku_airflow.plans import SOURCES
from gogoku_airflow.runners import cache_refresh_task, gogoku_task

# Calendar days of history before `start`; also passed to the build so that fetch and build agree.
LOOKBACK_DAYS = 420
PLAN = "{{ params.plan_tier }}"
START = "{{ ti.xcom_pull(task_ids='validate_params')['start'] }}"
END = "{{ ti.xcom_pull(task_ids='validate_params')['end'] }}"
FETCH_START = "{{ ti.xcom_pull(task_ids='validate_params')['fetch_start'] }}"
# Renders to nothing (the argument is dropped) where futures_features did not run.
FUTURES_FEATURES_OPTION = (
    "{% set f = ti.xcom_pull(task_ids='futures_features') %}{{ '--futures-features=' ~ f['uri'] if f else '' }}"
)


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
        from gogoku_airflow.params import check_choice, validate_date_range
        from gogoku_airflow.plans import PLAN_TIERS

        params = context["params"]
        start, end = validate_date_range(params)
        plan = check_choice("plan_tier", params.get("plan_tier"), PLAN_TIERS)
        fetch_start = start - timedelta(days=LOOKBACK_DAYS)
        return {"start": start.isoformat(), "end": end.isoformat(), "fetch_start": fetch_start.isoformat(),
                "plan_tier": plan}

    @task.branch
    def choose_sources(window: dict[str, str]) -> list[str]:
        from gogoku_airflow.plans import sources_for_plan

        return [f"fetch_{source}" for source in sources_for_plan(window["plan_tier"])]

    fetches = {s: cache_refresh_task(f"fetch_{s}", s, FETCH_START, END, plan_tier=PLAN) for s in SOURCES}
    futures_features = gogoku_task(
        "futures_features",
        ["features", "futures", "--start", START, "--end", END, "--offline", "--lookback-days", str(LOOKBACK_DAYS)],
        plan_tier=PLAN,
    )
    build_dataset = gogoku_task(
        "build_dataset",
        ["dataset", "build", "--start", START, "--end", END, "--plan", PLAN, "--offline",
         "--lookback-days", str(LOOKBACK_DAYS), FUTURES_FEATURES_OPTION],
        plan_tier=PLAN,
        trigger_rule="none_failed_min_one_success",
    )
    validate_dataset = gogoku_task(
        "validate_dataset",
        ["dataset", "validate", "{{ ti.xcom_pull(task_ids='build_dataset')['uri'] }}"],
        plan_tier=PLAN,
    )

    @task(outlets=[DATASETS])
    def publish_dataset(built: dict[str, Any], validated: dict[str, Any], **context: Any) -> dict[str, Any]:
        """The asset event: what a training run on `gogoku_datasets` will train on."""
        from gogoku_airflow.assets import dataset_event

        extra = dataset_event(built, validated)
        context["outlet_events"][DATASETS].extra = extra
        return extra

    choose_sources(validate_params()) >> list(fetches.values())
    [fetches["futures"], fetches["topix"]] >> futures_features
    [*(fetches[s] for s in SOURCES if s != "futures"), futures_features] >> build_dataset >> validate_dataset
    publish_dataset(build_dataset.output, validate_dataset.output)


gogoku_dataset()
