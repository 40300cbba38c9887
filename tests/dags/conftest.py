"""Real Airflow for the DAG tests: an isolated AIRFLOW_HOME with a SQLite DB migrated once per session.

The environment is set when this file is imported, before anything imports Airflow (its settings
are read once per process). Variables and connections come from AIRFLOW_VAR_* / AIRFLOW_CONN_*.
Two DAG bundles: the project's dags/ and tests/dags/probes/ (a probe DAG for the pod runners).
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DAGS = ROOT / "dags"
PLUGINS = ROOT / "plugins"
PROBES = Path(__file__).resolve().parent / "probes"
AIRFLOW = Path(sys.executable).parent / "airflow"

if "airflow" in sys.modules:
    raise RuntimeError("tests/dags/conftest.py must configure Airflow before anything imports it")

_HOME = Path(tempfile.mkdtemp(prefix="gogoku-airflow-tests-"))
atexit.register(shutil.rmtree, _HOME, True)
DATA_ROOT = _HOME / "data"
_LOCAL_BUNDLE = "airflow.dag_processing.bundles.local.LocalDagBundle"

os.environ.update(
    {
        "AIRFLOW_HOME": str(_HOME / "airflow"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PLUGINS),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_HOME / 'airflow' / 'airflow.db'}",
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(
            [
                {"name": "dags-folder", "classpath": _LOCAL_BUNDLE, "kwargs": {"path": str(DAGS)}},
                {"name": "gogoku-probes", "classpath": _LOCAL_BUNDLE, "kwargs": {"path": str(PROBES)}},
            ]
        ),
        "AIRFLOW_VAR_GOGOKU_RUNNER": "local",
        "AIRFLOW_VAR_GOGOKU_PLAN_TIER": "standard",
        "AIRFLOW_VAR_GOGOKU_DATA_ROOT": str(DATA_ROOT),
        "AIRFLOW_CONN_JQUANTS_DEFAULT": json.dumps({"conn_type": "http", "host": "simulator"}),
        # The CLI's built-in simulator inherits these from the worker: a tiny universe keeps runs fast.
        "GOGOKU_SIM_STOCKS": "20",
        "GOGOKU_SIM_SEED": "7",
        # dag.test() cannot finish a DAG with a deadline (gogoku_airflow/deadlines.py); the scheduler tests set it.
        "GOGOKU_DEADLINE_ALERTS": "0",
    }
)
(_HOME / "airflow").mkdir(parents=True)


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """The metadata DB, migrated once for the whole session (about 5 s)."""
    proc = subprocess.run([str(AIRFLOW), "db", "migrate"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return _HOME / "airflow" / "airflow.db"


@pytest.fixture(scope="session")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))
