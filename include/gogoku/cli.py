"""The `gogoku` command: the only entry point that DAG tasks and pods use (the README, "The `gogoku` CLI").

Every subcommand prints one JSON object as its last stdout line (and writes it to `--result-file`
when given: the pod runner's /airflow/xcom/return.json); progress goes to stderr through logging.
Artifacts are written under the data root and reported by their full URI. Errors exit with status 2
and a one-line message naming the bad input.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import errno
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from gogoku.config import PLAN_TIERS, Settings
from gogoku.contracts import LOOKBACK_DAYS
from gogoku.errors import GogokuError, InputError
from gogoku.io import emit_result

log = logging.getLogger("gogoku")

# Dates outside this span are typos (a year 1 or 2100 would write cache names no read ever matches).
FIRST_DATE = dt.date(1990, 1, 1)


def parse_date(flag: str, value: str) -> dt.date:
    try:
        day = dt.date.fromisoformat(value.strip())
    except (ValueError, AttributeError):
        raise InputError(f"{flag} {value!r}: expected a date YYYY-MM-DD") from None
    last = dt.date.today() + dt.timedelta(days=366)
    if not FIRST_DATE <= day <= last:
        raise InputError(f"{flag} {day}: expected a date between {FIRST_DATE} and {last}")
    return day


def _date_range(args: argparse.Namespace, start_flag: str = "start", end_flag: str = "end") -> tuple[dt.date, dt.date]:
    start_name, end_name = (f"--{f.rstrip('_').replace('_', '-')}" for f in (start_flag, end_flag))
    start = parse_date(start_name, getattr(args, start_flag))
    end = parse_date(end_name, getattr(args, end_flag))
    if end < start:
        raise InputError(f"{end_name} {end} is before {start_name} {start}")
    return start, end


def non_negative_int(value: str) -> int:
    """An argparse type: an integer >= 0."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an integer") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"{number} is negative; expected 0 or more")
    return number


def _out_file(flag: str, value: str) -> Path:
    """An output file path: its folder must exist or be creatable, and it must not be a folder."""
    from gogoku.storage import ensure_writable_dir

    path = Path(value).expanduser()
    if path.is_dir():
        raise InputError(f"{flag} {value}: is a folder; give a file name")
    ensure_writable_dir(path.parent, f"{flag} {value}")
    return path


def _out_dir(flag: str, value: str) -> Path:
    from gogoku.storage import ensure_writable_dir

    return ensure_writable_dir(Path(value).expanduser(), f"{flag} {value}")


def _read_parquet(flag: str, path: Path) -> Any:
    import polars as pl

    try:
        return pl.read_parquet(path)
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise InputError(f"{flag} {path}: not a readable parquet file ({exc.__class__.__name__})") from None


def _settings(args: argparse.Namespace) -> Settings:
    settings = Settings.from_env()
    plan = getattr(args, "plan", None)
    if plan:
        settings = dataclasses.replace(settings, plan_tier=plan)
    return settings


# ---------------------------------------------------------------- sim
def cmd_sim_serve(args: argparse.Namespace) -> dict[str, Any]:
    from gogoku.sim.server import Faults, serve_forever

    if not 0 <= args.port <= 65535:
        raise InputError(f"--port {args.port}: expected 0..65535 (0 picks a free port)")
    start = parse_date("--start", args.start)
    end = parse_date("--end", args.end) if args.end else None
    kinds = {k: getattr(args, f"{k}_rate") for k in Faults.KINDS}
    if args.fault_rate and any(kinds.values()):
        raise InputError("--fault-rate spreads over every fault kind: give it or the per-kind rates, not both")
    faults = Faults(**kinds, slow_ms=args.slow_ms) if any(kinds.values()) else Faults.mixed(args.fault_rate, args.slow_ms)
    try:
        return serve_forever(
            host=args.host, port=args.port, seed=args.seed, n_stocks=args.stocks, start=start, end=end,
            plan=args.plan, page_size=args.page_size, latency_ms=args.latency_ms, faults=faults,
            api_key=args.api_key, mailaddress=args.mailaddress, password=args.password,
            id_token_ttl_s=args.id_token_ttl_s, refresh_token_ttl_s=args.refresh_token_ttl_s,
            rate_limit=args.rate_limit, rate_window_s=args.rate_window_s, rate_limits=not args.no_rate_limit,
            today=parse_date("--today", args.today) if args.today else None, date_windows=not args.no_date_windows,
            max_rows=args.max_rows,
        )
    except OSError as exc:
        if exc.errno in (errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL):
            raise InputError(f"--host {args.host} --port {args.port}: cannot listen there ({exc.strerror}); "
                             "pick another port, or 0 for a free one") from None
        raise


def cmd_sim_truth(args: argparse.Namespace) -> dict[str, Any]:
    import polars as pl

    from gogoku.io import write_parquet_atomic
    from gogoku.sim.market import SimMarket

    start, end = _date_range(args)
    out = _out_file("--out", args.out)
    market = SimMarket(seed=args.seed, n_stocks=args.stocks, end=end)
    truth = market.truth().filter(pl.col("Date").is_between(start, end))
    path = write_parquet_atomic(truth, out)
    # Each planted family's weight, variance share and oracle RankIC@1d over the simulated span.
    strengths = market.signal_strengths().with_columns(pl.selectors.float().fill_nan(None).round(4)).to_dicts()
    return {"uri": str(path.absolute()), "rows": truth.height, "codes": truth["Code"].n_unique(), "strengths": strengths}


def cmd_sim_graph(args: argparse.Namespace) -> dict[str, Any]:
    import polars as pl

    from gogoku.dataset.manifest import localize_dataset, read_manifest
    from gogoku.evaluate.graph_check import graph_vs_peers
    from gogoku.model.gat_graph import GraphParams, code_labels, return_panel
    from gogoku.sim.market import SimMarket
    from gogoku.train.run import compose_config

    settings = _settings(args)
    path, uri = localize_dataset(settings.store, None if args.dataset == "latest" else args.dataset, settings.plan_tier)
    manifest = read_manifest(path)
    origin = manifest.get("origin") or {}
    if origin.get("api") != "simulator":
        raise InputError(f"--dataset {uri}: built from {origin.get('api') or 'an unknown source'}, not the simulator: "
                         "there is no latent peer graph to compare with")
    graph = dict(compose_config(args.model, list(args.overrides)).model.get("graph", {}))
    return_col = str(graph.pop("return_col", "returns_1d"))
    params = GraphParams(**graph)
    frame = pl.read_parquet(path, columns=["Code", "Date", return_col, "Sector33Code"])
    dates, codes = frame["Date"].unique().sort().to_list(), frame["Code"].unique().sort().to_list()
    sectors = code_labels(frame, codes, "Sector33Code")
    market = SimMarket(seed=int(origin["seed"]), n_stocks=int(origin["stocks"]),
                       end=dt.date.fromisoformat(manifest["range"]["end"]))
    report = graph_vs_peers(return_panel(frame, dates, codes, return_col), codes, list(sectors), market.peers(),
                            params, every=args.every)
    return {"dataset": uri, "model": args.model, "graph": {**graph, "return_col": return_col}, **report}


# ---------------------------------------------------------------- fetch / cache
def cmd_fetch(args: argparse.Namespace) -> dict[str, Any]:
    from gogoku.cache.sources import SourceLoader, parse_sources
    from gogoku.io import write_parquet_atomic

    (source,) = parse_sources(args.source)
    start, end = _date_range(args, "from_", "to")
    out = _out_file("--out", args.out)
    with SourceLoader(_settings(args)) as loader:
        result = loader.load(source, start, end, force=args.no_cache)
    path = write_parquet_atomic(result.frame, out)
    return {
        "source": source, "uri": str(path.absolute()), "rows": result.frame.height, "api_calls": loader.api_calls,
        "cache": result.hit, "coverage": round(result.coverage, 4),
    }


def _cache_uri(loader: Any, path: Path) -> str:
    """The data-root URI of a raw cache file the loader returned (a path in the working copy)."""
    store = loader.settings.store
    rel = store.root.relative(path)
    return store.uri(rel) if rel is not None else str(path)


def cmd_cache_refresh(args: argparse.Namespace) -> dict[str, Any]:
    from gogoku.cache.sources import SourceLoader, parse_sources

    sources = parse_sources(args.sources)
    start, end = _date_range(args)
    report: dict[str, Any] = {}
    with SourceLoader(_settings(args), max_age_days=args.max_age_days) as loader:
        for source in sources:
            calls_before = loader.api_calls
            result = loader.load(source, start, end, force=args.force)
            report[source] = {
                "uri": _cache_uri(loader, result.path), "rows": result.frame.height, "hits": result.hit,
                "coverage": round(result.coverage, 4), "fetch_ranges": result.api_calls,
                "api_calls": loader.api_calls - calls_before,
                "missing_ranges": [[str(a), str(b)] for a, b in result.missing_ranges],
            }
    out = {"start": str(start), "end": str(end), "api_calls": loader.api_calls, "sources": report}
    if loader.remote is not None:
        out["synced"] = loader.synced.as_dict()
    return out


def cmd_cache_sync(args: argparse.Namespace) -> dict[str, Any]:
    from gogoku.cache.remote import RemoteSync, SyncReport
    from gogoku.cache.sources import CACHED_SOURCES, parse_sources

    store = _settings(args).store
    if not store.remote:
        raise InputError(f"GOGOKU_DATA_ROOT={store.url} is not an object store (gs://bucket/prefix); "
                         "there is nothing to sync")
    sources = parse_sources(args.sources) if args.sources else list(CACHED_SOURCES)
    start = parse_date("--start", args.start) if args.start else None
    end = parse_date("--end", args.end) if args.end else None
    if start is not None and end is not None and end < start:
        raise InputError(f"--end {end} is before --start {start}")
    sync = RemoteSync(store)
    total, per_source = SyncReport(), {}
    for source in sources:
        report = SyncReport()
        if args.direction in ("pull", "both"):
            report.add(sync.pull(source, start, end))
        if args.direction in ("push", "both"):
            report.add(sync.push(source))
        per_source[source] = report.as_dict()
        total.add(report)
    return {"root": store.url, "local": str(store.root.local), "direction": args.direction, **total.as_dict(),
            "sources": per_source}


# ---------------------------------------------------------------- dataset / features
def cmd_dataset_build(args: argparse.Namespace) -> dict[str, Any]:
    import contextlib

    import polars as pl

    from gogoku.cache.sources import SourceLoader
    from gogoku.dataset.build import (
        build_dataset,
        build_dataset_chunked,
        default_chunk_months,
        read_quotes_history,
    )
    from gogoku.dataset.inputs import load_inputs
    from gogoku.dataset.manifest import DATASETS, DatasetData, publish_dataset, write_dataset

    start, end = _date_range(args)
    settings = _settings(args)
    chunk_months = default_chunk_months(start, end) if args.chunk_months is None else args.chunk_months
    out_dir = _out_dir("--out", args.out) if args.out else None
    history_start = start - dt.timedelta(days=args.lookback_days)

    def write(data: DatasetData, manifest: dict[str, Any]) -> dict[str, str]:
        if out_dir is not None:  # a local folder outside the data root
            parquet_path, manifest_path = write_dataset(data, manifest, out_dir)
            return {"uri": str(parquet_path.absolute()), "manifest": str(manifest_path.absolute())}
        published = publish_dataset(settings.store, data, manifest)
        return {"uri": published["uri"], "manifest": published["manifest_uri"]}

    with contextlib.ExitStack() as stack:
        loader = stack.enter_context(SourceLoader(settings, offline=args.offline))
        # Out of core (chunk_months), the quotes are read per date segment into temp files beside the
        # output, after the rest (a raw cache file is read whole: the largest allocation of the build).
        inputs = load_inputs(loader, settings.plan_tier, history_start, end, offline=args.offline,
                             skip=("daily_quotes",) if chunk_months else ())
        frames, family = inputs.frames, inputs.family
        history = None
        if chunk_months:
            def read_quotes(a: dt.date, b: dt.date) -> pl.DataFrame:
                try:
                    return loader.load("daily_quotes", a, b).frame
                except InputError as exc:
                    raise InputError(f"{exc} (the build reads daily_quotes {history_start}..{end})") from None

            work_dir = out_dir if out_dir is not None else settings.store.local_path(DATASETS)
            work_dir.mkdir(parents=True, exist_ok=True)
            history = stack.enter_context(read_quotes_history(
                read_quotes, frames["listed_info"], frames["trading_calendar"], start=start, end=end,
                work_dir=work_dir, chunk_months=chunk_months, lookback_days=args.lookback_days))
        futures_features = None
        if args.futures_features:
            futures_features = _read_parquet("--futures-features", settings.store.localize(args.futures_features))
        if history is not None:
            built = build_dataset_chunked(
                history, frames["topix"], frames["statements"], futures_features, plan=settings.plan_tier,
                sources=family, graph_step=args.graph_step or None,
            )
            manifest = built.manifest
            manifest["origin"] = loader.origin
            written = write(built.write, manifest)
            rows, codes = manifest["rows"], manifest["codes"]
    if history is None:
        # Popped so that the build can free the raw quotes once it no longer needs them.
        df, manifest = build_dataset(
            quotes=frames.pop("daily_quotes"), listed=frames["listed_info"], topix=frames["topix"],
            calendar=frames["trading_calendar"], statements=frames["statements"],
            futures_features=futures_features, start=start, end=end, plan=settings.plan_tier,
            lookback_days=args.lookback_days, sources=family, graph_step=args.graph_step or None,
        )
        manifest["origin"] = loader.origin
        written = write(df, manifest)
        rows, codes = df.height, df["Code"].n_unique()
        del df
    return {
        **written, "rows": rows, "codes": codes, "features": len(manifest["features"]),
        "feature_groups": manifest["feature_groups"], "plan": settings.plan_tier, "start": str(start),
        "end": str(end), "chunk_months": chunk_months, "api_calls": loader.api_calls,
    }


def cmd_dataset_validate(args: argparse.Namespace) -> dict[str, Any]:
    from gogoku.dataset.manifest import localize_dataset, validate_dataset

    settings = _settings(args)
    if not 0.0 <= args.max_null_share <= 1.0:
        raise InputError(f"--max-null-share {args.max_null_share}: expected a share between 0 and 1")
    path, uri = localize_dataset(settings.store, args.path, settings.plan_tier, what="dataset")
    summary = validate_dataset(path, args.max_null_share)
    manifest_uri = uri[: -len(".parquet")] + ".manifest.json"
    return {**summary, "uri": uri, "dataset": uri, "manifest": manifest_uri}


def cmd_features_futures(args: argparse.Namespace) -> dict[str, Any]:
    from gogoku.cache.sources import SourceLoader
    from gogoku.dataset.inputs import futures_inputs_features
    from gogoku.io import write_parquet_atomic

    start, end = _date_range(args)
    settings = _settings(args)
    with SourceLoader(settings, offline=args.offline) as loader:
        feats = futures_inputs_features(loader, start, end, args.lookback_days)
    names = [c for c in feats.columns if c != "Date"]
    if args.out:
        uri = str(write_parquet_atomic(feats, _out_file("--out", args.out)).absolute())
    else:
        rel = f"features/futures_{settings.plan_tier}_{start:%Y%m%d}_{end:%Y%m%d}.parquet"
        write_parquet_atomic(feats, settings.store.local_path(rel))
        (uri,) = settings.store.publish(rel)
    return {"uri": uri, "rows": feats.height, "features": len(names), "start": str(start), "end": str(end)}


# ---------------------------------------------------------------- train / report
def cmd_train(args: argparse.Namespace) -> dict[str, Any]:
    from gogoku.train.run import plan, train

    if args.plan_only:
        if args.fold is not None:
            raise InputError("--plan-only trains nothing: give no --fold")
        return plan(dataset=args.dataset, model=args.model, overrides=list(args.overrides), settings=_settings(args),
                    model_config=args.model_config)
    if args.out is not None and args.run_name is not None:
        raise InputError("give --out or --run-name, not both")
    if args.run_name is not None:
        name = args.run_name.strip()
        if not name or name in (".", "..") or "/" in name or "\\" in name:
            raise InputError(f"--run-name {args.run_name!r}: expected a folder name without slashes")
    return train(dataset=args.dataset, model=args.model, out_dir=_out_dir("--out", args.out) if args.out else None,
                 run_name=args.run_name, overrides=list(args.overrides), only_folds=args.fold,
                 settings=_settings(args), model_config=args.model_config)


def cmd_hpo(args: argparse.Namespace) -> dict[str, Any]:
    import os

    from gogoku.hpo.search import run_search

    storage = args.storage or os.environ.get("GOGOKU_HPO_STORAGE") or None
    return run_search(args.dataset, args.model, n_trials=args.n_trials, study_name=args.study, storage=storage,
                      timeout_s=args.timeout, config=args.config, overrides=list(args.overrides),
                      settings=_settings(args))


def cmd_report(args: argparse.Namespace) -> dict[str, Any]:
    from gogoku.evaluate.report import print_summary

    settings = _settings(args)
    result = print_summary(args.model_dir or ["latest"], settings.store)
    if args.predictions:
        from gogoku.predict import show_predictions

        day = None if args.predictions == "latest" else parse_date("--predictions", args.predictions)
        result["predictions"] = show_predictions(settings, day)
    return result


def cmd_evaluate(args: argparse.Namespace) -> dict[str, Any]:
    from gogoku.evaluate.report import run_evaluation

    settings = _evaluation_settings(args)
    out = _out_dir("--out", args.out) if args.out else None
    return run_evaluation(args.model_dir or ["latest"], _settings(args).store, out, settings)


def _evaluation_settings(args: argparse.Namespace) -> Any:
    from gogoku.evaluate.metrics import Bootstrap
    from gogoku.evaluate.report import EvaluationSettings

    if args.max_lag < 1 or args.quantiles < 2 or args.min_names < 2 or args.cost_bps < 0:
        raise InputError("--max-lag >= 1, --quantiles >= 2, --min-names >= 2 and --cost-bps >= 0 required")
    return EvaluationSettings(
        cost_bps=args.cost_bps, quantiles=args.quantiles, min_names=args.min_names, max_lag=args.max_lag,
        bootstrap=Bootstrap(resamples=args.bootstrap, block_length=args.block_length, seed=args.seed),
        reference=args.reference,
    )


def cmd_ablate(args: argparse.Namespace) -> dict[str, Any]:
    from gogoku.evaluate.ablation import run_ablation

    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    baselines = [b.strip() for b in args.baselines.split(",") if b.strip()]
    result = run_ablation(args.dataset, args.model, _out_dir("--out", args.out), names, baselines,
                          list(args.overrides), _settings(args), _evaluation_settings(args))
    print(result.pop("text"), file=sys.stderr)
    return result


def cmd_blend(args: argparse.Namespace) -> dict[str, Any]:
    from gogoku.evaluate.report import MODELS, resolve_model_dirs
    from gogoku.train.blend import blend_runs, fetch_skips

    if (args.out is None) == (args.run_name is None):
        raise InputError("gogoku blend: give --out DIR (a local folder) or --run-name NAME (<data root>/models/NAME)")
    store = _settings(args).store
    # Runs given as data-root URIs or names are fetched from an object store (their validation
    # predictions and production models included); local folders are read in place.
    runs = resolve_model_dirs(list(args.runs), store, skip=fetch_skips, flag="--runs")
    if args.run_name is None:
        return blend_runs(runs, _out_dir("--out", args.out), step=args.step, min_names=args.min_names)
    if "/" in args.run_name or args.run_name in ("", ".", ".."):
        raise InputError(f"--run-name {args.run_name!r}: expected a folder name under {store.uri(MODELS)}")
    rel = f"{MODELS}/{args.run_name}"
    result = blend_runs(runs, _out_dir("--run-name", str(store.local_path(rel))), step=args.step,
                        min_names=args.min_names)
    store.publish_tree(rel, last=["metrics.json"])  # the completion marker reaches the store last
    return {**result, "model_dir": store.uri(rel)}


# ---------------------------------------------------------------- daily predictions
def cmd_features_daily(args: argparse.Namespace) -> dict[str, Any]:
    from gogoku.predict import latest_cached_date, write_day_features

    settings = _settings(args)
    day = parse_date("--date", args.date) if args.date else latest_cached_date(settings)
    return write_day_features(settings, day, sessions=args.sessions, lookback_days=args.lookback_days,
                              graph_step=args.graph_step, offline=not args.online)


def cmd_predict(args: argparse.Namespace) -> dict[str, Any]:
    from gogoku.predict import predict_day

    settings = _settings(args)
    model = _model_id(settings.store, args.model) if args.model else None
    return predict_day(settings, parse_date("--date", args.date) if args.date else None, args.features, model,
                       min_history=args.min_history)


def cmd_predictions_validate(args: argparse.Namespace) -> dict[str, Any]:
    from gogoku.predict import validate_predictions

    if not 0.0 < args.min_coverage <= 1.0 or args.spread_factor < 1.0:
        raise InputError("--min-coverage in (0, 1] and --spread-factor >= 1 required")
    return validate_predictions(_settings(args), args.uri, args.min_coverage, args.spread_factor)


def cmd_monitor(args: argparse.Namespace) -> dict[str, Any]:
    from gogoku.monitor import MonitorSettings, run_monitor

    monitor = MonitorSettings(window=args.window, floor=args.floor, floor_days=args.floor_days,
                              psi_threshold=args.psi_threshold, drift_days=args.drift_days)
    return run_monitor(_settings(args), monitor, parse_date("--asof", args.asof) if args.asof else None)


# ---------------------------------------------------------------- model registry
def _model_id(store: Any, value: str) -> str:
    """A run folder name from an id, a model folder URI/path under <root>/models, or `latest`."""
    text = value.strip().rstrip("/")
    if text in ("", "latest"):
        pointer = store.read_json("models/latest.json") if store.exists("models/latest.json") else {}
        text = str(pointer.get("model_dir") or "")
        if not text:
            raise InputError(f"--model-dir latest: no model has been trained under {store.url} yet")
        return text
    rel = store.root.relative(text) if ("/" in text or "://" in text) else f"models/{text}"
    if rel is None or not rel.startswith("models/") or rel.count("/") != 1:
        raise InputError(f"model {value!r}: expected a run folder under {store.uri('models')} (or its name)")
    return rel.split("/", 1)[1]


def cmd_model_register(args: argparse.Namespace) -> dict[str, Any]:
    from gogoku.registry import Registry

    store = _settings(args).store
    model_id = _model_id(store, args.model_dir)
    event = Registry(store).register(model_id)
    return {"model": model_id, "model_dir": store.uri(f"models/{model_id}"), "registered_at": event["at"]}


def cmd_model_promote(args: argparse.Namespace) -> dict[str, Any]:
    from gogoku.registry import Registry, promote_if_better

    store = _settings(args).store
    margins = None
    if args.margin:
        try:
            margins = {int(k.rstrip("d")): float(v) for k, v in (item.split("=", 1) for item in args.margin)}
        except ValueError:
            raise InputError(f"--margin {args.margin}: expected HORIZON=VALUE, e.g. 5=0.002") from None
    result = promote_if_better(Registry(store), _model_id(store, args.model), force=args.force, margins=margins)
    for h, f in ((result.get("comparison") or {}).get("horizons") or {}).items():
        log.info("%s: candidate RankIC %s vs champion %s, difference %s %s (margin %s): %s", h,
                 f["candidate_rank_ic"], f["champion_rank_ic"], f["difference"], f["difference_ci"], f["margin"],
                 "beats" if f["beats"] else "does not beat")
    return result


def cmd_model_rollback(args: argparse.Namespace) -> dict[str, Any]:
    from gogoku.registry import Registry

    store = _settings(args).store
    registry = Registry(store)
    previous = registry.state().champion
    event = registry.rollback(_model_id(store, args.to) if args.to else None, reason=args.reason)
    return {"champion": event["model"], "previous_champion": previous, "event": event["name"]}


def cmd_model_list(args: argparse.Namespace) -> dict[str, Any]:
    from gogoku.registry import Registry

    state = Registry(_settings(args).store).state()
    models = {m: {"plan": e.get("plan"), "kind": e.get("kind"), "trained_through": e.get("trained_through"),
                  "rank_ic": {h: (v or {}).get("rank_ic_mean") for h, v in (e.get("walk_forward") or {}).items()}}
              for m, e in state.models.items()}
    for m, info in models.items():
        print(f"{'*' if m == state.champion else ' '} {m}  {info['kind']}  {info['plan']}  through "
              f"{info['trained_through']}  RankIC {info['rank_ic']}", flush=True)
    history = [{k: e.get(k) for k in ("at", "event", "model", "reason", "by")} for e in state.history[-args.history:]]
    return {"champion": state.champion, "models": models, "history": history}


# ---------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gogoku", description=__doc__.splitlines()[0])
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.add_argument("--result-file", default=None,
                   help="also write the JSON result to this file (pods: /airflow/xcom/return.json for the XCom sidecar)")
    sub = p.add_subparsers(dest="command", required=True)

    def add(parent: Any, name: str, func: Callable[[argparse.Namespace], dict[str, Any]], help_: str) -> argparse.ArgumentParser:
        sp = parent.add_parser(name, help=help_, description=help_)
        sp.set_defaults(func=func)
        return sp

    def plan_arg(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--plan", choices=PLAN_TIERS, help="J-Quants plan tier (default: $JQUANTS_PLAN_TIER or standard)")

    def market_args(sp: argparse.ArgumentParser, end_default: str | None) -> None:
        sp.add_argument("--seed", type=int, default=42)
        sp.add_argument("--stocks", type=int, default=300)
        sp.add_argument("--start", default="2016-01-04", help="first simulated date")
        sp.add_argument("--end", default=end_default, help="last simulated date (default: today)")

    sim = sub.add_parser("sim", help="the built-in J-Quants market simulator").add_subparsers(dest="sim_cmd", required=True)
    sp = add(sim, "serve", cmd_sim_serve, "serve a J-Quants v2 compatible API on a simulated market")
    market_args(sp, None)
    sp.add_argument("--plan", choices=PLAN_TIERS, default="standard")
    sp.add_argument("--host", default="127.0.0.1")
    sp.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    sp.add_argument("--api-key", default=None, help="the only key accepted (default: any non-empty key)")
    sp.add_argument("--page-size", type=int, default=5000)
    sp.add_argument("--latency-ms", type=float, default=0.0, help="delay of every request")
    sp.add_argument("--fault-rate", type=float, default=0.0, help="share of requests faulted, spread over the kinds")
    for kind, what in (("slow", "answered after --slow-ms"), ("error", "answered 500/502/503"),
                       ("reset", "dropped before the answer"), ("truncate", "cut halfway through the body")):
        sp.add_argument(f"--{kind}-rate", type=float, default=0.0, help=f"share of requests {what}")
    sp.add_argument("--slow-ms", type=float, default=1000.0)
    sp.add_argument("--mailaddress", default=None, help="the only v1 mail address accepted (default: any)")
    sp.add_argument("--password", default=None, help="the only v1 password accepted (default: any)")
    sp.add_argument("--id-token-ttl-s", type=float, default=24 * 3600.0)
    sp.add_argument("--refresh-token-ttl-s", type=float, default=7 * 24 * 3600.0)
    sp.add_argument("--rate-limit", type=int, default=None, help="requests per window (default: the plan's per minute)")
    sp.add_argument("--rate-window-s", type=float, default=60.0)
    sp.add_argument("--no-rate-limit", action="store_true", help="never answer 429")
    sp.add_argument("--today", default=None, help="the date plan windows count back from (default: --end)")
    sp.add_argument("--no-date-windows", action="store_true", help="serve every date on every plan")
    sp.add_argument("--max-rows", type=int, default=None, help="413 when one query's result has more rows")
    sp = add(sim, "truth", cmd_sim_truth, "export the planted expected returns (evaluation only)")
    market_args(sp, dt.date.today().isoformat())
    sp.add_argument("--out", required=True)
    sp = add(sim, "graph", cmd_sim_graph, "how much of the latent lead-lag peer graph the model's daily graphs find "
             "(simulator datasets)")
    sp.add_argument("--dataset", default="latest", help="dataset URI or path, or `latest`")
    sp.add_argument("--model", default="atft_gat_fan", help="the configs/model/ name whose graph settings to use")
    sp.add_argument("--every", type=int, default=20, help="check the graph of every Nth session")
    sp.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. model.graph.top_k=5")
    plan_arg(sp)

    sp = add(sub, "fetch", cmd_fetch, "fetch one source for a date range (through the cache) into a parquet file")
    sp.add_argument("source")
    sp.add_argument("--from", dest="from_", required=True)
    sp.add_argument("--to", required=True)
    sp.add_argument("--out", required=True)
    sp.add_argument("--no-cache", action="store_true", help="refetch even if the cache covers the range")
    plan_arg(sp)

    cache = sub.add_parser("cache", help="the raw parquet cache").add_subparsers(dest="cache_cmd", required=True)
    sp = add(cache, "refresh", cmd_cache_refresh, "bring sources up to date in the raw cache")
    sp.add_argument("--sources", required=True, help="comma-separated: " + ",".join(
        ("trading_calendar", "listed_info", "daily_quotes", "topix", "statements", "futures")))
    sp.add_argument("--start", required=True)
    sp.add_argument("--end", required=True)
    sp.add_argument("--force", action="store_true", help="refetch the whole range")
    sp.add_argument("--max-age-days", type=float, default=None, help="cache files older than this are stale (default 7)")
    plan_arg(sp)
    sp = add(cache, "sync", cmd_cache_sync, "copy raw cache files between the gs:// data root and the local copy")
    sp.add_argument("--direction", choices=("pull", "push", "both"), default="both")
    sp.add_argument("--sources", default=None, help="comma-separated (default: all)")
    sp.add_argument("--start", default=None, help="pull only files overlapping [start, end]")
    sp.add_argument("--end", default=None)

    ds = sub.add_parser("dataset", help="build and validate ML datasets").add_subparsers(dest="dataset_cmd", required=True)
    sp = add(ds, "build", cmd_dataset_build, "build features and targets for a date range")
    sp.add_argument("--start", required=True)
    sp.add_argument("--end", required=True)
    sp.add_argument("--out", default=None,
                    help="a local folder to write into instead of <data root>/datasets (no latest pointer there)")
    sp.add_argument("--offline", action="store_true", help="read the raw cache only; fail where it lacks data")
    sp.add_argument("--futures-features", default=None,
                    help="URI or path of the parquet from `gogoku features futures` (premium)")
    sp.add_argument("--lookback-days", type=int, default=LOOKBACK_DAYS)
    sp.add_argument("--graph-step", type=non_negative_int, default=5,
                    help="rebuild the correlation graph every N sessions (0: no graph_*/peer_* features)")
    sp.add_argument("--chunk-months", type=non_negative_int, default=None,
                    help="build out of core in date chunks of N months, in memory bounded by the chunk "
                         "(0: in one shot; default: one shot up to a year, else 12)")
    plan_arg(sp)
    sp = add(ds, "validate", cmd_dataset_validate, "check a dataset against its manifest and the schema")
    sp.add_argument("path", help="dataset URI or path, or `latest` (the newest of --plan)")
    sp.add_argument("--max-null-share", type=float, default=0.1,
                    help="refuse the dataset when more than this share of its features are entirely null")
    plan_arg(sp)

    feats = sub.add_parser("features", help="market-level feature files").add_subparsers(dest="features_cmd", required=True)
    sp = add(feats, "futures", cmd_features_futures, "futures features per date (premium plan)")
    sp.add_argument("--start", required=True)
    sp.add_argument("--end", required=True)
    sp.add_argument("--out", default=None, help="a local file instead of <data root>/features/futures_<plan>_<range>.parquet")
    sp.add_argument("--offline", action="store_true")
    sp.add_argument("--lookback-days", type=int, default=LOOKBACK_DAYS)
    plan_arg(sp)

    sp = add(sub, "train", cmd_train, "train a model with walk-forward evaluation (Hydra overrides pass through)")
    sp.add_argument("--dataset", default="latest",
                    help="dataset URI or path, or `latest` (default: the newest dataset of --plan in the data root)")
    sp.add_argument("--model", default="lightgbm", help="a configs/model/ name: lightgbm, atft_gat_fan, atft_tiny")
    sp.add_argument("--model-config", default=None,
                    help="URI or path of a model config file instead (e.g. an HPO study's best: hpo/<study>/model.yaml)")
    sp.add_argument("--out", default=None,
                    help="a local model folder (default: <data root>/models/<model>_<dataset>_<time>)")
    sp.add_argument("--run-name", default=None,
                    help="model folder <data root>/models/<NAME> (instead of --out), e.g. shared by fold tasks")
    sp.add_argument("--fold", type=int, action="append", default=None,
                    help="neural models: train only this walk-forward fold into --out/--run-name (repeatable), "
                         "e.g. one process or pod per fold; a run without --fold on that folder then assembles them")
    sp.add_argument("--plan-only", action="store_true",
                    help="train nothing: print the run's folds, whether they can train as separate tasks and its pod "
                         "profile (reads the config and the dataset's dates)")
    sp.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. model.params.num_leaves=63")
    plan_arg(sp)

    sp = add(sub, "hpo", cmd_hpo, "Optuna search over ATFT-GAT-FAN settings on validation slices (never test folds)")
    sp.add_argument("--dataset", default="latest",
                    help="dataset URI or path, or `latest` (default: the newest dataset of --plan)")
    plan_arg(sp)
    sp.add_argument("--model", default="atft_gat_fan", help="atft_gat_fan (default) or atft_tiny")
    sp.add_argument("--n-trials", type=int, default=None, help="trials to run now (default: the config's n_trials)")
    sp.add_argument("--study", default=None, help="study name (default: the config's `study`)")
    sp.add_argument("--storage", default=None,
                    help="Optuna RDB URL, e.g. postgresql://user@host/db (default: $GOGOKU_HPO_STORAGE, else sqlite "
                         "under <data root>/hpo/)")
    sp.add_argument("--timeout", type=float, default=None, help="seconds after which no new trial starts")
    sp.add_argument("--config", default=None, help="search config (default: configs/hpo/default.yaml)")
    sp.add_argument("overrides", nargs="*", help="Hydra overrides fixed for every trial, e.g. splits.n_splits=3")

    sp = add(feats, "daily", cmd_features_daily,
             "the features of one market date (and the sessions before it) from the raw cache, for a prediction")
    sp.add_argument("--date", default=None, help="the market date D (default: the latest date in the cache)")
    sp.add_argument("--sessions", type=int, default=60, help="sessions of rows kept, ending at D")
    sp.add_argument("--lookback-days", type=int, default=LOOKBACK_DAYS)
    sp.add_argument("--graph-step", type=non_negative_int, default=5, help="as `dataset build --graph-step`")
    sp.add_argument("--online", action="store_true", help="fetch what the cache lacks (default: the cache only)")
    plan_arg(sp)

    sp = add(sub, "predict", cmd_predict,
             "score every stock listed on a date with a registered model (the champion by default)")
    sp.add_argument("--date", default=None, help="the market date D whose close the scores are made at "
                                                "(default: the latest date in the cache)")
    sp.add_argument("--features", default=None, help="URI of `gogoku features daily` output (default: built now)")
    sp.add_argument("--model", default=None, help="a registered model id (default: the champion)")
    sp.add_argument("--min-history", type=int, default=60,
                    help="sessions of bars a stock needs before it gets a score (others: null with a reason)")
    plan_arg(sp)
    preds = sub.add_parser("predictions", help="published predictions").add_subparsers(dest="predictions_cmd",
                                                                                     required=True)
    sp = add(preds, "validate", cmd_predictions_validate, "check a predictions file before it is published")
    sp.add_argument("uri")
    sp.add_argument("--min-coverage", type=float, default=0.9, help="least share of the listed stocks scored")
    sp.add_argument("--spread-factor", type=float, default=3.0,
                    help="score spread within [min / f, max * f] of the model's walk-forward daily spreads")
    plan_arg(sp)
    sp = add(sub, "monitor", cmd_monitor, "realized skill of past predictions, feature drift, alerts")
    sp.add_argument("--asof", default=None, help="monitor up to this date (default: the latest prediction)")
    sp.add_argument("--window", type=int, default=20, help="sessions of the rolling realized RankIC")
    sp.add_argument("--floor", type=float, default=0.0, help="alert when the rolling RankIC stays below this ...")
    sp.add_argument("--floor-days", type=int, default=10, help="... for this many days in a row")
    sp.add_argument("--psi-threshold", type=float, default=0.25, help="alert when a group's median PSI exceeds this")
    sp.add_argument("--drift-days", type=int, default=20, help="recent prediction days compared with the training data")
    plan_arg(sp)

    models = sub.add_parser("model", help="the model registry: register, promote, roll back, list").add_subparsers(
        dest="model_cmd", required=True)
    sp = add(models, "register", cmd_model_register, "register a training run that has a production model (refit)")
    sp.add_argument("--model-dir", default="latest", help="the run folder (URI, path or name), or `latest`")
    sp = add(models, "promote", cmd_model_promote,
             "make a registered model the champion if it beats the current one on the same test rows")
    sp.add_argument("model", help="the registered model (run folder name or URI)")
    sp.add_argument("--force", action="store_true", help="promote even if it does not beat the champion")
    sp.add_argument("--margin", action="append", default=None,
                    help="HORIZON=RANKIC: the least gain required on that horizon (default: the run's config)")
    sp = add(models, "rollback", cmd_model_rollback, "make the previous champion (or --to) the champion again")
    sp.add_argument("--to", default=None, help="the registered model to serve (default: the champion before)")
    sp.add_argument("--reason", default="rollback", help="recorded in the registry's history")
    sp = add(models, "list", cmd_model_list, "registered models, the champion and the recent history")
    sp.add_argument("--history", type=int, default=20, help="events of the history to show")

    model_dir_help = "model folder, a run folder holding several, or `latest` (default); repeat to compare"
    sp = add(sub, "report", cmd_report, "print a readable summary of one or more training runs")
    sp.add_argument("--model-dir", action="append", default=None, help=model_dir_help)
    sp.add_argument("--predictions", default=None, metavar="DATE|latest",
                    help="also print the top and bottom names per horizon of that day's predictions")

    def evaluation_args(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--cost-bps", type=float, default=10.0, help="one-way cost on turnover, basis points")
        sp.add_argument("--quantiles", type=int, default=5, help="long-short = top minus bottom quantile")
        sp.add_argument("--min-names", type=int, default=20, help="days with fewer names are left out")
        sp.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples (0: no intervals)")
        sp.add_argument("--block-length", type=int, default=10, help="bootstrap block, days (at least the horizon)")
        sp.add_argument("--seed", type=int, default=0, help="bootstrap seed")
        sp.add_argument("--max-lag", type=int, default=20, help="IC decay over lags 1..max-lag")
        sp.add_argument("--reference", default="auto",
                        help="the model (label) the others are compared with day by day (default: lightgbm when "
                             "present; '' for none)")

    sp = add(sub, "evaluate", cmd_evaluate,
             "full test-fold evaluation: bootstrap CIs, costs, IC decay, figures, model comparison table")
    sp.add_argument("--model-dir", action="append", default=None, help=model_dir_help)
    sp.add_argument("--out", default=None, help="output folder (default: <first model folder>/evaluation)")
    evaluation_args(sp)

    sp = add(sub, "blend", cmd_blend,
             "blend trained runs (same dataset and folds) with weights chosen per fold and horizon on their "
             "validation slices; writes a model folder (and final/ when every run has one)")
    sp.add_argument("--runs", nargs="+", required=True,
                    help="two or more model folders (e.g. a LightGBM and an ATFT run): data-root URIs or paths, or "
                         "local folders")
    sp.add_argument("--out", default=None, help="the blend's model folder (a local folder)")
    sp.add_argument("--run-name", default=None, help="or: the blend's folder <data root>/models/NAME (published "
                    "to an object-store data root; `gogoku model register` takes NAME)")
    sp.add_argument("--step", type=float, default=0.1, help="weight grid step (1/n)")
    sp.add_argument("--min-names", type=int, default=20, help="names a validation day needs to count")

    sp = add(sub, "ablate", cmd_ablate,
             "train the network without its graph, without FAN/SAN, without both, and the baselines, on the same "
             "folds and seeds; evaluate them together (table, figures, signal families on simulator data)")
    sp.add_argument("--dataset", default="latest", help="dataset URI or path, or `latest` (resolved once)")
    sp.add_argument("--model", default="atft_gat_fan", help="the neural model's configs/model/ name")
    sp.add_argument("--out", required=True, help="the ablation folder: <out>/<variant>, <out>/evaluation")
    sp.add_argument("--variants", default="full,no_gat,no_fan,tft_only", help="comma-separated variants")
    sp.add_argument("--baselines", default="lightgbm", help="comma-separated baseline models ('' for none)")
    sp.add_argument("overrides", nargs="*",
                    help="Hydra overrides: model.* to the neural variants, the rest (splits, horizons) to all")
    evaluation_args(sp)
    plan_arg(sp)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        result = args.func(args)
        emit_result(result, Path(args.result_file) if args.result_file else None)
    except GogokuError as exc:
        return _fail(args.command, str(exc))
    except OSError as exc:  # the environment, not a bug: a full or read-only disk, a missing permission
        if exc.errno not in ENVIRONMENT_ERRNOS:
            raise
        return _fail(args.command, _environment_message(exc))
    except Exception as exc:
        # polars and pyarrow wrap an I/O failure (a full disk) in their own errors.
        text = str(exc)
        if type(exc).__module__.split(".")[0] in ("polars", "pyarrow") and any(s in text for s in DISK_MESSAGES):
            return _fail(args.command, f"writing failed: {text.strip().splitlines()[0]} (free some space and rerun)")
        raise
    return 0


ENVIRONMENT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM})
DISK_MESSAGES = ("No space left on device", "Disk quota exceeded", "Read-only file system")


def _fail(command: str, message: str) -> int:
    """The one-line error (multi-line messages of libraries, e.g. Hydra's, are joined)."""
    text = "; ".join(line.strip() for line in message.splitlines() if line.strip())
    print(f"gogoku {command}: error: {text}", file=sys.stderr, flush=True)
    return 2


def _environment_message(exc: OSError) -> str:
    where = exc.filename or "a file"
    hint = {errno.ENOSPC: "free some space and rerun", errno.EDQUOT: "free some space and rerun",
            errno.EROFS: "the data root is read-only; point GOGOKU_DATA_ROOT at a writable place"}.get(
        exc.errno or 0, "check the permissions of the data root (GOGOKU_DATA_ROOT) and of --out")
    return f"{where}: {exc.strerror or exc} ({hint})"


if __name__ == "__main__":
    sys.exit(main())
