"""Dataset build: features + targets for [start, end] from cached raw frames.

Inputs carry history before `start` (the lookback) so that 60/120/200-session windows are warm at
`start`; features are computed on the history, then rows are cut to [start, end]. History older than
`start - lookback_days` is ignored so that a dataset does not depend on how much extra was passed.

Two builds give the same frame:
- `build_dataset`: in memory, in one shot (about 2 KB per stock-day of the range at its peak);
- `read_quotes_history` + `build_dataset_chunked`: out of core. The quotes are read per date segment
  into temp files; the per-Code groups (price, market, stock x market, targets) run on blocks of codes
  over the whole history (cheap per block of codes, and Wilder's recursions keep a tiny trace of
  where they start, gogoku.features.memory); the cross-sectional groups (sector, statements, the J-Quants families, graph, futures) run
  per date chunk on that chunk plus the sessions their windows need; a final merge per block of codes
  writes one parquet file sorted by (Code, Date). Peak memory depends on the chunk and the block, not
  on the range. The frames are equal bit for bit but for the sector group's rolling sums over its
  daily series, which start at a chunk's lookback instead of the history's first day (their last
  Float64 bits can differ).
"""

from __future__ import annotations

import bisect
import calendar as _calendar
import datetime as dt
import logging
import resource
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from gogoku.calendar import half_days_from_calendar, session_ordinals
from gogoku.contracts import LOOKBACK_DAYS
from gogoku.dataset.manifest import (
    DatasetSummary,
    latest_dataset,
    make_manifest,
    validate_dataset,
    write_dataset,
)
from gogoku.dataset.targets import HORIZONS, add_targets, target_columns
from gogoku.errors import InputError
from gogoku.features import peer_graph
from gogoku.features.family_groups import family_adders
from gogoku.features.price import PRICE_FEATURES, price_features
from gogoku.features.sector import (
    IDENTITY_COLUMNS,
    SECTOR_FEATURES,
    Z_IN_SECTOR_SOURCES,
    add_sector_features,
    attach_listed_info,
)
from gogoku.features.statements import REQUIRED as STATEMENT_COLUMNS
from gogoku.features.statements import (
    STATEMENT_FEATURES,
    STATEMENT_FULL_FEATURES,
    add_statement_features,
    add_statement_features_full,
    has_full_columns,
)
from gogoku.features.topix import MARKET_FEATURES, STOCK_MARKET_FEATURES, Z_WINDOW, add_market_features
from gogoku.polars_engine import collect_engine

__all__ = [
    "ChunkedDataset", "QuotesHistory", "build_dataset", "build_dataset_chunked", "date_chunks",
    "default_chunk_months", "latest_dataset", "read_quotes_history", "validate_dataset", "write_dataset",
]

log = logging.getLogger(__name__)

KEYS = ("Code", "Date")
# Codes per chunk of the per-Code groups (price, stock x market, targets) in the one-shot build.
CODE_CHUNK = 250

# Chunked build: ranges longer than ONE_SHOT_MAX_DAYS are built in chunks of DEFAULT_CHUNK_MONTHS
# unless told otherwise (4,000 stocks x 24 months: 3.7 GiB; each chunk recomputes its lookback and
# the families' source tables, so fewer chunks are faster).
DEFAULT_CHUNK_MONTHS = 24
ONE_SHOT_MAX_DAYS = 366
# The quotes are kept in temp files of at most this many months (the date granularity of the reads
# of the cross-sectional groups).
SEGMENT_MONTHS = 12
# Rows (codes x sessions of the whole history) per block of codes: the one-shot's 250 codes x 5 years.
ROWS_PER_BLOCK = 450_000
# Sessions before a chunk that its cross-sectional groups need: the sector's 252-session z-scores of
# 20-session statistics; the families' 20-row ADV (with room for codes that skip sessions).
SECTOR_SESSIONS = Z_WINDOW + 20
FAMILY_SESSIONS = 60
# Quotes are read in windows of up to this many days (a few segments at once): a raw cache file is
# read whole, so fewer reads are faster, and a window of full-width quotes stays small.
READ_DAYS = 3 * 366
TEMP_COMPRESSION = "lz4"  # temp files are written once and read once: speed over size
TEMP_ROW_GROUP = 65_536  # small row groups so that a block of codes reads only its own
OUT_ROW_GROUP = 262_144  # polars' default, as the one-shot file has

REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "quotes": (
        "Date", "Code", "AdjustmentOpen", "AdjustmentHigh", "AdjustmentLow", "AdjustmentClose",
        "AdjustmentVolume", "TurnoverValue", "UpperLimit", "LowerLimit",
    ),
    "listed": ("Date", "Code", "MarketCode", "Sector33Code", "Sector17Code"),
    "topix": ("Date", "High", "Low", "Close"),
    "calendar": ("Date", "HolidayDivision"),
    "statements": STATEMENT_COLUMNS,
}

# HolidayDivision: 1 business day, 2 half-day session; 0 holiday, 3 holiday with derivatives trading only.
CASH_SESSION_DIVISIONS = ("1", "2")
# Price columns that the sector group takes from the per-Code groups (Float64, on the whole history).
SECTOR_INPUTS = tuple(sorted({"returns_1d", "returns_5d", "returns_20d", *Z_IN_SECTOR_SOURCES}))

Frame = pl.DataFrame | pl.LazyFrame
NarrowAdder = Callable[[pl.LazyFrame], pl.LazyFrame]


def _peak_rss_gib() -> float:
    """This process's peak resident set so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _checked(frame: Frame, name: str) -> pl.LazyFrame:
    lf = frame.lazy()
    missing = [c for c in REQUIRED_COLUMNS[name] if c not in lf.collect_schema()]
    if missing:
        raise InputError(f"{name}: missing column(s) {', '.join(missing)}")
    return lf


def _finite_float32(col: str) -> pl.Expr:
    # Divisions by a zero volume or turnover give inf; a model input is null there instead.
    x = pl.col(col).cast(pl.Float64)
    return pl.when(x.is_finite()).then(x).cast(pl.Float32).alias(col)


def _stack(parts: list[pl.DataFrame]) -> pl.DataFrame:
    """`parts` one under the other, each column in one chunk, emptying `parts` column by column
    (a plain concat + rechunk would hold every column twice at once)."""
    columns = []
    for name in parts[0].columns:
        columns.append(pl.concat([p.get_column(name) for p in parts], rechunk=True))
        parts[:] = [p.drop(name) for p in parts]
    parts.clear()
    return pl.DataFrame(columns)


def _check_range(start: dt.date, end: dt.date, lookback_days: int) -> dt.date:
    if end < start:
        raise InputError(f"dataset range: end {end} is before start {start}")
    if lookback_days < 0:
        raise InputError(f"lookback_days={lookback_days}: expected >= 0")
    return start - dt.timedelta(days=lookback_days)


def _calendar_sessions(calendar: Frame | None) -> tuple[pl.LazyFrame | None, frozenset[dt.date]]:
    """The cash sessions of the calendar (None: no calendar filter) and its half-day sessions."""
    if calendar is None:
        return None, frozenset()
    cal = _checked(calendar, "calendar")
    sessions = cal.filter(pl.col("HolidayDivision").cast(pl.Utf8).is_in(CASH_SESSION_DIVISIONS)).select("Date")
    # Half-day sessions (HolidayDivision "2") close at 11:30 for the as-of rule.
    half_days = half_days_from_calendar(cal)
    if half_days:
        log.info("dataset: %d half-day session(s) in the calendar (as-of close 11:30)", len(half_days))
    return sessions, half_days


def _quotes(quotes: Frame, sessions: pl.LazyFrame | None, first: dt.date, last: dt.date | None = None) -> pl.LazyFrame:
    """Priced session rows from `first` (through `last`), one per (Code, Date), sorted."""
    q = _checked(quotes, "quotes").filter(pl.col("Date") >= first, pl.col("AdjustmentClose").is_not_null())
    if last is not None:
        q = q.filter(pl.col("Date") <= last)
    if sessions is not None:
        q = q.join(sessions, on="Date", how="semi")
    return q.with_columns(pl.col("Code").cast(pl.Utf8)).unique(list(KEYS), keep="last").sort(*KEYS)


@dataclass
class _Plan:
    """What a build computes, the same for both builds: the groups in manifest order, the absent
    groups with why, and the inputs of the groups other than the per-Code ones."""

    groups: dict[str, tuple[str, ...]]
    absent: dict[str, str]
    topix: pl.LazyFrame | None
    narrow: dict[str, NarrowAdder]  # statements and the families: (keys, membership, volume) rows
    futures: pl.LazyFrame | None
    graph_step: int | None
    targets: list[str]

    @property
    def per_code(self) -> list[str]:
        return [c for g in ("price", "market", "stock_market") if g in self.groups for c in self.groups[g]]

    @property
    def features(self) -> list[str]:
        return [c for cols in self.groups.values() for c in cols]


def _plan(
    listed: Frame,
    topix: Frame | None,
    statements: Frame | None,
    futures_features: Frame | None,
    sources: Mapping[str, Frame | None] | None,
    *,
    plan: str,
    first_day: dt.date,
    half_days: frozenset[dt.date],
    graph_step: int | None,
    horizons: Sequence[int],
) -> _Plan:
    groups: dict[str, tuple[str, ...]] = {"price": PRICE_FEATURES}
    absent: dict[str, str] = {}
    topix_lf = None
    if topix is None:
        absent["market"] = absent["stock_market"] = f"no TOPIX data (plan {plan} does not include indices/topix)"
        log.warning("dataset: market and stock_market groups absent: %s", absent["market"])
    else:
        # TOPIX is cut like the quotes: its recursions would otherwise depend on where history starts.
        topix_lf = _checked(topix, "topix").filter(pl.col("Date") >= first_day).collect().lazy()
        groups["market"] = MARKET_FEATURES
        groups["stock_market"] = STOCK_MARKET_FEATURES
    groups["sector"] = SECTOR_FEATURES
    narrow: dict[str, NarrowAdder] = {}
    if statements is not None:
        stmts = _checked(statements, "statements")
        full = has_full_columns(stmts)
        groups["statements"] = STATEMENT_FULL_FEATURES if full else STATEMENT_FEATURES
        add_stmts = add_statement_features_full if full else add_statement_features
        narrow["statements"] = lambda lf: add_stmts(lf, stmts, half_days)
    else:
        absent["statements"] = "no statements given"
    if sources is not None or graph_step is not None:
        # The non-price J-Quants families (flow, margin, short selling, calendar, options) and the graph.
        found, fam_absent = family_adders(sources or {}, plan=plan, listed=_checked(listed, "listed"), since=first_day)
        for group, names, add in found:
            groups[group] = names
            narrow[group] = add
        if graph_step is None:
            fam_absent["graph"] = "correlation graph disabled"
        else:
            groups["graph"] = peer_graph.GRAPH_FEATURES
        for group, why in fam_absent.items():
            log.info("dataset: group %s absent: %s", group, why)
        absent.update(fam_absent)
    fut = None
    if futures_features is not None:
        fut = futures_features.lazy()
        fut_cols = tuple(c for c in fut.collect_schema() if c != "Date")
        bad = [c for c in fut_cols if not c.startswith("fut_")]
        if "Date" not in fut.collect_schema() or bad or not fut_cols:
            raise InputError(f"futures features: expected Date and fut_* columns, got unexpected {bad or 'none'}")
        groups["futures"] = fut_cols
    else:
        absent["futures"] = (
            "no futures features given (--futures-features)" if plan == "premium" else f"futures need the premium plan (plan {plan})"
        )
    return _Plan(groups, absent, topix_lf, narrow, fut, graph_step if "graph" in groups else None,
                 target_columns(horizons))


def _piece(
    lf: pl.LazyFrame, names: Sequence[str], group: str, lo: dt.date, hi: dt.date, engine: Any,
    times: dict[str, float] | None = None,
) -> pl.DataFrame:
    """A group's features on the rows of [lo, hi], Float32, sorted by (Code, Date)."""
    t0 = time.perf_counter()
    out = (
        lf.filter(pl.col("Date").is_between(lo, hi))
        .select(*KEYS, *[_finite_float32(c) for c in names])
        .sort(*KEYS)
        .collect(engine=engine)
    )
    seconds = time.perf_counter() - t0
    if times is None:
        log.info("dataset: group %s: %d features in %.1fs (peak RSS so far %.2f GiB)", group, len(names), seconds,
                 _peak_rss_gib())
    else:
        times[group] = times.get(group, 0.0) + seconds
    return out


def _per_code_part(rows: pl.LazyFrame, spec: _Plan, horizons: Sequence[int], engine: Any) -> pl.DataFrame:
    """The per-Code groups and the targets of `rows` (sorted by (Code, Date), every Code whole), with
    the sector group's inputs as `_in_<name>` (Float64)."""
    lf = price_features(rows)
    if spec.topix is not None:
        lf = add_market_features(lf, spec.topix)
    return (
        add_targets(lf, horizons)
        .select(
            *KEYS,
            *[pl.col(c).cast(pl.Utf8) for c in IDENTITY_COLUMNS],
            *[_finite_float32(c) for c in spec.per_code],
            *[pl.col(t).cast(pl.Float64) for t in spec.targets],
            *[pl.col(c).alias(f"_in_{c}") for c in SECTOR_INPUTS],
        )
        .collect(engine=engine)
    )


def _manifest(
    summary: pl.DataFrame | DatasetSummary, spec: _Plan, *, start: dt.date, end: dt.date, plan: str,
    lookback_days: int, horizons: Sequence[int], calendar: bool, statements: bool, futures: bool,
    sources: Mapping[str, Frame | None] | None, graph_step: int | None, extra: Mapping[str, Any] | None = None,
) -> dict:
    manifest = make_manifest(
        summary,
        groups=spec.groups,
        targets=spec.targets,
        start=start,
        end=end,
        plan=plan,
        build={
            "lookback_days": lookback_days,
            "horizons": list(horizons),
            "calendar_filter": calendar,
            "inputs": {
                "statements": statements,
                "futures_features": futures,
                "sources": sorted(k for k, v in (sources or {}).items() if v is not None),
            },
            "graph_step": graph_step,
            **(extra or {}),
        },
    )
    manifest["absent_groups"] = spec.absent
    for group, why in spec.absent.items():
        log.info("dataset: group %s absent: %s", group, why)
    return manifest


def build_dataset(
    quotes: Frame,
    listed: Frame,
    topix: Frame | None,
    calendar: Frame | None = None,
    statements: Frame | None = None,
    futures_features: Frame | None = None,
    *,
    start: dt.date,
    end: dt.date,
    plan: str = "standard",
    lookback_days: int = LOOKBACK_DAYS,
    horizons: Sequence[int] = HORIZONS,
    sources: Mapping[str, Frame | None] | None = None,
    graph_step: int | None = None,
) -> tuple[pl.DataFrame, dict]:
    """Build the feature + target frame for [start, end] and its manifest, in memory.

    `statements` (v1 fins/statements) add the small `stmt_*` group under the as-of rule;
    `futures_features` is the Date-keyed frame of `gogoku.features.futures.futures_features`.
    `topix` is None on plans without TOPIX (free): the market and stock x market groups are then
    absent, and the manifest's `absent_groups` says why.
    """
    first_day = _check_range(start, end, lookback_days)
    sessions, half_days = _calendar_sessions(calendar)
    q = _quotes(quotes, sessions, first_day)

    # Every group is computed on the full history (its windows warm up on the lookback) from a narrow
    # frame, then cut to [start, end] and kept as Float32 columns only: one wide Float64 frame of every
    # group over the history took several times the output's memory. The pieces share the rows of
    # `base` in (Code, Date) order and are put side by side once at the end. Every collect uses the
    # same engine (gogoku.polars_engine: the GPU where cudf-polars is installed, else the CPU in-memory one).
    engine = collect_engine()
    log.info("dataset: polars engine %s", "gpu (cudf-polars)" if engine != "in-memory" else "cpu (in-memory)")
    base = attach_listed_info(q, _checked(listed, "listed")).collect(engine=engine)
    in_range = pl.col("Date").is_between(start, end)
    keys = base.select(*KEYS).filter(in_range).lazy()
    spec = _plan(listed, topix, statements, futures_features, sources, plan=plan, first_day=first_day,
                 half_days=half_days, graph_step=graph_step, horizons=horizons)

    def piece(lf: pl.LazyFrame, names: Sequence[str], group: str) -> pl.DataFrame:
        return _piece(lf, names, group, start, end, engine)

    pieces: dict[str, pl.DataFrame] = {}
    if spec.graph_step is not None:
        g = peer_graph.graph_features(q.select("Code", "Date", "AdjustmentClose").collect(), step=spec.graph_step,
                                 start=start)
        pieces["graph"] = piece(keys.join(g.lazy(), on=list(KEYS), how="left", maintain_order="left"),
                                peer_graph.GRAPH_FEATURES, "graph")
        del g
    del q, quotes  # the raw quotes are not needed past `base` (freed here unless the caller holds them)

    # The per-Code groups (price, stock x market) and the targets, by chunks of codes. The sector group
    # needs some price columns on the whole history (Float64) across codes: those are kept aside.
    codes = base.get_column("Code").unique().sort()
    chunks: list[pl.DataFrame] = []
    sector_parts: list[pl.DataFrame] = []
    for i in range(0, max(codes.len(), 1), CODE_CHUNK):
        block = base.lazy().filter(pl.col("Code").is_in(codes.slice(i, CODE_CHUNK).implode()))
        part = _per_code_part(block, spec, horizons, engine)
        sector_parts.append(part.select(*KEYS, "Sector33Code", *[pl.col(f"_in_{c}").alias(c) for c in SECTOR_INPUTS]))
        chunks.append(part.filter(in_range).drop([f"_in_{c}" for c in SECTOR_INPUTS]))
        del part
    out = _stack(chunks)
    log.info("dataset: price, market and stock_market groups done (peak RSS so far %.2f GiB)", _peak_rss_gib())
    pieces["sector"] = piece(add_sector_features(_stack(sector_parts).lazy()), SECTOR_FEATURES, "sector")

    # The groups that need only keys, membership and volume, on every Code at once (their
    # cross-sectional z-scores are per Date).
    base = base.select(*KEYS, *IDENTITY_COLUMNS, "AdjustmentVolume")
    for group, add in spec.narrow.items():
        pieces[group] = piece(add(base.lazy()), spec.groups[group], group)
    del base
    if spec.futures is not None:
        pieces["futures"] = piece(keys.join(spec.futures, on="Date", how="left", maintain_order="left"),
                                  spec.groups["futures"], "futures")

    for group, part in pieces.items():
        if not (part.height == out.height and part["Date"].equals(out["Date"]) and part["Code"].equals(out["Code"])):
            raise RuntimeError(f"dataset build: the rows of group {group} do not line up with the price group")
    # Side by side without a copy (every column is one chunk, so the select below does not copy either).
    df = pl.concat([out, *[p.drop(*KEYS) for p in pieces.values()]], how="horizontal").select(
        *KEYS, *IDENTITY_COLUMNS, *spec.features, *spec.targets
    )
    del out, pieces
    if df.is_empty():
        raise InputError(f"quotes: no priced rows between {start} and {end}")
    log.info("dataset %s..%s: %d rows, %d codes, %d features", start, end, df.height, df["Code"].n_unique(),
             len(spec.features))
    manifest = _manifest(
        df, spec, start=start, end=end, plan=plan, lookback_days=lookback_days, horizons=horizons,
        calendar=calendar is not None, statements=statements is not None, futures=futures_features is not None,
        sources=sources, graph_step=graph_step,
    )
    return df, manifest


# ---------------------------------------------------------------- out of core
def _add_months(day: dt.date, months: int) -> dt.date:
    y, m = divmod(day.month - 1 + months, 12)
    year, month = day.year + y, m + 1
    return dt.date(year, month, min(day.day, _calendar.monthrange(year, month)[1]))


def date_chunks(start: dt.date, end: dt.date, months: int) -> list[tuple[dt.date, dt.date]]:
    """[start, end] cut into consecutive ranges of `months` calendar months (counted from `start`);
    months <= 0: the whole range."""
    if end < start:
        raise InputError(f"dataset range: end {end} is before start {start}")
    if months <= 0:
        return [(start, end)]
    chunks = []
    a, k = start, 1
    while a <= end:
        nxt = _add_months(start, k * months)
        chunks.append((a, min(end, nxt - dt.timedelta(days=1))))
        a, k = nxt, k + 1
    return chunks


def default_chunk_months(start: dt.date, end: dt.date) -> int:
    """The chunking of `gogoku dataset build` without --chunk-months: one shot up to a year, else
    chunks of DEFAULT_CHUNK_MONTHS so that long ranges stay in bounded memory."""
    return 0 if (end - start).days < ONE_SHOT_MAX_DAYS else DEFAULT_CHUNK_MONTHS


def _checked_chunks(chunks: Sequence[tuple[dt.date, dt.date]], start: dt.date, end: dt.date) -> list[tuple[dt.date, dt.date]]:
    out = [(a, b) for a, b in chunks]
    ok = bool(out) and out[0][0] == start and out[-1][1] == end and all(a <= b for a, b in out)
    ok = ok and all(out[i][1] + dt.timedelta(days=1) == out[i + 1][0] for i in range(len(out) - 1))
    if not ok:
        raise InputError(f"dataset chunks {[(str(a), str(b)) for a, b in out]}: expected consecutive ranges "
                         f"covering {start}..{end}")
    return out


@dataclass
class ChunkedDataset:
    """A dataset built out of core, in temp files: `write(path)` merges them into one parquet file
    sorted by (Code, Date) (a temp path: `write_dataset` renames it into place once complete)."""

    manifest: dict[str, Any]
    write: Callable[[Path], None]


class _ParquetAppender:
    """The dataset file, written block by block (pyarrow) while the caller prepares the next block:
    the encoding runs on a thread (pyarrow releases the GIL), one block at a time."""

    def __init__(self, path: Path) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.path = Path(path)
        self._writer: Any = None
        self._pool = ThreadPoolExecutor(max_workers=1)
        self._pending: Any = None

    def write(self, frame: pl.DataFrame) -> None:
        import pyarrow.parquet as pq

        table = frame.to_arrow()
        if self._writer is None:
            # Dictionaries only for the strings: tried on every float column they cost 5x the write time.
            strings = [c for c, t in frame.schema.items() if t == pl.Utf8]
            self._writer = pq.ParquetWriter(self.path, table.schema, compression="zstd", use_dictionary=strings)
        self.wait()
        self._pending = self._pool.submit(self._writer.write_table, table, row_group_size=OUT_ROW_GROUP)

    def wait(self) -> None:
        if self._pending is not None:
            self._pending.result()
            self._pending = None

    def close(self) -> None:
        try:
            self.wait()
        finally:
            self._pool.shutdown()
            if self._writer is not None:
                self._writer.close()


def _code_range(lo: str, hi: str) -> pl.Expr:
    return pl.col("Code").is_between(pl.lit(lo), pl.lit(hi))


@dataclass
class QuotesHistory:
    """The first step of a chunked build: the quotes of the whole history with their membership, in
    temp files of `work` (one per date segment), and what they hold. Lives as long as the context of
    `read_quotes_history`; `build_dataset_chunked` computes the dataset from it."""

    start: dt.date
    end: dt.date
    first_day: dt.date  # the lookback's first day
    lookback_days: int
    chunks: list[tuple[dt.date, dt.date]]
    build_info: dict[str, int]  # how the range was cut, for the manifest
    files: list[tuple[dt.date, dt.date, Path]]  # (first, last day, file) of the non-empty segments
    dates: list[dt.date]  # the sessions of the whole history, sorted
    codes: list[str]  # every code of the history, sorted
    summary: DatasetSummary  # the rows of [start, end]
    listed: Frame
    calendar: bool
    half_days: frozenset[dt.date]
    work: Path
    engine: Any


@contextmanager
def read_quotes_history(
    read_quotes: Callable[[dt.date, dt.date], Frame],
    listed: Frame,
    calendar: Frame | None = None,
    *,
    start: dt.date,
    end: dt.date,
    work_dir: Path,
    chunk_months: int = DEFAULT_CHUNK_MONTHS,
    chunks: Sequence[tuple[dt.date, dt.date]] | None = None,
    lookback_days: int = LOOKBACK_DAYS,
) -> Iterator[QuotesHistory]:
    """Read the quotes of [start - lookback_days, end] through `read_quotes(a, b)` (the raw quotes of
    [a, b]), a few date segments at a time, never the whole history at once, into temp files in a
    hidden folder of `work_dir` (the output folder: the disk that holds the result), removed on exit.

    The range is cut into chunks of `chunk_months` months, or into `chunks` (consecutive ranges
    covering [start, end]). Read the quotes before loading the other sources: a raw cache file is
    read whole, and its read is the largest allocation of a chunked build.
    """
    first_day = _check_range(start, end, lookback_days)
    chunk_list = _checked_chunks(chunks, start, end) if chunks is not None else date_chunks(start, end, chunk_months)
    # The quotes are kept per segment of at most SEGMENT_MONTHS: the lookback, then each chunk.
    pieces = [(first_day, start - dt.timedelta(days=1))] if first_day < start else []
    segments = [seg for a, b in [*pieces, *chunk_list] for seg in date_chunks(a, b, SEGMENT_MONTHS)]
    sessions, half_days = _calendar_sessions(calendar)
    listed_lf = _checked(listed, "listed")
    engine = collect_engine()
    log.info("dataset: out-of-core build of %s..%s in %d chunk(s), polars engine %s", start, end, len(chunk_list),
             "gpu (cudf-polars)" if engine != "in-memory" else "cpu (in-memory)")
    work = Path(tempfile.mkdtemp(prefix=".ml_dataset_parts.", suffix=".tmp", dir=work_dir))
    try:
        t0 = time.perf_counter()
        reads: list[list[int]] = []  # segments read together
        for s, (_, b) in enumerate(segments):
            if reads and (b - segments[reads[-1][0]][0]).days < READ_DAYS:
                reads[-1].append(s)
            else:
                reads.append([s])
        schema: dict[str, pl.DataType] | None = None
        files: list[tuple[dt.date, dt.date, Path]] = []
        dates: set[dt.date] = set()
        codes: set[str] = set()
        out_dates: set[dt.date] = set()
        out_codes: set[str] = set()
        out_rows = 0
        for group in reads:
            # Only the columns the build uses: the others of the raw frame are freed at once.
            raw = _checked(read_quotes(segments[group[0]][0], segments[group[-1]][1]), "quotes").select(
                REQUIRED_COLUMNS["quotes"]).collect()
            for s in group:
                a, b = segments[s]
                seg = (
                    attach_listed_info(_quotes(raw, sessions, a, b), listed_lf)
                    .select(*KEYS, *REQUIRED_COLUMNS["quotes"][2:], *IDENTITY_COLUMNS)
                    .collect(engine=engine)
                )
                if seg.is_empty():
                    continue
                if schema is None:
                    schema = dict(seg.schema)
                seg = seg.cast(schema)  # every segment as the first one (an all-null column may come untyped)
                path = work / f"base_{s:03d}.parquet"
                seg.write_parquet(path, compression=TEMP_COMPRESSION, row_group_size=TEMP_ROW_GROUP)
                files.append((a, b, path))
                dates.update(seg.get_column("Date").unique().to_list())
                codes.update(seg.get_column("Code").unique().to_list())
                kept = seg.filter(pl.col("Date").is_between(start, end)).select(KEYS)
                out_rows += kept.height
                out_dates.update(kept.get_column("Date").unique().to_list())
                out_codes.update(kept.get_column("Code").unique().to_list())
                log.info("dataset: quotes %d/%d %s..%s: %d rows (peak RSS so far %.2f GiB)", s + 1, len(segments), a,
                         b, seg.height, _peak_rss_gib())
                del seg, kept
            del raw
        if out_rows == 0:
            raise InputError(f"quotes: no priced rows between {start} and {end}")
        log.info("dataset: %d codes, %d sessions since %s read in %.1fs", len(codes), len(dates), first_day,
                 time.perf_counter() - t0)
        yield QuotesHistory(
            start=start, end=end, first_day=first_day, lookback_days=lookback_days, chunks=chunk_list,
            build_info={"chunk_months": chunk_months} if chunks is None else {"chunks": len(chunk_list)},
            files=files, dates=sorted(dates), codes=sorted(codes),
            summary=DatasetSummary(rows=out_rows, codes=len(out_codes), dates=len(out_dates), first_date=min(out_dates),
                                   last_date=max(out_dates), identity_columns=list(IDENTITY_COLUMNS)),
            listed=listed, calendar=calendar is not None, half_days=half_days, work=work, engine=engine,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _per_code_blocks(
    hist: QuotesHistory, spec: _Plan, horizons: Sequence[int], start: dt.date, end: dt.date, work: Path, engine: Any,
) -> tuple[list[tuple[str, str, Path]], list[list[Path]]]:
    """The per-Code groups and targets by blocks of codes over the whole history (the size of a block
    bounded by ROWS_PER_BLOCK). Writes each block's rows of [start, end] (per_code_<i>), and for the
    cross-sectional groups its narrow columns and sector inputs per date segment (x_<s>_<i>).
    Returns the (first code, last code, file) of the blocks with rows in range, and the x files per segment."""
    t0 = time.perf_counter()
    per_block = max(1, min(CODE_CHUNK, ROWS_PER_BLOCK // max(len(hist.dates), 1)))
    code_blocks = [hist.codes[i : i + per_block] for i in range(0, len(hist.codes), per_block)]
    base_scan = pl.scan_parquet([p for _, _, p in hist.files])
    blocks: list[tuple[str, str, Path]] = []
    x_files: list[list[Path]] = [[] for _ in hist.files]
    for i, block in enumerate(code_blocks):
        rows = base_scan.filter(_code_range(block[0], block[-1])).collect(engine=engine).sort(*KEYS)
        part = _per_code_part(rows.lazy(), spec, horizons, engine)
        if not (part["Code"].equals(rows["Code"]) and part["Date"].equals(rows["Date"])):
            raise RuntimeError("dataset build: the per-Code groups do not line up with their rows")
        x = pl.concat(
            [rows.select(*KEYS, *IDENTITY_COLUMNS, "AdjustmentVolume", "AdjustmentClose"),
             part.select(*[pl.col(f"_in_{c}").alias(c) for c in SECTOR_INPUTS])],
            how="horizontal",
        )
        for s, (a, b, _) in enumerate(hist.files):
            seg = x.filter(pl.col("Date").is_between(a, b))
            if seg.height:
                x_files[s].append(work / f"x_{s:03d}_{i:04d}.parquet")
                seg.write_parquet(x_files[s][-1], compression=TEMP_COMPRESSION)
        kept = part.filter(pl.col("Date").is_between(start, end)).drop([f"_in_{c}" for c in SECTOR_INPUTS])
        if kept.height:
            blocks.append((kept["Code"][0], kept["Code"][-1], work / f"per_code_{i:04d}.parquet"))
            kept.write_parquet(blocks[-1][2], compression=TEMP_COMPRESSION)
        log.info("dataset: per-Code block %d/%d: %d codes, %d rows (peak RSS so far %.2f GiB)", i + 1,
                 len(code_blocks), len(block), rows.height, _peak_rss_gib())
        del rows, part, x, kept
    log.info("dataset: per-Code groups of %d codes in %d block(s) done in %.1fs", len(hist.codes), len(code_blocks),
             time.perf_counter() - t0)
    return blocks, x_files


def _cross_chunk(
    k: int, n: int, cs: dt.date, ce: dt.date, hist: QuotesHistory, x_files: list[list[Path]], spec: _Plan, work: Path,
    engine: Any,
) -> Path | None:
    """The cross-sectional groups of chunk [cs, ce] (k of n) into cross_<k> (sorted by Code, Date),
    computed on the chunk plus the sessions their windows need; None when the chunk has no session."""
    t0 = time.perf_counter()
    dates = hist.dates
    i_cs = bisect.bisect_left(dates, cs)
    if i_cs >= len(dates) or dates[i_cs] > ce:
        return None
    sector_from = dates[max(0, i_cs - SECTOR_SESSIONS)]
    family_from = dates[max(0, i_cs - FAMILY_SESSIONS)]
    lo = min(sector_from, family_from)
    graph_from = lo
    if spec.graph_step is not None:
        # Graphs are rebuilt on fixed sessions of the exchange calendar (every `step`), from a full window
        # of returns: start a window before the rebuild in force on the chunk's first session, so that
        # every graph in force in the chunk is the one-shot's (none built yet: from the first session).
        w, step = peer_graph.WINDOW, spec.graph_step
        ords = session_ordinals(dates[w : i_cs + 1])
        built = [t for t, o in enumerate(ords, start=w) if o % step == 0]
        graph_from = dates[built[-1] - w if built else 0]
        lo = min(lo, graph_from)
    files = [f for (a, b, _), fs in zip(hist.files, x_files, strict=True) if b >= lo and a <= ce for f in fs]
    x = pl.scan_parquet(files).filter(pl.col("Date").is_between(lo, ce)).collect(engine=engine).sort(*KEYS)
    keys = x.filter(pl.col("Date") >= cs).select(*KEYS)
    times: dict[str, float] = {}

    def piece(lf: pl.LazyFrame, names: Sequence[str], group: str) -> pl.DataFrame:
        return _piece(lf, names, group, cs, ce, engine, times)

    pieces: dict[str, pl.DataFrame] = {}
    sector_in = x.lazy().filter(pl.col("Date") >= sector_from).select(*KEYS, "Sector33Code", *SECTOR_INPUTS)
    pieces["sector"] = piece(add_sector_features(sector_in), SECTOR_FEATURES, "sector")
    narrow = x.lazy().filter(pl.col("Date") >= family_from).select(*KEYS, *IDENTITY_COLUMNS, "AdjustmentVolume")
    for group, add in spec.narrow.items():
        pieces[group] = piece(add(narrow), spec.groups[group], group)
    if spec.graph_step is not None:
        t1 = time.perf_counter()
        prices = x.filter(pl.col("Date") >= graph_from).select("Code", "Date", "AdjustmentClose")
        # Every code of the history is a column, as in the one-shot graph (its centrality and matrix
        # products depend on the number of columns); a null close adds no row.
        missing = sorted(set(hist.codes) - set(prices.get_column("Code").unique().to_list()))
        if missing:
            prices = pl.concat([prices, pl.DataFrame(
                {"Code": missing, "Date": [graph_from] * len(missing), "AdjustmentClose": [None] * len(missing)},
                schema=prices.schema)])
        g = peer_graph.graph_features(prices, step=spec.graph_step)
        times["graph"] = time.perf_counter() - t1
        pieces["graph"] = piece(keys.lazy().join(g.lazy(), on=list(KEYS), how="left", maintain_order="left"),
                                peer_graph.GRAPH_FEATURES, "graph")
        del prices, g
    if spec.futures is not None:
        pieces["futures"] = piece(keys.lazy().join(spec.futures, on="Date", how="left", maintain_order="left"),
                                  spec.groups["futures"], "futures")
    del x, sector_in, narrow
    for group, part in pieces.items():
        if not (part["Date"].equals(keys["Date"]) and part["Code"].equals(keys["Code"])):
            raise RuntimeError(f"dataset build: the rows of group {group} do not line up in chunk {cs}..{ce}")
    cross = [g for g in spec.groups if g in pieces]
    chunk = pl.concat([keys, *[pieces[g].drop(*KEYS) for g in cross]], how="horizontal")
    del pieces
    path = work / f"cross_{k:03d}.parquet"
    # Small row groups sorted by Code: the merge reads only those of its block of codes.
    chunk.write_parquet(path, compression=TEMP_COMPRESSION, row_group_size=TEMP_ROW_GROUP)
    log.info("dataset: chunk %d/%d %s..%s: %d rows, %d features in %.1fs (%s) (peak RSS so far %.2f GiB)", k + 1, n,
             cs, ce, chunk.height, chunk.width - len(KEYS), time.perf_counter() - t0,
             ", ".join(f"{g} {s:.1f}s" for g, s in times.items()), _peak_rss_gib())
    return path


def build_dataset_chunked(
    history: QuotesHistory,
    topix: Frame | None,
    statements: Frame | None = None,
    futures_features: Frame | None = None,
    *,
    plan: str = "standard",
    horizons: Sequence[int] = HORIZONS,
    sources: Mapping[str, Frame | None] | None = None,
    graph_step: int | None = None,
) -> ChunkedDataset:
    """The frame of `build_dataset` for the history's range, out of core: temp files in the history's
    folder and a manifest; its `write(path)` merges them into one file (within the history's context).

    The per-Code groups and the targets run on blocks of codes over the whole history and equal the
    one-shot build bit for bit; the cross-sectional groups run per date chunk and see
    SECTOR_SESSIONS / FAMILY_SESSIONS sessions before it (the graph: a window before the rebuild in
    force), which makes every window the one-shot's. Only the sector group's rolling sums, which start
    at a chunk's lookback instead of the history's first day, can differ in their last Float64 bits.
    """
    h = history
    spec = _plan(h.listed, topix, statements, futures_features, sources, plan=plan, first_day=h.first_day,
                 half_days=h.half_days, graph_step=graph_step, horizons=horizons)
    blocks, x_files = _per_code_blocks(h, spec, horizons, h.start, h.end, h.work, h.engine)
    cross_files = [
        f for k, (cs, ce) in enumerate(h.chunks)
        if (f := _cross_chunk(k, len(h.chunks), cs, ce, h, x_files, spec, h.work, h.engine)) is not None
    ]
    manifest = _manifest(
        h.summary, spec, start=h.start, end=h.end, plan=plan, lookback_days=h.lookback_days, horizons=horizons,
        calendar=h.calendar, statements=statements is not None, futures=futures_features is not None,
        sources=sources, graph_step=graph_step, extra=h.build_info,
    )
    columns = [*KEYS, *IDENTITY_COLUMNS, *spec.features, *spec.targets]

    def merge(path: Path) -> None:
        """Per block of codes: its per-Code rows beside its rows of every chunk, appended to `path`."""
        t0 = time.perf_counter()
        out = _ParquetAppender(path)
        rows = 0
        try:
            for lo, hi, per_code in blocks:
                left = pl.read_parquet(per_code)
                right = (
                    pl.concat([pl.scan_parquet(f).filter(_code_range(lo, hi)) for f in cross_files])
                    .collect(engine=h.engine)
                    .sort(*KEYS)
                )
                if not (left["Code"].equals(right["Code"]) and left["Date"].equals(right["Date"])):
                    raise RuntimeError(f"dataset build: the chunks of codes {lo}..{hi} do not line up with their rows")
                frame = pl.concat([left, right.drop(*KEYS)], how="horizontal").select(columns)
                out.write(frame)
                rows += frame.height
                del left, right, frame
        finally:
            out.close()
        if rows != h.summary.rows:
            raise RuntimeError(f"dataset build: merged {rows} rows, expected {h.summary.rows}")
        log.info("dataset %s..%s: %d rows, %d codes, %d features merged in %.1fs (peak RSS so far %.2f GiB)", h.start,
                 h.end, rows, h.summary.codes, len(spec.features), time.perf_counter() - t0, _peak_rss_gib())

    return ChunkedDataset(manifest=manifest, write=merge)
