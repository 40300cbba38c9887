"""The `gogoku` CLI end to end: a real simulator server process, the real client, parquet on disk."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import polars as pl
import pytest

pytestmark = pytest.mark.integration

GOGOKU = [sys.executable, "-m", "gogoku.cli"]


def run_cli(args: list[str], env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(GOGOKU + args, env=env, capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"gogoku {' '.join(args)} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return proc


def last_json(proc: subprocess.CompletedProcess[str]) -> dict:
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def sim_process(tmp_path_factory: pytest.TempPathFactory):
    """`gogoku sim serve` as a separate process on a free loopback port."""
    log = tmp_path_factory.mktemp("sim") / "serve.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            GOGOKU + ["sim", "serve", "--port", "0", "--stocks", "25", "--start", "2023-01-04",
                      "--end", "2024-12-30", "--page-size", "200", "--plan", "standard"],
            stdout=subprocess.PIPE, stderr=fh, text=True,
        )
        line = proc.stdout.readline()
    try:
        info = json.loads(line)
        yield info["url"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture()
def cli_env(tmp_path: Path, sim_process: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(JQUANTS_API_URL=sim_process, JQUANTS_API_KEY="test-key", JQUANTS_PLAN_TIER="standard",
               GOGOKU_DATA_ROOT=str(tmp_path / "data"))
    return env


def sim_stats(url: str) -> dict:
    with urllib.request.urlopen(f"{url}/__sim__/stats", timeout=10) as resp:
        return json.load(resp)


def test_cache_refresh_then_repeat_makes_zero_calls(cli_env: dict[str, str], sim_process: str) -> None:
    args = ["cache", "refresh", "--sources", "daily_quotes,topix", "--start", "2024-03-01", "--end", "2024-03-29"]
    first = last_json(run_cli(args, cli_env))
    assert first["sources"]["daily_quotes"]["hits"] == "miss"
    assert first["api_calls"] > 0
    quotes = pl.read_parquet(first["sources"]["daily_quotes"]["uri"])
    # 20 business days in March 2024 (20th is a holiday), 25 codes
    assert quotes["Date"].n_unique() == 20
    assert quotes["Code"].n_unique() == 25
    assert quotes.height == 20 * 25

    before = sim_stats(sim_process)["total"]
    second = last_json(run_cli(args, cli_env))
    assert second["api_calls"] == 0
    assert second["sources"]["daily_quotes"]["hits"] == "complete"
    assert sim_stats(sim_process)["total"] == before


def test_fetch_writes_parquet_with_v1_names(cli_env: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "q.parquet"
    res = last_json(run_cli(["fetch", "daily_quotes", "--from", "2024-04-01", "--to", "2024-04-05", "--out", str(out)], cli_env))
    frame = pl.read_parquet(out)
    assert res["rows"] == frame.height == 5 * 25
    assert {"Code", "Date", "AdjustmentClose", "AdjustmentFactor", "Volume"} <= set(frame.columns)
    assert frame.schema["Date"] == pl.Date
    assert frame.schema["AdjustmentClose"] == pl.Float64
    assert frame["Code"].str.len_chars().unique().to_list() == [5]


def test_futures_on_standard_plan_fails_with_the_api_message(cli_env: dict[str, str], tmp_path: Path) -> None:
    proc = run_cli(["fetch", "futures", "--from", "2024-04-01", "--to", "2024-04-05", "--out", str(tmp_path / "f.parquet")],
                   cli_env, check=False)
    assert proc.returncode == 2
    assert "403" in proc.stderr or "plan" in proc.stderr.lower()
    assert not (tmp_path / "f.parquet").exists()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["dataset", "build", "--start", "2024-13-01", "--end", "2024-12-01", "--out", "x"], "--start '2024-13-01'"),
        (["dataset", "build", "--start", "2024-06-01", "--end", "2024-01-01", "--out", "x"], "--end 2024-01-01 is before --start"),
        (["cache", "refresh", "--sources", "quotes", "--start", "2024-01-01", "--end", "2024-01-31"], "unknown source 'quotes'"),
        (["dataset", "build", "--start", "2024-01-01", "--end", "2024-02-01", "--out", "x", "--plan", "gold"], "--plan"),
        (["train", "--dataset", "/nonexistent/ds.parquet"], "--dataset /nonexistent/ds.parquet"),
    ],
)
def test_bad_input_names_the_input(args: list[str], needle: str, cli_env: dict[str, str]) -> None:
    proc = run_cli(args, cli_env, check=False)
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert needle in last  # the last line is the message (argparse prints its usage above it)
    assert "Traceback" not in proc.stderr


def test_offline_build_on_an_empty_cache_says_what_to_run(cli_env: dict[str, str], tmp_path: Path) -> None:
    proc = run_cli(["dataset", "build", "--start", "2024-06-03", "--end", "2024-06-28", "--out",
                    str(tmp_path / "datasets"), "--offline"], cli_env, check=False)
    assert proc.returncode == 2
    assert "gogoku cache refresh --sources" in proc.stderr
    assert not (tmp_path / "datasets").exists() or not any((tmp_path / "datasets").iterdir())
