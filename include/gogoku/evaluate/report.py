"""Run reports on test folds only: `gogoku report` (a quick summary from metrics.json) and
`gogoku evaluate` (the full evaluation from predictions.parquet: bootstrap intervals, costs, IC
decay, figures, the model comparison table). On simulator data both put the oracle (the planted
expected returns) beside the models as the ceiling to read them against.

Which rows are test rows: predictions.parquet holds one row per (Code, Date) a model predicted;
rows with a null `fold` (and, where a `split` column exists, rows whose split is not "test") are
not test rows and are dropped.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from gogoku.errors import GogokuError, InputError
from gogoku.evaluate.compare import compare_runs
from gogoku.evaluate.families import exposures, families_of, family_oracles, format_families
from gogoku.evaluate.metrics import (
    Bootstrap,
    daily_ic,
    evaluate_predictions,
    ic_decay,
    long_short_periods,
    staggered_book,
)
from gogoku.evaluate.runs import load_test_rows
from gogoku.io import atomic_write, write_json_atomic
from gogoku.storage import Store

log = logging.getLogger(__name__)

ORACLE = "oracle (planted)"


# ---------------------------------------------------------------- runs
MODELS = "models"
# What a report reads of a model folder; checkpoints and TensorBoard logs stay in the store.
_NOT_READ = ("/checkpoints/", "/tensorboard/")


def _as_store(root: Store | Path) -> Store:
    return root if isinstance(root, Store) else Store.from_url(root)


def _model_rels(store: Store, value: str, flag: str = "--model-dir") -> list[str] | None:
    """The model folders (relative to the root) that `value` names in the data root: `latest`, a
    model folder or a run folder of model folders; None when `value` lies outside the root."""
    if value in ("", "latest"):
        pointer = f"{MODELS}/latest.json"
        if not store.exists(pointer):
            raise InputError(f"{store.uri(pointer)}: no model has been trained under {store.url} yet; "
                             "train one first or give --model-dir")
        name = store.read_json(pointer).get("model_dir")
        if not isinstance(name, str) or "/" in name:
            raise InputError(f"{store.uri(pointer)}: not a model pointer")
        return [f"{MODELS}/{name}"]
    rel = store.root.relative(value)
    if rel is None:
        return None
    if store.remote:
        markers = [o.rel for o in store.walk(rel) if o.rel.endswith("/metrics.json")]
    else:
        folder = store.local_path(rel)
        markers = [p.relative_to(store.root.local).as_posix() for p in folder.glob("**/metrics.json")]
    top = f"{rel}/metrics.json".lstrip("/")
    if top in markers:
        return [rel]
    subs = sorted(m.rsplit("/", 1)[0] for m in markers if m.count("/") == top.count("/") + 1)
    if not subs:
        raise InputError(f"{flag} {value}: no metrics.json there or in its sub-folders")
    return subs


def report_skips(rel: str) -> bool:
    """What a report does not fetch of a model folder in an object store (`resolve_model_dirs`)."""
    return any(p in f"/{rel}" for p in _NOT_READ)


def resolve_model_dirs(values: str | Path | Sequence[str | Path] | None, root: Store | Path,
                       skip: Callable[[str], bool] = report_skips, flag: str = "--model-dir") -> list[Path]:
    """Local model folders for --model-dir values: `latest`, a model folder (with metrics.json) or a
    run folder whose sub-folders are model folders (all of them, sorted by name), given as URIs or
    paths of the data root (fetched from an object store, but for the objects `skip` names) or as
    local paths elsewhere. Errors name the values' option, `flag`."""
    store = _as_store(root)
    if values is None or isinstance(values, (str, Path)):
        values = ["latest" if values is None else values]
    dirs: list[Path] = []
    for value in values:
        rels = _model_rels(store, str(value).strip(), flag)
        if rels is not None:
            dirs.extend(store.fetch_tree(r, skip=skip) for r in rels)
            continue
        path = Path(value)
        if (path / "metrics.json").is_file():
            dirs.append(path)
            continue
        found = sorted(p.parent for p in path.glob("*/metrics.json")) if path.is_dir() else []
        if not found:
            raise InputError(f"{flag} {value}: no metrics.json there or in its sub-folders")
        dirs.extend(found)
    unique = list(dict.fromkeys(p.resolve() for p in dirs))
    if not unique:
        raise InputError(f"{flag}: no model folder given")
    return unique


@dataclass
class ModelRun:
    model_dir: Path
    label: str
    metrics: dict[str, Any]
    horizons: list[int]
    manifest: dict[str, Any]
    config: dict[str, Any]
    store: Store | None = None

    @functools.cached_property
    def dataset(self) -> Path | None:
        """The local file of the run's dataset (fetched from an object store), None when unavailable."""
        return _local_file(self.metrics.get("dataset"), self.store)


def _local_file(location: str | None, store: Store | None) -> Path | None:
    if not location:
        return None
    if "://" not in location:
        return Path(location)
    try:
        return (store or Store.from_env()).localize(location)
    except GogokuError as exc:
        log.warning("%s: not available (%s)", location, exc)
        return None


def load_run(model_dir: Path, label: str | None = None, store: Store | None = None) -> ModelRun:
    try:
        metrics = json.loads((model_dir / "metrics.json").read_text())
        horizons = [int(str(h).rstrip("d")) for h in metrics["horizons"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{model_dir / 'metrics.json'}: unreadable ({exc.__class__.__name__}: {exc})") from None
    manifest: dict[str, Any] = {}
    location = str(metrics.get("dataset") or "")
    if location.endswith(".parquet"):
        manifest_file = _local_file(location[: -len(".parquet")] + ".manifest.json", store)
        if manifest_file is not None and manifest_file.is_file():
            manifest = json.loads(manifest_file.read_text())
    config_file = model_dir / "config.yaml"
    config = (yaml.safe_load(config_file.read_text()) or {}) if config_file.is_file() else {}
    label = label or str(metrics.get("model", model_dir.name))
    return ModelRun(model_dir, label, metrics, horizons, manifest, config, store)


def load_runs(model_dirs: Sequence[Path], store: Store | None = None) -> list[ModelRun]:
    """Runs labelled by model name; a name used twice gets its folder's name appended."""
    runs = [load_run(d, store=store) for d in model_dirs]
    names = [r.label for r in runs]
    for run in runs:
        if names.count(run.label) > 1:
            run.label = f"{run.label} ({run.model_dir.name})"
    return runs


# ---------------------------------------------------------------- oracle
@functools.lru_cache(maxsize=2)
def _market(seed: int, stocks: int, end: dt.date) -> Any:
    from gogoku.sim.market import SimMarket

    log.info("rebuilding the simulated market (seed %d, %d stocks) for the oracle", seed, stocks)
    return SimMarket(seed=seed, n_stocks=stocks, end=end)


CHECK_DATES = 20  # test dates on which the simulator must reproduce the dataset's targets


def simulator_agreement(market: Any, rows: pl.DataFrame) -> float:
    """Share of the rows on the last CHECK_DATES dates of `rows` whose shortest-horizon target the
    simulator's adjusted closes reproduce (to 1e-6); NaN when there is nothing to compare. A
    simulator changed since the dataset was built plants other returns: its oracle would be wrong."""
    targets = sorted((c for c in rows.columns if c.startswith("target_") and c.endswith("d")),
                     key=lambda c: int(c[len("target_"):-1]))
    if not targets:
        return math.nan
    target = targets[0]
    h = int(target[len("target_"):-1])
    dates = rows["Date"].unique().sort()[-CHECK_DATES:]
    sample = rows.filter(pl.col("Date").is_in(dates.implode())).select("Code", "Date", target).drop_nulls()
    if sample.is_empty():
        return math.nan
    quotes = market.daily_quotes(dates[0], None).sort("Code", "Date")
    price = pl.col("AdjustmentClose")
    rebuilt = quotes.select("Code", "Date", (price.shift(-h).over("Code") / price - 1.0).alias("_sim"))
    joined = sample.join(rebuilt, on=["Code", "Date"], how="left")
    return float(((joined[target] - joined["_sim"]).abs() < 1e-6).fill_null(False).mean())  # type: ignore[arg-type]


def oracle_frame(manifest: dict[str, Any], rows: pl.DataFrame) -> pl.DataFrame | None:
    """`rows` joined with the simulator's planted `exp_ret_{h}d` on (Code, Date); None unless the
    dataset came from the simulator (manifest origin.api == "simulator") and today's simulator still
    reproduces the dataset's targets (see `simulator_agreement`)."""
    origin = manifest.get("origin") or {}
    if origin.get("api") != "simulator":
        return None
    end = dt.date.fromisoformat(manifest["range"]["end"])
    market = _market(int(origin["seed"]), int(origin["stocks"]), end)
    agreement = simulator_agreement(market, rows)
    if not agreement >= 0.95:
        log.warning(
            "the simulator (seed %s, %s stocks) reproduces only %.0f%% of the sampled targets of this dataset "
            "(it changed since the build): no oracle", origin["seed"], origin["stocks"], 100 * agreement,
        )
        return None
    return rows.join(market.truth(), on=["Code", "Date"], how="inner")


def oracle_metrics(joined: pl.DataFrame, horizons: list[int], bootstrap: Bootstrap | None = None,
                   **options: Any) -> dict[str, Any]:
    """Test-fold metrics of the simulator's planted expected returns on the rows of `joined` (a model's
    test rows joined with the truth: `oracle_frame`)."""
    return {
        f"{h}d": evaluate_predictions(joined, f"exp_ret_{h}d", f"target_{h}d", h, bootstrap=bootstrap, **options)
        for h in horizons
    }


def _oracle_rank_ic(joined: pl.DataFrame, horizons: list[int], min_names: int) -> dict[str, float]:
    out = {}
    for h in horizons:
        rank = daily_ic(joined, f"exp_ret_{h}d", f"target_{h}d", min_names=min_names)["rank_ic"].drop_nulls()
        out[f"{h}d"] = float(rank.mean()) if rank.len() else math.nan  # type: ignore[arg-type]
    return out


def _fraction(value: Any, oracle: Any) -> float:
    ok = isinstance(value, (int, float)) and isinstance(oracle, (int, float)) and oracle == oracle and oracle != 0
    return float(value) / float(oracle) if ok else math.nan


# ---------------------------------------------------------------- gogoku evaluate
@dataclass(frozen=True)
class EvaluationSettings:
    """`cost_bps` one-way cost on turnover; `quantiles` of the long-short; days with fewer than
    `min_names` names are left out; IC decay over lags 1..`max_lag`; the bootstrap settings."""

    cost_bps: float = 10.0
    quantiles: int = 5
    min_names: int = 20
    max_lag: int = 20
    bootstrap: Bootstrap = field(default_factory=Bootstrap)
    # The model every other is compared with, day by day (paired RankIC differences with intervals);
    # "auto": a model labelled lightgbm when there is one; "": none.
    reference: str = "auto"

    def options(self) -> dict[str, Any]:
        return {"cost_bps": self.cost_bps, "quantiles": self.quantiles, "min_names": self.min_names}


def realized_returns(run: ModelRun, predictions: pl.DataFrame) -> pl.DataFrame | None:
    """(Code, Date, ret) one-session forward returns for IC decay: the dataset's target_1d on
    every date (so lags reach past the test blocks' ends), else the predictions' own target_1d."""
    dataset = run.dataset
    if dataset is not None and dataset.is_file() and "target_1d" in pl.read_parquet_schema(dataset):
        return pl.read_parquet(dataset, columns=["Code", "Date", "target_1d"]).rename({"target_1d": "ret"})
    if "target_1d" in predictions.columns:
        return predictions.select("Code", "Date", pl.col("target_1d").alias("ret"))
    return None


def evaluate_run(
    run: ModelRun, predictions: pl.DataFrame, settings: EvaluationSettings
) -> tuple[dict[str, Any], dict[str, pl.DataFrame], dict[str, pl.DataFrame]]:
    """Per horizon: the evaluate_predictions statistics plus `ic_decay`; the staggered books and
    the decay curves for the figures."""
    returns = realized_returns(run, predictions)
    lags = tuple(range(1, settings.max_lag + 1))
    per_h: dict[str, Any] = {}
    books: dict[str, pl.DataFrame] = {}
    decays: dict[str, pl.DataFrame] = {}
    for h in run.horizons:
        pred, target = f"pred_{h}d", f"target_{h}d"
        summary = evaluate_predictions(predictions, pred, target, h, bootstrap=settings.bootstrap, **settings.options())
        books[f"{h}d"] = staggered_book(
            long_short_periods(predictions, pred, target, h, quantiles=settings.quantiles,
                               min_names=settings.min_names, cost_bps=settings.cost_bps)
        )
        if returns is not None:
            decays[f"{h}d"] = ic_decay(predictions, pred, returns, lags, min_names=settings.min_names)
            summary["ic_decay"] = decays[f"{h}d"].to_dicts()
        else:
            summary["ic_decay"] = []
        per_h[f"{h}d"] = summary
        log.info("%s %dd: rank_ic %.4f, sharpe net %.2f", run.label, h, summary["rank_ic_mean"], summary["ls_sharpe_net"])
    return per_h, books, decays


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def evaluate_models(
    model_dirs: Sequence[Path], out_dir: Path | None = None, settings: EvaluationSettings = EvaluationSettings(),
    store: Store | None = None,
) -> dict[str, Any]:
    """Evaluate every model folder on its test rows; write evaluation.json, report.md and the
    figures (cumulative_long_short.png, rank_ic_by_horizon.png, ic_decay.png) to `out_dir`
    (default: <first model folder>/evaluation). Returns the evaluation as written."""
    from gogoku.evaluate.plots import (
        plot_cumulative_long_short,
        plot_family_exposure,
        plot_ic_decay,
        plot_rank_ic_by_horizon,
    )

    runs = load_runs(model_dirs, store)
    reference = reference_run(runs, settings)  # an unknown --reference is refused before any work
    out = Path(out_dir) if out_dir is not None else runs[0].model_dir / "evaluation"
    models: dict[str, Any] = {}
    books: dict[str, dict[str, pl.DataFrame]] = {}
    decays: dict[str, dict[str, pl.DataFrame]] = {}
    oracle: dict[str, Any] | None = None
    families: dict[str, Any] | None = None
    test_rows: dict[str, pl.DataFrame] = {}
    for i, run in enumerate(runs):
        predictions = test_rows[run.label] = load_test_rows(run.model_dir)
        per_h, books[run.label], decays[run.label] = evaluate_run(run, predictions, settings)
        joined = oracle_frame(run.manifest, predictions)
        oracle_ic = _oracle_rank_ic(joined, run.horizons, settings.min_names) if joined is not None else {}
        if joined is not None and families_of(joined):
            if families is None:  # the family oracles on the first model's test rows, as the oracle's
                families = {"rows_of": run.label, "exposure": {
                    ORACLE: exposures(joined, run.horizons, settings.min_names, "exp_ret_{h}d")},
                    "family_oracle": family_oracles(joined, run.horizons, settings.bootstrap, settings.min_names)}
            families["exposure"][run.label] = exposures(joined, run.horizons, settings.min_names)
        for h, summary in per_h.items():
            summary["oracle_rank_ic_mean"] = oracle_ic.get(h, math.nan)
            summary["rank_ic_fraction_of_oracle"] = _fraction(summary["rank_ic_mean"], summary["oracle_rank_ic_mean"])
        dates = predictions["Date"]
        models[run.label] = {
            "model_dir": str(run.model_dir), "model": run.metrics.get("model"), "dataset": str(run.dataset),
            "test_rows": predictions.height, "test_start": dates.min(), "test_end": dates.max(),
            "n_folds": predictions["fold"].n_unique(), "horizons": per_h,
        }
        if i == 0 and joined is not None:
            oracle = {"rows_of": run.label,
                      "horizons": oracle_metrics(joined, run.horizons, settings.bootstrap, **settings.options())}
    figures = {
        "cumulative_long_short": str(plot_cumulative_long_short(books, out / "cumulative_long_short.png")),
        "rank_ic_by_horizon": str(plot_rank_ic_by_horizon(_rank_ic_points(models, oracle), out / "rank_ic_by_horizon.png")),
    }
    if any(decays.values()):
        figures["ic_decay"] = str(plot_ic_decay(decays, out / "ic_decay.png"))
    if families is not None:
        figures["family_exposure"] = str(plot_family_exposure(families["exposure"], out / "family_exposure.png"))
    on_simulator = (runs[0].manifest.get("origin") or {}).get("api") == "simulator"
    differences = paired_differences(runs, reference, test_rows, settings) if reference is not None else None
    evaluation = _json_safe({
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "settings": {**asdict(settings)},
        "models": models,
        "oracle": oracle,
        "families": families,
        "differences": differences,
        "oracle_note": (
            "simulator data, but today's simulator does not reproduce the dataset's targets: no oracle"
            if on_simulator and oracle is None else None
        ),
        "figures": figures,
        "table": str(out / "report.md"),
    })
    table = format_comparison(evaluation)
    if differences is not None:
        table += "\n\n" + format_differences(evaluation["differences"])
    if families is not None:
        table += "\n\n" + format_families(evaluation["families"])
    atomic_write(out / "report.md", lambda tmp: tmp.write_text(table + "\n"))
    write_json_atomic(evaluation, out / "evaluation.json")
    evaluation["text"] = table
    return evaluation


def reference_run(runs: Sequence[ModelRun], settings: EvaluationSettings) -> ModelRun | None:
    """The run `settings.reference` names ("auto": the one labelled lightgbm, if any; "": none)."""
    labels = [r.label for r in runs]
    wanted = settings.reference
    if wanted == "auto":
        wanted = "lightgbm" if "lightgbm" in labels else ""
    if not wanted:
        return None
    if wanted not in labels:
        raise InputError(f"--reference {wanted}: no such model among {labels}")
    return runs[labels.index(wanted)]


def paired_differences(runs: Sequence[ModelRun], ref: ModelRun, test_rows: Mapping[str, pl.DataFrame],
                       settings: EvaluationSettings) -> dict[str, Any]:
    """Each model's mean daily RankIC minus the reference model's (`ref`), on the days both scored,
    with a moving-block bootstrap interval of the paired daily differences (`gogoku.evaluate.compare`):
    an interval that excludes 0 says the difference is real. `test_rows`: each run's test rows by label."""
    out: dict[str, Any] = {"reference": ref.label, "models": {}}
    for run in runs:
        if run is ref:
            continue
        horizons = [h for h in run.horizons if h in ref.horizons]
        compared = compare_runs(test_rows[run.label], test_rows[ref.label], horizons, {}, settings.bootstrap,
                                min_days=0, min_names=settings.min_names)
        out["models"][run.label] = {h: {k: f[k] for k in ("difference", "difference_ci", "days")}
                                    for h, f in compared["horizons"].items()}
    return out


def format_differences(differences: Mapping[str, Any]) -> str:
    """The paired RankIC differences to the reference model as a markdown table."""
    ref = differences["reference"]
    lines = [f"Paired by day: each model's mean daily RankIC minus {ref}'s on the days both scored, with the "
             "moving-block bootstrap interval of the daily differences (an interval without 0: a real difference).",
             "", f"| horizon | model | RankIC - {ref} [95% CI] | days |", "|---|---|---|---|"]
    rows = [(int(h.rstrip("d")), h, label, f) for label, per_h in differences["models"].items() for h, f in per_h.items()]
    for _, h, label, f in sorted(rows, key=lambda r: r[0]):
        value = f"{f['difference']:+.4f}" if isinstance(f.get("difference"), float) else "-"
        lines.append(f"| {h} | {label} | {value}{_ci(f.get('difference_ci'), 4)} | {f.get('days')} |")
    return "\n".join(lines)


def _rank_ic_points(models: Mapping[str, Any], oracle: Mapping[str, Any] | None) -> dict[str, list[Any]]:
    rows = {label: m["horizons"] for label, m in models.items()}
    if oracle is not None:
        rows[ORACLE] = oracle["horizons"]
    return {
        label: [
            (int(h.rstrip("d")), s["rank_ic_mean"], *(s.get("rank_ic_mean_ci") or [None, None]))
            for h, s in per_h.items()
            if isinstance(s.get("rank_ic_mean"), float) and math.isfinite(s["rank_ic_mean"])
        ]
        for label, per_h in rows.items()
    }


def _ci(values: Any, digits: int = 3) -> str:
    if not values or any(v is None for v in values):
        return ""
    return f" [{values[0]:.{digits}f}, {values[1]:.{digits}f}]"


COLUMNS = ("horizon", "model", "RankIC [95% CI]", "of oracle", "IC", "ICIR", "RankIC IR", "hit", "sign hit",
           "LS ann. gross", "LS ann. net", "Sharpe gross [CI]", "Sharpe net [CI]", "turnover")


def format_comparison(evaluation: Mapping[str, Any]) -> str:
    """The models' (and the oracle's) test-fold figures per horizon as a markdown table."""
    settings = evaluation["settings"]
    oracle = evaluation.get("oracle")
    rows = []
    horizons = sorted(
        {h for m in evaluation["models"].values() for h in m["horizons"]}, key=lambda h: int(h.rstrip("d"))
    )
    for h in horizons:
        entries = [(label, m["horizons"].get(h)) for label, m in evaluation["models"].items()]
        if oracle is not None:
            entries.append((ORACLE, oracle["horizons"].get(h)))
        for label, s in entries:
            if s is None:
                continue
            fraction = "1" if label == ORACLE else _fmt(s.get("rank_ic_fraction_of_oracle"), 2)
            rows.append([
                h, label, _fmt(s.get("rank_ic_mean")) + _ci(s.get("rank_ic_mean_ci")), fraction,
                _fmt(s.get("ic_mean")), _fmt(s.get("icir"), 3), _fmt(s.get("rank_icir"), 3), _fmt(s.get("hit_rate"), 3),
                _fmt(s.get("sign_hit_rate"), 3), _pct(s.get("ls_ann_return_gross")), _pct(s.get("ls_ann_return_net")),
                _fmt(s.get("ls_sharpe_gross"), 2) + _ci(s.get("ls_sharpe_gross_ci"), 2),
                _fmt(s.get("ls_sharpe_net"), 2) + _ci(s.get("ls_sharpe_net_ci"), 2), _fmt(s.get("ls_turnover"), 2),
            ])
    boot = settings["bootstrap"]
    note = [f"Oracle: {evaluation['oracle_note']}.", ""] if evaluation.get("oracle_note") else []
    lines = [
        *note,
        "Test folds only. RankIC/ICIR from daily cross-sections (>= "
        f"{settings['min_names']} names); long-short = top minus bottom of {settings['quantiles']} prediction "
        f"quantiles, h-day holding in h staggered non-overlapping books, net of {settings['cost_bps']:g} bps one-way "
        f"on turnover; CIs: moving-block bootstrap ({boot['resamples']} draws, blocks >= {boot['block_length']} "
        f"days, seed {boot['seed']}).",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "|".join("---" for _ in COLUMNS) + "|",
        *("| " + " | ".join(str(c) for c in row) + " |" for row in rows),
    ]
    return "\n".join(lines)


def _fmt(x: Any, digits: int = 4) -> str:
    if x is None or not isinstance(x, (int, float)) or x != x:
        return "-"
    return f"{x:.{digits}f}" if abs(x) < 10 else f"{x:.2f}"


def _pct(x: Any) -> str:
    return "-" if x is None or not isinstance(x, (int, float)) or x != x else f"{100 * x:.1f}%"


def run_evaluation(
    model_dirs: str | Path | Sequence[str | Path] | None,
    root: Store | Path,
    out_dir: Path | None = None,
    settings: EvaluationSettings = EvaluationSettings(),
) -> dict[str, Any]:
    """`gogoku evaluate`: evaluate, print the comparison table, return the CLI's result object. An
    output folder inside the data root (the default: <first model folder>/evaluation) is published."""
    store = _as_store(root)
    evaluation = evaluate_models(resolve_model_dirs(model_dirs, store), out_dir, settings, store)
    print(evaluation["text"], flush=True)
    table = Path(evaluation["table"])
    rel = store.root.relative(table.parent)
    if rel is not None:
        store.publish_tree(rel, last=["evaluation.json"])

    def uri(path: str | Path) -> str:
        inside = store.root.relative(path)
        return store.uri(inside) if inside is not None else str(path)

    return {
        "evaluation": uri(table.with_name("evaluation.json")),
        "table": uri(table),
        "figures": {k: uri(v) for k, v in evaluation["figures"].items()},
        "model_dirs": [m["model_dir"] for m in evaluation["models"].values()],
        "rank_ic": _headline(evaluation, "rank_ic_mean"),
        "sharpe_net": _headline(evaluation, "ls_sharpe_net"),
    }


def _headline(evaluation: Mapping[str, Any], key: str) -> dict[str, dict[str, Any]]:
    out = {label: {h: s.get(key) for h, s in m["horizons"].items()} for label, m in evaluation["models"].items()}
    if evaluation.get("oracle"):
        out[ORACLE] = {h: s.get(key) for h, s in evaluation["oracle"]["horizons"].items()}
    return out


# ---------------------------------------------------------------- gogoku report
def summarize_runs(model_dirs: Sequence[Path], store: Store | None = None) -> dict[str, Any]:
    """The quick summary `gogoku report` prints: the first run's dataset; every model's test-fold
    figures (recomputed from predictions.parquet without bootstrap, so runs of any age show the
    same statistics; metrics.json's where there are no predictions); the oracle on the first
    model's test rows and each model's RankIC as a fraction of the oracle's on its own test rows."""
    runs = load_runs(model_dirs, store)
    first = runs[0]
    manifest = first.manifest
    models: dict[str, Any] = {}
    fractions: dict[str, dict[str, float]] = {}
    oracle = None
    for run in runs:
        models[run.label] = run.metrics["horizons"]
        if not (run.model_dir / "predictions.parquet").is_file():
            continue
        predictions = load_test_rows(run.model_dir)
        models[run.label] = {
            f"{h}d": evaluate_predictions(predictions, f"pred_{h}d", f"target_{h}d", h, bootstrap=None)
            for h in run.horizons
        }
        joined = oracle_frame(run.manifest, predictions)
        oracle_ic = _oracle_rank_ic(joined, run.horizons, 20) if joined is not None else {}
        if oracle_ic:
            fractions[run.label] = {
                h: _fraction(m.get("rank_ic_mean"), oracle_ic.get(h)) for h, m in models[run.label].items()
            }
        if run is first and joined is not None:
            oracle = oracle_metrics(joined, first.horizons)
    if oracle is not None:
        models[ORACLE] = oracle
    return {
        "model_dir": str(first.model_dir),
        "model_dirs": [str(r.model_dir) for r in runs],
        "dataset": str(first.dataset),
        "rows": manifest.get("rows", first.metrics.get("dataset_rows")),
        "codes": manifest.get("codes"),
        "range": manifest.get("range"),
        "plan": manifest.get("plan"),
        "n_features": manifest.get("n_features", first.metrics.get("n_features")),
        "feature_groups": manifest.get("feature_groups"),
        "n_folds": len(first.metrics.get("folds", [])),
        "embargo": (first.config.get("splits") or {}).get("embargo"),
        "horizons": sorted({h for r in runs for h in r.horizons}),
        "models": models,
        "oracle_fraction": fractions,
    }


def summarize_run(model_dir: Path) -> dict[str, Any]:
    return summarize_runs([model_dir])


SUMMARY_TABLES = (
    ("RankIC (mean daily)", ("rank_ic_mean",)),
    ("RankIC IR", ("rank_icir",)),
    ("Long-short quintile Sharpe, gross (staggered non-overlapping books)", ("ls_sharpe_gross",)),
    ("Long-short quintile Sharpe, net of 10 bps one-way", ("ls_sharpe_net",)),
)


def format_summary(summary: dict[str, Any]) -> str:
    rng = summary.get("range") or {}
    groups = summary.get("feature_groups") or {}
    rows = summary.get("rows")
    dirs = summary.get("model_dirs") or [summary["model_dir"]]
    lines = [
        "gogoku run summary",
        f"  dataset   {summary['dataset']}",
        f"  rows      {f'{rows:,}' if isinstance(rows, int) else rows} ({summary.get('codes') or '?'} codes, "
        f"{rng.get('start')} .. {rng.get('end')}, plan {summary.get('plan')})",
        f"  features  {summary['n_features']}" + (f" ({', '.join(f'{g} {n}' for g, n in groups.items())})" if groups else ""),
        *(f"  model dir {d}" for d in dirs),
        f"  evaluation: {summary['n_folds']} walk-forward test folds only, embargo {summary.get('embargo')} trading days",
        "",
    ]
    cols = [f"{h}d" for h in summary["horizons"]]
    width = max([18, *(len(n) + 2 for n in summary["models"])])

    def table(title: str, cells: Mapping[str, Sequence[str]]) -> None:
        lines.append(f"  {title}")
        lines.append("  " + f"{'model':<{width}}" + "".join(f"{c:>9}" for c in cols))
        lines.extend("  " + f"{name:<{width}}" + "".join(f"{v:>9}" for v in row) for name, row in cells.items())
        lines.append("")

    for title, keys in SUMMARY_TABLES:
        table(title, {name: [_fmt(_first(per_h.get(c) or {}, keys)) for c in cols]
                      for name, per_h in summary["models"].items()})
    if summary.get("oracle_fraction"):
        table("RankIC as a fraction of the oracle's (same test rows)",
              {name: [_fmt(f.get(c), 2) for c in cols] for name, f in summary["oracle_fraction"].items()})
    return "\n".join(lines)


def _first(metrics: Mapping[str, Any], keys: Sequence[str]) -> Any:
    return next((metrics[k] for k in keys if metrics.get(k) is not None), None)


def print_summary(model_dir: str | Path | Sequence[str | Path] | None, root: Store | Path) -> dict[str, Any]:
    store = _as_store(root)
    summary = summarize_runs(resolve_model_dirs(model_dir, store), store)
    print(format_summary(summary), flush=True)
    return {
        "model_dir": summary["model_dir"], "model_dirs": summary["model_dirs"], "dataset": summary["dataset"],
        "rows": summary["rows"], "features": summary["n_features"],
        "rank_ic": {m: {h: v.get("rank_ic_mean") for h, v in per_h.items()} for m, per_h in summary["models"].items()},
    }
