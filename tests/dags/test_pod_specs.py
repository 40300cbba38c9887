"""The kubernetes and gke runners: the pod spec that the real task runner builds for a gogoku task,
and every pod spec of every task validated against the Kubernetes API schema (offline).

The probe DAG (probes/gogoku_pod_probe.py) runs under `dag.test()`: an upstream task pushes a
dataset URI, the pod task renders its argv with that XCom and builds its V1Pod, which a KPO
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

import kubernetes_validate
import pytest
import yaml

pytestmark = pytest.mark.airflow

ROOT = Path(__file__).resolve().parents[2]
PROBES = Path(__file__).resolve().parent / "probes"
DATASET_URI = "gs://gogoku-test/datasets/ml_dataset_premium_20250106_20250228.parquet"
DAGS = ROOT / "dags"
K8S_VERSION = "1.33.0"  # the schema every pod spec must validate against (GKE's regular channel)
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


def run_probe(runner: str, monkeypatch: pytest.MonkeyPatch, out: Path, plain: bool = False) -> dict[str, dict[str, Any]]:
    """{task_id[.map index]: captured manifest} of the probe's pod tasks; the UI's rendered fields of
    each task show the runner that ran and the pod spec it built. `plain`: the pod config opts in to
    credentials in the spec (`credentials_in_env`), else they come from the default Secret."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.renderedtifields import RenderedTaskInstanceFields as RTIF

    # The DAG is parsed with another runner in the Variable: the one set when the tasks run counts.
    monkeypatch.setenv("AIRFLOW_VAR_GOGOKU_RUNNER", "local")
    dag = DagBag(dag_folder=str(PROBES)).dags["gogoku_pod_probe"]
    monkeypatch.setenv("AIRFLOW_VAR_GOGOKU_RUNNER", runner)
    run = dag.test()
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    assert str(run.state) == "success", states
    expected = {"build_dataset": "success", "validate_dataset": "skipped", "prepare_training": "success",
                "train": "skipped"}
    if runner == "kubernetes":
        expected |= {"fold_commands": "success", "train_fold": "skipped"}
    assert states == expected
    captured = {path.stem: json.loads(path.read_text()) for path in out.glob("*.json")}
    for ti in run.get_task_instances():
        if ti.task_id in ("validate_dataset", "train"):
            rendered = RTIF.get_templated_fields(ti)
            assert rendered["runner"] == runner, rendered
            assert SECRET_KEY not in rendered["pod_spec"]
            if plain:  # the secrets masker shows the connection's API key as *** in the UI
                assert "value: '***'" in rendered["pod_spec"].replace("value: ***", "value: '***'")
            shown = yaml.safe_load(rendered["pod_spec"].replace("value: ***", "value: '***'"))
            assert shown["spec"]["containers"][0]["args"] == captured[ti.task_id]["pod"]["spec"]["containers"][0]["args"]
    return captured


def base_container(pod: dict[str, Any]) -> dict[str, Any]:
    assert pod["metadata"]["namespace"] == "gogoku"
    assert pod["metadata"]["labels"]["app.kubernetes.io/name"] == "gogoku"
    assert pod["spec"]["serviceAccountName"] == "gogoku-worker"
    # do_xcom_push: the sidecar that turns /airflow/xcom/return.json into the task's XCom.
    assert [c["name"] for c in pod["spec"]["containers"]] == ["base", "airflow-xcom-sidecar"]
    base = pod["spec"]["containers"][0]
    mounts = {m["mountPath"]: m["name"] for m in base["volumeMounts"]}
    assert mounts["/airflow/xcom"] == "xcom" and mounts["/var/cache/gogoku"] == "gogoku-cache"
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes["gogoku-cache"]["emptyDir"] == {"sizeLimit": "50Gi"}  # the local read cache
    assert base["image"] == "registry.example/gogoku-worker:1.2.3"
    # The runner, not the core package, names the file the sidecar reads.
    assert base["command"] == ["gogoku", "--result-file", "/airflow/xcom/return.json"]
    kubernetes_validate.validate(pod, K8S_VERSION, strict=True)
    return base


def assert_pods(captured: dict[str, dict[str, Any]], plain: bool = False) -> None:
    gpu = captured["validate_dataset"]["pod"]
    base = base_container(gpu)
    # The XCom path rendered into the argv; the argument that rendered empty was dropped.
    assert base["args"] == ["dataset", "validate", DATASET_URI]
    assert base["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert gpu["spec"]["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-l4"}
    assert gpu["spec"]["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    env = {e["name"]: e.get("value") for e in base["env"] if "value" in e}
    assert env == {
        "JQUANTS_API_URL": "https://api.jquants.com", "JQUANTS_API_VERSION": "v2",
        "JQUANTS_PLAN_TIER": "premium", "GOGOKU_DATA_ROOT": "gs://gogoku-test", "GOGOKU_LOCAL_CACHE": "/var/cache/gogoku",
        **({"JQUANTS_API_KEY": SECRET_KEY} if plain else {}),
    }
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in base["env"] if "valueFrom" in e}
    if plain:
        assert refs == {}
    else:  # by default every secret setting comes from the Secret `jquants`, never a value in the spec
        assert refs["JQUANTS_API_KEY"] == {"name": "jquants", "key": "api-key", "optional": True}
        assert SECRET_KEY not in json.dumps(gpu)

    cpu = captured["train"]["pod"]
    base = base_container(cpu)
    # argv and profile from an upstream task's XComs; the plan tier from the Variable.
    assert base["args"] == ["train", "--dataset", "latest", "--model", "lightgbm", "splits.n_splits=3"]
    assert "nvidia.com/gpu" not in base["resources"]["limits"]
    assert not cpu["spec"].get("nodeSelector") and not cpu["spec"].get("tolerations")
    assert {e["name"]: e.get("value") for e in base["env"]}["JQUANTS_PLAN_TIER"] == "standard"
    assert {c["on_finish_action"] for c in captured.values()} == {"delete_succeeded_pod"}


@pytest.mark.usefixtures("airflow_db")
def test_kubernetes_pod_spec(monkeypatch: pytest.MonkeyPatch, pod_env: Path, tmp_path: Path) -> None:
    # The explicit opt-in to plain-text credentials (the default is the Secret: test_gke_pod_spec).
    config = yaml.safe_load((ROOT / "configs" / "pod" / "default.yaml").read_text())
    (tmp_path / "plain.yaml").write_text(yaml.safe_dump({**config, "credentials_secret": None, "credentials_in_env": True}))
    monkeypatch.setenv("AIRFLOW_VAR_GOGOKU_POD_CONFIG", str(tmp_path / "plain.yaml"))
    captured = run_probe("kubernetes", monkeypatch, pod_env, plain=True)
    assert_pods(captured, plain=True)
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
    from gogoku_airflow.podspec import pod_env as env_for_pod

    env = env_for_pod({"JQUANTS_API_KEY": SECRET_KEY, "JQUANTS_PLAN_TIER": "standard"}, "jquants-credentials")
    by_name = {e.name: e for e in env}
    assert by_name["JQUANTS_PLAN_TIER"].value == "standard"
    assert by_name["JQUANTS_API_KEY"].value is None
    ref = by_name["JQUANTS_API_KEY"].value_from.secret_key_ref
    assert (ref.name, ref.key) == ("jquants-credentials", "api-key")
    assert SECRET_KEY not in repr(env)


def test_plain_text_credentials_only_by_opt_in(caplog: pytest.LogCaptureFixture) -> None:
    """No Secret named: a pod that would carry a credential fails, saying what to set, unless the pod
    config opts in (then every pod logs a warning); the simulator's pods carry none and need neither."""
    from airflow.sdk.exceptions import AirflowFailException

    from gogoku_airflow.podspec import credentials_source

    mapped = {"JQUANTS_API_KEY": SECRET_KEY, "JQUANTS_PLAN_TIER": "standard"}
    assert credentials_source({"credentials_secret": "jquants"}, mapped) == "jquants"
    with pytest.raises(AirflowFailException, match="credentials_secret is null, so JQUANTS_API_KEY would be written"
                                                   ".*kubectl create secret generic jquants.*credentials_in_env: true"):
        credentials_source({"credentials_secret": None}, mapped)
    with caplog.at_level("WARNING"):
        assert credentials_source({"credentials_secret": None, "credentials_in_env": True}, mapped) is None
    assert "plain text" in caplog.text and SECRET_KEY not in caplog.text
    assert credentials_source({"credentials_secret": None}, {"JQUANTS_API_URL": "http://127.0.0.1:9"}) is None


def test_pod_config_from_the_variable_is_checked(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    from gogoku_airflow.podspec import load_pod_config

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


def pod_config(tmp_path: Path, storage: dict[str, Any], secret: str | None) -> Path:
    config = yaml.safe_load((ROOT / "configs" / "pod" / "default.yaml").read_text())
    config["storage"] = {**config["storage"], **storage}
    config["credentials_secret"] = secret
    path = tmp_path / f"pod-{storage['kind']}-{secret}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


STORAGE_CHOICES = {
    "object_store": {"kind": "object_store", "gcp_credentials_secret": {"name": "gogoku-gcp", "key": "key.json"}},
    "pvc": {"kind": "pvc", "pvc": {"claim_name": "gogoku-data", "mount_path": "/mnt/gogoku", "sub_path": "prod",
                                   "read_only": False}},
}


@pytest.mark.parametrize("storage", sorted(STORAGE_CHOICES))
@pytest.mark.parametrize("runner", ["kubernetes", "gke"])
def test_every_pod_spec_of_every_task_validates(
    runner: str, storage: str, monkeypatch: pytest.MonkeyPatch, pod_env: Path, tmp_path: Path
) -> None:
    """Every gogoku task of every DAG, on both profiles, as the runner builds its pod, against the
    Kubernetes API schema: what a cluster would accept (strict: no unknown fields)."""
    from airflow.dag_processing.dagbag import DagBag
    from kubernetes.client import ApiClient

    from gogoku_airflow.runners import GogokuOperator

    monkeypatch.setenv("AIRFLOW_VAR_GOGOKU_POD_CONFIG", str(pod_config(tmp_path, STORAGE_CHOICES[storage], "jq-creds")))
    monkeypatch.setenv("AIRFLOW_VAR_GOGOKU_RATE_LIMITER", "redis://:redis-pw-9@redis:6379/0")
    for name, value in {"project": "gogoku-test", "location": "asia-northeast1", "cluster": "gogoku-gpu"}.items():
        monkeypatch.setenv(f"AIRFLOW_VAR_GOGOKU_GKE_{name.upper()}", value)
    bag = DagBag(dag_folder=str(DAGS))
    tasks = [t for dag in bag.dags.values() for t in dag.tasks if getattr(t, "operator_class", type(t)) is GogokuOperator]
    # refresh_* per source; fetch_* per source, futures_features, build_dataset and validate_dataset in both
    # dataset DAGs; plan_training, train_fold, train, register_model, promote_model; plan_search, hpo_worker,
    # best_config; daily_features, predict, validate_predictions, monitor.
    assert len(tasks) == 13 + 2 * (13 + 3) + 5 + 3 + 4
    checked = 0
    for task in tasks:
        argv = getattr(task, "argv", None)
        if not isinstance(argv, list):  # an XCom (train, train_fold): the argv a fold task gets
            argv = ["train", "--model", "atft_gat_fan", "--run-name", "r", "--fold", "0"]
        for profile in ("cpu", "gpu"):
            op = GogokuOperator(task_id=task.task_id, argv=argv, profile=profile, plan_tier="standard",
                                pod_attributes={"cluster_info": ("https://127.0.0.1:9", "cHJvYmU=")})
            pod_op = op._pod_operator(runner, [str(a) for a in argv])
            pod_op._finalize()
            pod = ApiClient().sanitize_for_serialization(pod_op.build_pod_request_obj(None, dry_run=True))
            kubernetes_validate.validate(pod, K8S_VERSION, strict=True)
            base = pod["spec"]["containers"][0]
            env = {e["name"]: e for e in base["env"]}
            # The API key comes from the Secret, never as a value in the spec.
            assert "value" not in env["JQUANTS_API_KEY"] and SECRET_KEY not in json.dumps(pod)
            # So does the shared rate limiter's URL (it may carry the Redis password).
            assert env["JQUANTS_RATE_LIMITER"]["valueFrom"]["secretKeyRef"] == {
                "name": "jq-creds", "key": "rate-limiter", "optional": True}
            assert "redis-pw-9" not in json.dumps(pod)
            mounts = {m["mountPath"]: m for m in base["volumeMounts"]}
            if storage == "pvc":
                assert env["GOGOKU_DATA_ROOT"]["value"] == "/mnt/gogoku"
                assert mounts["/mnt/gogoku"]["subPath"] == "prod"
                claim = next(v for v in pod["spec"]["volumes"] if v["name"] == "gogoku-data")
                assert claim["persistentVolumeClaim"] == {"claimName": "gogoku-data", "readOnly": False}
            else:
                assert env["GOGOKU_DATA_ROOT"]["value"] == "gs://gogoku-test"
                assert env["GOOGLE_APPLICATION_CREDENTIALS"]["value"] == "/var/secrets/google/key.json"
                assert mounts["/var/secrets/google"]["readOnly"] is True
            assert ("nvidia.com/gpu" in base["resources"]["limits"]) == (profile == "gpu")
            checked += 1
    assert checked == 2 * len(tasks)


def test_a_schema_violation_is_caught() -> None:
    """The validator is not a rubber stamp: a pod with a misspelled field or a bad type fails."""
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": {"containers": [{"name": "base", "image": "i", "volumeMounts": [{"name": "v", "mountpath": "/x"}]}]}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(pod, K8S_VERSION, strict=True)
    pod["spec"]["containers"][0]["volumeMounts"] = [{"name": "v", "mountPath": "/x"}]
    pod["spec"]["restartPolicy"] = 3
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(pod, K8S_VERSION, strict=True)


@pytest.mark.parametrize(
    ("change", "message"),
    [({"storage": {"kind": "nfs"}}, "storage.kind 'nfs' is not one of object_store, pvc"),
     ({"storage": {"kind": "pvc", "pvc": {"mount_path": "/mnt/x"}}}, "storage.kind pvc needs storage.pvc.claim_name"),
     ({"storage": {"kind": "pvc", "pvc": {"claim_name": "c", "mount_path": "rel"}}}, "must be an absolute path"),
     ({"storage": {"kind": "object_store", "gcp_credentials_secret": "key.json"}}, "gcp_credentials_secret must be"),
     ({"credentials_in_env": "yes"}, "credentials_in_env must be true or false"),
     ({"credentials_secret": ""}, "credentials_secret must be the name of a Kubernetes Secret or null"),
     ({"env": ["A=1"]}, "env must be a mapping")],
)
def test_bad_storage_settings_fail_naming_the_key(change: dict, message: str, monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    from gogoku_airflow.podspec import load_pod_config

    config = {**yaml.safe_load((ROOT / "configs" / "pod" / "default.yaml").read_text()), **change}
    path = tmp_path / "pod.yaml"
    path.write_text(yaml.safe_dump(config))
    monkeypatch.setenv("AIRFLOW_VAR_GOGOKU_POD_CONFIG", str(path))
    with pytest.raises(AirflowFailException, match=message):
        load_pod_config()
