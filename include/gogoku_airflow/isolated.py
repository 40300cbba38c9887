"""The `isolated` runner: each task's pod spec run on this machine as a kubelet would run it.

For tests and staging, without a cluster. The pod is built exactly as the `kubernetes` runner builds
it (same operator, same pod settings file), then its main container's command and args run as a
fresh process:
- an empty working directory, its own HOME and TMPDIR, and no inherited environment: only the
  variables the pod spec sets (plain values, and `secretKeyRef`s read from the secrets folder) plus
  what the image provides (PATH to this Python environment's `gogoku`, LANG);
- its volume mounts stand for themselves: an emptyDir is a fresh folder, a Secret volume the
  secret's folder, a PersistentVolumeClaim the host folder given for the claim. A process cannot
  mount here, so every mount path in the env and args is rewritten to its folder, and the folders
  back to mount paths in the JSON result, which is read from the xcom volume as the sidecar would.

Settings (environment of the Airflow worker, not of the task):
`GOGOKU_ISOLATION_VOLUMES` ({"claim name": "/host/folder"}), `GOGOKU_ISOLATION_SECRETS` (a folder
of `<secret name>/<key>` files, the layout of a mounted Secret), `GOGOKU_ISOLATION_KEEP` (1: keep
each task's sandbox for inspection).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from airflow.sdk.exceptions import AirflowException, AirflowFailException
from kubernetes.client import models as k8s

from gogoku_airflow.local import CliProcess, failure
from gogoku_airflow.pods import GogokuPodOperator

VOLUMES_ENV = "GOGOKU_ISOLATION_VOLUMES"
SECRETS_ENV = "GOGOKU_ISOLATION_SECRETS"
KEEP_ENV = "GOGOKU_ISOLATION_KEEP"
XCOM_DIR = "/airflow/xcom"


def _claims() -> dict[str, str]:
    raw = os.environ.get(VOLUMES_ENV) or "{}"
    try:
        claims = json.loads(raw)
    except ValueError:
        raise AirflowFailException(f"{VOLUMES_ENV}={raw!r}: expected JSON {{\"claim\": \"/host/folder\"}}") from None
    if not isinstance(claims, dict):
        raise AirflowFailException(f"{VOLUMES_ENV}: expected a JSON object of claim name -> host folder")
    return {str(k): str(v) for k, v in claims.items()}


def _secret_file(name: str, key: str) -> Path:
    return Path(os.environ.get(SECRETS_ENV) or "/nonexistent") / name / key


class Sandbox:
    """The folders one isolated pod run sees, and the mount path -> folder translation."""

    def __init__(self, pod: k8s.V1Pod, container: k8s.V1Container) -> None:
        self.root = Path(tempfile.mkdtemp(prefix=f"gogoku-pod-{pod.metadata.name[:40]}-"))
        for sub in ("work", "home", "tmp", "volumes"):
            (self.root / sub).mkdir()
        volumes = {v.name: v for v in pod.spec.volumes or []}
        self.mounts: list[tuple[str, Path]] = []  # (mount path, host folder), longest path first
        for mount in container.volume_mounts or []:
            host = self._volume_folder(volumes.get(mount.name), mount.name)
            if mount.sub_path:
                host = host / mount.sub_path
                host.mkdir(parents=True, exist_ok=True)
            self.mounts.append((mount.mount_path.rstrip("/"), host))
        self.mounts.sort(key=lambda m: -len(m[0]))

    def _volume_folder(self, volume: k8s.V1Volume | None, name: str) -> Path:
        if volume is None:
            raise AirflowFailException(f"isolated runner: the pod mounts volume {name!r}, which it does not define")
        if volume.persistent_volume_claim is not None:
            claim = volume.persistent_volume_claim.claim_name
            host = _claims().get(claim)
            if not host:
                raise AirflowFailException(f"isolated runner: no host folder for the claim {claim!r} in {VOLUMES_ENV}")
            Path(host).mkdir(parents=True, exist_ok=True)
            return Path(host)
        if volume.secret is not None:
            folder = _secret_file(volume.secret.secret_name, "")
            if not folder.is_dir():
                raise AirflowFailException(f"isolated runner: Secret {volume.secret.secret_name!r} is not in "
                                           f"{SECRETS_ENV} ({folder})")
            return folder
        if volume.empty_dir is not None:
            folder = self.root / "volumes" / name
            folder.mkdir()
            return folder
        raise AirflowFailException(f"isolated runner: volume {name!r} is of a kind it cannot stand in for")

    def to_host(self, text: str) -> str:
        for path, host in self.mounts:
            if text == path or text.startswith(path + "/"):
                return str(host) + text[len(path):]
        return text

    def to_pod(self, value: Any) -> Any:
        """A JSON result with host folders turned back into the pod's mount paths."""
        if isinstance(value, str):
            for path, host in self.mounts:
                prefix = str(host)
                if value == prefix or value.startswith(prefix + "/"):
                    return path + value[len(prefix):]
            return value
        if isinstance(value, list):
            return [self.to_pod(v) for v in value]
        if isinstance(value, dict):
            return {k: self.to_pod(v) for k, v in value.items()}
        return value

    def environment(self, container: k8s.V1Container) -> dict[str, str]:
        env = {
            # What the worker image provides: the `gogoku` of this environment, a UTF-8 locale.
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), "/usr/local/bin", "/usr/bin", "/bin"]),
            "LANG": "C.UTF-8",
            "HOME": str(self.root / "home"),
            "TMPDIR": str(self.root / "tmp"),
        }
        for var in container.env or []:
            if var.value_from is not None:
                ref = var.value_from.secret_key_ref
                if ref is None:
                    raise AirflowFailException(f"isolated runner: env {var.name} comes from a source it cannot read")
                path = _secret_file(ref.name, ref.key)
                if path.is_file():
                    env[var.name] = path.read_text().strip()
                elif not ref.optional:
                    raise AirflowFailException(f"isolated runner: Secret {ref.name}/{ref.key} for {var.name} is missing")
                continue
            env[var.name] = self.to_host(var.value or "")
        return env

    def cleanup(self) -> None:
        if os.environ.get(KEEP_ENV, "").strip() not in ("1", "true", "yes"):
            shutil.rmtree(self.root, ignore_errors=True)


class GogokuIsolatedPodOperator(GogokuPodOperator):
    """The `kubernetes` runner's pod, run locally (see the module docstring)."""

    _process: CliProcess | None = None

    def execute(self, context: Any, **kwargs: Any) -> Any:
        self._finalize()
        pod = self.build_pod_request_obj(context, dry_run=True)
        self.pod_request_obj = pod
        container = next(c for c in pod.spec.containers if c.name == self.base_container_name)
        sandbox = Sandbox(pod, container)
        try:
            command = [sandbox.to_host(a) for a in [*(container.command or []), *(container.args or [])]]
            env = sandbox.environment(container)
            self.log.info("isolated pod %s: %s (env: %s)", pod.metadata.name, " ".join(container.args or []),
                          ", ".join(sorted(env)))
            self._process = CliProcess()
            returncode, tail = self._process.run(command, env, self.log, cwd=str(sandbox.root / "work"))
            if returncode != 0:
                raise failure(container.args or ["?"], returncode, tail)
            # As the xcom sidecar: the result is the file, not the log.
            result_file = Path(sandbox.to_host(f"{XCOM_DIR}/return.json"))
            result = json.loads(result_file.read_text()) if result_file.is_file() else None
            if not isinstance(result, dict):
                raise AirflowException(f"isolated pod {pod.metadata.name}: no JSON result in {XCOM_DIR}/return.json")
            return sandbox.to_pod(result)
        finally:
            sandbox.cleanup()

    def on_kill(self) -> None:
        if self._process is not None:
            self._process.stop()
