"""The kubernetes and gke runners: the pod spec that the real task runner builds for a factory task.

The probe DAG (probes/gogoku_pod_probe.py) runs under `dag.test()`: an upstream task pushes a
dataset path, the pod task renders its argv with that XCom and builds its V1Pod, which a KPO
callback records before any cluster would be contacted. Kubernetes credentials are a kubeconfig
file; GKE credentials a service-account key whose token endpoint is a local HTTP server.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.airflow

ROOT = Path(__file__).resolve().parents[2]
PROBES = Path(__file__).resolve().parent / "probes"
DATASET_PATH = "gs://gogoku-test/datasets/ml_dataset_20250106_20250228.parquet"
SECRET_KEY = "k-secret-123"


@pytest.fixture()
def pod_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A real-API connection and a kubeconfig for a cluster that does not exist (nothing dials it)."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "probe",
        "clusters": [{"name": "probe", "cluster": {"server": "https://127.0.0.1:9"}}],
        "users": [{"name": "probe", "user": {"token": "probe-token"}}],
        "contexts": [{"name": "probe", "context": {"cluster": "probe", "user": "probe"}}],
    }))
    out = tmp_path / "manifests"
    out.mkdir()
    monkeypatch.setenv("GOGOKU_PROBE_OUT", str(out))
    monkeypatch.setenv("AIRFLOW_CONN_KUBERNETES_DEFAULT", json.dumps(
        {"conn_type": "kubernetes", "extra": {"kube_config_path": str(kubeconfig)}}))
    monkeypatch.setenv("AIRFLOW_CONN_JQUANTS_DEFAULT", json.dumps(
        {"conn_type": "http", "host": "api.jquants.com", "schema": "https", "password": SECRET_KEY}))
    monkeypatch.setenv("AIRFLOW_VAR_GOGOKU_DATA_ROOT", "gs://gogoku-test")
    monkeypatch.setenv("AIRFLOW_VAR_GOGOKU_IMAGE", "registry.example/gogoku-worker:1.2.3")
    return out


@pytest.fixture()
def token_server() -> Iterator[str]:
    """An OAuth2 token endpoint on 127.0.0.1 that grants any signed service-account assertion."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            body = json.dumps({"access_token": "probe-access-token", "token_type": "Bearer", "expires_in": 3600})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/token"
    finally:
        server.shutdown()
        server.server_close()


def service_account_key(token_uri: str) -> dict[str, str]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return {
        "type": "service_account", "project_id": "gogoku-test", "private_key_id": "probe",
        "private_key": pem.decode(), "client_email": "airflow@gogoku-test.iam.gserviceaccount.com",
        "client_id": "1", "token_uri": token_uri,
    }


def run_probe(runner: str, monkeypatch: pytest.MonkeyPatch, out: Path) -> dict[str, dict[str, Any]]:
    """{task_id[.map index]: captured manifest} of the probe's pod tasks."""
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("AIRFLOW_VAR_GOGOKU_RUNNER", runner)
    dag = DagBag(dag_folder=str(PROBES)).dags["gogoku_pod_probe"]
    run = dag.test()
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    assert str(run.state) == "success", states
    expected = {"build_dataset": "success", "validate_dataset": "skipped", "prepare_training": "success",
                "train": "skipped"}
    if runner == "kubernetes":
        expected |= {"fold_commands": "success", "train_fold": "skipped"}
    assert states == expected
    return {path.stem: json.loads(path.read_text()) for path in out.glob("*.json")}


def base_container(pod: dict[str, Any]) -> dict[str, Any]:
    assert pod["metadata"]["namespace"] == "gogoku"
    assert pod["metadata"]["labels"]["app.kubernetes.io/name"] == "gogoku"
    assert pod["spec"]["serviceAccountName"] == "gogoku-worker"
    # do_xcom_push: the sidecar that turns /airflow/xcom/return.json into the task's XCom.
    assert [c["name"] for c in pod["spec"]["containers"]] == ["base", "airflow-xcom-sidecar"]
    base = pod["spec"]["containers"][0]
    assert "/airflow/xcom" in {m["mountPath"] for m in base["volumeMounts"]}
    assert base["image"] == "registry.example/gogoku-worker:1.2.3"
    assert base["command"] == ["gogoku"]
    return base


def assert_pods(captured: dict[str, dict[str, Any]]) -> None:
    gpu = captured["validate_dataset"]["pod"]
    base = base_container(gpu)
    # The XCom path rendered into the argv; the argument that rendered empty was dropped.
    assert base["args"] == ["dataset", "validate", DATASET_PATH]
    assert base["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert gpu["spec"]["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-l4"}
    assert gpu["spec"]["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    env = {e["name"]: e.get("value") for e in base["env"]}
    assert env == {
        "JQUANTS_API_URL": "https://api.jquants.com", "JQUANTS_API_VERSION": "v2", "JQUANTS_API_KEY": SECRET_KEY,
        "JQUANTS_PLAN_TIER": "premium", "GOGOKU_DATA_ROOT": "gs://gogoku-test",
    }

    cpu = captured["train"]["pod"]
    base = base_container(cpu)
    # argv and profile from an upstream task's XComs; the plan tier from the Variable.
    assert base["args"] == ["train", "--dataset", "latest", "--model", "lightgbm", "splits.n_splits=3"]
    assert "nvidia.com/gpu" not in base["resources"]["limits"]
    assert not cpu["spec"].get("nodeSelector") and not cpu["spec"].get("tolerations")
    assert {e["name"]: e.get("value") for e in base["env"]}["JQUANTS_PLAN_TIER"] == "standard"
    assert {c["on_finish_action"] for c in captured.values()} == {"delete_succeeded_pod"}


@pytest.mark.usefixtures("airflow_db")
def test_kubernetes_pod_spec(monkeypatch: pytest.MonkeyPatch, pod_env: Path) -> None:
    captured = run_probe("kubernetes", monkeypatch, pod_env)
    assert_pods(captured)
    # The mapped fold task: one pod per argv of the upstream list, with the XCom profile.
    assert sorted(captured) == ["train", "train_fold.0", "train_fold.1", "validate_dataset"]
    for k in (0, 1):
        base = base_container(captured[f"train_fold.{k}"]["pod"])
        assert base["args"] == ["train", "--model", "atft_gat_fan", "--run-name", "r1", "--fold", str(k)]
        assert "nvidia.com/gpu" not in base["resources"]["limits"]


@pytest.mark.usefixtures("airflow_db")
def test_gke_pod_spec(monkeypatch: pytest.MonkeyPatch, pod_env: Path, token_server: str) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", json.dumps(
        {"conn_type": "google_cloud_platform", "extra": {"keyfile_dict": json.dumps(service_account_key(token_server))}}))
    monkeypatch.setenv("GOGOKU_PROBE_GKE_CLUSTER", json.dumps(
        ["https://127.0.0.1:9", base64.b64encode(b"probe CA").decode()]))
    for name, value in {"project": "gogoku-test", "location": "asia-northeast1", "cluster": "gogoku-gpu"}.items():
        monkeypatch.setenv(f"AIRFLOW_VAR_GOGOKU_GKE_{name.upper()}", value)
    captured = run_probe("gke", monkeypatch, pod_env)
    assert_pods(captured)
    for task_id in ("validate_dataset", "train"):
        assert captured[task_id]["operator"] == {
            "project_id": "gogoku-test", "location": "asia-northeast1", "cluster_name": "gogoku-gpu",
            "gcp_conn_id": "google_cloud_default",
        }


def test_credentials_secret_keeps_the_key_out_of_the_pod_spec() -> None:
    from gogoku_airflow.pods import pod_env as env_for_pod

    env = env_for_pod({"JQUANTS_API_KEY": SECRET_KEY, "JQUANTS_PLAN_TIER": "standard"}, "jquants-credentials")
    by_name = {e.name: e for e in env}
    assert by_name["JQUANTS_PLAN_TIER"].value == "standard"
    assert by_name["JQUANTS_API_KEY"].value is None
    ref = by_name["JQUANTS_API_KEY"].value_from.secret_key_ref
    assert (ref.name, ref.key) == ("jquants-credentials", "api-key")
    assert SECRET_KEY not in repr(env)


def test_pod_config_from_the_variable_is_checked(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    from gogoku_airflow.pods import load_pod_config

    config = yaml.safe_load((ROOT / "configs" / "pod" / "default.yaml").read_text())
    config["namespace"] = "research"
    path = tmp_path / "pod.yaml"
    path.write_text(yaml.safe_dump(config))
    monkeypatch.setenv("AIRFLOW_VAR_GOGOKU_POD_CONFIG", str(path))
    assert load_pod_config()["namespace"] == "research"
    del config["profiles"]["gpu"]
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(AirflowFailException, match=r"pod\.yaml lacks profiles\.gpu"):
        load_pod_config()
    monkeypatch.setenv("AIRFLOW_VAR_GOGOKU_POD_CONFIG", str(tmp_path / "missing.yaml"))
    with pytest.raises(AirflowFailException, match="missing.yaml .Variable gogoku_pod_config. does not exist"):
        load_pod_config()
