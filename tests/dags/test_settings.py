"""scripts/apply_airflow_settings.py against the session's metadata DB: applied twice, same result."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytestmark = pytest.mark.airflow

ROOT = Path(__file__).resolve().parents[2]


def load_script():
    spec = importlib.util.spec_from_file_location("apply_airflow_settings", ROOT / "scripts" / "apply_airflow_settings.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def stored() -> dict:
    """What the metadata DB holds (AIRFLOW_VAR_* / AIRFLOW_CONN_* of the tests would shadow Variable.get)."""
    from airflow.models.connection import Connection
    from airflow.models.pool import Pool
    from airflow.models.variable import Variable
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        conn = session.scalar(select(Connection).where(Connection.conn_id == "jquants_default"))
        return {
            "connection": (conn.conn_type, conn.host, conn.password, conn.extra_dejson),
            "connections": len(session.scalars(select(Connection)).all()),
            "pool": session.scalar(select(Pool.slots).where(Pool.pool == "jquants_api")),
            "variables": {v.key: v.val for v in session.scalars(select(Variable)).all()},
        }


@pytest.mark.usefixtures("airflow_db")
def test_project_settings_apply_idempotently(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    script = load_script()
    monkeypatch.delenv("GOGOKU_DATA_ROOT", raising=False)
    assert script.main([]) == 0
    first = stored()
    assert first["connection"] == ("http", "simulator", None, {"api_version": "v2"})
    assert first["pool"] == 4
    assert first["variables"] == {"gogoku_runner": "local", "gogoku_plan_tier": "standard", "gogoku_data_root": "data",
                                  "gogoku_rate_limiter": ""}
    assert script.main(["--set", "gogoku_data_root=/srv/gogoku"]) == 0
    second = stored()
    assert second["connections"] == first["connections"]
    assert second["variables"]["gogoku_data_root"] == "/srv/gogoku"
    assert "simulator" in capsys.readouterr().out


@pytest.mark.usefixtures("airflow_db")
def test_placeholders_secrets_and_errors(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    script = load_script()
    settings = tmp_path / "settings.yaml"
    settings.write_text(
        "airflow:\n"
        "  connections:\n"
        "    - {conn_id: jquants_default, conn_type: http, conn_host: api.jquants.com, conn_schema: https,\n"
        "       conn_password: '${JQ_KEY}', conn_extra: {api_version: v2}}\n"
        "  variables:\n"
        "    - {variable_name: gogoku_data_root, variable_value: '${GOGOKU_TEST_ROOT:-/data}/gogoku'}\n"
    )
    monkeypatch.setenv("JQ_KEY", "secret-key-1")
    assert script.main([str(settings)]) == 0
    assert stored()["connection"] == ("http", "api.jquants.com", "secret-key-1", {"api_version": "v2"})
    assert stored()["variables"]["gogoku_data_root"] == "/data/gogoku"
    assert "secret-key-1" not in capsys.readouterr().out
    monkeypatch.delenv("JQ_KEY")
    assert script.main([str(settings)]) == 2
    assert "environment variable JQ_KEY is not set" in capsys.readouterr().err
    # Leave the project's settings behind for the other tests of the session.
    assert script.main([]) == 0
    assert stored()["connection"] == ("http", "simulator", None, {"api_version": "v2"})
