"""gogoku_dataset_monthly: one dataset per month, a rolling window ending at the month's last session.

Each run's data interval is a calendar month in Tokyo (the run starts at 06:00 on the 1st of the
next month); it builds the window of `window_months` months ending at the last JPX session of that
month, with the same tasks as gogoku_dataset (gogoku_airflow/dataset_tasks.py), and publishes the
`gogoku_datasets` event. `airflow backfill create --dag-id gogoku_dataset_monthly --from-date
2024-01-01T00:00:00+09:00 --to-date 2024-12-31T00:00:00+09:00` builds one dataset per month of 2024
(bounds in Tokyo time: a date-only bound is read as UTC midnight).

- `month_window`: {start, end, fetch_start, plan_tier} of the run's month (`end` = its last session).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import Param, dag, task
from airflow.timetables.interval import CronDataIntervalTimetable

from gogoku_airflow.dataset_tasks import dataset_tasks
from gogoku_airflow.defaults import default_args
from gogoku_airflow.params import plan_tier_param


@dag(
    schedule=CronDataIntervalTimetable("0 6 1 * *", timezone="Asia/Tokyo"),
    start_date=pendulum.datetime(2025, 1, 1, tz="Asia/Tokyo"),
    catchup=False,
    max_active_runs=2,
    default_args=default_args(execution_timeout=timedelta(hours=4)),
    tags=["gogoku", "jquants", "dataset"],
    params={
        "window_months": Param(36, type="integer", minimum=1, maximum=240,
                               description="Months of the rolling window ending at the month's last session."),
        "plan_tier": plan_tier_param(),
    },
    doc_md=__doc__,
)
def gogoku_dataset_monthly() -> None:
    @task
    def month_window(**context: Any) -> dict[str, str]:
        from gogoku_airflow.market_date import month_window as window

        return window(context["data_interval_start"], context["data_interval_end"], context["params"])

    dataset_tasks(month_window(), "month_window")


gogoku_dataset_monthly()
