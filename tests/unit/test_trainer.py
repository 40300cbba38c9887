"""ATFT-GAT-FAN training (gogoku.train.atft, gogoku.train.data) on tiny synthetic cross-sections."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
import yaml

from gogoku.calendar import business_days
from gogoku.dataset.manifest import make_manifest, write_dataset
from gogoku.dataset.splits import validation_split, walk_forward_splits
from gogoku.errors import GogokuError, InputError
from gogoku.train import atft
from gogoku.train.data import FoldNormalizer, Panel
from gogoku.train.run import compose_config, train

HORIZONS = (1, 5, 10, 20)
DAYS = business_days(dt.date(2022, 1, 4), dt.date(2022, 9, 30))
N_CODES = 24
FEATURES = ["returns_1d", "signal", "noise", "mkt"]
# Tiny runs: one thread (the suite shares two cores), no bf16 on CPU anyway.
SMALL = ["splits.n_splits=2", "splits.min_train=100", "splits.min_test=20", "validation.embargo=20",
         "model.training.seq_len=6"]


@pytest.fixture(autouse=True)
def one_torch_thread():
    # The suite shares two busy cores: more intra-op threads only spin against each other.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def dataset(seed: int = 0) -> pl.DataFrame:
    """Returns from market + 3 sector factors (so the graph has edges), targets driven by `signal`."""
    rng = np.random.default_rng(seed)
    n_days = len(DAYS)
    sector = np.arange(N_CODES) % 3
    returns = (rng.normal(0, 0.008, (n_days, 1)) + rng.normal(0, 0.012, (n_days, 3))[:, sector]
               + rng.normal(0, 0.01, (n_days, N_CODES)))
    signal = rng.normal(size=(n_days, N_CODES))
    frame = pl.DataFrame({
        "Code": np.tile([f"{1300 + i}0" for i in range(N_CODES)], n_days),
        "Date": np.repeat(np.array(DAYS, dtype="datetime64[D]"), N_CODES),
        "MarketCode": np.tile(np.where(np.arange(N_CODES) < 12, "0111", "0112"), n_days),
        "Sector33Code": np.tile(sector.astype(str), n_days),
        "returns_1d": returns.ravel(), "signal": signal.ravel(), "noise": rng.normal(size=n_days * N_CODES),
        "mkt": np.repeat(returns.mean(1), N_CODES),
    }).with_columns(pl.col("Date").cast(pl.Date), pl.col(FEATURES).cast(pl.Float32))
    targets = {f"target_{h}d": 0.01 * np.sqrt(h) * (signal.ravel() + rng.normal(size=n_days * N_CODES)) for h in HORIZONS}
    frame = frame.with_columns(pl.Series(k, v) for k, v in targets.items())
    last = frame["Date"].max()
    return frame.with_columns(pl.when(pl.col("Date") < last).then(pl.col("target_20d")).alias("target_20d")).sort("Code", "Date")


def model_cfg(**training: object) -> dict:
    cfg = compose_config("atft_tiny", ["model.training.seq_len=6"])
    from omegaconf import OmegaConf

    out = OmegaConf.to_container(cfg.model, resolve=True)
    out["training"].update(training)
    return out


def one_fold(df: pl.DataFrame) -> list:
    return walk_forward_splits(df["Date"].unique().to_list(), n_splits=1, embargo=20, min_train=100, min_test=20)[-1:]


# ---------------------------------------------------------------------------- normalizer, schedule
def test_normalizer_is_fitted_on_the_fitting_dates_only() -> None:
    d = [dt.date(2024, 1, 4), dt.date(2024, 1, 5), dt.date(2024, 1, 9)]
    frame = pl.DataFrame({"Code": ["13010", "13020"] * 3, "Date": [d[0], d[0], d[1], d[1], d[2], d[2]],
                          "a": [1.0, 3.0, 2.0, 6.0, 0.0, 10.0], "m": [1.0, 1.0, 2.0, 2.0, 3.0, 3.0]})
    norm = FoldNormalizer.fit(frame, ["a", "m"], d[:2], clip=5.0, tail=0.0)
    assert norm.cross_sectional == {"a": True, "m": False}
    assert (norm.lower["m"], norm.upper["m"], norm.mean["m"]) == (1.0, 2.0, 1.5)
    assert norm.std["m"] == pytest.approx(math.sqrt(1 / 3))  # sample std of 1, 1, 2, 2
    out = norm.transform(frame)
    # Date 3's market value 3 is clipped to the training maximum 2: (2 - 1.5) / 0.577.
    assert out["m"].to_list()[4] == pytest.approx(0.5 / math.sqrt(1 / 3), rel=1e-6)
    # Two names per day: per-date z-scores are -/+ 1/sqrt(2), standardized by their training std.
    z = 1 / math.sqrt(2)
    assert out["a"].to_list()[5] == pytest.approx(z / norm.std["a"], rel=1e-5)
    later = frame.with_columns(pl.when(pl.col("Date") == d[2]).then(pl.col("a", "m") * 100).otherwise(pl.col("a", "m")))
    refit = FoldNormalizer.fit(later, ["a", "m"], d[:2], clip=5.0, tail=0.0)
    assert refit == norm


def test_feature_blocks_give_the_same_normalizer_and_panel_as_one_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks of features (memory: one block's working copies) change nothing: the same statistics and
    the same panel as with every feature in one block."""
    from gogoku.train import data

    df = dataset()
    panel = Panel(df, FEATURES, HORIZONS)
    norm = FoldNormalizer.fit(df, FEATURES, panel.dates[:100])
    panel.set_features(norm, df)
    assert len(data.feature_blocks(FEATURES)) == 1 < len(FEATURES)
    monkeypatch.setattr(data, "feature_blocks", lambda features, size=1: [[f] for f in features])
    one_by_one = FoldNormalizer.fit(df, FEATURES, panel.dates[:100])
    # Equal up to the order of polars' parallel sums (seen: 1e-18 apart in a mean).
    assert one_by_one.cross_sectional == norm.cross_sectional
    for name in ("lower", "upper", "mean", "std"):
        assert getattr(one_by_one, name) == pytest.approx(getattr(norm, name), rel=1e-9, abs=1e-15), name
    other = Panel(df, FEATURES, HORIZONS)
    other.set_features(one_by_one, df)
    np.testing.assert_allclose(other.x, panel.x, rtol=1e-5, atol=1e-6)
    whole = norm.transform(df)  # every feature at once, as rows
    keys = panel._keys(whole)
    np.testing.assert_array_equal(panel.x[keys["_d"].to_numpy(), keys["_c"].to_numpy()], whole.select(FEATURES).to_numpy())


def test_learning_rate_warmup_then_cosine() -> None:
    phase = atft.Phase("p", 10, False, False, lr_scale=0.5)
    s = atft.TrainSettings(lr=1.0, warmup_fraction=0.1, min_lr_fraction=0.0, phases=(phase,))
    assert atft.learning_rate(s, 0.05, phase) == pytest.approx(0.5 * 0.051 / 0.1)
    assert atft.learning_rate(s, 0.1, phase) == pytest.approx(0.5)
    assert atft.learning_rate(s, 0.55, phase) == pytest.approx(0.25)
    assert atft.learning_rate(s, 1.0, phase) == pytest.approx(0.0, abs=1e-12)


def test_settings_and_device_errors() -> None:
    with pytest.raises(InputError, match="phases"):
        atft.TrainSettings.from_mapping({"phases": []}, seed=1)
    with pytest.raises(InputError, match="precision"):
        atft.TrainSettings.from_mapping({"precision": "fp8", "phases": [{"name": "a", "epochs": 1, "adaptive_norm": False, "gat": False}]}, seed=1)
    assert atft.resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(GogokuError, match="CUDA"):
            atft.resolve_device("cuda")


def test_batches_hold_whole_days_with_past_sequences_and_graph_edges() -> None:
    df = dataset()
    panel = Panel(df, FEATURES, HORIZONS)
    norm = FoldNormalizer.fit(df, FEATURES, panel.dates[:100])
    panel.set_features(norm, df)
    from gogoku.model.gat_graph import GraphParams, daily_graphs, return_panel

    returns = return_panel(df, panel.dates, panel.codes)
    panel.graphs = daily_graphs(returns, [120, 121], GraphParams(lookback=40, min_obs=30, threshold=0.2, top_k=5))
    batch = panel.batch([120, 121], seq_len=6)
    assert batch.size == 2 * N_CODES and batch.x.shape == (2 * N_CODES, 6, len(FEATURES))
    assert batch.day.tolist() == [0] * N_CODES + [1] * N_CODES
    # Row k of day 121 is stock k's features on panel days 116..121.
    np.testing.assert_array_equal(batch.x[N_CODES + 3].numpy(), panel.x[116:122, 3])
    assert batch.edge_index.shape[1] > 0
    assert (batch.day[batch.edge_index[0]] == batch.day[batch.edge_index[1]]).all()  # no cross-day edges
    assert batch.targets[20][:N_CODES].isfinite().all()
    # The panel's last day has no 20d target: training batches drop rows without any target only.
    assert panel.batch([len(panel.dates) - 1], 6, need_target=True).size == N_CODES


# ---------------------------------------------------------------------------- training runs
def write_synthetic(root: Path) -> Path:
    df = dataset(seed=5)
    groups = {"price": ["returns_1d", "signal", "noise"], "market": ["mkt"]}
    manifest = make_manifest(df, groups=groups, targets=[f"target_{h}d" for h in HORIZONS], start=DAYS[0],
                             end=DAYS[-1], plan="standard", build={"synthetic": True})
    return write_dataset(df, manifest, root / "datasets")[0]


def test_gogoku_train_atft_tiny_writes_the_lightgbm_outputs(tmp_path: Path) -> None:
    path = write_synthetic(tmp_path)
    result = train(path, "atft_tiny", tmp_path / "run", SMALL)
    out = Path(result["model_dir"])
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model"] == "atft_tiny" and metrics["features"] == FEATURES and metrics["parameters"] > 1000
    folds = walk_forward_splits(DAYS, n_splits=2, embargo=20, min_train=100, min_test=20)
    for info, fold in zip(metrics["folds"], folds, strict=True):
        fit_dates, valid_dates = validation_split(fold.train_dates, 0.15, 20)
        assert info["test_start"] == fold.test_dates[0].isoformat() and info["fit_end"] == fit_dates[-1].isoformat()
        assert info["fit_end"] < info["valid_start"] <= info["train_end"] < info["test_start"]
        assert info["valid_rows"] == len(valid_dates) * N_CODES
    for m in metrics["horizons"].values():
        for key in ("ic_mean", "rank_ic_mean", "icir", "rank_icir", "hit_rate", "ls_mean", "ls_sharpe", "n_days"):
            assert isinstance(m[key], (int, float)), key
        assert [f["fold"] for f in m["folds"]] == [0, 1]
    # The planted signal is learned (daily RankIC of a perfect model here is about 0.7).
    assert metrics["horizons"]["5d"]["rank_ic_mean"] > 0.3, metrics["horizons"]["5d"]["rank_ic_mean"]
    preds = pl.read_parquet(out / "predictions.parquet")
    assert preds.columns == ["Code", "Date", "fold", *[c for h in HORIZONS for c in (f"pred_{h}d", f"target_{h}d")]]
    assert preds.height == sum(len(f.test_dates) for f in folds) * N_CODES
    assert preds.select("Code", "Date").is_duplicated().sum() == 0
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["model"]["name"] == "atft_tiny" and config["model"]["training"]["seq_len"] == 6
    assert (out / "checkpoints" / "fold1" / "last.pt").is_file() and (out / "checkpoints" / "fold1" / "snapshots.pt").is_file()

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(out / "tensorboard" / "fold0"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "train/lr", "train/grad_norm", "step/loss", "step/lr", "step/grad_norm",
            *[f"val/val_rank_ic_{h}d" for h in HORIZONS]} <= tags


def test_resume_after_a_kill_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    df = dataset(seed=2)
    folds = one_fold(df)
    phases = [{"name": "baseline", "epochs": 1, "adaptive_norm": False, "gat": False},
              {"name": "adaptive_norm", "epochs": 1, "adaptive_norm": True, "gat": False},
              {"name": "gat", "epochs": 1, "adaptive_norm": True, "gat": True}]
    # On CPU in fp32 the run is deterministic; CUDA's bf16 and atomic scatter adds are not bit-exact.
    cfg = model_cfg(phases=phases, patience=5, snapshots=2, device="cpu")

    def run(where: Path, hook=None) -> tuple[pl.DataFrame, dict]:
        return atft.train_atft(df, FEATURES, cfg, HORIZONS, folds, seed=7, model_dir=where, on_epoch_end=hook)

    full, full_metrics = run(tmp_path / "full")

    def kill_after_two(fold: int, epoch: int, entry: dict) -> None:
        if epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "killed", kill_after_two)
    state = torch.load(tmp_path / "killed" / "checkpoints" / "fold0" / "last.pt", weights_only=False)
    assert state["epoch"] == 2 and not (tmp_path / "killed" / "checkpoints" / "fold0" / "result.json").exists()
    resumed, resumed_metrics = run(tmp_path / "killed")
    assert resumed_metrics["folds"][0]["epochs_run"] == 3
    for h in HORIZONS:
        np.testing.assert_allclose(resumed[f"pred_{h}d"].to_numpy(), full[f"pred_{h}d"].to_numpy(), rtol=1e-4, atol=1e-5)
    assert resumed_metrics["folds"][0]["snapshot_epochs"] == full_metrics["folds"][0]["snapshot_epochs"]
    # A finished fold is not trained again; a folder of other settings is not resumed.
    again, _ = run(tmp_path / "killed", kill_after_two)
    assert again.equals(resumed)
    cfg["loss"]["ic"] = 0.25
    with pytest.raises(InputError, match="other settings"):
        run(tmp_path / "killed")


def test_out_of_memory_halves_the_days_per_batch(caplog: pytest.LogCaptureFixture) -> None:
    df = dataset(seed=3)
    panel = Panel(df, FEATURES, HORIZONS)
    panel.set_features(FoldNormalizer.fit(df, FEATURES, panel.dates[:80]), df)
    settings = atft.TrainSettings.from_mapping(model_cfg(days_per_batch=4, phases=[
        {"name": "baseline", "epochs": 1, "adaptive_norm": False, "gat": False}])["training"], seed=1)
    cfg = model_cfg()
    arch = atft.ATFTConfig.from_mapping(cfg["architecture"], n_features=len(FEATURES), horizons=HORIZONS, seq_len=6)
    loss = atft.LossConfig.from_mapping(cfg["loss"], arch.quantiles, HORIZONS)
    trainer = atft.FoldTrainer(panel, 0, list(range(20, 80)), list(range(100, 110)), arch, loss, settings)
    real_forward, sizes = trainer.model.forward, []

    def forward_that_fits_one_day(x, *args):
        sizes.append(x.shape[0])
        if x.shape[0] > N_CODES:  # the error CUDA raises; injected here so that CPU runs test the retry
            raise torch.OutOfMemoryError("CUDA out of memory (injected)")
        return real_forward(x, *args)

    real_step, trained_days = trainer._step, []

    def step_recording_days(batch, *args):
        out = real_step(batch, *args)
        trained_days.extend(np.unique(batch.day_index).tolist())
        return out

    trainer.forward = forward_that_fits_one_day
    trainer._step = step_recording_days
    trainer.run()
    assert trainer.days_per_batch == 1 and trainer.epoch == 1
    assert sizes[:3] == [4 * N_CODES, 2 * N_CODES, N_CODES]
    # Every fitting day trained on exactly once, though later batches were already being built (prefetch).
    assert sorted(trained_days) == list(range(20, 80))
    assert "out of memory with 4 days per batch; retrying with 2" in caplog.text

    trainer.forward = lambda x, *a: (_ for _ in ()).throw(torch.OutOfMemoryError("injected"))
    trainer.phase_index = 0
    with pytest.raises(GogokuError, match="single trading day"):
        trainer.run()


def test_batches_built_ahead_train_exactly_as_batches_built_inline() -> None:
    df = dataset(seed=4)
    cfg = model_cfg()
    arch = atft.ATFTConfig.from_mapping(cfg["architecture"], n_features=len(FEATURES), horizons=HORIZONS, seq_len=6)
    loss = atft.LossConfig.from_mapping(cfg["loss"], arch.quantiles, HORIZONS)
    runs = []
    for prefetch in (0, 3):
        panel = Panel(df, FEATURES, HORIZONS)
        panel.set_features(FoldNormalizer.fit(df, FEATURES, panel.dates[:80]), df)
        settings = atft.TrainSettings.from_mapping(model_cfg(days_per_batch=3, prefetch=prefetch, phases=[
            {"name": "baseline", "epochs": 2, "adaptive_norm": True, "gat": False}])["training"], seed=1)
        trainer = atft.FoldTrainer(panel, 0, list(range(20, 80)), list(range(100, 110)), arch, loss, settings)
        trainer.run()
        runs.append(trainer)
    inline, ahead = runs
    for key, value in inline.model.state_dict().items():
        assert torch.equal(value, ahead.model.state_dict()[key]), key
    assert [e["loss"] for e in inline.history] == [e["loss"] for e in ahead.history]
    entry = ahead.history[-1]  # where the epoch went, in each epoch's history entry
    parts = [entry[f"time_{part}_s"] for part in atft.STEP_TIMES]
    assert all(p >= 0 for p in parts) and entry["time_forward_s"] > 0 and entry["time_backward_s"] > 0
    assert sum(parts) <= entry["epoch_s"] + 1e-6 and entry["time_validate_s"] > 0
    with pytest.raises(InputError, match="prefetch"):
        atft.TrainSettings.from_mapping(model_cfg(prefetch=-1)["training"], seed=1)


def test_folds_trained_in_parallel_processes_assemble_into_the_same_run(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    path = write_synthetic(tmp_path)
    out = tmp_path / "parallel"
    env = {**os.environ, "GOGOKU_TORCH_THREADS": "1", "GOGOKU_DATA_ROOT": str(tmp_path)}
    cmd = [sys.executable, "-m", "gogoku.cli", "train", "--dataset", str(path), "--model", "atft_tiny", "--out", str(out)]
    procs = [subprocess.Popen([*cmd, "--fold", str(k), *SMALL], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for k in (0, 1)]
    for k, proc in enumerate(procs):
        stdout, stderr = proc.communicate(timeout=600)
        assert proc.returncode == 0, stderr[-2000:]
        assert json.loads(stdout.strip().splitlines()[-1])["folds_trained"] == [k]
    assert not (out / "metrics.json").exists()  # a fold-only run writes no metrics
    assembled = train(path, "atft_tiny", out, SMALL)  # loads both folds, trains nothing
    single = train(path, "atft_tiny", tmp_path / "single", SMALL)
    a = pl.read_parquet(Path(assembled["predictions"]))
    b = pl.read_parquet(Path(single["predictions"]))
    assert a.select("Code", "Date", "fold").equals(b.select("Code", "Date", "fold"))
    for h in HORIZONS:
        np.testing.assert_allclose(a[f"pred_{h}d"].to_numpy(), b[f"pred_{h}d"].to_numpy(), rtol=1e-4, atol=1e-5)
    with pytest.raises(InputError, match="folds are \\[0, 1\\]"):
        train(path, "atft_tiny", out, SMALL, only_folds=[2])
    with pytest.raises(InputError, match="needs --out"):
        train(path, "atft_tiny", None, SMALL, only_folds=[0])
    with pytest.raises(InputError, match="every fold in one run"):
        train(path, "lightgbm", out, SMALL[:4], only_folds=[0])


def test_ablate_trains_each_variant_and_the_baseline_on_the_same_folds(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from gogoku.cli import main

    path = write_synthetic(tmp_path)
    one_epoch = "model.training.phases=[{name:all,epochs:1,adaptive_norm:true,gat:true}]"
    argv = ["ablate", "--dataset", str(path), "--model", "atft_tiny", "--out", str(tmp_path / "ablation"),
            "--variants", "full,no_gat", "--bootstrap", "50", "--max-lag", "3", "--min-names", "5", *SMALL, one_epoch]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result["trained"]) == {"full", "no_gat", "lightgbm"}
    assert list(result["models"]) == ["atft_tiny (full)", "atft_tiny (no_gat)", "blend", "lightgbm"]  # sorted keys
    blend = json.loads((tmp_path / "ablation" / "blend" / "metrics.json").read_text())
    assert set(blend["components"]) == {"atft_tiny", "lightgbm"}  # full + the first baseline
    metrics = {name: json.loads((tmp_path / "ablation" / name / "metrics.json").read_text())
               for name in ("full", "no_gat", "lightgbm")}
    # The switch turns the graph off in the phase that had it; the schedule is the same.
    assert [(p["name"], p["epochs"], p["gat"], p["adaptive_norm"]) for p in metrics["full"]["phases"]] == [("all", 1, True, True)]
    assert [(p["name"], p["epochs"], p["gat"], p["adaptive_norm"]) for p in metrics["no_gat"]["phases"]] == [("all", 1, False, True)]
    # model.* overrides went to the network only; the splits to every model: the same test blocks.
    blocks = {name: [(f["test_start"], f["test_end"]) for f in m["folds"]] for name, m in metrics.items()}
    assert blocks["full"] == blocks["no_gat"] == blocks["lightgbm"] and len(blocks["full"]) == 2
    lgb_config = yaml.safe_load((tmp_path / "ablation" / "lightgbm" / "config.yaml").read_text())
    assert lgb_config["model"]["name"] == "lightgbm" and lgb_config["splits"]["min_train"] == 100
    table = (tmp_path / "ablation" / "evaluation" / "report.md").read_text()
    assert "| 5d | atft_tiny (no_gat) |" in table and "| 5d | lightgbm |" in table and "| 5d | blend |" in table
    assert main(argv) == 0  # a rerun trains nothing and evaluates again
    assert json.loads(capsys.readouterr().out)["trained"] == {}
    with pytest.raises(InputError, match="--variants"):
        from gogoku.evaluate.ablation import run_ablation

        run_ablation(str(path), "atft_tiny", tmp_path / "x", ["no_graph"])
