"""The gogoku Airflow plugin: what the scheduler must know of the project besides the DAG files (a
deadline reference on the market's clock)."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from gogoku_airflow.deadlines import MarketMorningDeadline


class GogokuPlugin(AirflowPlugin):
    name = "gogoku"
    deadline_references = [MarketMorningDeadline]
