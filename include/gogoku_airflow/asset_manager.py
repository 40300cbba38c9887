"""An asset manager that never strands an asset event: `[core] asset_manager_class` of the deployments
(scripts/deployment.py, deploy/helm/values.yaml).

Airflow 3.3.2 queues a consumer DAG with one row per (asset, DAG) in `asset_dag_run_queue`; on
PostgreSQL a second event of the same asset finds the row there and leaves it as it is (ON CONFLICT
DO NOTHING), with the first event's `created_at`. The scheduler then creates the run for events up to
that `created_at` and deletes the row: the second event, newer than it, is neither consumed by the run
nor queued for another one (two gogoku_dataset runs that publish within a second of each other; the
second dataset's event would wait for some later dataset's run). Here the row's `created_at` moves
forward to the newest event instead, so that the run consumes every event queued before it (several
events coalesce into one run, as Airflow documents: gogoku_training trains the newest of them).
"""

from __future__ import annotations

from typing import Any

from airflow.assets.manager import AssetManager


class GogokuAssetManager(AssetManager):
    @classmethod
    def _queue_dagruns_nonpartitioned_postgres(cls, asset_id: int, dags_to_queue: set[Any], session: Any) -> None:
        from airflow.models.asset import AssetDagRunQueue
        from airflow.utils import timezone
        from sqlalchemy import func
        from sqlalchemy.dialects.postgresql import insert

        now = timezone.utcnow()
        values = [{"target_dag_id": dag.dag_id, "created_at": now} for dag in dags_to_queue]
        stmt = insert(AssetDagRunQueue).values(asset_id=asset_id)
        stmt = stmt.on_conflict_do_update(
            index_elements=[AssetDagRunQueue.asset_id, AssetDagRunQueue.target_dag_id],
            set_={"created_at": func.greatest(AssetDagRunQueue.created_at, stmt.excluded.created_at)},
        )
        session.execute(stmt, values)
