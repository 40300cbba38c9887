"""The production path, proven: every gogoku task runs as its pod would (the `isolated` runner: a
fresh process in an empty folder with its own HOME and TMPDIR and only the pod spec's environment),
so the only thing tasks share is the data root: a bucket on a GCS emulator, or a local folder
standing in for a ReadWriteMany volume (test_isolated_volume.py: a file of its own, so that the two
long chains run on different test workers). The chain (refresh ->) dataset -> training must leave every
artifact in the shared root, and each downstream task must read what its upstream task wrote.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml

from gogoku.storage import Store

pytestmark = [pytest.mark.airflow, pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]
DAGS = ROOT / "dags"
RANGE = {"start": "2024-10-01", "end": "2024-12-30"}
# Short horizons and folds for a quarter of data; two epochs per fold (one per phase).
ATFT_OVERRIDES = [
    "horizons=[1,5]", "splits.n_splits=2", "splits.min_train=20", "splits.min_test=10", "splits.embargo=5",
    "validation.embargo=5", "model.training.seq_len=5", "model.graph.lookback=20", "model.graph.min_obs=10",
    "model.training.phases=[{name:baseline,epochs:1,adaptive_norm:false,gat:false},"
    "{name:gat,epochs:1,adaptive_norm:true,gat:true}]",
]


def run_dag(dag_id: str, conf: dict[str, Any] | None = None, logical_date: dt.datetime | None = None
            ) -> tuple[str, dict[str, str], dict[str, Any], float]:
    """(state, task states, return values, wall seconds) of one `dag.test()` run."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    dag = DagBag(dag_folder=str(DAGS)).dags[dag_id]
    t0 = time.perf_counter()
    run = dag.test(run_conf=conf, **({"logical_date": logical_date} if logical_date else {}))
    wall = time.perf_counter() - t0
    states = {f"{ti.task_id}.{ti.map_index}" if ti.map_index >= 0 else ti.task_id: str(ti.state)
              for ti in run.get_task_instances()}
    with create_session() as session:
        rows = session.scalars(XComModel.get_many(run_id=run.run_id, dag_ids=dag_id, key="return_value"))
        results = {x.task_id: XComModel.deserialize_value(x) for x in rows}
    return str(run.state), states, results, wall


def run_chain(plan: str, refresh: bool = True) -> dict[str, Any]:
    """refresh (08:00 JST on 2025-01-08; unless `refresh` is false) -> dataset (RANGE on `plan`: its
    fetch tasks fill the cache over the lookback) -> training (atft_tiny, a pod per fold)."""
    timings: dict[str, float] = {}
    result: dict[str, Any] = {}
    if refresh:
        state, states, result, timings["refresh"] = run_dag(
            "gogoku_cache_refresh", {"window_days": 7}, dt.datetime(2025, 1, 7, 23, tzinfo=dt.UTC))
        assert state == "success", states
    state, states, dataset, timings["dataset"] = run_dag("gogoku_dataset", {**RANGE, "plan_tier": plan})
    assert state == "success", states
    uri = dataset["build_dataset"]["uri"]
    state, states, training, timings["training"] = run_dag(
        "gogoku_training", {"dataset": uri, "model": "atft_tiny", "overrides": ATFT_OVERRIDES})
    assert state == "success", states
    assert states["train_fold.0"] == states["train_fold.1"] == "success"
    return {"refresh": result, "dataset": dataset, "training": training, "timings": timings, "plan": plan}


def assert_chain(chain: dict[str, Any], root: str) -> None:
    """Every task reported URIs under the shared root and read its upstream task's URI."""
    dataset, training, plan = chain["dataset"], chain["training"], chain["plan"]
    build = dataset["build_dataset"]
    assert build["uri"] == f"{root}/datasets/ml_dataset_{plan}_20241001_20241230.parquet"
    assert build["manifest"] == f"{root}/datasets/ml_dataset_{plan}_20241001_20241230.manifest.json"
    if plan == "premium":  # the build read the futures features task's URI
        assert dataset["futures_features"]["uri"] == f"{root}/features/futures_premium_20241001_20241230.parquet"
        assert build["feature_groups"].get("futures", 0) > 0
    assert dataset["validate_dataset"]["uri"] == build["uri"]  # the validation read the build's URI
    assert dataset["publish_dataset"]["uri"] == build["uri"]
    for source, entry in (chain["refresh"] or dataset)[
            "refresh_daily_quotes" if chain["refresh"] else "fetch_daily_quotes"]["sources"].items():
        assert entry["uri"].startswith(f"{root}/raw/{source}/"), entry
    result = training["train"]
    assert result["dataset"] == build["uri"]  # training read the dataset DAG's URI
    assert result["model_dir"].startswith(f"{root}/models/atft_tiny_manual")
    assert result["metrics"] == f"{result['model_dir']}/metrics.json"


def expected_objects(model_dir: str, plan: str) -> set[str]:
    return {
        f"datasets/ml_dataset_{plan}_20241001_20241230.parquet",
        f"datasets/ml_dataset_{plan}_20241001_20241230.manifest.json",
        f"datasets/latest_{plan}.json",
        "models/latest.json",
        *(f"{model_dir}/{f}" for f in ("config.yaml", "metrics.json", "predictions.parquet")),
        *(f"{model_dir}/checkpoints/fold{k}/{f}" for k in (0, 1)
          for f in ("last.pt", "snapshots.pt", "predictions.parquet", "result.json")),
    }


@pytest.fixture()
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Any]:
    """The isolated runner with a tiny simulated market passed through the connection (pods inherit
    nothing from the worker), and a pod settings file of the test's own."""
    monkeypatch.setenv("AIRFLOW_VAR_GOGOKU_RUNNER", "isolated")
    monkeypatch.setenv("AIRFLOW_CONN_JQUANTS_DEFAULT", json.dumps(
        {"conn_type": "http", "host": "simulator", "extra": {"sim_stocks": 20, "sim_seed": 7}}))
    config = yaml.safe_load((ROOT / "configs" / "pod" / "default.yaml").read_text())
    return {"config": config, "path": tmp_path / "pod.yaml"}


def write_config(isolated: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    isolated["path"].write_text(yaml.safe_dump(isolated["config"]))
    monkeypatch.setenv("AIRFLOW_VAR_GOGOKU_POD_CONFIG", str(isolated["path"]))


def sandboxes() -> set[str]:
    import tempfile

    return {p.name for p in Path(tempfile.gettempdir()).glob("gogoku-pod-*")}


@pytest.mark.usefixtures("airflow_db")
def test_chain_on_a_bucket(isolated: dict[str, Any], gcs_bucket: str, gcs_emulator: str,
                           monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    root = f"gs://{gcs_bucket}/prod"
    monkeypatch.setenv("AIRFLOW_VAR_GOGOKU_DATA_ROOT", root)
    isolated["config"]["env"] = {"STORAGE_EMULATOR_HOST": gcs_emulator}  # in the pod spec: pods see nothing else
    write_config(isolated, monkeypatch)
    monkeypatch.chdir(tmp_path)
    before = sandboxes()
    # The futures path too (a features file read by the build through its URI). The chain starts at the
    # dataset DAG, whose fetch pods fill the bucket's cache; the refresh DAG's pods run in the volume chain.
    chain = run_chain("premium", refresh=False)
    assert_chain(chain, root)
    bucket = Store.from_url(root, local_cache=tmp_path / "reader")
    objects = {o.rel for o in bucket.walk("")}
    model_dir = chain["training"]["train"]["model_dir"][len(root) + 1:]
    expected = expected_objects(model_dir, "premium") | {"features/futures_premium_20241001_20241230.parquet"}
    assert expected <= objects, sorted(expected - objects)
    sources = {rel.split("/")[1] for rel in objects if rel.startswith("raw/")}
    assert sources == {"daily_quotes", "statements", "listed_info", "trading_calendar", "announcement", "topix",
                       "trades_spec", "weekly_margin_interest", "daily_margin_interest", "short_selling",
                       "short_selling_positions", "index_option", "futures"}
    # What the bucket holds is the dataset the tasks reported, readable by anyone with the URI.
    frame = pl.read_parquet(bucket.fetch("datasets/ml_dataset_premium_20241001_20241230.parquet"))
    assert frame.height == chain["dataset"]["build_dataset"]["rows"] > 0
    assert not list(tmp_path.glob("gs*")) and not (tmp_path / "data").exists()  # nothing written beside the worker
    assert sandboxes() == before  # every pod's sandbox is gone
    print(json.dumps({"isolated_bucket_s": chain["timings"], "objects": sorted(objects)}))


@pytest.mark.usefixtures("airflow_db")
def test_local_runner_chain_for_comparison(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The same chain with the local runner (the worker's own processes, one shared disk): the
    baseline the isolated chain's time is read against."""
    if not os.environ.get("GOGOKU_CHAIN_TIMINGS"):
        pytest.skip("set GOGOKU_CHAIN_TIMINGS=1 to time the local chain beside the isolated ones")
    monkeypatch.setenv("AIRFLOW_VAR_GOGOKU_RUNNER", "local")
    monkeypatch.setenv("AIRFLOW_VAR_GOGOKU_DATA_ROOT", str(tmp_path / "data"))
    chain = run_chain("premium")
    assert_chain(chain, str(tmp_path / "data"))
    print(json.dumps({"local_s": chain["timings"]}))
