"""The `kubernetes` runner's operator: `gogoku <argv>` in a pod (KubernetesPodOperator).

The pod is built from the pod settings file (podspec.py). The runner reaches its cluster through the
connection `kubernetes_default` (in-cluster, or a kubeconfig), as any KubernetesPodOperator does.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

from gogoku_airflow.podspec import GogokuPodMixin


class GogokuPodOperator(GogokuPodMixin, KubernetesPodOperator):
    template_fields = (*KubernetesPodOperator.template_fields, "plan_tier", "profile")

    def __init__(self, *, plan_tier: str | None, profile: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan_tier = plan_tier
        self.profile = profile
