"""Property: the out-of-core (chunked) build equals the one-shot build.

Raw frames come from the simulator (SimMarket, a small universe). The chunked build reads the quotes
per date segment, runs the per-Code groups on blocks of codes and the cross-sectional groups per date
chunk, and merges the chunks into one file sorted by (Code, Date); its frame must equal the one-shot
frame, with chunk boundaries at awkward places: a listing day, a holiday, a month end.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from gogoku.contracts import LOOKBACK_DAYS
from gogoku.dataset.build import (
    DEFAULT_CHUNK_MONTHS,
    build_dataset,
    build_dataset_chunked,
    date_chunks,
    default_chunk_months,
    read_quotes_history,
)
from gogoku.errors import InputError
from gogoku.features.family_groups import FAMILY_SOURCES
from gogoku.features.sector import SECTOR_FEATURES
from gogoku.sim.market import SimMarket

START, END = dt.date(2024, 4, 1), dt.date(2025, 1, 10)


@lru_cache(maxsize=1)
def raw() -> dict[str, pl.DataFrame]:
    m = SimMarket(seed=11, n_stocks=40, start=dt.date(2023, 3, 1), end=END)
    frames = {s: getattr(m, s)() for s in FAMILY_SOURCES}
    frames.update(quotes=m.daily_quotes(), listed=m.listed_info(), topix=m.topix(), calendar=m.trading_calendar(),
                  statements=m.statements())
    return frames


def inputs() -> tuple[tuple[pl.DataFrame, ...], dict[str, pl.DataFrame]]:
    f = raw()
    return (f["listed"], f["topix"], f["calendar"], f["statements"]), {s: f[s] for s in FAMILY_SOURCES}


def one_shot(**kw: object) -> tuple[pl.DataFrame, dict]:
    (listed, topix, calendar, statements), sources = inputs()
    # Quotes through the end, as `gogoku dataset build` loads them (the last targets are unknown).
    quotes = raw()["quotes"].filter(pl.col("Date") <= kw["end"])
    return build_dataset(quotes, listed, topix, calendar, statements, sources=sources, **kw)


def futures() -> pl.DataFrame:
    """A Date-keyed fut_* frame (the build joins it per date)."""
    days = raw()["topix"]["Date"]
    return pl.DataFrame({"Date": days, "fut_a": pl.int_range(days.len(), eager=True).cast(pl.Float64) / 7.0,
                         "fut_b": (days.dt.day().cast(pl.Float64) - 15.0) / 3.0})


def chunked(tmp_path: Path, **kw: object) -> tuple[pl.DataFrame, dict, list[tuple[dt.date, dt.date]]]:
    (listed, topix, calendar, statements), sources = inputs()
    quotes = raw()["quotes"]
    reads: list[tuple[dt.date, dt.date]] = []

    def read_quotes(a: dt.date, b: dt.date) -> pl.DataFrame:
        reads.append((a, b))
        return quotes.filter(pl.col("Date").is_between(a, b))

    out = tmp_path / "out.parquet"
    history_kw = {k: kw.pop(k) for k in ("start", "end", "chunks", "chunk_months", "lookback_days") if k in kw}
    with read_quotes_history(read_quotes, listed, calendar, work_dir=tmp_path, **history_kw) as history:
        built = build_dataset_chunked(history, topix, statements, kw.pop("futures_features", None), sources=sources,
                                      **kw)
        built.write(out)
        manifest = built.manifest
    assert [p.name for p in tmp_path.iterdir()] == ["out.parquet"]  # the temp files are gone
    return pl.read_parquet(out), manifest, reads


def assert_same(one: pl.DataFrame, two: pl.DataFrame) -> None:
    # Equal within float tolerance everywhere; bit for bit outside the sector group, whose rolling sums
    # over the daily sector series start at a chunk's lookback instead of the history's first day
    # (their last Float64 bits differ, e.g. 2e-16 on a return).
    assert one.schema == two.schema
    assert_frame_equal(one, two)
    assert_frame_equal(one.drop(SECTOR_FEATURES), two.drop(SECTOR_FEATURES), check_exact=True)


def assert_same_manifest(one: dict, two: dict) -> None:
    strip = ("created_at", "build")
    assert {k: v for k, v in one.items() if k not in strip} == {k: v for k, v in two.items() if k not in strip}
    assert {k: v for k, v in one["build"].items() if k != "chunks"} == {
        k: v for k, v in two["build"].items() if k not in ("chunks", "chunk_months")}


def test_chunk_boundaries_at_a_listing_day_a_holiday_and_a_month_end(tmp_path: Path) -> None:
    f = raw()
    sessions = set(f["calendar"].filter(pl.col("HolidayDivision").is_in(["1", "2"]))["Date"].to_list())
    firsts = f["quotes"].filter(pl.col("AdjustmentClose").is_not_null()).group_by("Code").agg(pl.col("Date").min())
    listing = firsts.filter(pl.col("Date") > START)["Date"].min()
    holiday, month_end, new_year = dt.date(2024, 7, 15), dt.date(2024, 9, 30), dt.date(2024, 12, 31)
    assert listing is not None and listing in sessions  # a stock's first session
    assert holiday.weekday() == 0 and holiday not in sessions  # Marine Day
    assert month_end in sessions and (month_end + dt.timedelta(days=1)).day == 1
    assert new_year not in sessions and (new_year + dt.timedelta(days=1)).day == 1
    starts = [START, listing, holiday, month_end, new_year]
    chunks = [(a, (b - dt.timedelta(days=1)) if b else END) for a, b in zip(starts, [*starts[1:], None], strict=True)]

    one, m1 = one_shot(start=START, end=END, graph_step=5)
    two, m2, reads = chunked(tmp_path, start=START, end=END, graph_step=5, chunks=chunks)
    assert_same(one, two)
    assert_same_manifest(m1, m2)
    assert m2["build"]["chunks"] == len(chunks)
    # The quotes are read from the lookback's first day through the end, never past it.
    assert reads[0][0] == START - dt.timedelta(days=LOOKBACK_DAYS) and reads[-1][1] == END
    assert all(reads[i][1] + dt.timedelta(days=1) == reads[i + 1][0] for i in range(len(reads) - 1))


def test_monthly_chunks_with_a_short_lookback_and_an_odd_graph_step(tmp_path: Path) -> None:
    # A lookback shorter than the graph's window: the first graphs are built inside the range.
    start, end = dt.date(2024, 6, 3), dt.date(2024, 10, 31)
    kw = {"start": start, "end": end, "graph_step": 3, "lookback_days": 45, "plan": "premium",
          "futures_features": futures()}
    one, m1 = one_shot(**kw)
    two, m2, reads = chunked(tmp_path, chunk_months=1, **kw)
    assert_same(one, two)
    assert_same_manifest(m1, m2)
    assert m2["build"]["chunk_months"] == 1 and m2["feature_groups"]["futures"] == 2
    assert one["graph_degree"].null_count() > 0  # warm-up rows without a graph, in both builds


def test_date_chunks_and_the_default() -> None:
    assert date_chunks(dt.date(2024, 1, 31), dt.date(2024, 4, 15), 1) == [
        (dt.date(2024, 1, 31), dt.date(2024, 2, 28)), (dt.date(2024, 2, 29), dt.date(2024, 3, 30)),
        (dt.date(2024, 3, 31), dt.date(2024, 4, 15)),
    ]
    assert date_chunks(dt.date(2020, 7, 1), dt.date(2025, 6, 30), 12)[-1] == (dt.date(2024, 7, 1), dt.date(2025, 6, 30))
    assert len(date_chunks(dt.date(2020, 7, 1), dt.date(2025, 6, 30), 12)) == 5
    assert date_chunks(dt.date(2024, 1, 1), dt.date(2024, 3, 1), 0) == [(dt.date(2024, 1, 1), dt.date(2024, 3, 1))]
    assert default_chunk_months(dt.date(2024, 7, 1), dt.date(2025, 6, 30)) == 0
    assert default_chunk_months(dt.date(2020, 7, 1), dt.date(2025, 6, 30)) == DEFAULT_CHUNK_MONTHS == 24


def test_chunks_must_cover_the_range_and_rows_must_exist(tmp_path: Path) -> None:
    (listed, _, calendar, _), _ = inputs()
    quotes = raw()["quotes"]

    def read_quotes(a: dt.date, b: dt.date) -> pl.DataFrame:
        return quotes.filter(pl.col("Date").is_between(a, b))

    gap = [(START, dt.date(2024, 5, 31)), (dt.date(2024, 6, 2), END)]
    with pytest.raises(InputError, match="consecutive ranges"), read_quotes_history(
            read_quotes, listed, calendar, work_dir=tmp_path, start=START, end=END, chunks=gap):
        pass
    late = dt.date(2025, 3, 3), dt.date(2025, 3, 31)  # after the simulated quotes end
    with pytest.raises(InputError, match="no priced rows"), read_quotes_history(
            read_quotes, listed, calendar, work_dir=tmp_path, start=late[0], end=late[1]):
        pass
    assert list(tmp_path.iterdir()) == []
