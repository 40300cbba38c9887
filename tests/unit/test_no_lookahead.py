"""Property: no feature of a row dated <= T changes when every record published after T changes.

Raw frames come from the simulator (SimMarket) for a small universe. For each T, every record that
becomes public after T's close is perturbed (prices after T; statements disclosed at or after T's close;
flow, margin, short-selling and option releases published at or after T; calendar rows visible after
T; futures night sessions after T and futures end-of-day values from T on), the dataset is rebuilt with its
futures features, and every feature of the rows dated <= T must be identical.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache

import numpy as np
import polars as pl
import pytest

from gogoku.calendar import with_effective_date
from gogoku.dataset.build import build_dataset
from gogoku.features._asof import session_shift
from gogoku.features.family_groups import FAMILY_SOURCES
from gogoku.features.futures import feature_names, futures_features, nk225_spot
from gogoku.sim.market import SimMarket

START, END = dt.date(2024, 6, 3), dt.date(2025, 1, 10)
CUTS = (dt.date(2024, 8, 9), dt.date(2024, 11, 1), dt.date(2024, 11, 5), dt.date(2024, 12, 30))
# Futures alone (cheap): around the March, June and September rolls and SQs, before a Monday holiday.
FUTURES_CUTS = (dt.date(2024, 3, 4), dt.date(2024, 3, 7), dt.date(2024, 3, 8), dt.date(2024, 6, 13),
                dt.date(2024, 9, 13), dt.date(2024, 11, 1))


@lru_cache(maxsize=1)
def raw() -> dict[str, pl.DataFrame]:
    m = SimMarket(seed=11, n_stocks=12, start=dt.date(2023, 3, 1), end=END)
    frames = {s: getattr(m, s)() for s in FAMILY_SOURCES}
    frames.update(quotes=m.daily_quotes(), listed=m.listed_info(), topix=m.topix(), calendar=m.trading_calendar(),
                  statements=m.statements(), futures=m.futures())
    return frames


def _scramble(frame: pl.DataFrame, after: pl.Series, seed: int, keep: str | None = None) -> pl.DataFrame:
    """Multiply every number column (but those starting with `keep`) by a random factor in [0.5, 1.5] on the
    rows where `after` holds."""
    rng = np.random.default_rng(seed)
    k = pl.Series(rng.uniform(0.5, 1.5, frame.height))
    nums = [c for c, t in frame.schema.items() if t == pl.Float64 and not (keep and c.startswith(keep))]
    return frame.with_columns([pl.when(after).then(pl.col(c) * k).otherwise(pl.col(c)).alias(c) for c in nums])


def perturbed(t: dt.date) -> dict[str, pl.DataFrame]:
    f = dict(raw())
    f["quotes"] = _scramble(f["quotes"], f["quotes"]["Date"] > t, 1)
    f["topix"] = _scramble(f["topix"], f["topix"]["Date"] > t, 2)
    eff = with_effective_date(f["statements"], "DisclosedDate", "DisclosedTime").collect()["EffectiveDate"]
    f["statements"] = _scramble(f["statements"], eff > t, 3)
    for i, (source, col) in enumerate((("trades_spec", "PublishedDate"), ("daily_margin_interest", "PublishedDate"),
                                       ("short_selling", "Date"), ("short_selling_positions", "DisclosedDate"),
                                       ("index_option", "Date"))):
        f[source] = _scramble(f[source], f[source][col] >= t, 10 + i)
    wk = f["weekly_margin_interest"]
    published = session_shift(wk.lazy(), "Date", 2, "_pub").collect()["_pub"]
    f["weekly_margin_interest"] = _scramble(wk, published >= t, 20)
    # Calendar rows visible after T (dated after T): moved by a week, and one made up.
    ann = f["announcement"]
    moved = ann.with_columns(
        pl.when(pl.col("Date") > t).then(pl.col("Date") + pl.duration(days=7)).otherwise(pl.col("Date")).alias("Date")
    )
    extra = ann.head(1).with_columns(pl.lit(t + dt.timedelta(days=3)).alias("Date"))
    f["announcement"] = pl.concat([moved, extra])
    f["futures"] = _perturb_futures(f["futures"], t)
    return f


def _perturb_futures(fut: pl.DataFrame, t: dt.date) -> pl.DataFrame:
    """Rows dated after T changed whole (the central month flag flipped too); rows dated T keep only their
    night session (it ends at 06:00 on T, before the close): the rest is published after T's close."""
    fut = _scramble(fut, fut["Date"] > t, 30)
    fut = _scramble(fut, fut["Date"] == t, 31, keep="NightSession")
    flipped = pl.when(pl.col("CentralContractMonthFlag") == "1").then(pl.lit("0")).otherwise(pl.lit("1"))
    return fut.with_columns(
        pl.when(pl.col("Date") > t).then(flipped).otherwise(pl.col("CentralContractMonthFlag"))
        .alias("CentralContractMonthFlag")
    )


def futures_table(f: dict[str, pl.DataFrame]) -> pl.DataFrame:
    return futures_features(f["futures"], f["topix"], spots={"NK225F": nk225_spot(f["index_option"])})


def build(f: dict[str, pl.DataFrame]) -> tuple[pl.DataFrame, dict]:
    return build_dataset(
        f["quotes"], f["listed"], f["topix"], f["calendar"], f["statements"], futures_table(f), start=START, end=END,
        plan="premium", sources={s: f[s] for s in FAMILY_SOURCES}, graph_step=5,
    )


@lru_cache(maxsize=1)
def base() -> tuple[pl.DataFrame, dict]:
    return build(raw())


@pytest.mark.parametrize("cut", CUTS)
def test_rows_up_to_t_ignore_later_records(cut: dt.date) -> None:
    df, manifest = base()
    assert not manifest["absent_groups"], manifest["absent_groups"]
    assert manifest["feature_groups"]["futures"] == 88
    features = [f["name"] for f in manifest["features"]]
    other, _ = build(perturbed(cut))
    assert other.select("Code", "Date").equals(df.select("Code", "Date"))
    a = df.filter(pl.col("Date") <= cut).select("Code", "Date", *features)
    b = other.filter(pl.col("Date") <= cut).select("Code", "Date", *features)
    changed = [c for c in features if not a[c].equals(b[c], check_names=True, null_equal=True)]
    assert changed == []
    # The perturbation reaches the rows after T (the test can fail).
    later = [c for c in features if not df.filter(pl.col("Date") > cut)[c].equals(
        other.filter(pl.col("Date") > cut)[c], null_equal=True)]
    assert len(later) > 50


@pytest.mark.parametrize("cut", FUTURES_CUTS)
def test_futures_rows_up_to_t_ignore_later_records(cut: dt.date) -> None:
    f = raw()
    base_table = futures_table(f)
    g = dict(f)
    g["futures"] = _perturb_futures(f["futures"], cut)
    g["topix"] = _scramble(f["topix"], f["topix"]["Date"] > cut, 2)
    g["index_option"] = _scramble(f["index_option"], f["index_option"]["Date"] >= cut, 14)
    other = futures_table(g)
    names = feature_names()
    a, b = base_table.filter(pl.col("Date") <= cut), other.filter(pl.col("Date") <= cut)
    assert a.height > 200 and a.equals(b, null_equal=True)
    # The simulator serves no JPX-Nikkei 400 or REIT index close: only their spot-based columns are empty.
    assert [c for c in names if a[c].null_count() == a.height] == [
        f"fut_{p}_{n}" for p in ("jn400f", "reitf") for n in ("basis", "basis_z", "carry_ann")]
    # The next business day sees the change (the night session of T+1, the EOD of T) in every feature but the
    # calendar ones (days to the LTD, the roll of T) and those without an underlying.
    nxt = other.filter(pl.col("Date") > cut).head(1)
    was = base_table.filter(pl.col("Date") > cut).head(1)
    kept = {c.split("_", 2)[2] for c in names if nxt[c].equals(was[c], null_equal=True)}
    assert kept <= {"days_to_ltd", "roll_flag", "days_since_roll", "basis", "basis_z", "carry_ann"}, kept


def test_plan_and_empty_sources_make_groups_absent() -> None:
    f = raw()
    sources = {s: f[s] for s in FAMILY_SOURCES}
    sources["trades_spec"] = f["trades_spec"].head(0)
    sources["announcement"] = None
    _, manifest = build_dataset(
        f["quotes"], f["listed"], f["topix"], f["calendar"], f["statements"], start=START, end=END,
        plan="light", sources=sources, graph_step=None,
    )
    absent = manifest["absent_groups"]
    assert absent["flow"] == "trades_spec is empty for the range"
    assert absent["earnings"] == "no announcement data given"
    assert absent["margin"] == "weekly_margin_interest needs the standard+ plan (plan light)"
    assert absent["options"] == "index_option needs the standard+ plan (plan light)"
    assert absent["graph"] == "correlation graph disabled"
    assert {"flow", "margin", "earnings", "graph"}.isdisjoint(manifest["feature_groups"])
    assert manifest["feature_groups"]["statements"] == 26
