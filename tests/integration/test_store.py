"""Artifacts on a gs:// data root against a real GCS emulator: publish, fetch through the local read
cache, dataset identity and pointers per plan, and clear errors for bad storage input."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from gogoku.dataset.manifest import localize_dataset, publish_dataset
from gogoku.errors import InputError
from gogoku.storage import Store

pytestmark = pytest.mark.integration


def worker(bucket: str, tmp_path: Path, name: str, prefix: str = "team/prod") -> Store:
    """A store as one pod sees it: the shared bucket, and a local disk of its own."""
    return Store.from_url(f"gs://{bucket}/{prefix}", local_cache=tmp_path / name)


def frame_and_manifest(plan: str, rows: int = 3) -> tuple[pl.DataFrame, dict]:
    df = pl.DataFrame({"Code": [f"1301{i}" for i in range(rows)], "Date": [dt.date(2024, 1, 4)] * rows,
                       "f": [0.5] * rows, "target_1d": [0.01] * rows})
    manifest = {"plan": plan, "range": {"start": "2024-01-04", "end": "2024-01-31"}, "rows": rows,
                "created_at": "2024-02-01T00:00:00+00:00", "features": [{"name": "f", "group": "price"}],
                "n_features": 1, "targets": ["target_1d"], "feature_groups": {"price": 1}}
    return df, manifest


def test_publish_then_fetch_on_another_worker_through_the_read_cache(gcs_bucket: str, tmp_path: Path) -> None:
    a, b = worker(gcs_bucket, tmp_path, "a"), worker(gcs_bucket, tmp_path, "b")
    model = a.local_path("models/m1")
    (model / "checkpoints" / "fold0").mkdir(parents=True)
    (model / "checkpoints" / "fold0" / "last.pt").write_bytes(b"weights" * 1000)
    (model / "predictions.parquet").write_bytes(b"p" * 100)
    (model / ".predictions.parquet.123.tmp").write_bytes(b"half")  # a write in progress: never uploaded
    (model / "metrics.json").write_text('{"ok": true}')
    uploaded = a.publish_tree("models/m1", last=["metrics.json"])
    assert uploaded[-1] == f"gs://{gcs_bucket}/team/prod/models/m1/metrics.json"  # the completion marker last
    assert sorted(o.rel for o in b.walk("models/m1")) == [
        "models/m1/checkpoints/fold0/last.pt", "models/m1/metrics.json", "models/m1/predictions.parquet"]
    generations = {o.rel: int(o.generation or 0) for o in b.walk("models/m1")}
    assert generations["models/m1/metrics.json"] == max(generations.values())
    assert a.publish_tree("models/m1") == []  # unchanged: nothing uploaded again

    # Worker b has an empty disk: fetch downloads, a second fetch reuses the identical local copy.
    got = b.fetch_tree("models/m1", skip=lambda rel: "/checkpoints/" in rel)
    assert got == tmp_path / "b" / "gs" / gcs_bucket / "team" / "prod" / "models" / "m1"
    assert json.loads((got / "metrics.json").read_text()) == {"ok": True}
    assert not (got / "checkpoints").exists()
    inode = (got / "metrics.json").stat().st_ino
    assert b.fetch("models/m1/metrics.json").stat().st_ino == inode
    # The bucket's object changes: the next fetch brings the new content.
    (model / "metrics.json").write_text('{"ok": false}')
    a.publish("models/m1/metrics.json")
    assert json.loads(b.fetch("models/m1/metrics.json").read_text()) == {"ok": False}
    with pytest.raises(InputError, match=f"gs://{gcs_bucket}/team/prod/models/m2/metrics.json: no such object"):
        b.fetch("models/m2/metrics.json")


def test_datasets_of_two_plans_coexist_and_latest_is_per_plan(gcs_bucket: str, tmp_path: Path) -> None:
    a = worker(gcs_bucket, tmp_path, "a")
    std = publish_dataset(a, *frame_and_manifest("standard", rows=3))
    light = publish_dataset(a, *frame_and_manifest("light", rows=2))
    assert std["uri"] == f"gs://{gcs_bucket}/team/prod/datasets/ml_dataset_standard_20240104_20240131.parquet"
    assert light["uri"].endswith("/datasets/ml_dataset_light_20240104_20240131.parquet")
    b = worker(gcs_bucket, tmp_path, "b")
    path, uri = localize_dataset(b, "latest", "standard")
    assert uri == std["uri"] and pl.read_parquet(path).height == 3
    assert path.with_name(path.stem + ".manifest.json").is_file()  # the manifest lands beside it
    path, uri = localize_dataset(b, "latest", "light")
    assert uri == light["uri"] and pl.read_parquet(path).height == 2
    # A URI given explicitly wins over any pointer; a worker's local path of it names the same object.
    assert localize_dataset(b, std["uri"], "light")[1] == std["uri"]
    with pytest.raises(InputError, match="--dataset latest: .*no premium dataset has been built"):
        localize_dataset(b, "latest", "premium")
    with pytest.raises(InputError, match="no such object"):
        localize_dataset(b, f"gs://{gcs_bucket}/team/prod/datasets/ml_dataset_standard_20990101_20991231.parquet",
                         "standard")


def test_a_missing_bucket_is_a_clear_error(gcs_bucket: str, tmp_path: Path) -> None:
    store = Store.from_url("gs://gogoku-no-such-bucket/x", local_cache=tmp_path)
    with pytest.raises(InputError, match="bucket 'gogoku-no-such-bucket' does not exist"):
        store.exists("datasets/latest_standard.json")


def test_missing_google_credentials_say_what_to_set(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("STORAGE_EMULATOR_HOST", "GOOGLE_APPLICATION_CREDENTIALS")}
    env.update(GOGOKU_DATA_ROOT="gs://gogoku-bucket/x", GOGOKU_LOCAL_CACHE=str(tmp_path), HOME=str(tmp_path),
               NO_GCE_CHECK="True", GOOGLE_APPLICATION_CREDENTIALS=str(tmp_path / "no-key.json"))
    proc = subprocess.run([sys.executable, "-m", "gogoku.cli", "dataset", "validate", "latest"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert "GOGOKU_DATA_ROOT=gs://gogoku-bucket/x: no Google credentials" in last
    assert "GOOGLE_APPLICATION_CREDENTIALS" in last and "Traceback" not in proc.stderr
