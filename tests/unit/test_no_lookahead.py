"""Property: no feature of a row dated <= T changes when every record published after T changes.

Raw frames come from the simulator (SimMarket) for a small universe. For each T, every record that
becomes public after T's close is perturbed (prices after T; statements disclosed at or after T's close;
flow, margin, short-selling and option releases published at or after T; calendar rows visible after
T), the dataset is rebuilt, and every feature of the rows dated <= T must be identical.
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
from gogoku.features.families import FAMILY_SOURCES
from gogoku.jquants.market import SimMarket

START, END = dt.date(2024, 6, 3), dt.date(2025, 1, 10)
CUTS = (dt.date(2024, 8, 9), dt.date(2024, 11, 1), dt.date(2024, 11, 5), dt.date(2024, 12, 30))


@lru_cache(maxsize=1)
def raw() -> dict[str, pl.DataFrame]:
    m = SimMarket(seed=11, n_stocks=12, start=dt.date(2023, 3, 1), end=END)
    frames = {s: getattr(m, s)() for s in FAMILY_SOURCES}
    frames.update(quotes=m.daily_quotes(), listed=m.listed_info(), topix=m.topix(), calendar=m.trading_calendar(),
                  statements=m.statements())
    return frames


def _scramble(frame: pl.DataFrame, after: pl.Series, seed: int) -> pl.DataFrame:
    """Multiply every number column by a random factor in [0.5, 1.5] on the rows where `after` holds."""
    rng = np.random.default_rng(seed)
    k = pl.Series(rng.uniform(0.5, 1.5, frame.height))
    nums = [c for c, t in frame.schema.items() if t == pl.Float64]
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
    return f


def build(f: dict[str, pl.DataFrame]) -> tuple[pl.DataFrame, dict]:
    return build_dataset(
        f["quotes"], f["listed"], f["topix"], f["calendar"], f["statements"], start=START, end=END,
        plan="standard", sources={s: f[s] for s in FAMILY_SOURCES}, graph_step=5,
    )


@lru_cache(maxsize=1)
def base() -> tuple[pl.DataFrame, dict]:
    return build(raw())


@pytest.mark.parametrize("cut", CUTS)
def test_rows_up_to_t_ignore_later_records(cut: dt.date) -> None:
    df, manifest = base()
    assert not manifest["absent_groups"].keys() - {"futures"}, manifest["absent_groups"]
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
