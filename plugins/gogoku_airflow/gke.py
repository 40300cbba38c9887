"""The `gke` runner: the pod of pods.py on a GKE cluster (GKEStartPodOperator).

The cluster is named by the Variables `gogoku_gke_project`, `gogoku_gke_location` and
`gogoku_gke_cluster`, read when the task runs; Google credentials come from the connection named
by `gogoku_gcp_conn_id` (default google_cloud_default). A separate module so that the Google
provider is imported only by deployments that use this runner.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.google.cloud.operators.kubernetes_engine import GKEStartPodOperator

from gogoku_airflow.pods import GogokuPodMixin


class GogokuGKEPodOperator(GogokuPodMixin, GKEStartPodOperator):
    template_fields = (*GKEStartPodOperator.template_fields, "plan_tier", "profile")

    def __init__(self, *, plan_tier: str | None, profile: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan_tier = plan_tier
        self.profile = profile


# The cluster and credentials, read from Variables when the task runs.
GKE_CLUSTER: dict[str, str] = {
    "project_id": "{{ var.value.gogoku_gke_project }}",
    "location": "{{ var.value.gogoku_gke_location }}",
    "cluster_name": "{{ var.value.gogoku_gke_cluster }}",
    "gcp_conn_id": "{{ var.value.get('gogoku_gcp_conn_id', 'google_cloud_default') }}",
}

