import json
import stat
from pathlib import Path

import polars as pl
import pytest

import gogoku.io as io_module
from gogoku.io import atomic_write, emit_result, write_json_atomic, write_parquet_atomic


def test_emit_result_prints_last_line_and_writes_the_result_file(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    emit_result({"uri": "/x.parquet", "rows": 3}, tmp_path / "xcom" / "return.json")
    out = capsys.readouterr().out.strip().splitlines()
    assert json.loads(out[-1]) == {"uri": "/x.parquet", "rows": 3}
    assert json.loads((tmp_path / "xcom" / "return.json").read_text()) == {"uri": "/x.parquet", "rows": 3}
    assert [p.name for p in (tmp_path / "xcom").iterdir()] == ["return.json"]


def test_emit_result_without_a_result_file_only_prints(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    emit_result({"a": 1})
    assert json.loads(capsys.readouterr().out) == {"a": 1}
    assert list(tmp_path.iterdir()) == []


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


def test_atomic_write_gives_the_umask_mode_not_mkstemps_0600(tmp_path: Path) -> None:
    path = write_parquet_atomic(pl.DataFrame({"a": [1]}), tmp_path / "f.parquet")
    # The process umask, read once at import (mkstemp alone would leave 0o600).
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~io_module._UMASK


def test_parquet_metadata_is_written_to_the_footer(tmp_path: Path) -> None:
    path = write_parquet_atomic(pl.DataFrame({"a": [1]}), tmp_path / "f.parquet", metadata={"k": "v"})
    assert pl.read_parquet_metadata(path)["k"] == "v"


def test_a_failing_writer_leaves_no_file_and_no_temp_file(tmp_path: Path) -> None:
    def fail(tmp: Path) -> None:
        tmp.write_bytes(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(tmp_path / "x.bin", fail)
    assert list(tmp_path.iterdir()) == []
