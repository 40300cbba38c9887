"""The `gke` runner's operator: the pod of podspec.py on a GKE cluster (GKEStartPodOperator).

The cluster is named by the Variables `gogoku_gke_project`, `gogoku_gke_location` and
`gogoku_gke_cluster`, read when the task runs; Google credentials come from the connection named
by `gogoku_gcp_conn_id` (default google_cloud_default). A module of its own so that the Google
provider is imported only by deployments that use this runner.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.google.cloud.operators.kubernetes_engine import GKEStartPodOperator
from airflow.sdk import Variable
from airflow.sdk.exceptions import AirflowFailException

from gogoku_airflow.podspec import GogokuPodMixin

CLUSTER_VARIABLES = {"project_id": "gogoku_gke_project", "location": "gogoku_gke_location",
                     "cluster_name": "gogoku_gke_cluster"}
GCP_CONN_VARIABLE = "gogoku_gcp_conn_id"


class GogokuGKEPodOperator(GogokuPodMixin, GKEStartPodOperator):
    template_fields = (*GKEStartPodOperator.template_fields, "plan_tier", "profile")

    def __init__(self, *, plan_tier: str | None, profile: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan_tier = plan_tier
        self.profile = profile


def gke_cluster() -> dict[str, str]:
    """The cluster and credentials of the gke runner, from Variables (read when the task runs)."""
    cluster = {field: str(Variable.get(name, default="") or "").strip() for field, name in CLUSTER_VARIABLES.items()}
    missing = [CLUSTER_VARIABLES[f] for f, v in cluster.items() if not v]
    if missing:
        raise AirflowFailException(f"gke runner: set the Variable(s) {', '.join(missing)} (the GKE cluster to run on)")
    cluster["gcp_conn_id"] = str(Variable.get(GCP_CONN_VARIABLE, default="google_cloud_default"))
    return cluster
