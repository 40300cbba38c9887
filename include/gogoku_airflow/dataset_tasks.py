"""The tasks of a dataset build, shared by gogoku_dataset (a range by hand) and gogoku_dataset_monthly
(a rolling window per month, for backfills). A window task returns {start, end, fetch_start,
plan_tier}; these tasks fetch what the tier includes, build, validate and publish the asset event.

- `choose_sources`: one `fetch_<source>` per source the tier may call (`gogoku cache refresh`, pool
  `jquants_api`); TOPIX from light up, futures on premium only.
- `futures_features` (premium): `gogoku features futures` into `<data root>/features/`.
- `build_dataset`: `gogoku dataset build --offline`: the cache only, so a fetch that left a gap fails
  loudly; on premium `--futures-features <URI>`. Its result (the dataset's URI, ...) is the XCom.
- `validate_dataset`: `gogoku dataset validate <that URI>`.
- `publish_dataset`: the event of the asset `gogoku_datasets` with the dataset's URI and summary.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import task

from gogoku_airflow.assets import DATASETS
from gogoku_airflow.plans import LOOKBACK_DAYS, SOURCES
from gogoku_airflow.runners import cache_refresh_task, gogoku_task

# Renders to nothing (the argument is dropped) where futures_features did not run.
FUTURES_FEATURES_OPTION = (
    "{% set f = ti.xcom_pull(task_ids='futures_features') %}{{ '--futures-features=' ~ f['uri'] if f else '' }}"
)


def dataset_tasks(window: Any, window_task_id: str) -> None:
    """Wire the build after `window` (the XComArg of the task `window_task_id`)."""

    def field(name: str) -> str:
        return f"{{{{ ti.xcom_pull(task_ids='{window_task_id}')['{name}'] }}}}"

    start, end, fetch_start, plan = field("start"), field("end"), field("fetch_start"), field("plan_tier")

    @task.branch
    def choose_sources(window: dict[str, str]) -> list[str]:
        from gogoku_airflow.plans import sources_for_plan

        return [f"fetch_{source}" for source in sources_for_plan(window["plan_tier"])]

    fetches = {s: cache_refresh_task(f"fetch_{s}", s, fetch_start, end, plan_tier=plan) for s in SOURCES}
    futures_features = gogoku_task(
        "futures_features",
        ["features", "futures", "--start", start, "--end", end, "--offline", "--lookback-days", str(LOOKBACK_DAYS)],
        plan_tier=plan,
    )
    build_dataset = gogoku_task(
        "build_dataset",
        ["dataset", "build", "--start", start, "--end", end, "--plan", plan, "--offline",
         "--lookback-days", str(LOOKBACK_DAYS), FUTURES_FEATURES_OPTION],
        plan_tier=plan,
        trigger_rule="none_failed_min_one_success",
    )
    validate_dataset = gogoku_task(
        "validate_dataset", ["dataset", "validate", "{{ ti.xcom_pull(task_ids='build_dataset')['uri'] }}"],
        plan_tier=plan,
    )

    @task(outlets=[DATASETS])
    def publish_dataset(built: dict[str, Any], validated: dict[str, Any], **context: Any) -> dict[str, Any]:
        """The asset event: what a training run on `gogoku_datasets` will train on."""
        from gogoku_airflow.assets import dataset_event

        extra = dataset_event(built, validated)
        context["outlet_events"][DATASETS].extra = extra
        return extra

    choose_sources(window) >> list(fetches.values())
    [fetches["futures"], fetches["topix"], fetches["index_option"]] >> futures_features
    [*(fetches[s] for s in SOURCES if s != "futures"), futures_features] >> build_dataset >> validate_dataset
    publish_dataset(build_dataset.output, validate_dataset.output)
