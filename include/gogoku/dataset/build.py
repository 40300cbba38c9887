"""Dataset build (DESIGN contracts 4-6): features + targets for [start, end] from cached raw frames.

Inputs carry history before `start` (the lookback) so that 60/120/200-session windows are warm at
`start`; features are computed on the history, then rows are cut to [start, end]. History older than
`start - lookback_days` is ignored so that a dataset does not depend on how much extra was passed.
"""

from __future__ import annotations

import datetime as dt
import logging
import resource
import time
from collections.abc import Mapping, Sequence

import polars as pl

from gogoku.calendar import half_days_from_calendar
from gogoku.dataset.manifest import latest_dataset, make_manifest, validate_dataset, write_dataset
from gogoku.dataset.targets import HORIZONS, add_targets, target_columns
from gogoku.engine import collect_engine
from gogoku.errors import InputError
from gogoku.features import graph
from gogoku.features.families import family_adders
from gogoku.features.market import MARKET_FEATURES, STOCK_MARKET_FEATURES, add_market_features
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

__all__ = ["build_dataset", "latest_dataset", "validate_dataset", "write_dataset"]

log = logging.getLogger(__name__)

KEYS = ("Code", "Date")
DEFAULT_LOOKBACK_DAYS = 420
# Codes per chunk of the per-Code groups (price, stock x market, targets).
CODE_CHUNK = 250

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

Frame = pl.DataFrame | pl.LazyFrame


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
    lookback_days: int = DEFAULT_LOOKBACK_DAYS,
    horizons: Sequence[int] = HORIZONS,
    sources: Mapping[str, Frame | None] | None = None,
    graph_step: int | None = None,
) -> tuple[pl.DataFrame, dict]:
    """Build the feature + target frame for [start, end] and its manifest.

    `statements` (v1 fins/statements) add the small `stmt_*` group under the as-of rule;
    `futures_features` is the Date-keyed frame of `gogoku.features.futures.futures_features`.
    `topix` is None on plans without TOPIX (free): the market and stock x market groups are then
    absent, and the manifest's `absent_groups` says why.
    """
    if end < start:
        raise InputError(f"dataset range: end {end} is before start {start}")
    if lookback_days < 0:
        raise InputError(f"lookback_days={lookback_days}: expected >= 0")
    first_day = start - dt.timedelta(days=lookback_days)
    q = _checked(quotes, "quotes").filter(
        pl.col("Date") >= first_day, pl.col("AdjustmentClose").is_not_null()
    )
    half_days: frozenset[dt.date] = frozenset()
    if calendar is not None:
        cal = _checked(calendar, "calendar")
        sessions = cal.filter(pl.col("HolidayDivision").cast(pl.Utf8).is_in(CASH_SESSION_DIVISIONS))
        q = q.join(sessions.select("Date"), on="Date", how="semi")
        # Half-day sessions (HolidayDivision "2") close at 11:30 for the as-of rule.
        half_days = half_days_from_calendar(cal)
        if half_days:
            log.info("dataset: %d half-day session(s) in the calendar (as-of close 11:30)", len(half_days))
    q = q.with_columns(pl.col("Code").cast(pl.Utf8)).unique(list(KEYS), keep="last").sort(*KEYS)

    # Every group is computed on the full history (its windows warm up on the lookback) from a narrow
    # frame, then cut to [start, end] and kept as Float32 columns only: one wide Float64 frame of every
    # group over the history took several times the output's memory. The pieces share the rows of
    # `base` in (Code, Date) order and are put side by side once at the end. Every collect uses the
    # same engine (gogoku.engine: the GPU where cudf-polars is installed, else the CPU in-memory one).
    engine = collect_engine()
    log.info("dataset: polars engine %s", "gpu (cudf-polars)" if engine != "in-memory" else "cpu (in-memory)")
    base = attach_listed_info(q, _checked(listed, "listed")).collect(engine=engine)
    in_range = pl.col("Date").is_between(start, end)
    keys = base.select(*KEYS).filter(in_range).lazy()

    def piece(lf: pl.LazyFrame, names: Sequence[str], group: str) -> pl.DataFrame:
        t0 = time.perf_counter()
        out = (
            lf.filter(in_range)
            .select(*KEYS, *[_finite_float32(c) for c in names])
            .sort(*KEYS)
            .collect(engine=engine)
        )
        log.info("dataset: group %s: %d features in %.1fs (peak RSS so far %.2f GiB)", group, len(names),
                 time.perf_counter() - t0, _peak_rss_gib())
        return out

    groups: dict[str, tuple[str, ...]] = {"price": PRICE_FEATURES}
    absent: dict[str, str] = {}
    pieces: dict[str, pl.DataFrame] = {}
    topix_lf = None
    if topix is None:
        absent["market"] = absent["stock_market"] = f"no TOPIX data (plan {plan} does not include indices/topix)"
        log.warning("dataset: market and stock_market groups absent: %s", absent["market"])
    else:
        # TOPIX is cut like the quotes: its seeded EMAs would otherwise depend on where history starts.
        topix_lf = _checked(topix, "topix").filter(pl.col("Date") >= first_day).collect().lazy()
        groups["market"] = MARKET_FEATURES
        groups["stock_market"] = STOCK_MARKET_FEATURES
    groups["sector"] = SECTOR_FEATURES
    with_families = sources is not None or graph_step is not None
    if with_families and graph_step is not None:
        g = graph.graph_features(q.select("Code", "Date", "AdjustmentClose").collect(), step=graph_step)
        pieces["graph"] = piece(keys.join(g.lazy(), on=list(KEYS), how="left", maintain_order="left"),
                                graph.GRAPH_FEATURES, "graph")
        del g
    del q, quotes  # the raw quotes are not needed past `base` (freed here unless the caller holds them)

    # The per-Code groups (price, stock x market) and the targets, by chunks of codes. The sector group
    # needs some price columns on the whole history (Float64) across codes: those are kept aside.
    per_code = [c for g in ("price", "market", "stock_market") if g in groups for c in groups[g]]
    targets = target_columns(horizons)
    sector_in = sorted({"returns_1d", "returns_5d", "returns_20d", *Z_IN_SECTOR_SOURCES})
    codes = base.get_column("Code").unique().sort()
    chunks: list[pl.DataFrame] = []
    sector_parts: list[pl.DataFrame] = []
    for i in range(0, max(codes.len(), 1), CODE_CHUNK):
        lf = price_features(base.lazy().filter(pl.col("Code").is_in(codes.slice(i, CODE_CHUNK).implode())))
        if topix_lf is not None:
            lf = add_market_features(lf, topix_lf)
        part = (
            add_targets(lf, horizons)
            .select(
                *KEYS,
                *[pl.col(c).cast(pl.Utf8) for c in IDENTITY_COLUMNS],
                *[_finite_float32(c) for c in per_code],
                *[pl.col(t).cast(pl.Float64) for t in targets],
                *[pl.col(c).alias(f"_in_{c}") for c in sector_in],
            )
            .collect(engine=engine)
        )
        sector_parts.append(part.select(*KEYS, "Sector33Code", *[pl.col(f"_in_{c}").alias(c) for c in sector_in]))
        chunks.append(part.filter(in_range).drop([f"_in_{c}" for c in sector_in]))
        del part
    out = _stack(chunks)
    log.info("dataset: price, market and stock_market groups done (peak RSS so far %.2f GiB)", _peak_rss_gib())
    pieces["sector"] = piece(add_sector_features(_stack(sector_parts).lazy()), SECTOR_FEATURES, "sector")

    # The groups that need only keys, membership and volume, on every Code at once (their
    # cross-sectional z-scores are per Date).
    base = base.select(*KEYS, *IDENTITY_COLUMNS, "AdjustmentVolume")
    if statements is not None:
        stmts = _checked(statements, "statements")
        if has_full_columns(stmts):
            groups["statements"] = STATEMENT_FULL_FEATURES
            pieces["statements"] = piece(
                add_statement_features_full(base.lazy(), stmts, half_days), STATEMENT_FULL_FEATURES, "statements"
            )
        else:
            groups["statements"] = STATEMENT_FEATURES
            pieces["statements"] = piece(
                add_statement_features(base.lazy(), stmts, half_days), STATEMENT_FEATURES, "statements"
            )
    else:
        absent["statements"] = "no statements given"
    if with_families:
        # The non-price J-Quants families (flow, margin, short selling, calendar, options) and the graph.
        found, fam_absent = family_adders(sources or {}, plan=plan, listed=_checked(listed, "listed"), since=first_day)
        for group, names, add in found:
            groups[group] = names
            pieces[group] = piece(add(base.lazy()), names, group)
        if graph_step is None:
            fam_absent["graph"] = "correlation graph disabled"
        else:
            groups["graph"] = graph.GRAPH_FEATURES
        for group, why in fam_absent.items():
            log.info("dataset: group %s absent: %s", group, why)
        absent.update(fam_absent)
    del base
    if futures_features is not None:
        fut = futures_features.lazy()
        fut_cols = tuple(c for c in fut.collect_schema() if c != "Date")
        bad = [c for c in fut_cols if not c.startswith("fut_")]
        if "Date" not in fut.collect_schema() or bad or not fut_cols:
            raise InputError(f"futures features: expected Date and fut_* columns, got unexpected {bad or 'none'}")
        groups["futures"] = fut_cols
        pieces["futures"] = piece(keys.join(fut, on="Date", how="left", maintain_order="left"), fut_cols, "futures")
    else:
        absent["futures"] = (
            "no futures features given (--futures-features)" if plan == "premium" else f"futures need the premium plan (plan {plan})"
        )

    features = [c for cols in groups.values() for c in cols]
    for group, part in pieces.items():
        if not (part.height == out.height and part["Date"].equals(out["Date"]) and part["Code"].equals(out["Code"])):
            raise RuntimeError(f"dataset build: the rows of group {group} do not line up with the price group")
    # Side by side without a copy (every column is one chunk, so the select below does not copy either).
    df = pl.concat([out, *[p.drop(*KEYS) for p in pieces.values()]], how="horizontal").select(
        *KEYS, *IDENTITY_COLUMNS, *features, *targets
    )
    del out, pieces
    if df.is_empty():
        raise InputError(f"quotes: no priced rows between {start} and {end}")
    log.info("dataset %s..%s: %d rows, %d codes, %d features", start, end, df.height, df["Code"].n_unique(), len(features))
    manifest = make_manifest(
        df,
        groups=groups,
        targets=targets,
        start=start,
        end=end,
        plan=plan,
        build={
            "lookback_days": lookback_days,
            "horizons": list(horizons),
            "calendar_filter": calendar is not None,
            "inputs": {
                "statements": statements is not None,
                "futures_features": futures_features is not None,
                "sources": sorted(k for k, v in (sources or {}).items() if v is not None),
            },
            "graph_step": graph_step,
        },
    )
    manifest["absent_groups"] = absent
    for group, why in absent.items():
        log.info("dataset: group %s absent: %s", group, why)
    return df, manifest
