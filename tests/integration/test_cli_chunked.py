"""`gogoku dataset build --chunk-months N` end to end: the built-in simulator, the raw cache, the
out-of-core build published into the data root, against the one-shot build of the same range."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from gogoku.cli import main
from gogoku.features.sector import SECTOR_FEATURES

pytestmark = pytest.mark.integration


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> dict:
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def test_chunked_build_is_published_and_equals_the_one_shot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "root"
    monkeypatch.setenv("GOGOKU_DATA_ROOT", str(root))
    monkeypatch.delenv("JQUANTS_API_URL", raising=False)
    monkeypatch.setenv("GOGOKU_SIM_STOCKS", "12")
    monkeypatch.setenv("JQUANTS_PLAN_TIER", "standard")
    span = ["--start", "2024-01-04", "--end", "2024-09-30"]

    chunked = run(["dataset", "build", *span, "--chunk-months", "3"], capsys)
    assert chunked["chunk_months"] == 3 and chunked["rows"] > 0
    datasets = root / "datasets"
    assert sorted(p.name for p in datasets.iterdir()) == [
        "latest_standard.json", "ml_dataset_standard_20240104_20240930.manifest.json",
        "ml_dataset_standard_20240104_20240930.parquet",
    ]  # the temp files are gone
    assert chunked["uri"] == str(datasets / "ml_dataset_standard_20240104_20240930.parquet")
    valid = run(["dataset", "validate", "latest"], capsys)
    assert valid["valid"] and valid["rows"] == chunked["rows"]

    one = run(["dataset", "build", *span, "--chunk-months", "0", "--offline", "--out", str(tmp_path / "one")], capsys)
    assert one["chunk_months"] == 0 and one["rows"] == chunked["rows"]
    a, b = pl.read_parquet(one["uri"]), pl.read_parquet(chunked["uri"])
    assert_frame_equal(a, b)
    assert_frame_equal(a.drop(SECTOR_FEATURES), b.drop(SECTOR_FEATURES), check_exact=True)
    m1, m2 = (json.loads(Path(r["manifest"]).read_text()) for r in (one, chunked))
    for m in (m1, m2):
        m.pop("created_at")
        m["build"].pop("chunk_months", None)
    assert m1 == m2
