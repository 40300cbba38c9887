"""deploy/helm/values.yaml (the official Airflow chart) against scripts/deployment.py and
airflow_settings.yaml: the same Airflow settings, Variables, connection and pool, the images of
docker/, every secret from a Kubernetes Secret. Offline: it reads the files, no cluster, no chart."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
VALUES = ROOT / "deploy" / "helm" / "values.yaml"
# Settings of `make up` that describe the machine, not the deployment: the chart sets its own (paths in
# the image, service ports, the database URL from its Secret) or they are checked one by one below.
MACHINE = {
    "AIRFLOW_HOME", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CORE__EXECUTOR", "AIRFLOW__CORE__DAGS_FOLDER",
    "AIRFLOW__CORE__PLUGINS_FOLDER", "AIRFLOW__CORE__EXECUTION_API_SERVER_URL", "AIRFLOW__API__HOST",
    "AIRFLOW__API__PORT", "AIRFLOW__API__BASE_URL", "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT",
    "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT", "AIRFLOW__LOGGING__BASE_LOG_FOLDER",
    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE", "GOGOKU_DATA_ROOT",
}


@pytest.fixture(scope="module")
def values() -> dict[str, Any]:
    return yaml.safe_load(VALUES.read_text())


@pytest.fixture(scope="module")
def deployment_env() -> dict[str, str]:
    """What `scripts/deployment.py up` writes to airflow.env, with its defaults."""
    spec = importlib.util.spec_from_file_location("gogoku_deployment", ROOT / "scripts" / "deployment.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with pytest.MonkeyPatch.context() as mp:
        for name in ("GOGOKU_PARALLELISM", "GOGOKU_PAUSED_AT_CREATION", "GOGOKU_DAG_REFRESH_S", "GOGOKU_PG_DATABASE"):
            mp.delenv(name, raising=False)
        return module.airflow_env(Path("/deploy"), 8080, 8793, 8794, "/data")


@pytest.fixture(scope="module")
def settings() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "airflow_settings.yaml").read_text())["airflow"]


def env_of(values: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: str(item["value"]) for item in values.get("env") or []}


def secret_env(values: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {item["envName"]: (item["secretName"], item["secretKey"]) for item in values.get("secret") or []}


def mounted_from_secret(values: dict[str, Any], path: str, volumes: str = "volumes", mounts: str = "volumeMounts",
                        section: dict[str, Any] | None = None) -> str:
    """The Secret whose volume is mounted at a folder that holds `path`."""
    where = section if section is not None else values
    secrets = {v["name"]: v["secret"]["secretName"] for v in where.get(volumes) or [] if "secret" in v}
    for mount in where.get(mounts) or []:
        if path.startswith(mount["mountPath"].rstrip("/") + "/") and mount["name"] in secrets:
            assert mount.get("readOnly") is True, mount
            return secrets[mount["name"]]
    raise AssertionError(f"{path}: no Secret volume mounted there ({where.get(mounts)})")


def test_the_airflow_settings_are_those_of_make_up(values: dict[str, Any], deployment_env: dict[str, str]) -> None:
    assert values["executor"] == deployment_env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert deployment_env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql")
    assert values["postgresql"]["enabled"] is False and values["data"]["metadataSecretName"]
    assert "metadataConnection" not in values["data"]  # the URL (with its password) only in the Secret
    config, env = values["config"], env_of(values)
    for name, value in deployment_env.items():
        if name in MACHINE:
            continue
        if name.startswith("AIRFLOW__"):
            section, key = name[len("AIRFLOW__"):].lower().split("__", 1)
            assert str(config.get(section, {}).get(key)) == value, (name, value)
        else:
            assert env.get(name) == value, (name, value)
    # Nothing in the chart's config that `make up` does not have, bar the cluster's own (secrets backend,
    # the auth manager named: the chart's default is FAB's).
    extra = {f"AIRFLOW__{s.upper()}__{k.upper()}" for s, keys in config.items() for k in keys} - set(deployment_env)
    assert extra == {"AIRFLOW__CORE__AUTH_MANAGER", "AIRFLOW__SECRETS__BACKEND", "AIRFLOW__SECRETS__BACKEND_KWARGS"}
    assert config["core"]["auth_manager"].endswith("SimpleAuthManager")


def test_shared_keys_and_the_admin_password_come_from_kubernetes_secrets(values: dict[str, Any]) -> None:
    for inline, from_secret in (("fernetKey", "fernetKeySecretName"), ("apiSecretKey", "apiSecretKeySecretName"),
                                ("jwtSecret", "jwtSecretName")):
        assert values.get(from_secret) and not values.get(inline), from_secret
    assert values["createUserJob"]["enabled"] is False
    passwords = values["config"]["core"]["simple_auth_manager_passwords_file"]
    assert mounted_from_secret(values, passwords, "extraVolumes", "extraVolumeMounts", values["apiServer"])


def test_the_connection_comes_from_the_secrets_backend(values: dict[str, Any], settings: dict[str, Any]) -> None:
    import json

    secrets = values["config"]["secrets"]
    assert secrets["backend"] == "airflow.secrets.local_filesystem.LocalFilesystemBackend"
    kwargs = json.loads(secrets["backend_kwargs"])
    assert mounted_from_secret(values, kwargs["connections_file_path"])
    assert [c["conn_id"] for c in settings["connections"]] == ["jquants_default"]
    env = env_of(values)
    assert "AIRFLOW_CONN_JQUANTS_DEFAULT" not in {*env, *secret_env(values)}  # the backend's, not an env's
    # Nothing secret in the clear: credentials and URLs with passwords come from Secrets.
    assert not [n for n in env if re.search("PASSWORD|SECRET|API_KEY|RATE_LIMITER|HPO_STORAGE|FERNET", n)], env


def test_the_variables_and_the_pool_of_airflow_settings(values: dict[str, Any], settings: dict[str, Any]) -> None:
    from gogoku_airflow.plans import PLAN_TIERS

    env, secret = env_of(values), secret_env(values)
    for variable in settings["variables"]:
        name = "AIRFLOW_VAR_" + variable["variable_name"].upper()
        assert (name in env) != (name in secret), name  # set once, in the clear or from a Secret
    assert secret["AIRFLOW_VAR_GOGOKU_RATE_LIMITER"] == ("jquants", "rate-limiter")
    assert env["AIRFLOW_VAR_GOGOKU_RUNNER"] in ("kubernetes", "gke")  # the cluster's tasks run in pods
    assert env["AIRFLOW_VAR_GOGOKU_PLAN_TIER"] in PLAN_TIERS
    assert env["AIRFLOW_VAR_GOGOKU_DATA_ROOT"] == env["GOGOKU_DATA_ROOT"]
    assert secret["AIRFLOW_VAR_GOGOKU_HPO_STORAGE"][0] == "jquants"
    # The pods' Secret is the one configs/pod/default.yaml names.
    pod = yaml.safe_load((ROOT / "configs" / "pod" / "default.yaml").read_text())
    assert {s for s, _ in secret.values()} == {pod["credentials_secret"]}
    job = " ".join(values["migrateDatabaseJob"]["args"])
    assert "airflow db migrate" in job
    for pool in settings["pools"]:
        assert re.search(rf"airflow pools set {pool['pool_name']} {pool['pool_slot']} ", job), (pool, job)


def test_the_images_are_those_of_docker(values: dict[str, Any]) -> None:
    dockerfile = (ROOT / "docker" / "airflow.Dockerfile").read_text()
    base = re.search(r"^FROM apache/airflow:(\S+)-python", dockerfile, re.M)
    assert base and values["airflowVersion"] == base.group(1) == importlib.metadata.version("apache-airflow")
    name, tag = re.search(r"-t (\S+):(\S+) \.", dockerfile).groups()  # type: ignore[union-attr]
    assert (values["images"]["airflow"]["repository"], values["images"]["airflow"]["tag"]) == (name, tag)
    assert (values["defaultAirflowRepository"], values["defaultAirflowTag"]) == (name, tag)
    worker = re.search(r"-t (\S+) \.", (ROOT / "docker" / "worker.Dockerfile").read_text()).group(1)  # type: ignore[union-attr]
    pod = yaml.safe_load((ROOT / "configs" / "pod" / "default.yaml").read_text())
    assert env_of(values)["AIRFLOW_VAR_GOGOKU_IMAGE"] == worker == pod["image"]
