"""Assets the gogoku DAGs produce (Airflow 3 assets: lineage in the UI, and a schedule for consumers)."""

from __future__ import annotations

from airflow.sdk import Asset

# Updated each time gogoku_dataset validates a newly built dataset under <data root>/datasets.
DATASETS = Asset(name="gogoku_datasets", group="gogoku")
