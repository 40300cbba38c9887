"""Cache file integrity: the footer metadata, every way a file can be bad, and that a bad file is
deleted and refetched, never served. Real parquet files in tmp_path."""

from __future__ import annotations

import json
import logging
from datetime import date
from pathlib import Path

import polars as pl
import pytest
from test_cache_raw import CODES, SOURCE, RecordingFetch, assert_complete_rows, files_in, seed

from gogoku.cache.raw import (
    META_KEY,
    CacheFileError,
    RawCache,
    cache_file_metadata,
    read_cache_file,
    read_cache_metadata,
)
from gogoku.calendar import business_days

JAN = (date(2024, 1, 1), date(2024, 1, 31))


def folder(root: Path) -> Path:
    return root / "raw" / SOURCE


def write_with_footer(path: Path, frame: pl.DataFrame, **override: object) -> None:
    """A parquet file whose footer is the cache's own, with some fields overridden."""
    start, end = JAN
    info = json.loads(cache_file_metadata(SOURCE, start, end, "Date", frame)[META_KEY])
    info.update(override)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.write_parquet(path, metadata={META_KEY: json.dumps(info)})


def test_written_files_carry_their_range_rows_and_schema(tmp_path: Path) -> None:
    path = seed(RawCache(tmp_path), *JAN)
    info = read_cache_metadata(path)
    assert info["source"] == SOURCE and (info["start"], info["end"]) == ("2024-01-01", "2024-01-31")
    assert info["rows"] == 19 * len(CODES) and info["date_col"] == "Date"
    assert info["schema"] == {"Date": "Date", "Code": "String", "Close": "Float64", "Version": "Int64"}
    assert read_cache_file(path).height == 38


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("truncate", "unreadable parquet footer"),
        ("empty", "unreadable parquet footer"),
        ("no_footer", "no 'gogoku.cache' footer"),
        ("rows", "38 rows, the footer says 40"),
        ("schema", "schema"),
        ("range", "the name daily_quotes_20240101_20240131.parquet disagrees"),
        ("dates", "outside the file's range"),
        ("garbled", "malformed"),
    ],
)
def test_each_kind_of_bad_file_is_detected(tmp_path: Path, damage: str, message: str) -> None:
    path = seed(RawCache(tmp_path), *JAN)
    good = pl.read_parquet(path)
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:-100])
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "no_footer":  # a plain parquet file, e.g. written by an older version
        good.write_parquet(path)
    elif damage == "rows":
        write_with_footer(path, good, rows=40)
    elif damage == "schema":
        schema = {name: str(dtype) for name, dtype in good.schema.items()}
        write_with_footer(path, good.with_columns(pl.col("Close").cast(pl.Float32)), schema=schema)
    elif damage == "range":
        write_with_footer(path, good, start="2023-12-01")
    elif damage == "dates":
        shifted = good.with_columns(pl.col("Date").dt.offset_by("40d"))
        write_with_footer(path, shifted)
    elif damage == "garbled":
        good.write_parquet(path, metadata={META_KEY: "{not json"})
    with pytest.raises(CacheFileError, match=message):
        read_cache_file(path)


def test_a_file_filled_with_garbage_after_a_valid_footer_is_rejected(tmp_path: Path) -> None:
    path = seed(RawCache(tmp_path), *JAN)
    data = bytearray(path.read_bytes())
    # Zero the column chunks between the magic header and the footer: the footer still parses.
    footer_len = int.from_bytes(data[-8:-4], "little")
    for i in range(4, len(data) - footer_len - 8):
        data[i] = 0
    path.write_bytes(bytes(data))
    with pytest.raises(CacheFileError):
        read_cache_file(path)


def test_a_bad_file_is_deleted_refetched_and_never_served(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cache = RawCache(tmp_path)
    path = seed(cache, *JAN)
    good = pl.read_parquet(path)
    # Plausible but wrong: half the rows, under a footer that claims them all.
    write_with_footer(path, good.head(10), rows=good.height)
    fetch = RecordingFetch(tag=1)
    with caplog.at_level(logging.WARNING, logger="gogoku.cache.raw"):
        res = cache.load(SOURCE, *JAN, fetch)
    assert "corrupt" in caplog.text and path.name in caplog.text
    assert fetch.calls == [JAN] and res.hit == "miss" and set(res.frame["Version"]) == {101}
    assert_complete_rows(res.frame, *JAN)
    assert read_cache_file(path).equals(res.frame)


def test_a_bad_file_that_the_new_one_does_not_replace_is_removed(tmp_path: Path) -> None:
    cache = RawCache(tmp_path)
    seed(cache, date(2024, 3, 1), date(2024, 3, 31))
    bad = seed(cache, date(2024, 4, 1), date(2024, 4, 30))
    bad.write_bytes(bad.read_bytes()[:50])
    fetch = RecordingFetch()
    res = cache.load(SOURCE, date(2024, 3, 15), date(2024, 4, 15), fetch)
    assert fetch.calls == [(date(2024, 4, 1), date(2024, 4, 15))] and res.hit == "partial"
    assert files_in(tmp_path) == [
        "daily_quotes_20240301_20240331.parquet",
        "daily_quotes_20240315_20240415.parquet",
    ]


def test_an_empty_result_round_trips(tmp_path: Path) -> None:
    cache = RawCache(tmp_path)
    res = cache.load(SOURCE, date(2024, 5, 3), date(2024, 5, 6), RecordingFetch())
    assert res.frame.height == 0 and read_cache_file(res.path).height == 0


def test_metadata_check_reads_the_name_it_is_given(tmp_path: Path) -> None:
    path = seed(RawCache(tmp_path), *JAN)
    renamed = folder(tmp_path) / ".download.tmp"
    path.rename(renamed)
    assert read_cache_file(renamed, name=path.name).height == len(business_days(*JAN)) * len(CODES)
    with pytest.raises(CacheFileError, match="not a cache file name"):
        read_cache_file(renamed)
    with pytest.raises(CacheFileError, match="disagrees"):
        read_cache_file(renamed, name="daily_quotes_20240101_20240201.parquet")
