"""Each DAG file imported alone in a fresh interpreter: cheap, and free of the heavy modules.

The DAG file's own cost is timed after `airflow.sdk` is imported: Airflow itself takes 1.5-2.5 s
to import on a small machine, which no DAG file can avoid. Of the core package a DAG file may load
only its leaf module of shared facts, `gogoku.contracts` (standard library only).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.airflow

DAGS = Path(__file__).resolve().parents[2] / "dags"
HEAVY = ("polars", "torch", "lightgbm", "gogoku", "pandas", "kubernetes")
CHEAP_CORE = ("gogoku", "gogoku.contracts")
PROBE = """
import json, runpy, sys, time
t0 = time.perf_counter()
import airflow.sdk
t1 = time.perf_counter()
runpy.run_path(sys.argv[1])
t2 = time.perf_counter()
heavy = [m for m in json.loads(sys.argv[2]) if m in sys.modules]
core = sorted(m for m in sys.modules if m == "gogoku" or m.startswith("gogoku."))
print(json.dumps({"airflow_s": t1 - t0, "dag_s": t2 - t1, "heavy": heavy, "core": core}))
"""


@pytest.mark.parametrize("dag_file", sorted(p.name for p in DAGS.glob("*.py")))
def test_dag_file_imports_fast_without_heavy_modules(dag_file: str) -> None:
    env = {**os.environ, "AIRFLOW_VAR_GOGOKU_RUNNER": "local"}
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, str(DAGS / dag_file), json.dumps(HEAVY)],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"{dag_file}: airflow.sdk {result['airflow_s']:.2f} s, DAG file {result['dag_s']:.2f} s")
    assert [m for m in result["heavy"] if m != "gogoku"] == []
    assert set(result["core"]) <= set(CHEAP_CORE), result["core"]
    assert result["dag_s"] < 1.0


def test_plugin_loader_leaves_the_package_alone() -> None:
    """The plugins folder holds only the plugin: Airflow's plugin loader imports none of gogoku_airflow's
    files as top-level modules (`runners`, `params`, ...); the DAG files import the installed package."""
    code = (
        "import json, sys\n"
        "from airflow import plugins_manager\n"
        "plugins_manager.ensure_plugins_loaded()\n"
        "names = ['runners', 'params', 'pods', 'local', 'gke', 'connection']\n"
        "print(json.dumps({'loaded': [n for n in names if n in sys.modules],"
        " 'errors': plugins_manager.get_import_errors()}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {"loaded": [], "errors": {}}
