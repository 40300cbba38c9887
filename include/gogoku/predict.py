"""Point-in-time predictions of one market date: the features of day D built from the raw cache,
scored by a registered model (the champion by default), validated, written to the data root.

- `day_features`: the features of D and the sessions before it that a sequence model reads,
  built by the dataset builder itself on [D - sessions + 1, D] with its usual lookback before that,
  so a row equals the full build's row for the same (Code, Date) (tested) at a fraction of the cost.
  Targets are dropped (the future is unknown at D) and `history_sessions` (priced sessions of each
  stock up to D within the lookback) is added.
- `predict_day`: a score and a rank (1 = best) per horizon for every stock listed on D; a stock
  without a bar on D, or with fewer than `min_history` sessions of history, gets a null score and
  its reason, never a made-up score.
- `validate_predictions`: coverage of the listed universe, no NaN, the day's score spread within
  bounds of the model's own walk-forward predictions.

Files: `features/daily/<plan>_<D>.parquet` and `predictions/<D>.parquet` (Code, Date, for_session,
score_{h}d, rank_{h}d, model, reason).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import time
from typing import Any

import numpy as np
import polars as pl

from gogoku import calendar as cal
from gogoku.config import Settings
from gogoku.dataset.inputs import LOOKBACK_DAYS, futures_inputs_features, load_inputs
from gogoku.errors import InputError
from gogoku.io import write_parquet_atomic
from gogoku.train.walkforward import load_final_model, score_day

log = logging.getLogger(__name__)

DAILY_FEATURES = "features/daily"
PREDICTIONS = "predictions"
DEFAULT_SESSIONS = 60  # sessions of rows kept up to D: the longest sequence window a model reads
DEFAULT_MIN_HISTORY = 60  # sessions of bars a stock needs before it gets a score
GRAPH_STEP = 5  # as `gogoku dataset build`: the build settings of a model's dataset must match the day's
BUILD_KEYS = ("lookback_days", "graph_step")  # the build settings a prediction must share with training


LISTING_SNAPSHOT_DAYS = 40  # the cache keeps listed_info as monthly snapshots (and a range's first day)


def listed_on(settings: Settings, day: dt.date) -> pl.DataFrame:
    """The stocks listed on `day`: the newest listed_info snapshot on or before it, one row per Code."""
    from gogoku.cache.sources import SourceLoader

    with SourceLoader(settings, offline=True) as loader:
        frame = loader.load("listed_info", day - dt.timedelta(days=LISTING_SNAPSHOT_DAYS), day).frame
    frame = frame.filter(pl.col("Date") <= day)
    if frame.is_empty():
        raise InputError(f"{settings.store.uri('raw/listed_info')}: no listing snapshot in the "
                         f"{LISTING_SNAPSHOT_DAYS} days up to {day}; refresh the cache through {day}")
    return frame.filter(pl.col("Date") == pl.col("Date").max()).unique("Code", keep="last").sort("Code")


def latest_cached_date(settings: Settings) -> dt.date:
    """The last market date the raw cache holds daily quotes for."""
    from gogoku.cache.raw import RawCache

    cache = RawCache(settings.store.root.local)
    if settings.store.remote:
        from gogoku.cache.remote import RemoteSync

        RemoteSync(settings.store, cache).pull("daily_quotes")
    files = cache.files("daily_quotes")
    if not files:
        raise InputError(f"{settings.store.uri('raw/daily_quotes')}: no daily quotes cached; run `gogoku cache refresh` "
                         "(or the gogoku_cache_refresh DAG) first")
    last = max(f.end for f in files)
    frame = pl.read_parquet(next(f.path for f in files if f.end == last), columns=["Date"])
    if frame.is_empty():
        raise InputError(f"{settings.store.uri('raw/daily_quotes')}: the newest cache file holds no rows")
    return frame["Date"].max()  # type: ignore[return-value]


def day_features(settings: Settings, day: dt.date, sessions: int = DEFAULT_SESSIONS,
                 lookback_days: int = LOOKBACK_DAYS, graph_step: int = GRAPH_STEP, offline: bool = True
                 ) -> tuple[pl.DataFrame, dict[str, Any]]:
    """(frame, manifest) of the features of the `sessions` sessions ending at `day` (see the module
    docstring)."""
    from gogoku.cache.sources import SourceLoader
    from gogoku.dataset.build import build_dataset

    if not cal.is_business_day(day):
        raise InputError(f"--date {day}: not a JPX business day (no session to predict from)")
    if sessions < 1:
        raise InputError(f"--sessions {sessions}: expected at least 1")
    start = cal.add_business_days(day, -(sessions - 1))
    plan = settings.plan_tier
    t0 = time.perf_counter()
    with SourceLoader(settings, offline=offline) as loader:
        inputs = load_inputs(loader, plan, start - dt.timedelta(days=lookback_days), day, offline=offline)
        futures = futures_inputs_features(loader, start, day, lookback_days) if plan == "premium" else None
    quotes = inputs.frames.pop("daily_quotes")
    if quotes is None or quotes.filter(pl.col("Date") == day).is_empty():
        raise InputError(f"--date {day}: the cache holds no daily quotes for {day}; refresh the cache through {day}")
    history = (quotes.filter(pl.col("Date") <= day, pl.col("AdjustmentClose").is_not_null())
               .group_by("Code").agg(pl.len().cast(pl.Int32).alias("history_sessions")))
    df, manifest = build_dataset(
        quotes=quotes, listed=inputs.frames["listed_info"], topix=inputs.frames["topix"],
        calendar=inputs.frames["trading_calendar"], statements=inputs.frames["statements"],
        futures_features=futures, start=start, end=day, plan=plan, lookback_days=lookback_days,
        sources=inputs.family, graph_step=graph_step or None,
    )
    df = df.drop(manifest["targets"]).join(history, on="Code", how="left")
    log.info("features of %s: %d stocks on the day, %d rows over %d sessions, %d features in %.1fs", day,
             df.filter(pl.col("Date") == day).height, df.height, sessions, len(manifest["features"]),
             time.perf_counter() - t0)
    return df, manifest


def write_day_features(settings: Settings, day: dt.date, **options: Any) -> dict[str, Any]:
    """`gogoku features daily`: build the day's features and publish them (parquet, then manifest)."""
    df, manifest = day_features(settings, day, **options)
    rel = f"{DAILY_FEATURES}/{settings.plan_tier}_{day}.parquet"
    store = settings.store
    write_parquet_atomic(df, store.local_path(rel))
    meta = {k: manifest[k] for k in ("plan", "features", "feature_groups", "n_features", "identity_columns", "build")}
    store.write_json(rel.replace(".parquet", ".manifest.json"), {**meta, "date": str(day), "rows": df.height})
    (uri,) = store.publish(rel)
    return {"uri": uri, "date": str(day), "plan": settings.plan_tier, "rows": df.height,
            "codes_on_day": df.filter(pl.col("Date") == day).height, "features": len(manifest["features"])}


# ---------------------------------------------------------------- scoring
def load_model(settings: Settings, model: str | None) -> tuple[str, dict[str, Any], Any]:
    """(model id, its final/model.json, the loaded scorer) of a registered model, default the champion."""
    from gogoku.registry import Registry

    registry = Registry(settings.store)
    model_id = model or registry.champion()
    rel = registry.model_rel(model_id)
    folder = settings.store.fetch_tree(f"{rel}/final", skip=lambda r: "/checkpoint/" in r)
    if not (folder / "model.json").is_file():
        raise InputError(f"{settings.store.uri(rel)}: no production model (final/model.json)")
    description = json.loads((folder / "model.json").read_text())
    scorer = load_final_model(folder, description, f"{settings.store.uri(rel)}/final/model.json")
    return model_id, description, scorer


def predict_day(settings: Settings, day: dt.date | None = None, features: str | None = None,
                model: str | None = None, min_history: int = DEFAULT_MIN_HISTORY) -> dict[str, Any]:
    """`gogoku predict`: score every stock listed on `day` (default: the cache's latest date) and
    write `predictions/<day>.parquet` (see the module docstring)."""

    t0 = time.perf_counter()
    day = day or latest_cached_date(settings)
    model_id, description, scorer = load_model(settings, model)
    horizons = [int(h) for h in description["horizons"]]
    plan = description.get("plan")
    if plan and plan != settings.plan_tier:
        raise InputError(f"model {model_id} was trained on the {plan} plan; predict with --plan {plan} "
                         f"(its features need the {plan} sources)")
    trained_with = _dataset_build(settings, description)
    if features:
        path = settings.store.localize(features)
        frame = pl.read_parquet(path)
        meta = path.with_name(path.name.replace(".parquet", ".manifest.json"))
        built_with = (json.loads(meta.read_text()).get("build") or {}) if meta.is_file() else {}
        differ = {k: (built_with.get(k), trained_with[k]) for k in BUILD_KEYS
                  if k in trained_with and built_with.get(k) != trained_with[k]}
        if differ:
            raise InputError(f"--features {features}: built with {differ} (features, model's dataset): "
                             "rebuild them with the model's settings")
    else:
        frame, _ = day_features(settings, day, sessions=max(DEFAULT_SESSIONS, _history_needed(scorer) + 1),
                                **{k: trained_with[k] for k in BUILD_KEYS if k in trained_with})
    if "Date" not in frame.columns or frame.filter(pl.col("Date") == day).is_empty():
        raise InputError(f"--features {features}: no rows for {day}")
    missing = [f for f in description["features"] if f not in frame.columns]
    if missing:
        raise InputError(f"model {model_id} needs {len(missing)} feature(s) the data no longer has, e.g. "
                         f"{missing[:5]}: rebuild the features with this code version or retrain the model")
    listed = listed_on(settings, day).select("Code")
    on_day = frame.filter(pl.col("Date") == day)
    ok = on_day.filter(pl.col("history_sessions") >= min_history)["Code"]
    scores = score_day(scorer, frame.filter(pl.col("Code").is_in(ok.implode())), day)
    result = _assemble(day, listed, on_day, scores, horizons, model_id, min_history)
    rel = f"{PREDICTIONS}/{day}.parquet"
    write_parquet_atomic(result, settings.store.local_path(rel))
    (uri,) = settings.store.publish(rel)
    scored = int(result[f"score_{horizons[0]}d"].is_not_null().sum())
    reasons = (result.filter(pl.col("reason").is_not_null()).group_by("reason").len().sort("len", descending=True)
               .rows())
    log.info("predictions for %s: %d of %d listed stocks scored by %s in %.1fs; unscored: %s", day, scored,
             result.height, model_id, time.perf_counter() - t0, reasons[:5])
    return {"uri": uri, "date": str(day), "for_session": str(cal.next_business_day(day)), "model": model_id,
            "listed": result.height, "scored": scored, "unscored": dict(reasons[:10]),
            "top": _top(result, horizons), "seconds": round(time.perf_counter() - t0, 1)}


def _dataset_build(settings: Settings, description: dict[str, Any]) -> dict[str, Any]:
    """The build settings of the dataset a model was trained on (its manifest's `build`), {} if unknown."""
    from gogoku.dataset.manifest import MANIFEST_SUFFIX

    dataset = str(description.get("dataset") or "")
    if not dataset.endswith(".parquet"):
        return {}
    try:
        meta = settings.store.localize(dataset[: -len(".parquet")] + MANIFEST_SUFFIX)
        return dict(json.loads(meta.read_text()).get("build") or {})
    except (InputError, OSError, ValueError) as exc:
        log.warning("the build settings of %s are unknown (%s): using the defaults", dataset, exc)
        return {}


def _history_needed(scorer: Any) -> int:
    return int(getattr(scorer, "history_sessions", 0))


def _assemble(day: dt.date, listed: pl.DataFrame, on_day: pl.DataFrame, scores: pl.DataFrame, horizons: list[int],
              model_id: str, min_history: int) -> pl.DataFrame:
    """One row per stock listed on `day` (and per stock priced on it): scores, ranks, the reason of a
    missing score."""
    codes = pl.concat([listed.select("Code"), on_day.select("Code")]).unique()
    out = (codes.join(on_day.select("Code", "history_sessions"), on="Code", how="left")
           .join(scores.drop("Date"), on="Code", how="left"))
    first = f"score_{horizons[0]}d"
    reason = (pl.when(pl.col("history_sessions").is_null()).then(pl.lit(f"no daily bar on {day}"))
              .when(pl.col("history_sessions") < min_history)
              .then(pl.format("only {} sessions of history (at least {} needed)", pl.col("history_sessions"),
                              pl.lit(min_history)))
              .when(pl.col(first).is_null() | pl.col(first).is_nan()).then(pl.lit("the model gave no score"))
              .otherwise(None))
    out = out.with_columns(reason.alias("reason"))
    out = out.with_columns(
        pl.when(pl.col("reason").is_null()).then(pl.col(f"score_{h}d")).otherwise(None).alias(f"score_{h}d")
        for h in horizons)
    out = out.with_columns(
        pl.col(f"score_{h}d").rank("ordinal", descending=True).cast(pl.Int32).alias(f"rank_{h}d") for h in horizons)
    return out.select(
        "Code", pl.lit(day).alias("Date"), pl.lit(cal.next_business_day(day)).alias("for_session"),
        *(c for h in horizons for c in (f"score_{h}d", f"rank_{h}d")), pl.lit(model_id).alias("model"), "reason",
    ).sort("Code")


def _top(result: pl.DataFrame, horizons: list[int], n: int = 5) -> dict[str, dict[str, list[str]]]:
    return {f"{h}d": {"top": result.sort(f"rank_{h}d", nulls_last=True).head(n)["Code"].to_list(),
                      "bottom": result.filter(pl.col(f"rank_{h}d").is_not_null()).sort(f"rank_{h}d", descending=True)
                      .head(n)["Code"].to_list()} for h in horizons}


def prediction_files(store: Any) -> list[str]:
    """The data-root paths of every published predictions file, oldest first."""
    if store.remote:
        return sorted(f"{PREDICTIONS}/{n}" for n in store.list(PREDICTIONS) if n.endswith(".parquet"))
    folder = store.local_path(PREDICTIONS)
    return sorted(f"{PREDICTIONS}/{p.name}" for p in folder.glob("*.parquet")) if folder.is_dir() else []


def show_predictions(settings: Settings, day: dt.date | None = None, n: int = 5) -> dict[str, Any]:
    """Print the top and bottom `n` names per horizon of the predictions of `day` (default: the newest
    file) with their company names; the figures printed, as a dict."""

    store = settings.store
    if day is None:
        files = prediction_files(store)
        if not files:
            raise InputError(f"{store.uri(PREDICTIONS)}: no predictions yet; run `gogoku predict` (or gogoku_daily)")
        day = dt.date.fromisoformat(files[-1].rsplit("/", 1)[1][: -len(".parquet")])
    rel = f"{PREDICTIONS}/{day}.parquet"
    if not store.exists(rel):
        raise InputError(f"{store.uri(rel)}: no predictions for {day}")
    frame = pl.read_parquet(store.localize(store.uri(rel)))
    names = listed_on(settings, day).select(
        "Code", pl.col("CompanyNameEnglish").fill_null(pl.col("CompanyName")).alias("name"))
    frame = frame.join(names, on="Code", how="left")
    horizons = sorted(int(c[len("score_"):-1]) for c in frame.columns if c.startswith("score_"))
    scored = frame.filter(pl.col(f"score_{horizons[0]}d").is_not_null())
    lines = [f"predictions as of the close of {day} for the session of {frame['for_session'][0]}: model "
             f"{frame['model'][0]}, {scored.height} of {frame.height} listed stocks scored ({store.uri(rel)})"]
    out: dict[str, Any] = {"uri": store.uri(rel), "date": str(day), "model": frame["model"][0],
                           "scored": scored.height, "listed": frame.height, "horizons": {}}
    for h in horizons:
        ranked = frame.filter(pl.col(f"rank_{h}d").is_not_null()).sort(f"rank_{h}d")
        picks = {"top": ranked.head(n), "bottom": ranked.tail(n).reverse()}
        out["horizons"][f"{h}d"] = {side: rows.select("Code", "name", f"score_{h}d").rows() for side, rows in picks.items()}
        for side, rows in picks.items():
            lines.append(f"  {h:>2}d {side:<6} " + "  ".join(
                f"{code} {str(name or '?')[:18]} ({score:+.4f})" for code, name, score in
                rows.select("Code", "name", f"score_{h}d").rows()))
    print("\n".join(lines), flush=True)
    return out


# ---------------------------------------------------------------- validation
def validate_predictions(settings: Settings, uri: str, min_coverage: float = 0.9, spread_factor: float = 3.0
                         ) -> dict[str, Any]:
    """Check a predictions file: every stock listed on its date has a row; at least `min_coverage` of
    them a score; no NaN or infinite score; a null score always with its reason; each horizon's
    cross-sectional spread (std) within [min / f, max * f] of the daily spreads of the model's own
    walk-forward predictions (f = `spread_factor`). InputError naming the first failure."""

    path = settings.store.localize(uri)
    frame = pl.read_parquet(path)
    if frame.is_empty():
        raise InputError(f"{uri}: no rows")
    day = frame["Date"][0]
    models = frame["model"].unique().to_list()
    if len(models) != 1:
        raise InputError(f"{uri}: rows from several models {models}")
    horizons = sorted(int(c[len("score_"):-1]) for c in frame.columns if c.startswith("score_"))
    listed = listed_on(settings, day)["Code"]
    missing = sorted(set(listed.to_list()) - set(frame["Code"].to_list()))
    if missing:
        raise InputError(f"{uri}: {len(missing)} stock(s) listed on {day} have no row, e.g. {missing[:5]}")
    checks: dict[str, Any] = {}
    for h in horizons:
        score = frame[f"score_{h}d"]
        bad = frame.filter(score.is_not_null() & ~score.is_finite())
        if bad.height:
            raise InputError(f"{uri}: {bad.height} NaN or infinite score_{h}d, e.g. {bad['Code'].head(3).to_list()}")
        unexplained = frame.filter(score.is_null() & pl.col("reason").is_null())
        if unexplained.height:
            raise InputError(f"{uri}: {unexplained.height} null score_{h}d without a reason")
    coverage = float(frame[f"score_{horizons[0]}d"].is_not_null().mean())
    if coverage < min_coverage:
        raise InputError(f"{uri}: only {coverage:.1%} of the listed stocks are scored (at least {min_coverage:.0%})")
    bounds = _spread_bounds(settings, models[0], horizons)
    for h in horizons:
        spread = float(frame[f"score_{h}d"].std() or math.nan)
        lo, hi = bounds.get(h, (math.nan, math.nan))
        within = not (math.isfinite(lo) and math.isfinite(hi)) or (lo / spread_factor <= spread <= hi * spread_factor)
        checks[f"{h}d"] = {"spread": spread, "walk_forward_spread": [lo, hi], "within": within}
        if not within:
            raise InputError(f"{uri}: score_{h}d spread {spread:.4g} is outside [{lo / spread_factor:.4g}, "
                             f"{hi * spread_factor:.4g}], the model's own walk-forward range: a broken input?")
    return {"uri": uri, "date": str(day), "model": models[0], "valid": True, "listed": len(listed),
            "coverage": round(coverage, 4), "checks": checks}


def _spread_bounds(settings: Settings, model_id: str, horizons: list[int]) -> dict[int, tuple[float, float]]:
    """Per horizon, (min, max) of the daily cross-sectional std of the model's walk-forward predictions."""
    rel = f"models/{model_id}/predictions.parquet"
    if not settings.store.exists(rel):
        return {}
    preds = pl.read_parquet(settings.store.fetch(rel))
    out = {}
    for h in horizons:
        if f"pred_{h}d" not in preds.columns:
            continue
        daily = preds.group_by("Date").agg(pl.col(f"pred_{h}d").std().alias("s"))["s"].drop_nulls().to_numpy()
        if daily.size:
            out[h] = (float(np.min(daily)), float(np.max(daily)))
    return out
