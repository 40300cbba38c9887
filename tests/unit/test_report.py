"""`gogoku evaluate` and `gogoku report` on real model folders, trained here by `gogoku.train.run.train`
on a small dataset whose targets are the simulator's planted expected returns plus noise, so the
oracle row (the planted returns themselves) is the ceiling the model is read against."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from gogoku.cli import main
from gogoku.dataset.manifest import make_manifest, write_dataset
from gogoku.dataset.targets import add_targets
from gogoku.errors import InputError
from gogoku.evaluate.metrics import Bootstrap, daily_ic, evaluate_predictions
from gogoku.evaluate.report import (
    ORACLE,
    EvaluationSettings,
    evaluate_models,
    load_test_rows,
    resolve_model_dirs,
    summarize_runs,
)
from gogoku.sim.market import SimMarket
from gogoku.train.run import train

SEED, STOCKS = 11, 40
START, END = dt.date(2022, 1, 4), dt.date(2023, 9, 29)
HORIZONS = (1, 5)
OVERRIDES = ["horizons=[1,5]", "splits.n_splits=2", "splits.min_train=150", "splits.min_test=60",
             "model.num_boost_round=30", "model.early_stopping_rounds=10", "model.params.num_leaves=7",
             "model.params.min_data_in_leaf=50", "model.params.num_threads=1"]
FAST = EvaluationSettings(max_lag=8, bootstrap=Bootstrap(resamples=200))
PNG = b"\x89PNG\r\n\x1a\n"


def planted_dataset(root: Path, simulator: bool = True, origin_seed: int = SEED) -> Path:
    """The simulator's forward returns as targets (from its adjusted closes, as the dataset build
    computes them); `signal` = the planted 5-day expectation plus noise (a model learns part of
    it); `noise` carries nothing."""
    market = SimMarket(seed=SEED, n_stocks=STOCKS, end=END)
    quotes = market.daily_quotes(START, END).select("Code", "Date", "AdjustmentClose").sort("Code", "Date")
    df = add_targets(quotes, HORIZONS).collect().join(market.truth(), on=["Code", "Date"], how="inner")
    rng = np.random.default_rng(0)
    n = df.height
    scale = float(df["exp_ret_5d"].std())  # type: ignore[arg-type]
    df = df.select(
        "Code", "Date",
        (pl.col("exp_ret_5d") + scale * pl.Series(rng.normal(size=n))).cast(pl.Float32).alias("signal"),
        pl.Series("noise", rng.normal(size=n), dtype=pl.Float32),
        *[f"target_{h}d" for h in HORIZONS],
    ).sort("Code", "Date")
    manifest = make_manifest(
        df, groups={"price": ["signal"], "market": ["noise"]}, targets=[f"target_{h}d" for h in HORIZONS],
        start=START, end=END, plan="standard", build={"synthetic": True},
    )
    if simulator:
        manifest["origin"] = {"api": "simulator", "seed": origin_seed, "stocks": STOCKS, "plan": "standard"}
    return write_dataset(df, manifest, root / ("datasets" if simulator else "datasets_real"))[0]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One run folder with two model folders: all features, and the `noise` group alone."""
    root = tmp_path_factory.mktemp("eval")
    dataset = planted_dataset(root)
    train(dataset, "lightgbm", root / "run" / "all_features", OVERRIDES)
    train(dataset, "lightgbm", root / "run" / "noise_only", [*OVERRIDES, "features.groups=[market]"])
    return root / "run"


def test_evaluate_writes_the_evaluation_figures_and_table(run_dir: Path, tmp_path: Path) -> None:
    evaluation = evaluate_models(resolve_model_dirs([run_dir], tmp_path), tmp_path / "out", FAST)
    assert set(evaluation["models"]) == {"lightgbm (all_features)", "lightgbm (noise_only)"}
    written = json.loads((tmp_path / "out" / "evaluation.json").read_text())
    assert written["models"].keys() == evaluation["models"].keys() and written["settings"]["cost_bps"] == 10.0

    model = evaluation["models"]["lightgbm (all_features)"]
    trained = json.loads((run_dir / "all_features" / "metrics.json").read_text())
    predictions = pl.read_parquet(run_dir / "all_features" / "predictions.parquet")
    assert model["test_rows"] == predictions.height and model["n_folds"] == 2
    for h in ("1d", "5d"):
        s = model["horizons"][h]
        # The same test rows as training reported on: the same point estimates.
        assert s["rank_ic_mean"] == pytest.approx(trained["horizons"][h]["rank_ic_mean"])
        assert s["rank_ic_mean_ci"][0] < s["rank_ic_mean"] < s["rank_ic_mean_ci"][1]
        assert s["ls_sharpe_net"] < s["ls_sharpe_gross"] and s["ls_turnover"] > 0
        assert [d["lag"] for d in s["ic_decay"]] == list(range(1, 9))
        # The oracle is the ceiling: the model recovers part of it, never more on these rows.
        oracle = evaluation["oracle"]["horizons"][h]
        assert s["oracle_rank_ic_mean"] == pytest.approx(oracle["rank_ic_mean"])
        assert s["rank_ic_mean"] < oracle["rank_ic_mean"]
        assert s["rank_ic_fraction_of_oracle"] == pytest.approx(s["rank_ic_mean"] / oracle["rank_ic_mean"])
    # The 5-day signal is what the model saw: it shows in the 5-day fraction.
    assert model["horizons"]["5d"]["rank_ic_mean_ci"][0] > 0
    assert model["horizons"]["5d"]["rank_ic_fraction_of_oracle"] > 0.15
    noise = evaluation["models"]["lightgbm (noise_only)"]["horizons"]["5d"]
    assert abs(noise["rank_ic_mean"]) < 0.05 and noise["rank_ic_fraction_of_oracle"] < 0.3

    # Signal families: the model that saw (noisy) planted returns follows the families the oracle follows.
    families = evaluation["families"]
    assert list(families["exposure"]) == [ORACLE, "lightgbm (all_features)", "lightgbm (noise_only)"]
    assert set(families["family_oracle"]["5d"]) == {"reversal", "momentum", "quality", "leadlag", "pead", "margin", "flow"}
    for f, entry in families["family_oracle"]["5d"].items():
        low, high = entry["rank_ic_mean_ci"]
        assert low < entry["rank_ic_mean"] < high
        assert entry["rank_ic_mean"] < evaluation["oracle"]["horizons"]["5d"]["rank_ic_mean"], f  # a part of the whole
        truth, seen = families["exposure"][ORACLE]["5d"][f], families["exposure"]["lightgbm (all_features)"]["5d"][f]
        if truth > 0.3:
            assert 0.3 * truth < seen < truth, (f, truth, seen)
        assert abs(families["exposure"]["lightgbm (noise_only)"]["5d"][f]) < 0.1, f
    for name in ("cumulative_long_short", "rank_ic_by_horizon", "ic_decay", "family_exposure"):
        path = Path(evaluation["figures"][name])
        assert path.parent == tmp_path / "out" and path.read_bytes()[:8] == PNG
    table, family_table = (tmp_path / "out" / "report.md").read_text().split("Signal families")
    rows = [line for line in table.splitlines() if line.startswith("| 1d") or line.startswith("| 5d")]
    assert len(rows) == 6 and sum(ORACLE in r for r in rows) == 2
    assert sum(line.startswith("| 5d | leadlag |") for line in family_table.splitlines()) == 1
    assert "10 bps" in table and "| horizon | model | RankIC [95% CI] | of oracle |" in table


def test_exposure_is_the_mean_daily_rank_correlation_with_each_part() -> None:
    from gogoku.evaluate.families import exposures, families_of, format_families

    d1, d2 = dt.date(2024, 1, 4), dt.date(2024, 1, 5)
    frame = pl.DataFrame({
        "Code": ["a", "b", "c"] * 2, "Date": [d1] * 3 + [d2] * 3,
        "pred_1d": [1.0, 2.0, 3.0, 1.0, 2.0, 3.0],
        "contrib_up_1d": [1.0, 2.0, 3.0, 1.0, 3.0, 2.0],  # rank correlations 1 and 0.5
        "contrib_down_1d": [3.0, 2.0, 1.0, 2.0, 1.0, 3.0],  # -1 and 0.5
    })
    assert families_of(frame) == ["up", "down"]
    out = exposures(frame, [1], min_names=3)
    assert out == {"1d": {"up": pytest.approx(0.75), "down": pytest.approx(-0.25)}}
    table = format_families({"family_oracle": {"1d": {"up": {"rank_ic_mean": 0.1, "rank_ic_mean_ci": [0.05, 0.15]}}},
                             "exposure": {"m": out}})
    assert "| 1d | up | 0.100 [0.050, 0.150] | 0.750 |" in table


def test_only_test_rows_are_evaluated(run_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "lightgbm_copy"
    shutil.copytree(run_dir / "all_features", copy)
    predictions = pl.read_parquet(copy / "predictions.parquet")
    # Rows without a fold (e.g. training-period predictions) are not test rows: a perfect
    # "prediction" there must change nothing.
    extra = predictions.with_columns(
        pl.col("Date") - pl.duration(days=400), pl.lit(None, dtype=pl.Int32).alias("fold"),
        pl.col("target_5d").alias("pred_5d"),
    )
    pl.concat([predictions, extra]).write_parquet(copy / "predictions.parquet")
    assert load_test_rows(copy).height == predictions.height
    with_extra = evaluate_models([copy], tmp_path / "a", FAST)["models"]["lightgbm"]["horizons"]["5d"]
    plain = evaluate_predictions(predictions, "pred_5d", "target_5d", 5, bootstrap=FAST.bootstrap)
    assert with_extra["rank_ic_mean"] == pytest.approx(plain["rank_ic_mean"])
    assert with_extra["ls_sharpe_net"] == pytest.approx(plain["ls_sharpe_net"])


def test_cli_evaluate_and_report_compare_the_models(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOGOKU_DATA_ROOT", str(tmp_path))
    a, b = run_dir / "all_features", run_dir / "noise_only"
    code = main(["evaluate", "--model-dir", str(a), "--model-dir", str(b), "--out", str(tmp_path / "cli"),
                 "--bootstrap", "100", "--max-lag", "5", "--cost-bps", "20"])
    assert code == 0
    out = capsys.readouterr().out.strip().splitlines()
    result = json.loads(out[-1])
    assert result["evaluation"] == str(tmp_path / "cli" / "evaluation.json")
    assert set(result["rank_ic"]) == {"lightgbm (all_features)", "lightgbm (noise_only)", ORACLE}
    assert any("20 bps" in line for line in out)
    settings = json.loads((tmp_path / "cli" / "evaluation.json").read_text())["settings"]
    assert settings["cost_bps"] == 20 and settings["bootstrap"]["resamples"] == 100 and settings["max_lag"] == 5

    assert main(["report", "--model-dir", str(run_dir)]) == 0
    printed = capsys.readouterr().out
    assert "lightgbm (all_features)" in printed and "lightgbm (noise_only)" in printed and ORACLE in printed
    assert "net of 10 bps" in printed and "fraction of the oracle" in printed
    assert json.loads(printed.strip().splitlines()[-1])["model_dirs"] == [str(a.resolve()), str(b.resolve())]

    assert main(["evaluate", "--model-dir", str(tmp_path / "nowhere")]) == 2
    assert "--model-dir" in capsys.readouterr().err


def test_paired_differences_to_a_reference_model(run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = run_dir / "all_features", run_dir / "noise_only"
    reference = "lightgbm (noise_only)"
    assert main(["evaluate", "--model-dir", str(a), "--model-dir", str(b), "--out", str(tmp_path / "diff"),
                 "--bootstrap", "100", "--max-lag", "3", "--reference", reference]) == 0
    capsys.readouterr()
    evaluation = json.loads((tmp_path / "diff" / "evaluation.json").read_text())
    differences = evaluation["differences"]
    assert differences["reference"] == reference and list(differences["models"]) == ["lightgbm (all_features)"]
    # By hand: the mean over the common days of (daily RankIC of a) - (daily RankIC of b).
    rows_a, rows_b = load_test_rows(a), load_test_rows(b)
    for h in (1, 5):
        ic_a = daily_ic(rows_a, f"pred_{h}d", f"target_{h}d").select("Date", "rank_ic")
        ic_b = daily_ic(rows_b, f"pred_{h}d", f"target_{h}d").select("Date", "rank_ic")
        paired = ic_a.join(ic_b, on="Date", suffix="_b").drop_nulls()
        want = (paired["rank_ic"] - paired["rank_ic_b"]).mean()
        got = differences["models"]["lightgbm (all_features)"][f"{h}d"]
        assert got["difference"] == pytest.approx(want) and got["days"] == paired.height
        lo, hi = got["difference_ci"]
        assert 0 < lo < want < hi  # the planted signal against noise: a real difference
    assert f"RankIC - {reference} [95% CI]" in (tmp_path / "diff" / "report.md").read_text()
    # Without a model labelled lightgbm, "auto" compares nothing; an unknown label is refused.
    assert evaluate_models([a, b], tmp_path / "none", FAST)["differences"] is None
    assert main(["evaluate", "--model-dir", str(a), "--model-dir", str(b), "--reference", "lgbm"]) == 2
    assert "--reference lgbm" in capsys.readouterr().err


def test_report_summary_reads_one_model_dir(run_dir: Path) -> None:
    summary = summarize_runs([run_dir / "all_features"])
    assert list(summary["models"]) == ["lightgbm", ORACLE]
    fraction = summary["oracle_fraction"]["lightgbm"]["5d"]
    assert fraction == pytest.approx(
        summary["models"]["lightgbm"]["5d"]["rank_ic_mean"] / summary["models"][ORACLE]["5d"]["rank_ic_mean"]
    )


@pytest.mark.parametrize("simulator", [False, True], ids=["other_origin", "simulator_does_not_reproduce"])
def test_no_oracle_off_the_simulator(tmp_path: Path, simulator: bool, caplog: pytest.LogCaptureFixture) -> None:
    # A manifest naming another seed: that market's returns are not this dataset's targets, so its
    # planted returns would be a false ceiling.
    dataset = planted_dataset(tmp_path, simulator=simulator, origin_seed=SEED + 1)
    out = train(dataset, "lightgbm", tmp_path / "m", [*OVERRIDES, "horizons=[5]"])["model_dir"]
    evaluation = evaluate_models([Path(out)], None, FAST)
    assert evaluation["oracle"] is None
    s = evaluation["models"]["lightgbm"]["horizons"]["5d"]
    assert s["oracle_rank_ic_mean"] is None and s["rank_ic_fraction_of_oracle"] is None
    assert (Path(out) / "evaluation" / "evaluation.json").is_file()
    assert ORACLE not in (Path(out) / "evaluation" / "report.md").read_text()
    assert ("reproduces only 0%" in caplog.text) == simulator
    assert (evaluation["oracle_note"] is not None) == simulator


def test_bad_model_dirs(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no metrics.json"):
        resolve_model_dirs([tmp_path / "empty"], tmp_path)
    with pytest.raises(InputError, match="latest.json"):
        resolve_model_dirs(None, tmp_path)
    model = tmp_path / "m"
    model.mkdir()
    (model / "metrics.json").write_text(json.dumps({"model": "x", "horizons": {"5d": {}}}))
    with pytest.raises(InputError, match="no predictions.parquet"):
        load_test_rows(model)
    pl.DataFrame({"Code": ["13010"], "Date": [START], "pred_5d": [0.1]}).write_parquet(model / "predictions.parquet")
    with pytest.raises(InputError, match="'fold'"):
        load_test_rows(model)
