"""RawCache against real parquet files in tmp_path and a fetch that makes one row per code per JPX
business day (recording every range it is asked for)."""

from __future__ import annotations

import logging
import os
import time
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from gogoku.cache.raw import RawCache, merge_business_day_runs, parse_cache_file_name
from gogoku.calendar import business_days
from gogoku.errors import InputError

SOURCE = "daily_quotes"
CODES = ["13010", "72030"]


class RecordingFetch:
    """Rows for every business day of the asked range; `Version` tells which call produced a row."""

    def __init__(self, fail: bool = False, tag: int = 0) -> None:
        self.calls: list[tuple[date, date]] = []
        self.fail = fail
        self.tag = tag

    def __call__(self, start: date, end: date) -> pl.DataFrame:
        self.calls.append((start, end))
        if self.fail:
            raise RuntimeError("API down")
        days = business_days(start, end)
        return pl.DataFrame(
            {
                "Date": pl.Series([d for d in days for _ in CODES], dtype=pl.Date),
                "Code": [c for _ in days for c in CODES],
                "Close": [float(d.toordinal() % 1000) + i for d in days for i, _ in enumerate(CODES)],
                "Version": [self.tag * 100 + len(self.calls)] * (len(days) * len(CODES)),
            }
        )


def files_in(root: Path) -> list[str]:
    folder = root / "raw" / SOURCE
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def seed(cache: RawCache, start: date, end: date) -> Path:
    """Put a real file for [start, end] in the cache through the cache itself."""
    return cache.load(SOURCE, start, end, RecordingFetch()).path


def assert_complete_rows(frame: pl.DataFrame, start: date, end: date) -> None:
    days = business_days(start, end)
    assert frame.height == len(days) * len(CODES)
    assert frame["Date"].unique().sort().to_list() == days
    assert frame.select("Code", "Date").is_unique().all()
    assert frame.equals(frame.sort("Code", "Date"))


def test_miss_fetches_once_and_writes_a_file_named_by_the_request(tmp_path: Path) -> None:
    cache = RawCache(tmp_path)
    fetch = RecordingFetch()
    res = cache.load(SOURCE, date(2024, 1, 1), date(2024, 1, 31), fetch)
    assert fetch.calls == [(date(2024, 1, 1), date(2024, 1, 31))]
    assert (res.hit, res.api_calls, res.coverage) == ("miss", 1, 0.0)
    assert res.missing_ranges == [(date(2024, 1, 1), date(2024, 1, 31))]
    # Named by the requested range, not by the data's first day (Jan 4 is the first session).
    assert res.path.name == "daily_quotes_20240101_20240131.parquet"
    assert files_in(tmp_path) == [res.path.name]
    assert_complete_rows(res.frame, date(2024, 1, 1), date(2024, 1, 31))
    assert pl.read_parquet(res.path).equals(res.frame)


def test_complete_hit_makes_no_call_and_filters_to_the_request(tmp_path: Path) -> None:
    cache = RawCache(tmp_path)
    path = seed(cache, date(2024, 1, 1), date(2024, 3, 31))
    fetch = RecordingFetch()
    res = cache.load(SOURCE, date(2024, 2, 1), date(2024, 2, 29), fetch)
    assert fetch.calls == []
    assert (res.hit, res.api_calls, res.coverage, res.path) == ("complete", 0, 1.0, path)
    assert_complete_rows(res.frame, date(2024, 2, 1), date(2024, 2, 29))
    assert files_in(tmp_path) == [path.name]


def test_repeated_request_makes_zero_calls(tmp_path: Path) -> None:
    cache = RawCache(tmp_path)
    first = cache.load(SOURCE, date(2024, 5, 1), date(2024, 6, 30), RecordingFetch())
    fetch = RecordingFetch()
    again = cache.load(SOURCE, date(2024, 5, 1), date(2024, 6, 30), fetch)
    assert fetch.calls == [] and again.api_calls == 0 and again.hit == "complete"
    assert again.frame.equals(first.frame)


def test_partial_head_and_tail_fetch_only_the_missing_ranges(tmp_path: Path) -> None:
    cache = RawCache(tmp_path)
    seed(cache, date(2024, 1, 1), date(2024, 1, 31))
    fetch = RecordingFetch()
    res = cache.load(SOURCE, date(2023, 12, 15), date(2024, 2, 15), fetch)
    # Head ends on the last session of 2023 (Dec 29); tail starts Feb 1 and ends Thu Feb 15.
    assert fetch.calls == [(date(2023, 12, 15), date(2023, 12, 29)), (date(2024, 2, 1), date(2024, 2, 15))]
    assert res.hit == "partial" and res.api_calls == 2 and res.missing_ranges == fetch.calls
    # Jan 2024 has 19 sessions (Jan 1-3 and Jan 8 are holidays); Dec 15-29 has 11; Feb 1-15 has 10.
    assert res.coverage == pytest.approx(19 / (11 + 19 + 10))
    assert_complete_rows(res.frame, date(2023, 12, 15), date(2024, 2, 15))
    # Compaction: the January file is inside the new range and is gone; the new file holds everything.
    assert files_in(tmp_path) == ["daily_quotes_20231215_20240215.parquet"]
    assert pl.read_parquet(res.path).equals(res.frame)


def test_two_adjacent_files_combine_without_calls(tmp_path: Path) -> None:
    cache = RawCache(tmp_path)
    seed(cache, date(2024, 3, 1), date(2024, 3, 15))
    seed(cache, date(2024, 3, 16), date(2024, 3, 31))
    fetch = RecordingFetch()
    res = cache.load(SOURCE, date(2024, 3, 1), date(2024, 3, 31), fetch)
    assert fetch.calls == []
    assert (res.hit, res.api_calls, res.coverage) == ("complete", 0, 1.0)
    assert_complete_rows(res.frame, date(2024, 3, 1), date(2024, 3, 31))
    assert files_in(tmp_path) == ["daily_quotes_20240301_20240331.parquet"]


def test_gap_across_new_year_is_one_call(tmp_path: Path) -> None:
    cache = RawCache(tmp_path)
    seed(cache, date(2023, 12, 1), date(2023, 12, 27))
    seed(cache, date(2024, 1, 10), date(2024, 1, 31))
    fetch = RecordingFetch()
    res = cache.load(SOURCE, date(2023, 12, 1), date(2024, 1, 31), fetch)
    # Missing sessions Dec 28, Dec 29, Jan 4, Jan 5, Jan 9: only holidays between them -> one range.
    assert fetch.calls == [(date(2023, 12, 28), date(2024, 1, 9))]
    assert res.hit == "partial"
    assert_complete_rows(res.frame, date(2023, 12, 1), date(2024, 1, 31))


def test_gaps_across_weekend_and_golden_week_merge_but_real_gaps_split(tmp_path: Path) -> None:
    cache = RawCache(tmp_path)
    seed(cache, date(2024, 4, 1), date(2024, 4, 10))
    seed(cache, date(2024, 4, 16), date(2024, 4, 30))
    seed(cache, date(2024, 5, 8), date(2024, 5, 31))
    fetch = RecordingFetch()
    res = cache.load(SOURCE, date(2024, 4, 1), date(2024, 5, 31), fetch)
    # Apr 11, 12, 15 span a weekend; May 1, 2, 7 span Golden Week (May 3-6): two calls, not six.
    assert fetch.calls == [(date(2024, 4, 11), date(2024, 4, 15)), (date(2024, 5, 1), date(2024, 5, 7))]
    assert_complete_rows(res.frame, date(2024, 4, 1), date(2024, 5, 31))
    assert files_in(tmp_path) == ["daily_quotes_20240401_20240531.parquet"]


def test_max_files_limits_the_combination(tmp_path: Path) -> None:
    cache = RawCache(tmp_path, max_files=2)
    seed(cache, date(2024, 7, 1), date(2024, 7, 7))
    seed(cache, date(2024, 7, 8), date(2024, 7, 14))
    seed(cache, date(2024, 7, 22), date(2024, 7, 31))
    fetch = RecordingFetch()
    res = cache.load(SOURCE, date(2024, 7, 1), date(2024, 7, 31), fetch)
    # Greedy keeps Jul 22-31 (8 sessions) and one 5-session week; the other week and Jul 16-19
    # (Jul 15 is Marine Day) are fetched.
    assert len(fetch.calls) == 2
    fetched = {d for a, b in fetch.calls for d in business_days(a, b)}
    assert date(2024, 7, 16) in fetched and date(2024, 7, 19) in fetched
    assert res.coverage == pytest.approx(13 / 22)
    assert_complete_rows(res.frame, date(2024, 7, 1), date(2024, 7, 31))


def test_below_threshold_fetches_the_whole_range_once(tmp_path: Path) -> None:
    cache = RawCache(tmp_path)
    seed(cache, date(2024, 1, 4), date(2024, 1, 5))
    fetch = RecordingFetch()
    res = cache.load(SOURCE, date(2024, 1, 1), date(2024, 3, 31), fetch)
    assert fetch.calls == [(date(2024, 1, 1), date(2024, 3, 31))]
    assert res.hit == "miss" and res.coverage == pytest.approx(
        2 / len(business_days(date(2024, 1, 1), date(2024, 3, 31)))
    )
    assert files_in(tmp_path) == ["daily_quotes_20240101_20240331.parquet"]


def test_stale_file_is_ignored_and_replaced(tmp_path: Path) -> None:
    cache = RawCache(tmp_path, max_age_days=7)
    path = seed(cache, date(2024, 2, 1), date(2024, 2, 29))
    old = time.time() - 8 * 86400
    os.utime(path, (old, old))
    fetch = RecordingFetch()
    res = cache.load(SOURCE, date(2024, 2, 1), date(2024, 2, 29), fetch)
    assert fetch.calls == [(date(2024, 2, 1), date(2024, 2, 29))] and res.hit == "miss"
    assert res.path == path and path.stat().st_mtime > old
    assert files_in(tmp_path) == [path.name]


def test_injected_clock_makes_files_stale(tmp_path: Path) -> None:
    seed(RawCache(tmp_path), date(2024, 2, 1), date(2024, 2, 29))
    later = RawCache(tmp_path, max_age_days=7, now=lambda: time.time() + 7.5 * 86400)
    fetch = RecordingFetch()
    later.load(SOURCE, date(2024, 2, 1), date(2024, 2, 29), fetch)
    assert len(fetch.calls) == 1
    never_stale = RawCache(tmp_path, max_age_days=None, now=lambda: time.time() + 1000 * 86400)
    fetch = RecordingFetch()
    never_stale.load(SOURCE, date(2024, 2, 1), date(2024, 2, 29), fetch)
    assert fetch.calls == []


def test_corrupt_file_is_ignored_with_a_warning_and_replaced(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "raw" / SOURCE
    folder.mkdir(parents=True)
    bad = folder / "daily_quotes_20240101_20240131.parquet"
    bad.write_bytes(b"not a parquet file" * 10)
    fetch = RecordingFetch()
    with caplog.at_level(logging.WARNING, logger="gogoku.cache.raw"):
        res = RawCache(tmp_path).load(SOURCE, date(2024, 1, 1), date(2024, 1, 31), fetch)
    assert "unreadable" in caplog.text and bad.name in caplog.text
    assert fetch.calls == [(date(2024, 1, 1), date(2024, 1, 31))] and res.hit == "miss"
    assert pl.read_parquet(bad).equals(res.frame)


def test_corrupt_file_among_good_ones_only_costs_its_days(tmp_path: Path) -> None:
    cache = RawCache(tmp_path)
    seed(cache, date(2024, 3, 1), date(2024, 3, 15))
    truncated = seed(cache, date(2024, 3, 16), date(2024, 3, 31))
    truncated.write_bytes(truncated.read_bytes()[:40])
    fetch = RecordingFetch()
    res = cache.load(SOURCE, date(2024, 3, 1), date(2024, 3, 31), fetch)
    # Mar 18 is the first session after the 15th; Mar 20 (equinox) is a holiday but inside the run.
    assert fetch.calls == [(date(2024, 3, 18), date(2024, 3, 29))]
    assert_complete_rows(res.frame, date(2024, 3, 1), date(2024, 3, 31))
    assert files_in(tmp_path) == ["daily_quotes_20240301_20240331.parquet"]


def test_failed_fetch_leaves_the_cache_untouched(tmp_path: Path) -> None:
    cache = RawCache(tmp_path)
    path = seed(cache, date(2024, 1, 1), date(2024, 1, 31))
    before = (files_in(tmp_path), path.read_bytes(), path.stat().st_mtime)
    fetch = RecordingFetch(fail=True)
    with pytest.raises(RuntimeError, match="API down"):
        cache.load(SOURCE, date(2023, 12, 1), date(2024, 2, 29), fetch)
    assert len(fetch.calls) == 1
    assert (files_in(tmp_path), path.read_bytes(), path.stat().st_mtime) == before


def test_compaction_leaves_one_file_and_keeps_rows_outside_the_request(tmp_path: Path) -> None:
    cache = RawCache(tmp_path)
    for start, end in [(date(2024, 1, 1), date(2024, 1, 31)), (date(2024, 2, 1), date(2024, 2, 29))]:
        seed(cache, start, end)
    seed(cache, date(2024, 3, 1), date(2024, 4, 15))
    # A request ending inside the March-April file: that file is not contained, so it stays whole.
    fetch = RecordingFetch()
    res = cache.load(SOURCE, date(2024, 1, 1), date(2024, 3, 31), fetch)
    assert fetch.calls == []
    assert files_in(tmp_path) == [
        "daily_quotes_20240101_20240331.parquet",
        "daily_quotes_20240301_20240415.parquet",
    ]
    assert res.frame["Date"].max() == date(2024, 3, 29)
    kept = pl.read_parquet(tmp_path / "raw" / SOURCE / "daily_quotes_20240301_20240415.parquet")
    assert kept["Date"].max() == date(2024, 4, 15)
    # The full range absorbs both into one file.
    res = cache.load(SOURCE, date(2024, 1, 1), date(2024, 4, 15), fetch)
    assert fetch.calls == [] and files_in(tmp_path) == ["daily_quotes_20240101_20240415.parquet"]
    assert_complete_rows(res.frame, date(2024, 1, 1), date(2024, 4, 15))


def test_newer_rows_win_over_older_ones(tmp_path: Path) -> None:
    cache = RawCache(tmp_path)
    old_path = seed(cache, date(2024, 6, 1), date(2024, 6, 20))
    old = time.time() - 3600
    os.utime(old_path, (old, old))
    newer = cache.load(SOURCE, date(2024, 6, 10), date(2024, 6, 30), RecordingFetch(tag=1), force=True)
    fetch = RecordingFetch()
    res = cache.load(SOURCE, date(2024, 6, 1), date(2024, 6, 30), fetch)
    assert fetch.calls == []
    overlap = res.frame.filter(pl.col("Date").is_between(date(2024, 6, 10), date(2024, 6, 20)))
    assert overlap.height == 2 * 9 and set(overlap["Version"]) == {101}
    assert overlap.equals(newer.frame.filter(pl.col("Date") <= date(2024, 6, 20)))
    assert set(res.frame.filter(pl.col("Date") < date(2024, 6, 10))["Version"]) == {1}
    assert_complete_rows(res.frame, date(2024, 6, 1), date(2024, 6, 30))


def test_merged_file_is_only_as_fresh_as_its_oldest_part(tmp_path: Path) -> None:
    cache = RawCache(tmp_path)
    first = seed(cache, date(2024, 3, 1), date(2024, 3, 15))
    old = time.time() - 5 * 86400
    os.utime(first, (old, old))
    res = cache.load(SOURCE, date(2024, 3, 1), date(2024, 3, 31), RecordingFetch())
    assert res.hit == "partial"
    assert res.path.stat().st_mtime == pytest.approx(old, abs=1.0)
    # Three days later the oldest part is 8 days old: the whole file is refetched.
    later = RawCache(tmp_path, now=lambda: time.time() + 3 * 86400)
    fetch = RecordingFetch()
    later.load(SOURCE, date(2024, 3, 1), date(2024, 3, 31), fetch)
    assert fetch.calls == [(date(2024, 3, 1), date(2024, 3, 31))]


def test_force_refetches_everything(tmp_path: Path) -> None:
    cache = RawCache(tmp_path)
    path = seed(cache, date(2024, 1, 1), date(2024, 1, 31))
    fetch = RecordingFetch()
    res = cache.load(SOURCE, date(2024, 1, 1), date(2024, 1, 31), fetch, force=True)
    assert fetch.calls == [(date(2024, 1, 1), date(2024, 1, 31))] and res.hit == "miss" and res.path == path


def test_request_without_business_days(tmp_path: Path) -> None:
    cache = RawCache(tmp_path)
    fetch = RecordingFetch()
    res = cache.load(SOURCE, date(2024, 5, 3), date(2024, 5, 6), fetch)
    assert fetch.calls == [(date(2024, 5, 3), date(2024, 5, 6))] and res.frame.height == 0
    res = cache.load(SOURCE, date(2024, 5, 3), date(2024, 5, 6), fetch)
    assert len(fetch.calls) == 1 and res.hit == "complete"


def test_other_keys_and_date_column(tmp_path: Path) -> None:
    def fetch(start: date, end: date) -> pl.DataFrame:
        days = business_days(start, end)
        return pl.DataFrame({"DisclosedDate": days, "DisclosureNumber": [d.strftime("%Y%m%d") for d in days]})

    cache = RawCache(tmp_path)
    res = cache.load(
        "statements", date(2024, 1, 1), date(2024, 1, 31), fetch, "DisclosedDate", ["DisclosureNumber"]
    )
    assert res.frame.height == 19 and res.path.name == "statements_20240101_20240131.parquet"
    res = cache.load(
        "statements", date(2024, 1, 10), date(2024, 2, 10), fetch, "DisclosedDate", ["DisclosureNumber"]
    )
    assert res.api_calls == 1 and res.frame["DisclosedDate"].to_list() == business_days(
        date(2024, 1, 10), date(2024, 2, 10)
    )


def test_names_that_do_not_parse_are_ignored_and_left_alone(tmp_path: Path) -> None:
    folder = tmp_path / "raw" / SOURCE
    folder.mkdir(parents=True)
    strangers = [
        ".daily_quotes_20240101_20240131.parquet.abc.tmp",
        "daily_quotes_20240101_20240131.parquet.tmp",
        "daily_quotes_20241301_20241231.parquet",
        "daily_quotes_20240131_20240101.parquet",
        "daily_quotes_2024011_20240131.parquet",
        "old_daily_quotes_20240101_20240131.parquet",
    ]
    for name in strangers:
        (folder / name).write_bytes(b"x")
    fetch = RecordingFetch()
    res = RawCache(tmp_path).load(SOURCE, date(2024, 1, 1), date(2024, 1, 31), fetch)
    assert len(fetch.calls) == 1
    assert files_in(tmp_path) == sorted([*strangers, res.path.name])


def test_name_parsing_and_run_merging() -> None:
    assert parse_cache_file_name("topix", "topix_20240101_20240131.parquet") == (
        date(2024, 1, 1),
        date(2024, 1, 31),
    )
    assert parse_cache_file_name("topix", "topix_20240230_20240301.parquet") is None
    assert parse_cache_file_name("topix", "daily_quotes_20240101_20240131.parquet") is None
    days = business_days(date(2024, 4, 25), date(2024, 5, 10))
    runs = merge_business_day_runs(
        [date(2024, 5, 2), date(2024, 4, 26), date(2024, 5, 7), date(2024, 5, 9)], days
    )
    assert runs == [
        (date(2024, 4, 26), date(2024, 4, 26)),
        (date(2024, 5, 2), date(2024, 5, 7)),
        (date(2024, 5, 9), date(2024, 5, 9)),
    ]


def test_logs_hit_coverage_and_rows(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cache = RawCache(tmp_path)
    seed(cache, date(2024, 1, 1), date(2024, 1, 31))
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="gogoku.cache.raw"):
        cache.load(SOURCE, date(2024, 1, 1), date(2024, 2, 15), RecordingFetch())
    line = next(r.getMessage() for r in caplog.records if "hit=" in r.getMessage())
    assert "hit=partial" in line and "2024-02-01..2024-02-15" in line and f"rows={(19 + 10) * 2}" in line


def test_bad_requests_raise_input_error(tmp_path: Path) -> None:
    cache = RawCache(tmp_path)
    with pytest.raises(InputError, match="after end"):
        cache.load(SOURCE, date(2024, 2, 1), date(2024, 1, 1), RecordingFetch())
    with pytest.raises(InputError, match="source name"):
        cache.load("../etc", date(2024, 1, 1), date(2024, 1, 31), RecordingFetch())
    with pytest.raises(InputError, match="'Date'"):
        cache.load(SOURCE, date(2024, 1, 1), date(2024, 1, 31), lambda a, b: pl.DataFrame({"x": [1]}))
    assert files_in(tmp_path) == []


def test_newest_covering_file_serves_a_complete_hit(tmp_path: Path) -> None:
    cache = RawCache(tmp_path)
    old_path = seed(cache, date(2024, 1, 1), date(2024, 3, 31))
    old = time.time() - 3600
    os.utime(old_path, (old, old))
    newer = cache.load(SOURCE, date(2023, 12, 15), date(2024, 2, 29), RecordingFetch(tag=1), force=True)
    res = cache.load(SOURCE, date(2024, 1, 1), date(2024, 1, 31), RecordingFetch())
    assert res.hit == "complete" and res.path == newer.path and set(res.frame["Version"]) == {101}


def test_coverage_exactly_at_the_threshold_is_a_partial_hit(tmp_path: Path) -> None:
    cache = RawCache(tmp_path, min_coverage=0.3)
    # Jan 4, 5 and 9 cached (Jan 8 is Coming-of-Age Day); Jan 4-18 has 10 sessions: coverage 3/10.
    seed(cache, date(2024, 1, 4), date(2024, 1, 9))
    fetch = RecordingFetch()
    res = cache.load(SOURCE, date(2024, 1, 4), date(2024, 1, 18), fetch)
    assert res.coverage == pytest.approx(0.3) and res.hit == "partial"
    assert fetch.calls == [(date(2024, 1, 10), date(2024, 1, 18))]
    # One session fewer cached (2/10) falls below it: the whole range is fetched once.
    other = RawCache(tmp_path / "other", min_coverage=0.3)
    seed(other, date(2024, 1, 4), date(2024, 1, 5))
    fetch = RecordingFetch()
    res = other.load(SOURCE, date(2024, 1, 4), date(2024, 1, 18), fetch)
    assert res.hit == "miss" and fetch.calls == [(date(2024, 1, 4), date(2024, 1, 18))]


def test_a_stale_fragment_is_left_out_of_a_combination(tmp_path: Path) -> None:
    cache = RawCache(tmp_path, max_age_days=7)
    seed(cache, date(2024, 3, 1), date(2024, 3, 15))
    stale = seed(cache, date(2024, 3, 16), date(2024, 3, 31))
    old = time.time() - 10 * 86400
    os.utime(stale, (old, old))
    fetch = RecordingFetch()
    res = cache.load(SOURCE, date(2024, 3, 1), date(2024, 3, 31), fetch)
    assert res.hit == "partial" and fetch.calls == [(date(2024, 3, 18), date(2024, 3, 29))]
    assert_complete_rows(res.frame, date(2024, 3, 1), date(2024, 3, 31))
    assert files_in(tmp_path) == ["daily_quotes_20240301_20240331.parquet"]


def test_fragments_survive_a_failed_write_of_the_merged_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = RawCache(tmp_path)
    seed(cache, date(2024, 3, 1), date(2024, 3, 15))
    seed(cache, date(2024, 3, 16), date(2024, 3, 31))
    before = {name: (tmp_path / "raw" / SOURCE / name).read_bytes() for name in files_in(tmp_path)}

    def disk_full(frame: pl.DataFrame, path: Path, **kwargs: object) -> Path:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("gogoku.cache.raw.write_parquet_atomic", disk_full)
    with pytest.raises(OSError, match="No space left"):
        cache.load(SOURCE, date(2024, 3, 1), date(2024, 3, 31), RecordingFetch())
    assert {name: (tmp_path / "raw" / SOURCE / name).read_bytes() for name in files_in(tmp_path)} == before


def test_complete_and_miss_loads_log_hit_coverage_rows_and_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = RawCache(tmp_path)
    with caplog.at_level(logging.INFO, logger="gogoku.cache.raw"):
        cache.load(SOURCE, date(2024, 1, 1), date(2024, 1, 31), RecordingFetch())
        cache.load(SOURCE, date(2024, 1, 10), date(2024, 1, 12), RecordingFetch())
    lines = [r.getMessage() for r in caplog.records if "hit=" in r.getMessage()]
    assert lines == [
        "cache daily_quotes 2024-01-01..2024-01-31: hit=miss coverage=0.000 fetched=['2024-01-01..2024-01-31'] "
        "rows=38 file=daily_quotes_20240101_20240131.parquet",
        "cache daily_quotes 2024-01-10..2024-01-12: hit=complete coverage=1.000 fetched=[] "
        "rows=6 file=daily_quotes_20240101_20240131.parquet",
    ]
