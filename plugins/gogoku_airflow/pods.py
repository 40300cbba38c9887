"""The `kubernetes` and `gke` runners: `gogoku <argv>` in a pod (KubernetesPodOperator / GKEStartPodOperator).

Pod settings come from a plain YAML file (not Hydra): the Variable `gogoku_pod_config` names it,
default `pod/default.yaml` under $GOGOKU_CONFIG_DIR (set in the Airflow image), else under this
project's `configs/`. Keys: `namespace`, `image` (the Variable
`gogoku_image` overrides it, e.g. per release), `image_pull_policy`, `service_account_name`,
`startup_timeout_seconds` (GPU node pools may need minutes to scale up), `credentials_secret` and
`profiles`: per profile (`cpu`, `gpu`) the container `resources` (the GPU one carries the
`nvidia.com/gpu` limit), `node_selector` and `tolerations`. A task's profile is a template, so a
run-time param (the model of a training run) can pick it.

The container runs `gogoku <argv>`; the CLI writes its JSON result to /airflow/xcom/return.json,
which the xcom sidecar (do_xcom_push) turns into the task's return value. The environment is the
one of connection.py, resolved when the pod is built; with `credentials_secret` set, the API key,
mail address and password come from that Kubernetes Secret (keys `api-key`, `mailaddress`,
`password`) instead, so no credential appears in the pod spec. The `kubernetes` runner reaches
its cluster through the connection `kubernetes_default` (in-cluster or a kubeconfig), as any
KubernetesPodOperator does; for `gke` see gke.py. Pods reach data through `gogoku_data_root`, which
should then be a bucket (gs://...) the pod's service account may use.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.sdk import Variable
from airflow.sdk.exceptions import AirflowFailException
from kubernetes.client import models as k8s

from gogoku_airflow.argv import CLI, finalize_argv
from gogoku_airflow.connection import cli_env

POD_CONFIG_VARIABLE = "gogoku_pod_config"
IMAGE_VARIABLE = "gogoku_image"
PROJECT_CONFIGS = Path(__file__).resolve().parents[2] / "configs"
PROFILES = ("cpu", "gpu")
SECRET_KEYS = {"JQUANTS_API_KEY": "api-key", "JQUANTS_MAILADDRESS": "mailaddress", "JQUANTS_PASSWORD": "password"}
# Failed pods stay for `kubectl logs`/`describe`; succeeded ones are removed.
ON_FINISH_ACTION = "delete_succeeded_pod"


@lru_cache(maxsize=4)
def _read_pod_config(path: str, mtime_ns: int) -> dict[str, Any]:
    config = yaml.safe_load(Path(path).read_text()) or {}
    missing = [k for k in ("namespace", "image", "profiles") if not config.get(k)]
    missing += [f"profiles.{p}" for p in PROFILES if p not in (config.get("profiles") or {})]
    if missing:
        raise AirflowFailException(f"pod config {path} lacks {', '.join(missing)}")
    return config


def default_pod_config() -> Path:
    return Path(os.environ.get("GOGOKU_CONFIG_DIR") or PROJECT_CONFIGS) / "pod" / "default.yaml"


def load_pod_config() -> dict[str, Any]:
    path = Path(Variable.get(POD_CONFIG_VARIABLE, default=None) or default_pod_config())
    if not path.is_file():
        raise AirflowFailException(f"pod config {path} (Variable {POD_CONFIG_VARIABLE}) does not exist")
    return _read_pod_config(str(path), path.stat().st_mtime_ns)


def pod_env(mapped: dict[str, str], credentials_secret: str | None) -> list[k8s.V1EnvVar]:
    env = []
    for name, value in sorted(mapped.items()):
        if credentials_secret and name in SECRET_KEYS:
            continue
        env.append(k8s.V1EnvVar(name=name, value=value))
    if credentials_secret:
        env += [
            k8s.V1EnvVar(
                name=name,
                value_from=k8s.V1EnvVarSource(
                    secret_key_ref=k8s.V1SecretKeySelector(name=credentials_secret, key=key, optional=True)
                ),
            )
            for name, key in SECRET_KEYS.items()
        ]
    return env


class GogokuPodMixin:
    """What both pod operators add: the pod config, the rendered argv and the CLI environment."""

    plan_tier: str | None
    profile: str
    _credentials_secret: str | None = None

    def render_template_fields(self, context: Any, jinja_env: Any = None) -> None:
        super().render_template_fields(context, jinja_env)  # type: ignore[misc]
        self._finalize()

    def execute(self, context: Any) -> Any:
        # Again here: a mapped task's instance is rendered by the MappedOperator, which bypasses the
        # hook above (both steps are idempotent).
        self._finalize()
        return super().execute(context)  # type: ignore[misc]

    def _finalize(self) -> None:
        self.arguments = finalize_argv(self.arguments)
        self._apply_pod_config(load_pod_config())

    def _apply_pod_config(self, config: dict[str, Any]) -> None:
        if self.profile not in PROFILES:
            raise AirflowFailException(f"pod profile {self.profile!r} is not one of {', '.join(PROFILES)}")
        profile = config["profiles"][self.profile] or {}
        self.namespace = config["namespace"]
        self.image = Variable.get(IMAGE_VARIABLE, default=None) or config["image"]
        self.image_pull_policy = config.get("image_pull_policy")
        self.service_account_name = config.get("service_account_name")
        if config.get("startup_timeout_seconds"):
            self.startup_timeout_seconds = self.schedule_timeout_seconds = int(config["startup_timeout_seconds"])
        resources = profile.get("resources") or {}
        self.container_resources = k8s.V1ResourceRequirements(
            requests=resources.get("requests"), limits=resources.get("limits")
        )
        self.node_selector = dict(profile.get("node_selector") or {})
        self.tolerations = [k8s.V1Toleration(**t) for t in profile.get("tolerations") or []]
        self._credentials_secret = config.get("credentials_secret")

    def build_pod_request_obj(self, context: Any = None, *, dry_run: bool = False) -> k8s.V1Pod:
        pod = super().build_pod_request_obj(context, dry_run=dry_run)  # type: ignore[misc]
        container = next(c for c in pod.spec.containers if c.name == self.base_container_name)
        env = pod_env(cli_env(self.plan_tier or None), self._credentials_secret)
        container.env = [*(container.env or []), *env]
        return pod


class GogokuPodOperator(GogokuPodMixin, KubernetesPodOperator):
    template_fields = (*KubernetesPodOperator.template_fields, "plan_tier", "profile")

    def __init__(self, *, plan_tier: str | None, profile: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan_tier = plan_tier
        self.profile = profile


def pod_operator(runner: str, *, task_id: str, argv: Any, plan_tier: str | None, profile: str,
                 map_argv: bool = False, **kwargs: Any):
    """A pod operator running `gogoku <argv>`; `runner` is `kubernetes` or `gke`. With `map_argv`,
    `argv` is a list of argv lists (an XCom) and the task is mapped: one pod per argv."""
    common: dict[str, Any] = {
        "task_id": task_id,
        "cmds": [CLI],
        "plan_tier": plan_tier,
        "profile": profile,
        "do_xcom_push": True,
        "labels": {"app.kubernetes.io/name": "gogoku"},
        "on_finish_action": ON_FINISH_ACTION,
        **kwargs,
    }
    if runner == "kubernetes":
        operator, extra = GogokuPodOperator, {}
    else:
        from gogoku_airflow.gke import GKE_CLUSTER, GogokuGKEPodOperator

        operator, extra = GogokuGKEPodOperator, GKE_CLUSTER
    if map_argv:
        return operator.partial(**extra, **common).expand(arguments=argv)
    return operator(**extra, **common, arguments=argv)
