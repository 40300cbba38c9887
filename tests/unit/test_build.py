"""Dataset build, files, manifest, latest pointer and validation on small synthetic frames."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from gogoku.calendar import business_days
from gogoku.dataset.build import build_dataset, latest_dataset, validate_dataset, write_dataset
from gogoku.dataset.manifest import read_manifest, resolve_dataset
from gogoku.errors import InputError
from gogoku.features.price import PRICE_FEATURES
from gogoku.features.sector import SECTOR_FEATURES
from gogoku.features.topix import MARKET_FEATURES, STOCK_MARKET_FEATURES

HIST_START, START, END = dt.date(2021, 1, 4), dt.date(2023, 6, 1), dt.date(2023, 12, 29)
N_CODES = 25


def make_inputs(first: dt.date = HIST_START, seed: int = 0) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    # Same values for a date whatever `first` is, so that builds can be compared.
    rng = np.random.default_rng(seed)
    days = business_days(HIST_START, END)
    n = len(days)
    mkt = np.cumsum(rng.normal(0, 0.01, n))
    frames = []
    for i in range(N_CODES):
        c = 100 * np.exp(0.8 * mkt + np.cumsum(rng.normal(0, 0.015, n)))
        o = c * np.exp(rng.normal(0, 0.004, n))
        v = rng.integers(1000, 5000, n).astype(float)
        frames.append(
            pl.DataFrame(
                {
                    "Date": days, "Code": f"{1300 + 10 * i}0", "Open": o, "High": np.maximum(c, o) * 1.01,
                    "Low": np.minimum(c, o) * 0.99, "Close": c, "UpperLimit": "0", "LowerLimit": "0", "Volume": v,
                    "TurnoverValue": v * c, "AdjustmentFactor": 1.0,
                }
            ).with_columns(
                pl.col("Open").alias("AdjustmentOpen"), pl.col("High").alias("AdjustmentHigh"),
                pl.col("Low").alias("AdjustmentLow"), pl.col("Close").alias("AdjustmentClose"),
                pl.col("Volume").alias("AdjustmentVolume"),
            )
        )
    quotes = pl.concat(frames).filter(pl.col("Date") >= first)
    listed = pl.DataFrame(
        {
            "Date": dt.date(2022, 4, 1),
            "Code": [f"{1300 + 10 * i}0" for i in range(N_CODES)],
            "MarketCode": ["0111", "0112", "0113"] * 8 + ["0111"],
            "Sector33Code": [("0050", "3050", "5250", "6050")[i % 4] for i in range(N_CODES)],
            "Sector17Code": [str(1 + i % 4) for i in range(N_CODES)],
        }
    )
    t = 2000 * np.exp(mkt)
    topix = pl.DataFrame({"Date": days, "Open": t, "High": t * 1.004, "Low": t * 0.996, "Close": t})
    topix = topix.filter(pl.col("Date") >= first)
    return quotes, listed, topix


@pytest.fixture(scope="module")
def built() -> tuple[pl.DataFrame, dict]:
    q, listed, topix = make_inputs()
    return build_dataset(q, listed, topix, start=START, end=END, plan="standard")


def test_keys_types_range(built: tuple[pl.DataFrame, dict]) -> None:
    df, manifest = built
    assert df.select("Code", "Date").is_duplicated().sum() == 0
    assert df.select("Code", "Date").equals(df.select("Code", "Date").sort("Code", "Date"))
    assert df["Date"].min() == business_days(START, END)[0] and df["Date"].max() == END
    assert df["Code"].n_unique() == N_CODES and df.height == N_CODES * len(business_days(START, END))
    for c in ("Code", "Section", "MarketCode", "Sector33Code", "Sector17Code"):
        assert df.schema[c] == pl.Utf8
    features = [f["name"] for f in manifest["features"]]
    assert all(df.schema[c] == pl.Float32 for c in features)
    assert 150 <= manifest["n_features"] == len(features) <= 400
    assert manifest["feature_groups"] == {
        "price": len(PRICE_FEATURES), "market": len(MARKET_FEATURES), "stock_market": len(STOCK_MARKET_FEATURES),
        "sector": len(SECTOR_FEATURES),
    }
    assert manifest["rows"] == df.height and manifest["codes"] == N_CODES
    assert manifest["range"] == {"start": "2023-06-01", "end": "2023-12-29"}
    assert df["Section"].unique().sort().to_list() == ["TSEGrowth", "TSEPrime", "TSEStandard"]


def test_lookback_warms_long_windows(built: tuple[pl.DataFrame, dict]) -> None:
    df, _ = built
    first_day = df.filter(pl.col("Date") == df["Date"].min())
    for c in (
        "sma_120", "ema_200", "returns_60d", "returns_120d", "beta_60d", "mkt_vol_20d_z", "sec_ret_20d_eq",
        "dist_52w_high", "mom_12_1", "adx_14", "macd_signal", "beta_stability_60d", "sec_vol_20_z", "sec_ret_20d_z",
    ):
        assert first_day[c].null_count() == 0, c
    assert first_day["is_ema200_valid"].to_list() == [1.0] * N_CODES


def test_targets_forward_and_null_at_the_end(built: tuple[pl.DataFrame, dict]) -> None:
    df, _ = built
    q, _, _ = make_inputs()
    a = q.filter(pl.col("Code") == "13000").sort("Date")
    i = a["Date"].to_list().index(dt.date(2023, 6, 1))
    row = df.filter((pl.col("Code") == "13000") & (pl.col("Date") == dt.date(2023, 6, 1)))
    closes = a["AdjustmentClose"].to_list()
    assert row["target_5d"].item() == pytest.approx(closes[i + 5] / closes[i] - 1)
    last = df.filter(pl.col("Date") == END)
    assert last["target_1d"].null_count() == N_CODES  # the future after the data is unknown
    assert df.filter(pl.col("Date") < END)["target_1d"].null_count() == 0
    assert df["target_20d"].null_count() == 20 * N_CODES


def test_extra_history_beyond_the_lookback_changes_nothing(built: tuple[pl.DataFrame, dict]) -> None:
    # 620 calendar days before 2023-06-01 is 2021-09-19: history from 2021-08-02 gives the same frame.
    q, listed, topix = make_inputs(first=dt.date(2021, 8, 2))
    df, _ = build_dataset(q, listed, topix, start=START, end=END)
    assert df.equals(built[0])
    q_short, _, topix_short = make_inputs(first=dt.date(2023, 1, 4))
    short, _ = build_dataset(q_short, listed, topix_short, start=START, end=END)
    assert short.filter(pl.col("Date") == short["Date"].min())["sma_120"].null_count() == N_CODES


def test_unpriced_duplicate_and_holiday_rows(built: tuple[pl.DataFrame, dict]) -> None:
    q, listed, topix = make_inputs()
    dup = q.filter((pl.col("Code") == "13000") & (pl.col("Date") == dt.date(2023, 7, 3)))
    unpriced = q.filter((pl.col("Code") == "13100") & (pl.col("Date") == dt.date(2023, 7, 4))).with_columns(
        pl.lit(None, dtype=pl.Float64).alias("AdjustmentClose")
    )
    holiday = dup.with_columns(pl.lit(dt.date(2023, 7, 17)).alias("Date"))  # Marine Day
    q2 = pl.concat([
        q.filter(~((pl.col("Code") == "13100") & (pl.col("Date") == dt.date(2023, 7, 4)))), dup, unpriced, holiday
    ]).sort("Code", "Date")
    days = business_days(HIST_START, END)
    calendar = pl.DataFrame({"Date": days, "HolidayDivision": "1"})
    df, _ = build_dataset(q2, listed, topix, calendar, start=START, end=END)
    assert df.select("Code", "Date").is_duplicated().sum() == 0
    assert df.filter((pl.col("Code") == "13100") & (pl.col("Date") == dt.date(2023, 7, 4))).is_empty()
    assert df.filter(pl.col("Date") == dt.date(2023, 7, 17)).is_empty()
    assert df.height == built[0].height - 1
    no_cal, _ = build_dataset(q2, listed, topix, start=START, end=END)
    assert no_cal.filter(pl.col("Date") == dt.date(2023, 7, 17)).height == 1


def test_optional_groups() -> None:
    q, listed, topix = make_inputs(first=dt.date(2022, 3, 1))
    fut = pl.DataFrame(
        {"Date": business_days(START, END), "fut_topixf_night_ret": 0.001}
    ).with_columns(pl.col("fut_topixf_night_ret").cast(pl.Float32))
    stmts = pl.DataFrame(
        {
            "DisclosedDate": [dt.date(2023, 8, 10)], "DisclosedTime": ["16:00:00"], "LocalCode": ["13000"],
            "DisclosureNumber": ["1"], "NetSales": [100.0], "OperatingProfit": [9.0],
            "ForecastOperatingProfit": [30.0], "EquityToAssetRatio": [0.5],
        }
    )
    df, manifest = build_dataset(q, listed, topix, statements=stmts, futures_features=fut, start=START, end=END, plan="premium")
    assert manifest["feature_groups"]["futures"] == 1 and manifest["feature_groups"]["statements"] == 5
    assert manifest["plan"] == "premium"
    assert df["fut_topixf_night_ret"].null_count() == 0
    a = df.filter(pl.col("Code") == "13000")
    assert a.filter(pl.col("Date") == dt.date(2023, 8, 10))["is_stmt_valid"].item() == 0.0
    assert a.filter(pl.col("Date") == dt.date(2023, 8, 14))["stmt_op_margin"].item() == pytest.approx(0.09)
    with pytest.raises(InputError, match="futures features"):
        build_dataset(q, listed, topix, futures_features=fut.rename({"fut_topixf_night_ret": "night"}), start=START, end=END)


def test_half_day_in_the_calendar_applies_the_1130_close() -> None:
    # A 10:00 and a 13:00 disclosure on 2023-08-10: on a full session both are usable that day; with the
    # J-Quants calendar marking the day a half-day session (HolidayDivision "2", close 11:30) the 13:00
    # one waits for the next session (08-14, 08-11 being a holiday).
    q, listed, topix = make_inputs(first=dt.date(2022, 3, 1))
    stmts = pl.DataFrame(
        {
            "DisclosedDate": [dt.date(2023, 8, 10)] * 2, "DisclosedTime": ["10:00:00", "13:00:00"],
            "LocalCode": ["13000", "13100"], "DisclosureNumber": ["1", "2"], "NetSales": [100.0, 200.0],
            "OperatingProfit": [9.0, 10.0], "ForecastOperatingProfit": [30.0, 40.0], "EquityToAssetRatio": [0.5, 0.4],
        }
    )
    days = business_days(dt.date(2022, 3, 1), END)

    def valid(division: str) -> list[float]:
        cal = pl.DataFrame({"Date": days, "HolidayDivision": "1"}).with_columns(
            pl.when(pl.col("Date") == dt.date(2023, 8, 10)).then(pl.lit(division)).otherwise("HolidayDivision")
            .alias("HolidayDivision")
        )
        df, _ = build_dataset(q, listed, topix, cal, statements=stmts, start=START, end=END)
        on_day = df.filter(pl.col("Date") == dt.date(2023, 8, 10)).sort("Code")
        return on_day.filter(pl.col("Code").is_in(["13000", "13100"]))["is_stmt_valid"].to_list()

    assert valid("1") == [1.0, 1.0]
    assert valid("2") == [1.0, 0.0]


def test_bad_inputs_name_the_input() -> None:
    q, listed, topix = make_inputs(first=dt.date(2022, 3, 1))
    with pytest.raises(InputError, match="quotes: missing column.*AdjustmentClose"):
        build_dataset(q.drop("AdjustmentClose"), listed, topix, start=START, end=END)
    with pytest.raises(InputError, match="listed: missing column.*Sector33Code"):
        build_dataset(q, listed.drop("Sector33Code"), topix, start=START, end=END)
    with pytest.raises(InputError, match="end .* is before start"):
        build_dataset(q, listed, topix, start=END, end=START)
    with pytest.raises(InputError, match="quotes: no priced rows"):
        build_dataset(q, listed, topix, start=dt.date(2024, 6, 3), end=dt.date(2024, 6, 28))


def test_write_validate_and_latest(tmp_path: Path, built: tuple[pl.DataFrame, dict]) -> None:
    df, manifest = built
    path, meta = write_dataset(df, manifest, tmp_path / "datasets")
    assert path.name == "ml_dataset_standard_20230601_20231229.parquet"
    assert meta.name == "ml_dataset_standard_20230601_20231229.manifest.json"
    assert pl.read_parquet(path).equals(df)
    assert read_manifest(path)["features"] == manifest["features"]
    latest = json.loads((tmp_path / "datasets" / "latest_standard.json").read_text())
    assert latest["dataset"] == path.name and latest["plan"] == "standard"
    assert resolve_dataset(tmp_path / "datasets") == path
    report = validate_dataset(tmp_path / "datasets")
    assert report["valid"] and report["rows"] == df.height and report["n_features"] == manifest["n_features"]
    assert not list((tmp_path / "datasets").glob("*.tmp"))
    assert latest_dataset(tmp_path / "datasets", "standard") == path
    # The same range on another plan is another dataset with its own pointer; the standard one stays.
    light, _ = write_dataset(df, {**manifest, "plan": "light"}, tmp_path / "datasets")
    assert light.name == "ml_dataset_light_20230601_20231229.parquet" and path.is_file()
    assert latest_dataset(tmp_path / "datasets", "light") == light
    assert latest_dataset(tmp_path / "datasets", "standard") == path
    with pytest.raises(InputError, match="latest_premium.json"):
        latest_dataset(tmp_path / "datasets", "premium")
    path.unlink()
    with pytest.raises(InputError, match="does not exist"):
        latest_dataset(tmp_path / "datasets", "standard")


def test_validate_rejects_bad_datasets(tmp_path: Path, built: tuple[pl.DataFrame, dict]) -> None:
    df, manifest = built

    def write(frame: pl.DataFrame, man: dict, sub: str) -> Path:
        return write_dataset(frame, man, tmp_path / sub)[0]

    with pytest.raises(InputError, match="not unique"):
        validate_dataset(write(pl.concat([df, df.head(1)]).sort("Code", "Date"), {**manifest, "rows": df.height + 1}, "dup"))
    with pytest.raises(InputError, match="not sorted"):
        validate_dataset(write(df.sort("Date", "Code"), manifest, "unsorted"))
    leaky = {**manifest, "features": [*manifest["features"], {"name": "target_5d", "group": "price"}],
             "n_features": manifest["n_features"] + 1}
    with pytest.raises(InputError, match="target-like"):
        validate_dataset(write(df, leaky, "leaky"))
    with pytest.raises(InputError, match="missing"):
        validate_dataset(write(df.drop("rsi_14"), manifest, "missing"))
    with pytest.raises(InputError, match="rows but the manifest"):
        validate_dataset(write(df.head(100), manifest, "rows"))
    with pytest.raises(InputError, match="no rows"):
        validate_dataset(write(df.head(0), {**manifest, "rows": 0}, "empty"))
    lone = tmp_path / "lone" / "ml_dataset_x.parquet"
    lone.parent.mkdir()
    df.write_parquet(lone)
    with pytest.raises(InputError, match="manifest not found"):
        validate_dataset(lone)
    with pytest.raises(InputError, match="latest_standard.json"):
        validate_dataset(tmp_path / "lone")


def test_plan_without_topix_builds_the_other_groups_and_says_why(built: tuple[pl.DataFrame, dict]) -> None:
    q, listed, _ = make_inputs()
    df, manifest = build_dataset(q, listed, None, start=START, end=END, plan="free")
    assert manifest["feature_groups"] == {"price": len(PRICE_FEATURES), "sector": len(SECTOR_FEATURES)}
    assert set(manifest["absent_groups"]) == {"market", "stock_market", "statements", "futures"}
    assert "plan free" in manifest["absent_groups"]["market"]
    assert "premium" in manifest["absent_groups"]["futures"]
    assert not [c for c in df.columns if c.startswith("mkt_")]
    # the groups that can be built are the same as on the standard plan
    full, _ = built
    price_cols = list(PRICE_FEATURES)
    assert df.select(price_cols).equals(full.select(price_cols))
