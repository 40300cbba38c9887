"""`gogoku hpo` (gogoku.hpo.search): Optuna over the validation slices, RDB storage, resume, pruning."""

from __future__ import annotations

import json
import multiprocessing
import subprocess
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import optuna
import polars as pl
import pytest
import torch
from omegaconf import OmegaConf
from test_trainer import DAYS, HORIZONS, SMALL, dataset  # tests/unit is on sys.path (rootdir-less)

from gogoku.dataset.manifest import make_manifest, write_dataset
from gogoku.errors import InputError
from gogoku.hpo.search import load_search_config, open_rdb_storage, run_search
from gogoku.train import atft
from gogoku.train.run import compose_config, prepare

FAST = [*SMALL, "model.training.phases=[{name: baseline, epochs: 2, adaptive_norm: false, gat: false}]"]
SPACE = """
study: test
n_trials: 2
folds: 1
sampler: {seed: 3, n_startup_trials: 2}
pruner: {n_startup_trials: 1, n_warmup_steps: 0}
space:
  model.training.lr: {type: float, low: 1.0e-3, high: 1.0e-2, log: true}
  model.architecture.gat_dropout: {type: float, low: 0.0, high: 0.3}
  model.loss.ic: {type: float, low: 0.0, high: 1.0}
"""


@pytest.fixture(autouse=True)
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture()
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    monkeypatch.setenv("GOGOKU_DATA_ROOT", str(tmp_path / "data"))
    df = dataset(seed=7)
    manifest = make_manifest(df, groups={"price": ["returns_1d", "signal", "noise"], "market": ["mkt"]},
                             targets=[f"target_{h}d" for h in HORIZONS], start=DAYS[0], end=DAYS[-1],
                             plan="standard", build={"synthetic": True})
    path = write_dataset(df, manifest, tmp_path / "data" / "datasets")[0]
    config = tmp_path / "space.yaml"
    config.write_text(SPACE)
    return path, config


def test_search_runs_records_and_resumes_a_sqlite_study(workspace: tuple[Path, Path], tmp_path: Path) -> None:
    path, config = workspace
    first = run_search(path, "atft_tiny", config=config, overrides=FAST)
    assert first["trials"] == first["new_trials"] == 2 and first["complete"] + first["pruned"] == 2
    assert first["storage"].startswith("sqlite:///") and first["folds"] == [1]
    assert -1 <= first["best_value"] <= 1 and set(first["best_params"]) == {
        "model.training.lr", "model.architecture.gat_dropout", "model.loss.ic"}
    assert json.loads(Path(first["best_file"]).read_text())["best_trial"] == first["best_trial"]
    # A second worker on the same storage continues the study.
    second = run_search(path, "atft_tiny", config=config, n_trials=1, overrides=FAST)
    assert (second["trials"], second["new_trials"]) == (3, 1)
    study = optuna.load_study(study_name="test", storage=first["storage"])
    trial = study.trials[0]
    assert trial.intermediate_values and trial.user_attrs["overrides"][0].startswith("model.training.lr=")
    # The best overrides are valid `gogoku train` overrides.
    cfg = compose_config("atft_tiny", [*FAST, *second["best_overrides"]])
    assert cfg.model.training.lr == pytest.approx(second["best_params"]["model.training.lr"])


def test_the_objective_never_reads_the_test_blocks(workspace: tuple[Path, Path]) -> None:
    path, _ = workspace
    base = prepare(path, "atft_tiny", FAST)
    folds = base.folds[-1:]
    model = OmegaConf.to_container(compose_config("atft_tiny", FAST).model, resolve=True)
    args = dict(seed=1, valid_fraction=0.15, valid_embargo=20)
    clean = atft.validation_scores(base.df, base.features, model, folds, base.horizons, **args)
    # Scramble every feature and target after the fold's training period (its embargo and test block).
    after = pl.col("Date") > folds[0].train_dates[-1]
    scrambled = base.df.with_columns(
        pl.when(after).then(pl.col(c) * -3.0 + 1.0).otherwise(pl.col(c)).alias(c)
        for c in [*base.features, *[f"target_{h}d" for h in base.horizons]])
    assert atft.validation_scores(scrambled, base.features, model, folds, base.horizons, **args) == clean


def test_pruned_trials_stop_early(workspace: tuple[Path, Path], tmp_path: Path) -> None:
    path, _ = workspace
    config = tmp_path / "prune.yaml"
    # A pruner that prunes everything after its first (startup) trial: step 0 compares with the median.
    config.write_text(SPACE.replace("n_trials: 2", "n_trials: 3").replace("model.training.lr: {type: float, low: 1.0e-3, high: 1.0e-2, log: true}",
                 "model.training.lr: {type: float, low: 1.0e-6, high: 1.0e-2, log: true}"))
    result = run_search(path, "atft_tiny", config=config, study_name="prune", overrides=FAST)
    study = optuna.load_study(study_name="prune", storage=result["storage"])
    for t in study.trials:
        assert t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
        if t.state == optuna.trial.TrialState.PRUNED:  # a pruned trial stopped before its last epoch
            assert len(t.intermediate_values) < 2


def _postgres_available() -> bool:
    try:
        return subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-c", "select 1"],
                              capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.mark.skipif(not _postgres_available(), reason="PostgreSQL at 127.0.0.1:5432 is not running")
def test_a_postgresql_study_is_shared_by_workers(workspace: tuple[Path, Path]) -> None:
    path, config = workspace
    db = f"gogoku_hpo_{uuid.uuid4().hex[:8]}"
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-c", f"create database {db}"], check=True,
                   capture_output=True)
    try:
        storage = f"postgresql://postgres@127.0.0.1:5432/{db}"
        one = run_search(path, "atft_tiny", config=config, n_trials=1, storage=storage, overrides=FAST)
        two = run_search(path, "atft_tiny", config=config, n_trials=1, storage=storage, overrides=FAST)
        assert (one["trials"], two["trials"]) == (1, 2)
        assert two["storage"] == f"postgresql+psycopg2://postgres@127.0.0.1:5432/{db}"
    finally:
        subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-c", f"drop database if exists {db} with (force)"],
                       capture_output=True)


def _open_after(url: str, start: float) -> str:
    time.sleep(max(0.0, start - time.time()))
    storage = open_rdb_storage(url)
    storage.engine.dispose()
    return "ok"


@pytest.mark.skipif(not _postgres_available(), reason="PostgreSQL at 127.0.0.1:5432 is not running")
def test_workers_starting_at_once_on_a_new_database_all_open_it() -> None:
    """Six processes create Optuna's tables in the same new database at the same instant: without the
    retry, all but one failed on a duplicate key (the type `studydirection`, the version row)."""
    db = f"gogoku_hpo_{uuid.uuid4().hex[:8]}"
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-c", f"create database {db}"], check=True,
                   capture_output=True)
    try:
        url = f"postgresql+psycopg2://postgres@127.0.0.1:5432/{db}"
        start = time.time() + 8.0  # after every process has imported this module
        with ProcessPoolExecutor(6, mp_context=multiprocessing.get_context("spawn")) as pool:
            results = list(pool.map(_open_after, [url] * 6, [start] * 6))
        assert results == ["ok"] * 6
    finally:
        subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-c", f"drop database if exists {db} with (force)"],
                       capture_output=True)


def test_bad_search_configs_name_the_problem(tmp_path: Path, workspace: tuple[Path, Path]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("space: {model.training.lr: {type: gaussian}}")
    with pytest.raises(InputError, match="space.model.training.lr.type"):
        load_search_config(bad)
    with pytest.raises(InputError, match="no such file"):
        load_search_config(tmp_path / "missing.yaml")
    path, config = workspace
    with pytest.raises(InputError, match="hpo searches the ATFT"):
        run_search(path, "lightgbm", config=config, overrides=SMALL[:4])
