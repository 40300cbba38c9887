"""Publication rules and the as-of logic of RawCache with real parquet files: when each source's day
is final, the footer's as_of / final_through, refetching the provisional tail, replacing a refetched
range's rows, and a restatement rule plugged in from outside (a toy one: any code can play)."""

from __future__ import annotations

import datetime as dt
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from gogoku.cache.raw import (
    END_OF_DAY,
    Fetched,
    Publication,
    RawCache,
    cache_file_metadata,
    read_cache_file,
    read_cache_metadata,
)
from gogoku.cache.sources import CACHED_SOURCES
from gogoku.calendar import TOKYO, business_days
from gogoku.jquants.endpoints import ENDPOINTS

SOURCE = "weekly_margin_interest"
RULE = CACHED_SOURCES[SOURCE].publication


def jst(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=TOKYO)


def end_of(day: date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(23, 59, 59), TOKYO)


def test_every_cached_source_declares_its_publication_next_to_its_columns() -> None:
    assert set(CACHED_SOURCES) <= set(ENDPOINTS)
    for name, spec in CACHED_SOURCES.items():
        assert spec.date_col == ENDPOINTS[name].date_column
        assert isinstance(spec.publication, Publication)
    assert CACHED_SOURCES["trading_calendar"].publication.ahead
    assert CACHED_SOURCES["daily_quotes"].restatement is not None


@pytest.mark.parametrize(("source", "as_of", "final_through"), [
    # The record Friday 06-14 is published Tuesday 06-18 after the close (16:30, plus the margin).
    ("weekly_margin_interest", end_of(date(2024, 6, 17)), date(2024, 6, 13)),
    ("weekly_margin_interest", jst(2024, 6, 18, 17, 0), date(2024, 6, 13)),
    ("weekly_margin_interest", jst(2024, 6, 18, 17, 31), date(2024, 6, 16)),
    # Statements: final at 24:30 (00:30 the next morning).
    ("statements", end_of(date(2024, 6, 17)), date(2024, 6, 16)),
    ("statements", jst(2024, 6, 18, 1, 31), date(2024, 6, 17)),
    # The earnings calendar of a day: 19:00 the business day before, but never a day ahead.
    ("announcement", jst(2024, 6, 17, 9, 0), date(2024, 6, 17)),  # published Friday 06-14 at 19:00
    ("announcement", end_of(date(2024, 6, 14)), date(2024, 6, 16)),  # Friday: through the weekend
    # Daily quotes at 16:30 on the day; futures at 27:00.
    ("daily_quotes", jst(2024, 6, 17, 17, 0), date(2024, 6, 16)),
    ("daily_quotes", jst(2024, 6, 17, 17, 31), date(2024, 6, 17)),
    ("futures", end_of(date(2024, 6, 17)), date(2024, 6, 16)),
    ("futures", jst(2024, 6, 18, 4, 1), date(2024, 6, 17)),
    ("short_selling_positions", jst(2024, 6, 17, 18, 31), date(2024, 6, 17)),
    ("trading_calendar", jst(2024, 6, 17, 0, 0), date.max),
])
def test_final_through_follows_each_sources_schedule(source: str, as_of: dt.datetime, final_through: date) -> None:
    assert CACHED_SOURCES[source].publication.final_through(as_of) == final_through


def weekly(start: date, end: date, published_through: date, version: int = 1) -> pl.DataFrame:
    """Fridays of [start, end] published by `published_through` (two business days later), 2 codes."""
    fridays = [d for d in business_days(start, end) if d.weekday() == 4 and
               len(business_days(d, published_through)) >= 3]
    return pl.DataFrame({
        "Date": pl.Series([d for d in fridays for _ in "ab"], dtype=pl.Date),
        "Code": [c for _ in fridays for c in ("13010", "72030")],
        "Version": [version] * (2 * len(fridays)),
    })


class Api:
    """A fetch whose clock is the end of `today` (the simulator's), recording the ranges asked."""

    def __init__(self, today: date, version: int = 1) -> None:
        self.today, self.version = today, version
        self.calls: list[tuple[date, date]] = []

    def __call__(self, start: date, end: date) -> Fetched:
        self.calls.append((start, end))
        return Fetched(weekly(start, end, self.today, self.version), end_of(self.today))


def load(cache: RawCache, start: date, end: date, api: Api):  # noqa: ANN201
    return cache.load(SOURCE, start, end, api, publication=RULE)


def test_the_not_yet_final_tail_is_asked_again_and_recorded_in_the_footer(tmp_path: Path) -> None:
    cache = RawCache(tmp_path)
    first = load(cache, date(2024, 5, 18), date(2024, 6, 17), Api(date(2024, 6, 17)))
    info = read_cache_metadata(first.path)
    assert info["format"] == 2 and info["final_through"] == "2024-06-13"
    assert dt.datetime.fromisoformat(info["as_of"]) == end_of(date(2024, 6, 17))
    assert sorted(set(first.frame["Date"])) == [date(2024, 5, 24), date(2024, 5, 31), date(2024, 6, 7)]
    # The same day again: the tail is refetched (it may have changed), not served as covered.
    api = Api(date(2024, 6, 17))
    again = load(cache, date(2024, 5, 18), date(2024, 6, 17), api)
    assert api.calls == [(date(2024, 6, 14), date(2024, 6, 17))] and again.hit == "partial"
    api = Api(date(2024, 6, 18))
    later = load(cache, date(2024, 5, 19), date(2024, 6, 18), api)
    assert api.calls == [(date(2024, 6, 14), date(2024, 6, 18))]
    assert date(2024, 6, 14) in set(later.frame["Date"]) and later.final_through == date(2024, 6, 16)
    # Two business days later every day is final: a complete hit, no call.
    api = Api(date(2024, 6, 20))
    load(cache, date(2024, 5, 19), date(2024, 6, 18), api)
    api = Api(date(2024, 6, 21))
    hit = load(cache, date(2024, 5, 19), date(2024, 6, 18), api)
    assert api.calls == [] and hit.hit == "complete" and hit.frame.height == 2 * 4


def test_an_offline_load_serves_the_provisional_tail_as_fetched(tmp_path: Path) -> None:
    cache = RawCache(tmp_path)
    first = load(cache, date(2024, 5, 18), date(2024, 6, 17), Api(date(2024, 6, 17)))

    def no_api(start: date, end: date) -> pl.DataFrame:
        raise AssertionError(f"offline load fetched {start}..{end}")

    res = cache.load(SOURCE, date(2024, 5, 20), date(2024, 6, 17), no_api, publication=RULE, offline=True)
    assert res.hit == "complete" and not res.written and res.final_through == date(2024, 6, 13)
    assert res.frame.equals(first.frame.filter(pl.col("Date") >= date(2024, 5, 20)))
    # A day no file holds is still a miss (the offline fetch is asked, and fails).
    with pytest.raises(AssertionError, match="offline load fetched"):
        cache.load(SOURCE, date(2024, 5, 20), date(2024, 6, 18), no_api, publication=RULE, offline=True)


def test_rows_of_a_refetched_range_replace_the_cached_ones(tmp_path: Path) -> None:
    cache = RawCache(tmp_path)
    res = load(cache, date(2024, 6, 3), date(2024, 6, 18), Api(date(2024, 6, 18)))
    assert res.final_through == date(2024, 6, 16)
    # A provisional row upstream then vanished (here: a row of a third code on 06-14, the last Friday).
    path = res.path
    info = read_cache_metadata(path)
    extra = res.frame.filter(pl.col("Date") == date(2024, 6, 14)).head(1).with_columns(pl.lit("99990").alias("Code"))
    doctored = pl.concat([res.frame, extra]).sort("Code", "Date")
    doctored.write_parquet(path, metadata=cache_file_metadata(
        SOURCE, date(2024, 6, 3), date(2024, 6, 18), "Date", doctored,
        dt.datetime.fromisoformat(info["as_of"]), date(2024, 6, 13)))
    api = Api(date(2024, 6, 19), version=2)
    out = load(cache, date(2024, 6, 3), date(2024, 6, 18), api)
    assert api.calls == [(date(2024, 6, 14), date(2024, 6, 18))]
    assert "99990" not in set(out.frame["Code"])
    assert out.frame.filter(pl.col("Date") == date(2024, 6, 14))["Version"].to_list() == [2, 2]
    assert set(out.frame.filter(pl.col("Date") < date(2024, 6, 14))["Version"]) == {1}


def test_a_plain_frame_counts_as_fetched_at_the_wall_clock_of_its_start(tmp_path: Path) -> None:
    t0 = dt.datetime.now(dt.UTC)
    res = RawCache(tmp_path).load("topix", date(2024, 1, 1), date(2024, 1, 31),
                                  lambda a, b: pl.DataFrame({"Date": business_days(a, b)}), key_cols=["Date"])
    as_of = dt.datetime.fromisoformat(read_cache_metadata(res.path)["as_of"])
    assert t0 - dt.timedelta(seconds=1) <= as_of <= dt.datetime.now(dt.UTC)
    assert res.final_through == date(2024, 1, 31) and END_OF_DAY.final_through(as_of) > date(2024, 1, 31)


def test_nothing_final_when_the_whole_request_is_ahead_of_the_api(tmp_path: Path) -> None:
    cache = RawCache(tmp_path)
    res = load(cache, date(2024, 6, 24), date(2024, 6, 28), Api(date(2024, 6, 21)))
    assert res.final_through == date(2024, 6, 23) and res.frame.height == 0
    api = Api(date(2024, 6, 21))
    load(cache, date(2024, 6, 24), date(2024, 6, 28), api)
    assert api.calls == [(date(2024, 6, 24), date(2024, 6, 28))]


class ToyRestatement:
    """Rows flagged `Event` restate their code's earlier rows (any source can declare such a rule)."""

    name = "toy"
    code_col = "Code"

    def events(self, frame: pl.DataFrame, date_col: str) -> set[tuple[str, date]]:
        rows = frame.filter(pl.col("Event")).select("Code", date_col)
        return {(c, d) for c, d in rows.iter_rows()}


def test_a_restatement_rule_plugs_in_and_is_applied_once(tmp_path: Path) -> None:
    codes = ["13010", "72030"]

    def rows(start: date, end: date, version: int, only: list[str] | None = None) -> pl.DataFrame:
        days = business_days(start, end)
        frame = pl.DataFrame({
            "Date": pl.Series([d for d in days for _ in codes], dtype=pl.Date),
            "Code": [c for _ in days for c in codes],
            "Event": [d == date(2024, 3, 11) and c == "72030" for d in days for c in codes],
            "Version": [version] * (len(days) * len(codes)),
        })
        return frame if only is None else frame.filter(pl.col("Code").is_in(only))

    asked: list[tuple[date, date, list[str]]] = []

    def by_code(start: date, end: date, only: list[str]) -> Fetched:
        asked.append((start, end, only))
        return Fetched(rows(start, end, 2, only), jst(2024, 3, 12, 20))

    cache = RawCache(tmp_path)
    old = cache.load("toy", date(2024, 1, 4), date(2024, 2, 29),
                     lambda a, b: Fetched(rows(a, b, 1), jst(2024, 3, 1, 20)), restatement=ToyRestatement(),
                     fetch_codes=by_code)
    mtime = old.path.stat().st_mtime
    new = cache.load("toy", date(2024, 3, 11), date(2024, 3, 12),
                     lambda a, b: Fetched(rows(a, b, 2), jst(2024, 3, 12, 20)), restatement=ToyRestatement(),
                     fetch_codes=by_code)
    assert new.revisions == ["toy:72030:2024-03-11"] and new.patched == [old.path]
    assert asked == [(date(2024, 1, 4), date(2024, 3, 10), ["72030"])]
    patched = read_cache_file(old.path)
    assert set(patched.filter(pl.col("Code") == "72030")["Version"]) == {2}
    assert set(patched.filter(pl.col("Code") == "13010")["Version"]) == {1}
    assert read_cache_metadata(old.path)["revisions"] == ["toy:72030:2024-03-11"]
    assert old.path.stat().st_mtime == pytest.approx(mtime, abs=1e-3)
    # Seen again (a forced refetch of the event's day): every file already reflects it.
    cache.load("toy", date(2024, 3, 11), date(2024, 3, 12), lambda a, b: Fetched(rows(a, b, 3), jst(2024, 3, 13, 20)),
               force=True, restatement=ToyRestatement(), fetch_codes=by_code)
    assert len(asked) == 1


def test_an_event_not_yet_final_waits_for_its_refetch(tmp_path: Path) -> None:
    cache = RawCache(tmp_path)
    quotes = CACHED_SOURCES["daily_quotes"]

    def frame(start: date, end: date, factor: float = 1.0) -> pl.DataFrame:
        days = business_days(start, end)
        return pl.DataFrame({"Date": pl.Series(days, dtype=pl.Date), "Code": ["13010"] * len(days),
                             "AdjustmentFactor": [factor if d == end else 1.0 for d in days]})

    asked: list[list[str]] = []

    def by_code(start: date, end: date, codes: list[str]) -> Fetched:
        asked.append(codes)
        return Fetched(frame(start, end), jst(2024, 3, 12, 20))

    cache.load("daily_quotes", date(2024, 3, 1), date(2024, 3, 8), lambda a, b: Fetched(frame(a, b), jst(2024, 3, 8, 20)),
               publication=quotes.publication, restatement=quotes.restatement, fetch_codes=by_code)
    # At 16:45 the ex-date's row is out but not final (16:30 + the margin): nothing is restated yet.
    early = cache.load("daily_quotes", date(2024, 3, 11), date(2024, 3, 11),
                       lambda a, b: Fetched(frame(a, b, 0.5), jst(2024, 3, 11, 16, 45)),
                       publication=quotes.publication, restatement=quotes.restatement, fetch_codes=by_code)
    assert asked == [] and early.final_through == date(2024, 3, 10)
    late = cache.load("daily_quotes", date(2024, 3, 11), date(2024, 3, 11),
                      lambda a, b: Fetched(frame(a, b, 0.5), jst(2024, 3, 11, 20)),
                      publication=quotes.publication, restatement=quotes.restatement, fetch_codes=by_code)
    assert asked == [["13010"]] and late.revisions == ["adjustment:13010:2024-03-11"]
