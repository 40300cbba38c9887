import json
from pathlib import Path

import polars as pl
import pytest

from gogoku.io import emit_result, write_json_atomic, write_parquet_atomic


def test_emit_result_prints_last_line_and_writes_xcom(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    emit_result({"path": "/x.parquet", "rows": 3}, xcom_dir=tmp_path)
    out = capsys.readouterr().out.strip().splitlines()
    assert json.loads(out[-1]) == {"path": "/x.parquet", "rows": 3}
    assert json.loads((tmp_path / "return.json").read_text()) == {"path": "/x.parquet", "rows": 3}


def test_emit_result_without_xcom_dir_only_prints(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    emit_result({"a": 1}, xcom_dir=tmp_path / "absent")
    assert json.loads(capsys.readouterr().out) == {"a": 1}
    assert not (tmp_path / "absent").exists()


def test_atomic_write_replaces_and_leaves_no_temp_files(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "f.parquet"
    write_parquet_atomic(pl.DataFrame({"a": [1, 2]}), path)
    write_parquet_atomic(pl.DataFrame({"a": [3]}), path)
    assert pl.read_parquet(path)["a"].to_list() == [3]
    assert [p.name for p in path.parent.iterdir()] == ["f.parquet"]


def test_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    write_json_atomic({"v": 1}, path)

    class Boom:
        def __str__(self) -> str:
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        write_json_atomic({"v": Boom()}, path)
    assert json.loads(path.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]
