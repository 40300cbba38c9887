"""Bad input, as a careful user would try it: every case ends with exit status 2 and one line on
stderr naming the input (never a traceback, never exit 0 with empty results), and nothing already
stored is lost or corrupted. Each row of the README's "When something is wrong" table has a test here.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from synthetic import synthetic, write_synthetic_dataset

from gogoku.cli import main
from gogoku.dataset.manifest import write_dataset

pytestmark = pytest.mark.integration

GOGOKU = [sys.executable, "-m", "gogoku.cli"]
TRAIN = ["splits.n_splits=2", "splits.min_train=120", "splits.min_test=40", "horizons=[1,5]",
         "model.num_boost_round=10", "model.params.num_threads=1"]


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """`gogoku <argv>` in this process: (exit status, last stderr line, whole stderr)."""
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse
        code = int(exc.code or 0)
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    return code, lines[-1] if lines else "", err


def assert_refused(result: tuple[int, str, str], *needles: str) -> None:
    code, last, err = result
    assert code == 2, (code, err[-2000:])
    for needle in needles:
        assert needle in last, (needle, last)
    assert "Traceback" not in err


@pytest.fixture()
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GOGOKU_DATA_ROOT", str(tmp_path / "root"))
    monkeypatch.delenv("JQUANTS_API_URL", raising=False)
    monkeypatch.setenv("GOGOKU_SIM_STOCKS", "12")
    return tmp_path / "root"


def write(root: Path, kind: str = "good") -> Path:
    return write_synthetic_dataset(root, kind)


# ---------------------------------------------------------------- arguments
@pytest.mark.parametrize(
    ("argv", "needles"),
    [
        (["fetch", "daily_quotes", "--from", "0001-01-04", "--to", "0001-01-10", "--out", "q.parquet"],
         ["--from 0001-01-04", "between 1990-01-01"]),
        (["fetch", "daily_quotes", "--from", "1900-01-04", "--to", "1900-01-10", "--out", "q.parquet"], ["--from 1900-01-04"]),
        (["cache", "refresh", "--sources", "topix", "--start", "2100-01-04", "--end", "2100-01-10"], ["--start 2100-01-04"]),
        (["dataset", "build", "--start", "2024-13-01", "--end", "2024-12-01"], ["--start '2024-13-01'"]),
        (["dataset", "build", "--start", "2024-06-01", "--end", "2024-01-01"], ["--end 2024-01-01 is before --start"]),
        (["dataset", "build", "--start", "2024-01-04", "--end", "2024-02-01", "--graph-step", "-3"],
         ["argument --graph-step", "-3 is negative"]),
        (["dataset", "build", "--start", "2024-01-04", "--end", "2024-02-01", "--plan", "gold"], ["--plan"]),
        (["cache", "refresh", "--sources", "quotes", "--start", "2024-01-04", "--end", "2024-01-31"],
         ["unknown source 'quotes'"]),
        (["cache", "refresh", "--sources", ",", "--start", "2024-01-04", "--end", "2024-01-31"], ["--sources is empty"]),
        (["sim", "serve", "--port", "70000"], ["--port 70000", "0..65535"]),
        (["sim", "serve", "--port", "-1"], ["--port -1"]),
        (["train", "--dataset", "/nonexistent/ds.parquet"], ["--dataset /nonexistent/ds.parquet", "no such file"]),
        (["train", "--dataset", "/nonexistent/folder"], ["expected a dataset .parquet file"]),
        (["train", "--run-name", "a/b"], ["--run-name 'a/b'"]),
        (["train", "--out", "x", "--run-name", "y"], ["give --out or --run-name, not both"]),
        (["evaluate", "--cost-bps", "-1"], ["--cost-bps >= 0"]),
        (["report", "--model-dir", "/nonexistent/run"], ["--model-dir /nonexistent/run"]),
        (["dataset", "validate", "latest"], ["no standard dataset has been built"]),
        (["dataset", "validate", "x.parquet", "--max-null-share", "2"], ["--max-null-share 2.0"]),
    ],
)
def test_bad_arguments_end_in_one_line(argv: list[str], needles: list[str], root: Path,
                                       capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert_refused(run(argv, capsys), *needles)
    assert not (tmp_path / "q.parquet").exists()


@pytest.mark.parametrize(
    ("env", "needles"),
    [
        ({"GOGOKU_DATA_ROOT": "ftp://host/x"}, ["GOGOKU_DATA_ROOT='ftp://host/x'", "unknown scheme ftp://"]),
        ({"GOGOKU_DATA_ROOT": "s3://bucket/x"}, ["s3:// data roots need the s3fs package"]),
        ({"GOGOKU_DATA_ROOT": "gs://B@d/x"}, ["not a valid bucket name"]),
        ({"JQUANTS_PLAN_TIER": "gold"}, ["JQUANTS_PLAN_TIER='gold'"]),
        ({"JQUANTS_API_URL": "https://api.jquants.com/v2"}, ["JQUANTS_API_URL", "ends in the API version"]),
        ({"JQUANTS_API_URL": "api.jquants.com"}, ["JQUANTS_API_URL", "not an http(s) URL"]),
        ({"JQUANTS_RATE_LIMIT": "fast"}, ["JQUANTS_RATE_LIMIT='fast'"]),
        ({"JQUANTS_API_VERSION": "v3"}, ["JQUANTS_API_VERSION='v3'"]),
    ],
)
def test_bad_settings_end_in_one_line(env: dict[str, str], needles: list[str], root: Path,
                                      capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert_refused(run(["cache", "refresh", "--sources", "topix", "--start", "2024-01-04", "--end", "2024-01-31"],
                       capsys), *needles)


def test_a_data_root_that_is_a_file(root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "afile").write_text("x")
    monkeypatch.setenv("GOGOKU_DATA_ROOT", str(tmp_path / "afile"))
    assert_refused(run(["dataset", "validate", "latest"], capsys), "is a file, not a folder")
    assert (tmp_path / "afile").read_text() == "x"


def test_out_that_is_a_folder(root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "d").mkdir()
    assert_refused(run(["sim", "truth", "--start", "2024-01-04", "--end", "2024-01-31", "--stocks", "5",
                        "--out", str(tmp_path / "d")], capsys), f"--out {tmp_path / 'd'}: is a folder")


@pytest.fixture()
def busy_port() -> Iterator[int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


def test_a_port_in_use(busy_port: int, root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert_refused(run(["sim", "serve", "--port", str(busy_port), "--stocks", "5", "--start", "2024-01-04",
                        "--end", "2024-02-01"], capsys), f"--port {busy_port}: cannot listen there")


# ---------------------------------------------------------------- datasets and training
def test_manifests_of_the_wrong_shape(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(root)
    meta = path.with_name(path.stem + ".manifest.json")
    kept = meta.read_text()
    for text, needle in (("[1, 2]", "expected a JSON object, got a list"), ("{\"features\": 3}", "not a dataset manifest"),
                         ("{not json", "not valid JSON")):
        meta.write_text(text)
        assert_refused(run(["dataset", "validate", str(path)], capsys), needle)
    meta.write_text(kept)
    code, _, _ = run(["dataset", "validate", str(path)], capsys)
    assert code == 0


def test_a_file_that_is_not_parquet(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(root)
    path.write_bytes(b"not parquet at all" * 10)
    assert_refused(run(["dataset", "validate", str(path)], capsys), "cannot read the dataset")


@pytest.mark.parametrize(("kind", "needle"), [("null_features", "2 of 2 features are entirely null"),
                                              ("constant_target", "target(s) without variance")])
def test_degenerate_data_is_refused_by_validation_and_training(kind: str, needle: str, root: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    good = write(root)  # the newest standard dataset and the model pointer stay what they were
    code, _, err = run(["train", "--dataset", str(good), "--model", "lightgbm", *TRAIN], capsys)
    assert code == 0, err[-2000:]
    latest_model = (root / "models" / "latest.json").read_text()
    bad = write_dataset(*synthetic(kind), root / "bad")[0]
    assert_refused(run(["dataset", "validate", str(bad)], capsys), needle)
    assert_refused(run(["train", "--dataset", str(bad), "--model", "lightgbm", *TRAIN], capsys), needle)
    assert (root / "models" / "latest.json").read_text() == latest_model
    assert len(list((root / "models").glob("lightgbm_*"))) == 1  # no folder for the refused run


def test_frames_handed_to_a_trainer_are_checked_too() -> None:
    from gogoku.baselines.lightgbm import train_lightgbm
    from gogoku.errors import InputError

    df, _ = synthetic("constant_target")
    with pytest.raises(InputError, match=r"target\(s\) without variance .*target_5d"):
        train_lightgbm(df, ["signal", "noise"], horizons=[1, 5])
    df, _ = synthetic("null_features")
    with pytest.raises(InputError, match="every selected feature is entirely null"):
        train_lightgbm(df, ["signal", "noise"], horizons=[1, 5])


@pytest.mark.parametrize(("override", "needle"), [("model.params.num_leaves=[1,2]", "LightGBM refused them"),
                                                  ("model.params.objective=nope", "Unknown objective"),
                                                  ("model=nope", "model"), ("splits.no_such_key=1", "overrides")])
def test_bad_training_settings(override: str, needle: str, root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(root)
    assert_refused(run(["train", "--dataset", str(path), "--model", "lightgbm", *TRAIN, override], capsys), needle)


# ---------------------------------------------------------------- a full disk
@pytest.fixture()
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs: a disk that fills up for real."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_ends_in_one_line_and_keeps_what_was_stored(tiny_disk: Path, tmp_path: Path) -> None:
    env = {**os.environ, "GOGOKU_DATA_ROOT": str(tiny_disk), "GOGOKU_SIM_STOCKS": "300"}
    env.pop("JQUANTS_API_URL", None)
    small = subprocess.run(GOGOKU + ["cache", "refresh", "--sources", "topix", "--start", "2024-01-04",
                                     "--end", "2024-03-29"], env=env, capture_output=True, text=True, timeout=300)
    assert small.returncode == 0, small.stderr[-2000:]
    stored = {p: p.read_bytes() for p in (tiny_disk / "raw").rglob("*.parquet")}
    big = subprocess.run(GOGOKU + ["cache", "refresh", "--sources", "daily_quotes", "--start", "2023-01-04",
                                   "--end", "2024-03-29"], env=env, capture_output=True, text=True, timeout=300)
    assert big.returncode == 2, big.stderr[-2000:]
    last = big.stderr.strip().splitlines()[-1]
    assert "No space left on device" in last and "free some space" in last and "Traceback" not in big.stderr
    assert {p: p.read_bytes() for p in stored} == stored  # the topix cache is intact
    again = subprocess.run(GOGOKU + ["--result-file", str(tmp_path / "r.json"), "cache", "refresh", "--sources",
                                     "topix", "--start", "2024-01-04", "--end", "2024-03-29"],
                           env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and json.loads((tmp_path / "r.json").read_text())["api_calls"] == 0
    assert not list((tiny_disk / "raw" / "daily_quotes").glob("*.parquet"))  # nothing half-written under a final name
