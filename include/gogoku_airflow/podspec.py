"""What every gogoku pod carries: the pod settings file, its storage, its environment and argv.

The pod settings are a plain YAML file (not Hydra): the Variable `gogoku_pod_config` names it,
default `pod/default.yaml` under $GOGOKU_CONFIG_DIR (set in the Airflow image), else under this
project's `configs/`. Keys: `namespace`, `image` (the Variable `gogoku_image` overrides it, e.g.
per release), `image_pull_policy`, `service_account_name`, `startup_timeout_seconds` (GPU node
pools may need minutes to scale up), `credentials_secret` (the Kubernetes Secret holding the J-Quants
credentials and other secret settings; plain-text values in the pod spec only with
`credentials_in_env: true`, an opt-in logged as a warning on every pod), `storage`,
`env` (extra variables for every pod) and `profiles`: per profile (`cpu`, `gpu`) the container
`resources` (the GPU one carries the `nvidia.com/gpu` limit), `node_selector` and `tolerations`.

Storage (`storage.kind`): every task runs in its own pod with its own disk, so the data root must
be shared:
- `object_store`: GOGOKU_DATA_ROOT is the Variable `gogoku_data_root` (gs://bucket/prefix). Pods
  authenticate as their service account (GKE Workload Identity), or with a service-account key
  from `storage.gcp_credentials_secret` ({name, key}), mounted read-only and named by
  GOOGLE_APPLICATION_CREDENTIALS. The local read cache is an emptyDir (`storage.local_cache`).
- `pvc`: a ReadWriteMany PersistentVolumeClaim (`storage.pvc`: claim_name, mount_path, sub_path,
  read_only) mounted in every pod; GOGOKU_DATA_ROOT is its mount path.

The container runs `gogoku --result-file /airflow/xcom/return.json <argv>`: the file that the xcom
sidecar (do_xcom_push) turns into the task's return value.
"""

from __future__ import annotations

import logging
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from airflow.sdk import Variable
from airflow.sdk.exceptions import AirflowFailException
from kubernetes.client import models as k8s

from gogoku_airflow.argv import CLI, finalize_argv
from gogoku_airflow.connection import cli_env

POD_CONFIG_VARIABLE = "gogoku_pod_config"
IMAGE_VARIABLE = "gogoku_image"
PROJECT_CONFIGS = Path(__file__).resolve().parents[2] / "configs"
PROFILES = ("cpu", "gpu")
STORAGE_KINDS = ("object_store", "pvc")
SECRET_KEYS = {"JQUANTS_API_KEY": "api-key", "JQUANTS_MAILADDRESS": "mailaddress", "JQUANTS_PASSWORD": "password",
               "GOGOKU_HPO_STORAGE": "hpo-storage", "JQUANTS_RATE_LIMITER": "rate-limiter"}
XCOM_RESULT = "/airflow/xcom/return.json"
POD_CMDS = [CLI, "--result-file", XCOM_RESULT]
DATA_VOLUME = "gogoku-data"
CACHE_VOLUME = "gogoku-cache"
GCP_KEY_VOLUME = "gogoku-gcp-key"
GCP_KEY_DIR = "/var/secrets/google"
# Failed pods stay for `kubectl logs`/`describe`; succeeded ones are removed.
ON_FINISH_ACTION = "delete_succeeded_pod"


log = logging.getLogger(__name__)


def _fail(path: str, why: str) -> AirflowFailException:
    return AirflowFailException(f"pod config {path}: {why}")


@lru_cache(maxsize=4)
def _read_pod_config(path: str, mtime_ns: int) -> dict[str, Any]:
    try:
        config = yaml.safe_load(Path(path).read_text()) or {}
    except yaml.YAMLError as exc:
        raise _fail(path, f"not valid YAML ({exc})") from None
    if not isinstance(config, dict):
        raise _fail(path, "expected a mapping of settings")
    missing = [k for k in ("namespace", "image", "profiles") if not config.get(k)]
    missing += [f"profiles.{p}" for p in PROFILES if p not in (config.get("profiles") or {})]
    if missing:
        raise AirflowFailException(f"pod config {path} lacks {', '.join(missing)}")
    storage = config.get("storage") or {"kind": "object_store"}
    kind = storage.get("kind", "object_store")
    if kind not in STORAGE_KINDS:
        raise _fail(path, f"storage.kind {kind!r} is not one of {', '.join(STORAGE_KINDS)}")
    if kind == "pvc":
        pvc = storage.get("pvc") or {}
        lacking = [f"storage.pvc.{k}" for k in ("claim_name", "mount_path") if not pvc.get(k)]
        if lacking:
            raise _fail(path, f"storage.kind pvc needs {', '.join(lacking)}")
        if not str(pvc["mount_path"]).startswith("/"):
            raise _fail(path, f"storage.pvc.mount_path {pvc['mount_path']!r} must be an absolute path")
    key = storage.get("gcp_credentials_secret")
    if key is not None and not (isinstance(key, dict) and key.get("name") and key.get("key")):
        raise _fail(path, "storage.gcp_credentials_secret must be {name: <Secret>, key: <file in it>} or null")
    if not isinstance(config.get("credentials_in_env", False), bool):
        raise _fail(path, "credentials_in_env must be true or false")
    secret = config.get("credentials_secret")
    if secret is not None and not (isinstance(secret, str) and secret.strip()):
        raise _fail(path, "credentials_secret must be the name of a Kubernetes Secret or null")
    env = config.get("env") or {}
    if not isinstance(env, dict):
        raise _fail(path, "env must be a mapping of NAME: value")
    return {**config, "storage": {**storage, "kind": kind}, "env": {str(k): str(v) for k, v in env.items()}}


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


def credentials_source(config: dict[str, Any], mapped: dict[str, str]) -> str | None:
    """The Secret the pod's secret settings come from; None (plain values in the spec) only when the
    pod config opts in with `credentials_in_env: true` (a warning each time) or there is nothing secret
    (the simulator's connection)."""
    secret = config.get("credentials_secret")
    if secret:
        return str(secret)
    present = sorted(name for name in SECRET_KEYS if mapped.get(name))
    if not present:
        return None
    if not config.get("credentials_in_env"):
        raise AirflowFailException(
            f"pod config: credentials_secret is null, so {', '.join(present)} would be written into the pod spec in "
            "plain text; create the Secret (kubectl create secret generic jquants --from-literal=api-key=<key>) and set "
            "credentials_secret: jquants in the pod config (Variable gogoku_pod_config), or opt in to plain text with "
            "credentials_in_env: true")
    log.warning("pod config: credentials_in_env is true: %s are in the pod spec in plain text, readable by anyone "
                "who can read pods in the namespace; prefer credentials_secret", ", ".join(present))
    return None


def storage_spec(config: dict[str, Any]) -> tuple[dict[str, str], list[k8s.V1Volume], list[k8s.V1VolumeMount]]:
    """(environment, volumes, mounts) that give a pod the data root and its local cache."""
    storage = config["storage"]
    env: dict[str, str] = {}
    volumes: list[k8s.V1Volume] = []
    mounts: list[k8s.V1VolumeMount] = []
    if storage["kind"] == "pvc":
        pvc = storage["pvc"]
        read_only = bool(pvc.get("read_only", False))
        volumes.append(k8s.V1Volume(name=DATA_VOLUME, persistent_volume_claim=k8s.V1PersistentVolumeClaimVolumeSource(
            claim_name=str(pvc["claim_name"]), read_only=read_only)))
        mounts.append(k8s.V1VolumeMount(name=DATA_VOLUME, mount_path=str(pvc["mount_path"]),
                                        sub_path=str(pvc.get("sub_path") or "") or None, read_only=read_only))
        env["GOGOKU_DATA_ROOT"] = str(pvc["mount_path"])
    cache = storage.get("local_cache") or {}
    cache_path = str(cache.get("mount_path") or "/var/cache/gogoku")
    volumes.append(k8s.V1Volume(name=CACHE_VOLUME, empty_dir=k8s.V1EmptyDirVolumeSource(
        size_limit=str(cache["size_limit"]) if cache.get("size_limit") else None)))
    mounts.append(k8s.V1VolumeMount(name=CACHE_VOLUME, mount_path=cache_path))
    env["GOGOKU_LOCAL_CACHE"] = cache_path
    key = storage.get("gcp_credentials_secret")
    if key:
        volumes.append(k8s.V1Volume(name=GCP_KEY_VOLUME, secret=k8s.V1SecretVolumeSource(secret_name=key["name"])))
        mounts.append(k8s.V1VolumeMount(name=GCP_KEY_VOLUME, mount_path=GCP_KEY_DIR, read_only=True))
        env["GOOGLE_APPLICATION_CREDENTIALS"] = f"{GCP_KEY_DIR}/{key['key']}"
    return env, volumes, mounts


class GogokuPodMixin:
    """What both pod operators add: the pod config, the rendered argv and the CLI environment."""

    plan_tier: str | None
    profile: str
    _config: dict[str, Any] | None = None

    def render_template_fields(self, context: Any, jinja_env: Any = None) -> None:
        super().render_template_fields(context, jinja_env)  # type: ignore[misc]
        self._finalize()

    def execute(self, context: Any, **kwargs: Any) -> Any:
        # Again here: a mapped task's instance is rendered by the MappedOperator, which bypasses the
        # hook above (both steps are idempotent). kwargs: the task runner's sentinel for the operator.
        self._finalize()
        return super().execute(context, **kwargs)  # type: ignore[misc]

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
        _, volumes, mounts = storage_spec(config)
        self.volumes = volumes
        self.volume_mounts = mounts
        self._config = config

    def build_pod_request_obj(self, context: Any = None, *, dry_run: bool = False) -> k8s.V1Pod:
        pod = super().build_pod_request_obj(context, dry_run=dry_run)  # type: ignore[misc]
        config = self._config or load_pod_config()
        container = next(c for c in pod.spec.containers if c.name == self.base_container_name)
        storage_env, _, _ = storage_spec(config)
        mapped = {**cli_env(self.plan_tier or None), **config["env"], **storage_env}
        env = pod_env(mapped, credentials_source(config, mapped))
        container.env = [*(container.env or []), *env]
        return pod


def pod_kwargs(*, task_id: str, argv: list[str], plan_tier: str | None, profile: str,
               callbacks: Any = None) -> dict[str, Any]:
    """The constructor arguments shared by the pod operators of every runner."""
    kwargs: dict[str, Any] = {
        "task_id": task_id,
        "cmds": list(POD_CMDS),
        "arguments": argv,
        "plan_tier": plan_tier,
        "profile": profile,
        "do_xcom_push": True,
        "labels": {"app.kubernetes.io/name": "gogoku"},
        "on_finish_action": ON_FINISH_ACTION,
        "retries": 0,  # the gogoku task around it owns the retries
    }
    if callbacks:
        kwargs["callbacks"] = callbacks
    return kwargs
