"""`gogoku ablate`: what each part of the network earns, judged on the same folds, seeds and test rows.

Variants of the neural model (switches of its config; the phase schedule stays as configured):
- `full`: as configured;
- `no_gat`: `model.training.gat=false`: no graph attention in any phase (no edges between stocks);
- `no_fan`: `model.training.adaptive_norm=false`: no FAN/SAN adaptive normalization;
- `tft_only`: both off: variable selection, LSTM and temporal attention alone (a TFT-style model);
and the baselines (default `lightgbm`), and `blend`: the full network and the first baseline blended with
weights chosen on each fold's validation slice (`gogoku blend`). Each is trained by `gogoku train` into `<out>/<name>`, then
all are evaluated together (`gogoku evaluate` into `<out>/evaluation`: bootstrap intervals, the
oracle, and on simulator data the oracle of each planted signal family and each model's exposure
to it). Overrides that start with `model.` go to the neural variants only; the others (horizons,
splits, validation, seed) to every model, so that all share the folds.

The dataset is resolved once (`latest` means the newest dataset when the ablation starts). A name
whose folder already holds metrics.json is not trained again: rerun the same command to resume an
interrupted ablation (an unfinished variant resumes from its fold checkpoints).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gogoku.config import Settings
from gogoku.errors import InputError

log = logging.getLogger(__name__)

VARIANTS: dict[str, list[str]] = {
    "full": [],
    "no_gat": ["model.training.gat=false"],
    "no_fan": ["model.training.adaptive_norm=false"],
    "tft_only": ["model.training.gat=false", "model.training.adaptive_norm=false"],
}


def split_overrides(overrides: Sequence[str]) -> tuple[list[str], list[str]]:
    """(overrides for the neural variants: all of them; for the baselines: those not under `model.`)."""
    shared = [o for o in overrides if not o.lstrip("+~").startswith("model.")]
    return list(overrides), shared


def run_ablation(
    dataset: str | None,
    model: str,
    out: Path,
    variants: Sequence[str] = tuple(VARIANTS),
    baselines: Sequence[str] = ("lightgbm",),
    overrides: Sequence[str] = (),
    settings: Settings | None = None,
    evaluation: Any = None,
    blend: bool = True,
) -> dict[str, Any]:
    """Train every variant and baseline not yet trained under `out`, then evaluate them together;
    returns the evaluation (see `gogoku.evaluate.report.evaluate_models`) with `trained` (seconds per
    name trained by this call) and `folders`."""
    from gogoku.dataset.manifest import localize_dataset
    from gogoku.evaluate.report import EvaluationSettings, evaluate_models
    from gogoku.train.run import train

    unknown = [v for v in variants if v not in VARIANTS]
    if unknown or not variants and not baselines:
        raise InputError(f"--variants {list(variants)}: expected some of {list(VARIANTS)} (or a baseline)")
    clash = [b for b in baselines if b in VARIANTS]
    if clash:
        raise InputError(f"--baselines {clash}: a baseline may not share a variant's name")
    settings = settings or Settings.from_env()
    _, uri = localize_dataset(settings.store, None if dataset in (None, "latest") else str(dataset), settings.plan_tier)
    neural, shared = split_overrides(overrides)
    jobs = [(name, model, [*neural, *VARIANTS[name]]) for name in variants]
    jobs += [(name, name, shared) for name in baselines]
    trained: dict[str, float] = {}
    for i, (name, model_name, extra) in enumerate(jobs, 1):
        folder = out / name
        if (folder / "metrics.json").is_file():
            log.info("ablation %d/%d %s: already trained in %s", i, len(jobs), name, folder)
            continue
        log.info("ablation %d/%d %s: training %s with %s", i, len(jobs), name, model_name, extra or "its config")
        t0 = time.perf_counter()
        train(uri, model_name, folder, extra, settings=settings)
        trained[name] = round(time.perf_counter() - t0, 1)
        log.info("ablation %d/%d %s: trained in %.0f s", i, len(jobs), name, trained[name])
    folders = [out / name for name, _, _ in jobs]
    if blend and "full" in variants and baselines:
        # The full network with the first baseline, weights chosen on the validation slices only.
        from gogoku.train.blend import blend_runs

        target = out / "blend"
        if not (target / "metrics.json").is_file():
            log.info("ablation: blending full and %s into %s", baselines[0], target)
            blend_runs([out / "full", out / baselines[0]], target)
        folders.append(target)
    result = evaluate_models(folders, out / "evaluation", evaluation or EvaluationSettings(), store=settings.store)
    return {**result, "dataset": uri, "trained": trained, "folders": [str(f) for f in folders]}
