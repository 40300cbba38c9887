"""The point-in-time property of the daily prediction cycle: the features of a day D built from the raw
cache with only the usual lookback before D (`gogoku.predict.day_features`, what `gogoku features
daily` and `gogoku predict` run) equal the rows of D in a full dataset build over the year, for every
feature; so do the model's scores. It holds because every feature of D reads at most
FEATURE_MEMORY_DAYS of raw history (gogoku.features.memory), less than the LOOKBACK_DAYS that both
builds read before their first day.

The cache is filled through the built-in simulator (standard plan, 30 stocks; a seed whose market has a
listing in October 2024 and a delisting in February 2024) for every standard source but the index
options (1.3 million rows over two years, minutes to fetch; their features read 60 sessions and are
absent from both builds here). Then, as the pipeline runs them: `gogoku dataset build` (offline) over
2024, `gogoku train` with refit, `gogoku model register` / `promote`, and for several days D
`day_features` and `predict_day`.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from gogoku import calendar as cal
from gogoku.config import Settings
from gogoku.dataset.inputs import CORE_SOURCES, LOOKBACK_DAYS
from gogoku.features.family_groups import FAMILY_SOURCES
from gogoku.features.memory import FEATURE_MEMORY_DAYS
from gogoku.jquants.endpoints import endpoint
from gogoku.predict import DEFAULT_MIN_HISTORY, DEFAULT_SESSIONS, day_features, load_model, predict_day

pytestmark = pytest.mark.integration

D = dt.date
PLAN = "standard"
START, END = D(2024, 1, 4), D(2024, 12, 30)
# The full build's first day; the first session after Golden Week; the first session after a
# three-day weekend; a month end (the stock listed on 2024-10-01 has 22 sessions); the last day.
DAYS = (START, D(2024, 5, 7), D(2024, 9, 17), D(2024, 10, 31), END)
IPO = D(2024, 10, 1)
# The earliest day any build here reads: day_features of START reads DEFAULT_SESSIONS sessions up to
# it and LOOKBACK_DAYS before those.
CACHE_START = cal.add_business_days(START, -(DEFAULT_SESSIONS - 1)) - dt.timedelta(days=LOOKBACK_DAYS)
SOURCES = [s for s in (*CORE_SOURCES, *FAMILY_SOURCES) if PLAN in endpoint(s).plans and s != "index_option"]
ENV = {"JQUANTS_PLAN_TIER": PLAN, "GOGOKU_SIM_STOCKS": "30", "GOGOKU_SIM_SEED": "27", "JQUANTS_API_VERSION": "v2"}
UNSET = ("JQUANTS_API_URL", "GOGOKU_LOCAL_CACHE", "JQUANTS_RATE_LIMITER", "GOGOKU_SIM_PLAN_WINDOWS",
         "JQUANTS_RATE_LIMIT")
TRAIN = ["splits.n_splits=2", "splits.min_train=120", "splits.min_test=40", "splits.embargo=20",
         "model.num_boost_round=20", "model.params.num_threads=1", "model.params.min_data_in_leaf=50", "refit=true"]
KEYS = ["Code", "Date"]


def cli(argv: list[str], result_file: Path) -> dict[str, Any]:
    from gogoku.cli import main

    assert main(["--result-file", str(result_file), *argv]) == 0, argv
    return json.loads(result_file.read_text())


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The filled cache, the full dataset and a promoted LightGBM champion trained on it."""
    root = tmp_path_factory.mktemp("pit")
    with pytest.MonkeyPatch.context() as mp:
        for name in UNSET:
            mp.delenv(name, raising=False)
        for name, value in {**ENV, "GOGOKU_DATA_ROOT": str(root / "data")}.items():
            mp.setenv(name, value)
        out = root / "result.json"
        cli(["cache", "refresh", "--sources", ",".join(SOURCES), "--start", str(CACHE_START), "--end", str(END)], out)
        built = cli(["dataset", "build", "--start", str(START), "--end", str(END), "--offline"], out)
        cli(["train", "--model", "lightgbm", "--run-name", "pit", *TRAIN], out)
        cli(["model", "register", "--model-dir", "pit"], out)
        cli(["model", "promote", "pit", "--force"], out)
        settings = Settings.from_env()
        full = pl.read_parquet(built["uri"])
        manifest = json.loads(Path(built["manifest"]).read_text())
        yield {"settings": settings, "full": full, "manifest": manifest}


def feature_names(manifest: dict[str, Any]) -> list[str]:
    return [f["name"] if isinstance(f, dict) else f for f in manifest["features"]]


def test_the_memory_fits_the_lookback() -> None:
    assert FEATURE_MEMORY_DAYS < LOOKBACK_DAYS


@pytest.mark.parametrize("day", DAYS, ids=str)
def test_the_features_of_a_day_equal_the_full_builds(world: dict[str, Any], day: dt.date) -> None:
    full, names = world["full"], feature_names(world["manifest"])
    frame, manifest = day_features(world["settings"], day)
    assert feature_names(manifest) == names
    assert "options" in manifest["absent_groups"]  # not cached here (see the module docstring)
    want = full.filter(pl.col("Date") == day).select(*KEYS, *names).sort(KEYS)
    got = frame.filter(pl.col("Date") == day).select(*KEYS, *names).sort(KEYS)
    assert want.height >= 25
    # Every feature column, the nulls included, as the Float32 the dataset stores.
    assert_frame_equal(got, want, check_exact=False, rtol=1e-5, atol=1e-7)
    # The sessions before D that a sequence model reads are the full build's rows too (from START on).
    earlier = frame.filter(pl.col("Date").is_between(START, day)).select(*KEYS, *names).sort(KEYS)
    assert_frame_equal(earlier, full.filter(pl.col("Date").is_between(earlier["Date"].min(), day))
                       .select(*KEYS, *names).sort(KEYS), check_exact=False, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("day", DAYS, ids=str)
def test_the_scores_of_a_day_equal_the_full_builds(world: dict[str, Any], day: dt.date) -> None:
    settings, full = world["settings"], world["full"]
    result = predict_day(settings, day)
    pred = pl.read_parquet(result["uri"]).sort("Code")
    _, description, scorer = load_model(settings, None)
    horizons = [int(h) for h in description["horizons"]]
    # Priced sessions of each stock up to D in the raw cache (which starts long before any D).
    quotes = pl.read_parquet(Path(settings.data_root) / "raw" / "daily_quotes" / "*.parquet")
    sessions = (quotes.filter(pl.col("Date") <= day, pl.col("AdjustmentClose").is_not_null())
                .unique(KEYS).group_by("Code").len())
    rows = full.filter(pl.col("Date") == day).join(sessions, on="Code")
    scored = rows.filter(pl.col("len") >= DEFAULT_MIN_HISTORY)
    want = scorer.score(scored).drop("Date").sort("Code")
    got = pred.filter(pl.col("Code").is_in(scored["Code"].implode())).select(want.columns)
    assert got.height == want.height > 20
    assert_frame_equal(got, want, check_exact=False, rtol=1e-6, atol=1e-9)
    assert result["scored"] == want.height
    # Every other stock listed on D has a null score and says why: too little history, or no bar on D.
    rest = pred.filter(~pl.col("Code").is_in(scored["Code"].implode()))
    assert rest.select([f"score_{h}d" for h in horizons]).null_count().row(0) == (rest.height,) * len(horizons)
    assert rest["reason"].null_count() == 0
    young = rows.filter(pl.col("len") < DEFAULT_MIN_HISTORY)
    priced = pl.col("Code").is_in(rows["Code"].implode())
    assert sorted(rest.filter(priced)["Code"]) == sorted(young["Code"])
    assert (rest.filter(~priced)["reason"] == f"no daily bar on {day}").all()
    if day == D(2024, 10, 31):
        # The stock listed on 2024-10-01: 22 sessions, no score.
        (code, n), = young.select("Code", "len").rows()
        assert full.filter(pl.col("Code") == code)["Date"].min() == IPO and n == 22
        assert pred.filter(pl.col("Code") == code)["reason"].item() == (
            f"only {n} sessions of history (at least {DEFAULT_MIN_HISTORY} needed)")


def test_a_blend_of_two_runs_scores_a_day_through_predict(world: dict[str, Any], tmp_path: Path) -> None:
    settings, full = world["settings"], world["full"]
    models = Path(settings.data_root) / "models"
    out = tmp_path / "result.json"
    cli(["train", "--model", "lightgbm", "--run-name", "pit_leaves7", *TRAIN, "model.params.num_leaves=7"], out)
    store = settings.store  # the runs by their data-root URIs, the blend into <data root>/models/pit_blend
    blend = cli(["blend", "--runs", store.uri("models/pit"), store.uri("models/pit_leaves7"), "--run-name", "pit_blend"],
                out)
    assert blend["final"] and set(blend["components"]) == {"lightgbm_pit", "lightgbm_pit_leaves7"}
    assert blend["model_dir"] == store.uri("models/pit_blend") and (models / "pit_blend" / "metrics.json").is_file()
    cli(["model", "register", "--model-dir", "pit_blend"], out)
    result = predict_day(settings, END, model="pit_blend")
    pred = pl.read_parquet(result["uri"]).sort("Code")
    _, description, scorer = load_model(settings, "pit_blend")
    assert description["kind"] == "blend"
    scored = pred.filter(pl.col("score_5d").is_not_null())["Code"]
    want = scorer.score(full.filter(pl.col("Code").is_in(scored.implode())), END).drop("Date").sort("Code")
    got = pred.filter(pl.col("Code").is_in(scored.implode())).select(want.columns)
    assert got.height == want.height == result["scored"] > 20
    assert_frame_equal(got, want, check_exact=False, rtol=1e-6, atol=1e-9)
    # Rank scores: the day's blended scores lie in [-0.5, 0.5] and spread over the names.
    assert got["score_5d"].min() >= -0.5 and got["score_5d"].max() <= 0.5 and got["score_5d"].n_unique() > 10


def test_sim_graph_compares_the_daily_graphs_with_the_latent_peers(world: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    report = cli(["sim", "graph", "--dataset", "latest", "--model", "atft_tiny"], out)
    assert report["stocks"] >= 25 and report["latent_pairs"] > report["stocks"]  # up to 4 peers each, in the dataset
    assert report["days_checked"] >= 10 and report["graph"]["lookback"] == 30
    assert 0 <= report["precision"] <= 1 and 0 < report["chance_any_pair"] < report["chance_same_sector_pair"]
    wider = cli(["sim", "graph", "--dataset", "latest", "--model", "atft_tiny", "model.graph.sector_peers=3"], out)
    assert wider["edges_per_stock"] >= report["edges_per_stock"] and wider["same_sector_share"] > report["same_sector_share"]
    # A dataset that did not come from the simulator has no latent graph to compare with.
    manifest = Path(world["settings"].data_root) / "datasets"
    fake = tmp_path / "datasets"
    fake.mkdir()
    for path in manifest.glob("ml_dataset_*"):
        text = path.read_bytes()
        if path.name.endswith(".manifest.json"):
            data = json.loads(text)
            data["origin"] = {"api": "jquants"}
            text = json.dumps(data).encode()
        (fake / path.name).write_bytes(text)
    from gogoku.cli import main

    dataset = next(fake.glob("ml_dataset_*.parquet"))
    assert main(["sim", "graph", "--dataset", str(dataset), "--model", "atft_tiny"]) == 2
