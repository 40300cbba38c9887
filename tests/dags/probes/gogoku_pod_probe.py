"""A probe DAG for tests/dags/test_pod_specs.py, in its own bundle (not the project's dags/).

`build_dataset` pushes a dataset URI as an XCom; `validate_dataset` is a gogoku task pulling it in
a Jinja template, on the GPU profile. `train` takes its whole argv and its profile from an upstream
task's XComs, as gogoku_training does, and `train_fold` is mapped over an upstream task's list of
argvs (one pod per fold; kubernetes runner only). The runner comes from the Variable when each task
runs. The KubernetesPodOperator callback records the pod manifest each pod operator built (templates
rendered by the real task runner) in $GOGOKU_PROBE_OUT/<task_id>[.<map index>].json, then stops the
task (skipped) before it would create the pod: there is no cluster in the tests.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pendulum
from airflow.providers.cncf.kubernetes.callbacks import KubernetesPodOperatorCallback
from airflow.sdk import dag, task
from airflow.sdk.exceptions import AirflowSkipException
from kubernetes.client import ApiClient

from gogoku_airflow.runners import gogoku_task

DATASET_URI = "gs://gogoku-test/datasets/ml_dataset_premium_20250106_20250228.parquet"
GKE_FIELDS = ("project_id", "location", "cluster_name", "gcp_conn_id")


class CaptureManifest(KubernetesPodOperatorCallback):
    @staticmethod
    def on_pod_manifest_created(*, pod_request: Any, operator: Any, **kwargs: Any) -> None:
        captured = {
            "pod": ApiClient().sanitize_for_serialization(pod_request),
            "operator": {f: getattr(operator, f) for f in GKE_FIELDS if hasattr(operator, f)},
            "on_finish_action": operator.on_finish_action.value,
        }
        index = kwargs["context"]["ti"].map_index if kwargs.get("context") else -1
        name = operator.task_id if index is None or index < 0 else f"{operator.task_id}.{index}"
        (Path(os.environ["GOGOKU_PROBE_OUT"]) / f"{name}.json").write_text(json.dumps(captured))
        raise AirflowSkipException("pod manifest captured; no cluster to create it on")


@dag(schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC"), catchup=False, tags=["test"])
def gogoku_pod_probe() -> None:
    # Stands in for the GKE API lookup of the cluster (GKEHook.get_cluster): endpoint and CA.
    cluster = os.environ.get("GOGOKU_PROBE_GKE_CLUSTER")
    pod_options: dict[str, Any] = {"pod_callbacks": [CaptureManifest], "retries": 0}
    if cluster:
        pod_options["pod_attributes"] = {"cluster_info": tuple(json.loads(cluster))}

    @task
    def build_dataset() -> dict[str, str]:
        return {"uri": DATASET_URI}

    validate = gogoku_task(
        "validate_dataset",
        ["dataset", "validate", "{{ ti.xcom_pull(task_ids='build_dataset')['uri'] }}", ""],
        profile="gpu",
        plan_tier="premium",
        **pod_options,
    )
    build_dataset() >> validate

    @task(multiple_outputs=True)
    def prepare_training() -> dict[str, Any]:
        return {"argv": ["train", "--dataset", "latest", "--model", "lightgbm", "splits.n_splits=3"], "profile": "cpu"}

    prepared = prepare_training()
    train = gogoku_task("train", prepared["argv"], profile=prepared["profile"],
                        trigger_rule="none_failed", **pod_options)  # as gogoku_training: after skipped fold tasks

    if not cluster:
        @task
        def fold_commands() -> list[list[str]]:
            return [["train", "--model", "atft_gat_fan", "--run-name", "r1", "--fold", str(k)] for k in range(2)]

        folds = gogoku_task("train_fold", fold_commands(), profile=prepared["profile"], map_argv=True, **pod_options)
        folds >> train


gogoku_pod_probe()
