"""The chain of test_isolated_chain.py with the data root on a shared volume: a local folder standing
in for a ReadWriteMany PersistentVolumeClaim that every pod mounts at /mnt/gogoku (a file of its own, so
that the two long chains run on different test workers). It starts with the refresh DAG (the bucket
chain starts at the dataset DAG: the slower chain does less)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_isolated_chain import assert_chain, expected_objects, isolated, run_chain, write_config  # noqa: F401, F811

pytestmark = [pytest.mark.airflow, pytest.mark.integration]


@pytest.mark.usefixtures("airflow_db")
def test_chain_on_a_shared_volume(isolated: dict[str, Any],  # noqa: F811 (the fixture)
                                   monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    volume = tmp_path / "volume"
    isolated["config"]["storage"] = {**isolated["config"]["storage"], "kind": "pvc",
                                     "pvc": {"claim_name": "gogoku-data", "mount_path": "/mnt/gogoku",
                                             "sub_path": "prod", "read_only": False}}
    write_config(isolated, monkeypatch)
    monkeypatch.setenv("GOGOKU_ISOLATION_VOLUMES", json.dumps({"gogoku-data": str(volume)}))
    monkeypatch.setenv("AIRFLOW_VAR_GOGOKU_DATA_ROOT", str(tmp_path / "not-used-by-pods"))
    chain = run_chain("standard")  # the refresh DAG, then the dataset DAG's fetch pods fill the cache
    assert_chain(chain, "/mnt/gogoku")  # URIs as every pod that mounts the claim sees them
    files = {p.relative_to(volume / "prod").as_posix() for p in (volume / "prod").rglob("*") if p.is_file()}
    model_dir = chain["training"]["train"]["model_dir"][len("/mnt/gogoku") + 1:]
    assert expected_objects(model_dir, "standard") <= files, sorted(expected_objects(model_dir, "standard") - files)
    assert any(f.startswith("raw/daily_quotes/") for f in files)
    assert not (tmp_path / "not-used-by-pods").exists()
    print(json.dumps({"isolated_volume_s": chain["timings"], "files": len(files)}))
