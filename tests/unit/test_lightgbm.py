"""LightGBM baseline and `gogoku.train.run.train` on small synthetic datasets."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import lightgbm as lgb
import numpy as np
import polars as pl
import pytest
import yaml

from gogoku.baselines import lightgbm as gbm
from gogoku.calendar import business_days
from gogoku.dataset.manifest import make_manifest, write_dataset
from gogoku.dataset.splits import validation_split, walk_forward_splits
from gogoku.errors import InputError
from gogoku.train.run import train

HORIZONS = (1, 5, 10, 20)
DAYS = business_days(dt.date(2022, 1, 4), dt.date(2023, 9, 29))
N_CODES = 80
# One thread: the suite shares a small machine, where OpenMP threads spin against each other.
FAST = {"num_leaves": 7, "min_data_in_leaf": 50, "learning_rate": 0.1, "num_threads": 1}
FEATURES = ["signal", "noise_a", "noise_b", "day_level"]


def dataset(planted: bool, seed: int = 0, planted_from: dt.date | None = None) -> pl.DataFrame:
    """Targets = strength * signal + noise (independent per horizon; strength 0 = pure noise).

    With `planted_from`, the signal feature is 0 before that date and drives the targets only
    from that date on: a model that never saw those rows cannot use it.
    """
    rng = np.random.default_rng(seed)
    n = len(DAYS) * N_CODES
    signal = rng.normal(size=n)
    day_level = np.repeat(rng.normal(size=len(DAYS)), N_CODES)  # same for every name of a day
    frame = pl.DataFrame(
        {
            "Code": np.tile([f"{1300 + i}0" for i in range(N_CODES)], len(DAYS)),
            "Date": np.repeat(np.array(DAYS, dtype="datetime64[D]"), N_CODES),
            "signal": signal, "noise_a": rng.normal(size=n), "noise_b": rng.normal(size=n), "day_level": day_level,
        }
    ).with_columns(pl.col("Date").cast(pl.Date), pl.col(FEATURES).cast(pl.Float32))
    on = np.ones(n, dtype=bool) if planted_from is None else (frame["Date"] >= planted_from).to_numpy()
    signal = signal * on
    frame = frame.with_columns(pl.Series("signal", signal, dtype=pl.Float32))
    strength = 0.01 if planted else 0.0
    targets = {
        f"target_{h}d": strength * np.sqrt(h) * signal + 0.01 * np.sqrt(h) * rng.normal(size=n) + 0.002 * day_level
        for h in HORIZONS
    }
    return frame.with_columns(pl.Series(k, v) for k, v in targets.items()).sort("Code", "Date")


def folds(df: pl.DataFrame) -> list:
    return walk_forward_splits(df["Date"].unique().to_list(), n_splits=3, embargo=20, min_train=150, min_test=40)


def run(df: pl.DataFrame, **kw) -> tuple[pl.DataFrame, dict]:
    return gbm.train_lightgbm(df, FEATURES, HORIZONS, folds(df), FAST, num_boost_round=60, early_stopping_rounds=10, **kw)


def test_planted_signal_is_found() -> None:
    preds, metrics = run(dataset(planted=True))
    for h in HORIZONS:
        m = metrics["horizons"][f"{h}d"]
        assert m["rank_ic_mean"] > 0.4, (h, m["rank_ic_mean"])
        assert m["hit_rate"] > 0.95 and m["ls_sharpe"] > 3
        assert all(f["rank_ic_mean"] > 0.3 for f in m["folds"])
    assert preds.columns == ["Code", "Date", "fold", *[c for h in HORIZONS for c in (f"pred_{h}d", f"target_{h}d")]]


def test_pure_noise_gives_no_skill() -> None:
    _, metrics = run(dataset(planted=False, seed=1))
    for h in HORIZONS:
        m = metrics["horizons"][f"{h}d"]
        # ~120 test days x 80 names: the mean daily RankIC has a standard error near 0.01.
        assert abs(m["rank_ic_mean"]) < 0.04, (h, m["rank_ic_mean"])


@pytest.mark.parametrize("target_transform", ["raw", "cs_z"])
def test_other_transforms_also_learn(target_transform: str) -> None:
    _, metrics = run(dataset(planted=True, seed=2), target_transform=target_transform, feature_transform="cs_z")
    assert metrics["horizons"]["5d"]["rank_ic_mean"] > 0.4
    assert metrics["feature_transform"] == "cs_z"


def test_fit_and_early_stopping_use_training_dates_only(monkeypatch: pytest.MonkeyPatch) -> None:
    df = dataset(planted=True, seed=3)
    seen: list[tuple[int, int]] = []
    real_train = lgb.train

    def spy(params, train_set, *args, valid_sets=(), **kw):
        booster = real_train(params, train_set, *args, valid_sets=valid_sets, **kw)
        seen.append((train_set.num_data(), valid_sets[0].num_data()))
        return booster

    monkeypatch.setattr(gbm.lgb, "train", spy)
    _, metrics = run(df)
    expected = []
    for fold in folds(df):
        fit_dates, valid_dates = validation_split(fold.train_dates, 0.15, 20)
        assert not set(fit_dates) & set(fold.test_dates) and not set(valid_dates) & set(fold.test_dates)
        assert max(valid_dates) < min(fold.test_dates) and max(fit_dates) < min(valid_dates)
        expected += [(len(fit_dates) * N_CODES, len(valid_dates) * N_CODES)] * len(HORIZONS)
    assert seen == expected
    for info in metrics["folds"]:
        assert info["fit_end"] < info["valid_start"] <= info["train_end"] < info["test_start"]


def test_one_binning_per_fold_gives_what_a_dataset_per_horizon_gives(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fold's rows are binned once and relabelled per horizon, straight from polars (Arrow): the
    predictions equal those of a numpy matrix and a new Dataset per horizon; a horizon with unlabelled
    rows trains on its labelled rows only."""
    df = dataset(planted=True, seed=5).with_columns(  # missing values in a feature, unlabelled 20d rows
        pl.when(pl.col("noise_a") > 1.5).then(None).otherwise(pl.col("noise_a")).alias("noise_a"),
        pl.when(pl.col("noise_b") > 1.0).then(None).otherwise(pl.col("target_20d")).alias("target_20d"))
    fold = folds(df)[:1]
    seen: list[int] = []
    real_train = lgb.train

    def spy(params, train_set, *args, **kw):
        seen.append(train_set.num_data())
        return real_train(params, train_set, *args, **kw)

    monkeypatch.setattr(gbm.lgb, "train", spy)
    preds, metrics = gbm.train_lightgbm(df, FEATURES, HORIZONS, fold, FAST, num_boost_round=30, early_stopping_rounds=5)
    monkeypatch.setattr(gbm.lgb, "train", real_train)
    fit_dates, valid_dates = validation_split(fold[0].train_dates, 0.15, 20)
    fit = df.filter(pl.col("Date").is_in(fit_dates)).sort("Date", "Code")
    valid = df.filter(pl.col("Date").is_in(valid_dates)).sort("Date", "Code")
    test = df.filter(pl.col("Date").is_in(fold[0].test_dates)).sort("Date", "Code")
    labelled_20d = int(fit["target_20d"].is_not_null().sum())
    assert labelled_20d < fit.height and seen == [fit.height] * 3 + [labelled_20d]
    params = {**gbm.DEFAULT_PARAMS, **FAST}
    x_fit, x_valid = (f.select(FEATURES).to_numpy() for f in (fit, valid))
    got = test.select("Code", "Date").join(preds, on=["Code", "Date"], how="left")
    for h in HORIZONS[:3]:  # every fit row labelled: the same boosters as a Dataset of their own
        y_fit = gbm._label(fit, f"target_{h}d", "cs_rank").to_numpy()
        y_valid = gbm._label(valid, f"target_{h}d", "cs_rank").to_numpy()
        train_set = lgb.Dataset(x_fit, y_fit)
        booster = real_train(params, train_set, num_boost_round=30, valid_sets=[lgb.Dataset(x_valid, y_valid, reference=train_set)],
                             callbacks=[lgb.early_stopping(5, verbose=False)])
        expected = booster.predict(test.select(FEATURES).to_numpy(), num_iteration=booster.best_iteration)
        np.testing.assert_allclose(got[f"pred_{h}d"].to_numpy(), expected, rtol=1e-12)
    entry = metrics["horizons"]["5d"]["folds"][0]
    assert entry["rounds"] >= entry["best_iteration"] >= 1 and entry["boost_s"] > 0


def test_a_signal_only_in_the_last_test_block_is_not_learned() -> None:
    # The signal exists only in the last test block; had its rows leaked into fitting, the last
    # fold would score well. ~40 days x 80 names: standard error near 0.02.
    base = dataset(planted=False, seed=4)
    last = folds(base)[-1]
    df = dataset(planted=True, seed=4, planted_from=last.test_dates[0])
    _, metrics = run(df)
    for h in HORIZONS:
        last_fold = metrics["horizons"][f"{h}d"]["folds"][-1]
        assert abs(last_fold["rank_ic_mean"]) < 0.08, (h, last_fold["rank_ic_mean"])


def test_bad_arguments() -> None:
    df = dataset(planted=False)
    with pytest.raises(InputError, match="missing column"):
        gbm.train_lightgbm(df.drop("target_5d"), FEATURES, HORIZONS, folds(df))
    with pytest.raises(InputError, match="target_transform"):
        run(df, target_transform="log")
    with pytest.raises(InputError, match="embargo shorter than the longest horizon"):
        run(df, valid_embargo=10)
    short = walk_forward_splits(df["Date"].unique().to_list(), n_splits=3, embargo=5, min_train=150, min_test=40)
    with pytest.raises(InputError, match=r"folds \[0, 1, 2\]"):
        gbm.train_lightgbm(df, FEATURES, HORIZONS, short)


def write_synthetic(root: Path) -> Path:
    df = dataset(planted=True, seed=5)
    groups = {"price": ["signal", "noise_a", "noise_b"], "market": ["day_level"]}
    manifest = make_manifest(
        df, groups=groups, targets=[f"target_{h}d" for h in HORIZONS], start=DAYS[0], end=DAYS[-1],
        plan="standard", build={"synthetic": True},
    )
    return write_dataset(df, manifest, root / "datasets")[0]


OVERRIDES = ["splits.n_splits=3", "splits.min_train=150", "splits.min_test=40",
             "model.num_boost_round=40", "model.early_stopping_rounds=10", "model.params.num_leaves=7",
             "model.params.num_threads=1"]


def test_train_writes_models_metrics_predictions_config(tmp_path: Path) -> None:
    path = write_synthetic(tmp_path)
    result = train(path, "lightgbm", tmp_path / "run", OVERRIDES)
    out = Path(result["model_dir"])
    assert out == tmp_path / "run"
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["horizons"]) == {"1d", "5d", "10d", "20d"}
    for m in metrics["horizons"].values():
        for key in ("ic_mean", "rank_ic_mean", "icir", "rank_icir", "hit_rate", "ls_mean", "ls_sharpe", "n_days"):
            assert isinstance(m[key], (int, float)), key
        assert [f["fold"] for f in m["folds"]] == [0, 1, 2]
        assert all("rank_ic_mean" in f and f["best_iteration"] >= 1 for f in m["folds"])
    assert metrics["features"] == FEATURES and len(metrics["folds"]) == 3
    assert result["headline"]["5d"]["rank_ic_mean"] == metrics["horizons"]["5d"]["rank_ic_mean"] > 0.4

    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["splits"]["n_splits"] == 3 and config["model"]["params"]["num_leaves"] == 7
    assert config["model"]["params"]["seed"] == config["seed"]

    preds = pl.read_parquet(out / "predictions.parquet")
    assert preds.select("Code", "Date").is_duplicated().sum() == 0
    # The saved 5d model is the last fold's: it reproduces that fold's predictions.
    booster = lgb.Booster(model_file=str(out / "lightgbm_5d.txt"))
    last = preds.filter(pl.col("fold") == 2).join(pl.read_parquet(path), on=["Code", "Date"])
    again = booster.predict(last.select(FEATURES).to_numpy())
    np.testing.assert_allclose(again, last["pred_5d"].to_numpy(), rtol=1e-6)
    assert json.loads((out / "feature_importance.json").read_text())["5d"]["signal"] > 0


def test_train_defaults_to_latest_dataset_under_the_data_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_synthetic(tmp_path)
    monkeypatch.setenv("GOGOKU_DATA_ROOT", str(tmp_path))
    result = train(None, "lightgbm", None, [*OVERRIDES, "features.groups=[price]", "horizons=[5]"])
    out = Path(result["model_dir"])
    assert out.parent == tmp_path / "models" and out.name.startswith(f"lightgbm_{path.stem}_")
    assert result["n_features"] == 3 and list(result["headline"]) == ["5d"]
    assert sorted(p.name for p in out.glob("lightgbm_*.txt")) == ["lightgbm_5d.txt"]


def test_train_rejects_bad_requests(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_synthetic(tmp_path)
    with pytest.raises(InputError, match="model 'atft'"):
        train(path, "atft", tmp_path / "x", [])
    with pytest.raises(InputError, match="overrides"):
        train(path, "lightgbm", tmp_path / "x", ["splits.no_such_key=1"])
    with pytest.raises(InputError, match="unknown group"):
        train(path, "lightgbm", tmp_path / "x", ["features.groups=[flow]"])
    empty = tmp_path / "no_datasets_yet"
    empty.mkdir()
    monkeypatch.setenv("GOGOKU_DATA_ROOT", str(empty))
    with pytest.raises(InputError, match="--dataset latest: .*latest_standard.json: no standard dataset has been built"):
        train(None, "lightgbm", tmp_path / "x", [])
    with pytest.raises(InputError, match="--dataset .*no_datasets_yet: expected a dataset .parquet file"):
        train(empty, "lightgbm", tmp_path / "x", [])
