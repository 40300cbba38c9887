"""Walk-forward training of ATFT-GAT-FAN: the same folds, outputs and metrics as the LightGBM
baseline, so that `gogoku report` compares the two.

Per fold: the normalizer is fitted on the fitting dates; early stopping and snapshot selection use
the validation slice at the end of the training dates (after an embargo), never the test block.
Training runs the configured phases (each switches the adaptive normalization and the GAT on or
off and scales the learning rate), with AdamW, linear warmup + cosine decay over all epochs,
gradient clipping, bf16 autocast on CUDA (fp32 on CPU), EMA weights, and the best `snapshots`
EMA states (by validation RankIC) averaged for the test predictions. A checkpoint is written after
every epoch (`checkpoints/fold{k}/last.pt`); a run restarted on the same folder resumes from it and
skips finished folds. A CUDA out-of-memory error halves the days per batch and retries.
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
import math
import os
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch

from gogoku.dataset.splits import Fold, sort_columnwise, validation_split
from gogoku.errors import GogokuError, InputError
from gogoku.evaluate.metrics import json_clean
from gogoku.io import atomic_write
from gogoku.model.gat_graph import GraphParams, frame_graphs
from gogoku.model.losses import LossConfig, MultiHorizonLoss, day_pearson, hard_rank
from gogoku.model.network import ATFTGATFAN, ATFTConfig, count_parameters
from gogoku.train import walkforward
from gogoku.train.data import Batch, FoldNormalizer, Panel
from gogoku.train.walkforward import FINAL_FOLD, FoldJob, FoldResult

log = logging.getLogger(__name__)

EpochHook = Callable[[int, int, dict[str, Any]], None]
# Where an epoch's time goes (`time_{part}_s` in each epoch's history entry): waiting for the next batch,
# its copy to the device, forward + loss, backward, and clipping + optimizer + EMA.
STEP_TIMES = ("data", "transfer", "forward", "backward", "optimizer")


@dataclass(frozen=True)
class Phase:
    name: str
    epochs: int
    adaptive_norm: bool
    gat: bool
    lr_scale: float = 1.0


@dataclass(frozen=True)
class TrainSettings:
    seq_len: int = 20
    days_per_batch: int = 2
    lr: float = 3e-4
    weight_decay: float = 0.01
    warmup_fraction: float = 0.05
    min_lr_fraction: float = 0.05
    grad_clip: float = 1.0
    ema_decay: float = 0.99
    patience: int = 3
    snapshots: int = 3
    precision: str = "bf16"
    compile: bool = False
    device: str = "auto"
    prefetch: int = 2  # batches built ahead in a background thread (0: built in the training loop)
    profile: bool = False  # synchronize CUDA around each part of a step so that `time_*_s` split it exactly
    seed: int = 42
    phases: tuple[Phase, ...] = field(default_factory=lambda: (Phase("baseline", 1, False, False),))
    # Ablations: false turns the graph attention / the adaptive normalization (FAN/SAN) off in every
    # phase, with the same schedule, seeds and folds (`gogoku ablate`).
    gat: bool = True
    adaptive_norm: bool = True

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], seed: int) -> TrainSettings:
        values = dict(values)
        use_gat, use_norm = bool(values.get("gat", True)), bool(values.get("adaptive_norm", True))
        phases: tuple[Phase, ...] = ()
        for entry in values.pop("phases", []):
            try:
                phase = Phase(**dict(entry))
            except TypeError as exc:
                raise InputError(f"model.training.phases: {exc}") from None
            phases += (replace(phase, gat=bool(phase.gat) and use_gat,
                               adaptive_norm=bool(phase.adaptive_norm) and use_norm),)
        if not phases or any(p.epochs < 0 for p in phases) or sum(p.epochs for p in phases) < 1:
            raise InputError("model.training.phases: need at least one phase and one epoch in all")
        try:
            settings = cls(phases=phases, seed=seed, **values)
        except TypeError as exc:
            raise InputError(f"model.training: {exc}") from None
        if (settings.precision not in ("bf16", "fp32") or settings.days_per_batch < 1 or settings.snapshots < 1
                or settings.prefetch < 0):
            raise InputError(f"model.training: precision {settings.precision!r} (bf16|fp32), days_per_batch "
                             f"{settings.days_per_batch} and snapshots {settings.snapshots} (>= 1), prefetch "
                             f"{settings.prefetch} (>= 0)")
        return settings

    @property
    def total_epochs(self) -> int:
        return sum(p.epochs for p in self.phases)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise GogokuError(f"model.training.device={name}: no CUDA device is available")
    return torch.device(name)


def learning_rate(settings: TrainSettings, progress: float, phase: Phase) -> float:
    """Linear warmup over the first `warmup_fraction` of all epochs, then cosine down to min_lr_fraction."""
    w = settings.warmup_fraction
    if progress < w:
        factor = (progress + 1e-3) / w
    else:
        t = (progress - w) / max(1.0 - w, 1e-9)
        factor = settings.min_lr_fraction + (1 - settings.min_lr_fraction) * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))
    return settings.lr * phase.lr_scale * min(factor, 1.0)


def daily_rank_ic(pred: torch.Tensor, target: torch.Tensor, day: torch.Tensor) -> list[float]:
    """Spearman RankIC of each day (names with a finite target), NaN for days with too few names."""
    keep = torch.isfinite(target)
    if int(keep.sum()) == 0:
        return []
    days, d = torch.unique(day[keep], return_inverse=True)
    p, y = pred[keep].double(), target[keep].double()
    return day_pearson(hard_rank(p, d), hard_rank(y, d), d, days.numel()).tolist()


@torch.no_grad()
def predict_days(model: ATFTGATFAN, panel: Panel, states: Sequence[Mapping[str, Any]], days: Sequence[int], seq_len: int,
                 device: torch.device, autocast: Callable[[], Any]) -> tuple[Batch, dict[int, np.ndarray]]:
    """Mean median prediction of the snapshot `states` over all names of `days` (one day per pass);
    `model` is used as scratch (its weights are replaced)."""
    batches = [panel.batch([d], seq_len, with_graph=True) for d in days]
    batches = [b for b in batches if b.size]
    model.eval()
    total = {h: np.zeros(sum(b.size for b in batches)) for h in panel.horizons}
    for snap in states:
        model.load_state_dict(snap["state"])
        model.set_components(**snap["components"])
        parts: dict[int, list[np.ndarray]] = {h: [] for h in panel.horizons}
        for batch in batches:
            b = batch.to(device)
            with autocast():
                out = model(b.x, b.edge_index, b.edge_attr)
            for h in parts:
                parts[h].append(out["point"][h].float().cpu().numpy())
        for h in parts:
            total[h] += np.concatenate(parts[h]) / len(states) if parts[h] else 0.0
    merged = Batch(
        x=torch.zeros(0), targets={h: torch.cat([b.targets[h] for b in batches]) if batches else torch.zeros(0)
                                   for h in panel.horizons},
        day=torch.cat([torch.full((b.size,), k) for k, b in enumerate(batches)]) if batches else torch.zeros(0, dtype=torch.long),
        edge_index=torch.zeros((2, 0), dtype=torch.long), edge_attr=torch.zeros((0, 3)),
        day_index=np.concatenate([b.day_index for b in batches]) if batches else np.zeros(0, dtype=np.int64),
        stock_index=np.concatenate([b.stock_index for b in batches]) if batches else np.zeros(0, dtype=np.int64),
    )
    return merged, total


class FoldTrainer:
    """Trains one fold; `run()` returns the snapshot states used for the test predictions."""

    def __init__(self, panel: Panel, fold_index: int, fit_days: list[int], valid_days: list[int],
                 arch: ATFTConfig, loss: LossConfig, settings: TrainSettings, ckpt_dir: Path | None = None,
                 log_dir: Path | None = None, on_epoch_end: EpochHook | None = None, fingerprint: str = "") -> None:
        self.panel, self.fold = panel, fold_index
        self.fingerprint = fingerprint
        self.fit_days, self.valid_days = fit_days, valid_days
        self.settings = settings
        self.device = resolve_device(settings.device)
        self.autocast = self.device.type == "cuda" and settings.precision == "bf16"
        torch.manual_seed(settings.seed + 1000 * fold_index)
        self.model = ATFTGATFAN(arch).to(self.device)
        self.forward = torch.compile(self.model) if settings.compile else self.model
        self.loss = MultiHorizonLoss(loss, self.model.median_index)
        self.horizon_weights = loss.horizon_weights
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
        self.ema = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self._ema_float = [k for k, v in self.ema.items() if v.dtype.is_floating_point]
        self._ema_other = [k for k, v in self.ema.items() if not v.dtype.is_floating_point]
        self.days_per_batch = settings.days_per_batch
        self.ckpt_dir = ckpt_dir
        self.log_dir = log_dir
        self.on_epoch_end = on_epoch_end
        self.epoch = 0  # epochs completed
        self.step = 0  # optimizer steps taken
        self.phase_index, self.phase_epoch, self.bad_epochs = 0, 0, 0
        self.snapshots: list[dict[str, Any]] = []  # {score, epoch, phase, state}
        self.history: list[dict[str, Any]] = []
        self.samples_per_s: list[float] = []

    # ------------------------------------------------------------------ steps
    def _autocast(self) -> Any:
        return torch.autocast("cuda", dtype=torch.bfloat16) if self.autocast else torch.autocast("cpu", enabled=False)

    def _phase(self) -> Phase:
        return self.settings.phases[self.phase_index]

    def _sync(self) -> None:
        """Waits for the device (profiling only: the split of a step's time is otherwise asynchronous)."""
        if self.settings.profile and self.device.type == "cuda":
            torch.cuda.synchronize()

    def _step(self, batch: Batch, lr: float, times: dict[str, float]) -> tuple[dict[str, float], float]:
        t0 = time.perf_counter()
        b = batch.to(self.device)
        self._sync()
        t1 = time.perf_counter()
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        with self._autocast():
            out = self.forward(b.x, b.edge_index, b.edge_attr)
        loss, logs = self.loss(out, b.targets, b.day)
        self._sync()
        t2 = time.perf_counter()
        loss.backward()
        self._sync()
        t3 = time.perf_counter()
        grad_norm = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.settings.grad_clip))
        self.optimizer.step()
        with torch.no_grad():
            # One fused update over all floating tensors: ema <- decay * ema + (1 - decay) * weights.
            state = self.model.state_dict()
            torch._foreach_lerp_([self.ema[k] for k in self._ema_float], [state[k].detach() for k in self._ema_float],
                                 1 - self.settings.ema_decay)
            for k in self._ema_other:
                self.ema[k].copy_(state[k])
        self._sync()
        t4 = time.perf_counter()
        for key, seconds in (("transfer", t1 - t0), ("forward", t2 - t1), ("backward", t3 - t2), ("optimizer", t4 - t3)):
            times[key] += seconds
        return logs, grad_norm

    def _batches(self, groups: list[list[int]], with_graph: bool) -> Iterator[tuple[list[int], Batch]]:
        """(days, batch) for each group of days, built `prefetch` groups ahead in a background thread (the
        panel's gathers release the GIL, so the next batches are built while the model computes);
        pinned for an asynchronous copy on CUDA. The caller may push groups back onto `groups` (a CUDA
        out-of-memory retry): those are built next."""
        pin = self.device.type == "cuda"

        def build(days: list[int]) -> Batch:
            batch = self.panel.batch(days, self.settings.seq_len, with_graph=with_graph, need_target=True)
            return batch.pin() if pin and batch.size else batch

        ahead = self.settings.prefetch
        if ahead < 1:
            while groups:
                days = groups.pop(0)
                yield days, build(days)
            return
        pending: deque[tuple[list[int], Future[Batch]]] = deque()
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="gogoku-batches") as pool:
            while groups or pending:
                while groups and len(pending) <= ahead:
                    days = groups.pop(0)
                    pending.append((days, pool.submit(build, days)))
                days, future = pending.popleft()
                pushed = len(groups)
                yield days, future.result()
                back = len(groups) - pushed
                if back:  # groups pushed back go first, then the ones already submitted (rebuilt), then the rest
                    for _, later in pending:
                        later.cancel()
                    groups[:] = groups[:back] + [later_days for later_days, _ in pending] + groups[back:]
                    pending.clear()

    def _train_epoch(self, writer: Any) -> dict[str, float]:
        s, phase = self.settings, self._phase()
        self.model.set_components(phase.adaptive_norm, phase.gat)
        self.model.train()
        # Order and dropout depend only on (seed, fold, epoch): a resumed run repeats them exactly.
        torch.manual_seed(s.seed + 1000 * self.fold + self.epoch)
        order = np.random.default_rng([s.seed, self.fold, self.epoch]).permutation(self.fit_days).tolist()
        groups = [order[i : i + self.days_per_batch] for i in range(0, len(order), self.days_per_batch)]
        done_days, sums, count, samples, grad_norms = 0, {}, 0, 0, []
        times = dict.fromkeys(STEP_TIMES, 0.0)
        start = wait_from = time.perf_counter()
        for days, batch in self._batches(groups, phase.gat):
            times["data"] += time.perf_counter() - wait_from
            progress = (self.epoch + done_days / max(len(order), 1)) / s.total_epochs
            if batch.size == 0:
                done_days += len(days)
                wait_from = time.perf_counter()
                continue
            try:
                logs, grad_norm = self._step(batch, learning_rate(s, progress, phase), times)
            except torch.OutOfMemoryError:
                self.optimizer.zero_grad(set_to_none=True)
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                if len(days) == 1:
                    raise GogokuError(f"out of memory on a single trading day ({batch.size} names); "
                                      "lower model.architecture.hidden or seq_len") from None
                self.days_per_batch = max(1, len(days) // 2)
                log.warning("fold %d: out of memory with %d days per batch; retrying with %d",
                            self.fold, len(days), self.days_per_batch)
                half = len(days) // 2
                groups[:0] = [days[:half], days[half:]]
                wait_from = time.perf_counter()
                continue
            self.step += 1
            if writer is not None:
                writer.add_scalar("step/loss", logs["loss"], self.step)
                writer.add_scalar("step/grad_norm", grad_norm, self.step)
                writer.add_scalar("step/lr", self.optimizer.param_groups[0]["lr"], self.step)
            for k, v in logs.items():
                sums[k] = sums.get(k, 0.0) + v
            count += 1
            samples += batch.size
            done_days += len(days)
            grad_norms.append(grad_norm)
            wait_from = time.perf_counter()
        elapsed = time.perf_counter() - start
        stats = {k: v / max(count, 1) for k, v in sums.items()}
        stats["grad_norm"] = float(np.mean(grad_norms)) if grad_norms else math.nan
        stats["lr"] = learning_rate(s, (self.epoch + 1) / s.total_epochs, phase)
        stats["samples_per_s"] = samples / elapsed if elapsed > 0 else math.nan
        stats["epoch_s"] = elapsed
        stats.update({f"time_{k}_s": v for k, v in times.items()})
        self.samples_per_s.append(stats["samples_per_s"])
        return stats

    def predict(self, states: Sequence[Mapping[str, Any]], days: Sequence[int]) -> tuple[Batch, dict[int, np.ndarray]]:
        """Mean median prediction of the snapshot states over all names of `days` (one day per pass)."""
        return predict_days(copy.deepcopy(self.model), self.panel, states, days, self.settings.seq_len, self.device,
                            self._autocast)

    def validate(self) -> dict[str, float]:
        phase = self._phase()
        state = {"state": self.ema, "components": {"adaptive_norm": phase.adaptive_norm, "gat": phase.gat}}
        batch, preds = self.predict([state], self.valid_days)
        scores = {}
        for h in self.panel.horizons:
            ics = [x for x in daily_rank_ic(torch.from_numpy(preds[h]), batch.targets[h], batch.day) if math.isfinite(x)]
            scores[f"val_rank_ic_{h}d"] = float(np.mean(ics)) if ics else math.nan
        w = self.horizon_weights
        vals = [(w[h], scores[f"val_rank_ic_{h}d"]) for h in self.panel.horizons if math.isfinite(scores[f"val_rank_ic_{h}d"])]
        scores["val_score"] = sum(a * b for a, b in vals) / sum(a for a, _ in vals) if vals else -math.inf
        return scores

    # ------------------------------------------------------------------ checkpoints
    def _checkpoint_state(self) -> dict[str, Any]:
        return {
            "fingerprint": self.fingerprint,
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(), "ema": self.ema,
            "epoch": self.epoch, "step": self.step, "phase_index": self.phase_index, "phase_epoch": self.phase_epoch,
            "bad_epochs": self.bad_epochs, "snapshots": self.snapshots, "history": self.history,
            "days_per_batch": self.days_per_batch, "samples_per_s": self.samples_per_s,
        }

    def save_checkpoint(self) -> Path | None:
        if self.ckpt_dir is None:
            return None
        state = self._checkpoint_state()
        return atomic_write(self.ckpt_dir / "last.pt", lambda tmp: torch.save(state, tmp))

    def load_checkpoint(self) -> bool:
        path = self.ckpt_dir / "last.pt" if self.ckpt_dir is not None else None
        if path is None or not path.is_file():
            return False
        state = torch.load(path, map_location=self.device, weights_only=False)
        if state.get("fingerprint") != self.fingerprint:
            raise InputError(f"{path}: saved by a run with other settings, data or folds; use a new --out folder")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.ema = state["ema"]
        for key in ("epoch", "step", "phase_index", "phase_epoch", "bad_epochs", "snapshots", "history", "days_per_batch", "samples_per_s"):
            setattr(self, key, state[key])
        log.info("fold %d: resumed from %s after epoch %d", self.fold, path, self.epoch)
        return True

    # ------------------------------------------------------------------ loop
    def _advance_phase(self) -> None:
        self.phase_index += 1
        self.phase_epoch, self.bad_epochs = 0, 0

    def _skip_empty_phases(self) -> None:
        while self.phase_index < len(self.settings.phases) and self.phase_epoch >= self._phase().epochs:
            self._advance_phase()

    def run(self) -> list[dict[str, Any]]:
        s = self.settings
        writer = None
        if self.log_dir is not None:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(str(self.log_dir))
        try:
            self._skip_empty_phases()
            while self.phase_index < len(s.phases):
                phase = self._phase()
                stats = self._train_epoch(writer)
                t0 = time.perf_counter()
                scores = self.validate()
                stats["time_validate_s"] = time.perf_counter() - t0
                self.epoch += 1
                self.phase_epoch += 1
                entry = {"epoch": self.epoch, "phase": phase.name, **stats, **scores}
                self.history.append(entry)
                self._record_snapshot(scores["val_score"], phase)
                log.info(
                    "fold %d epoch %d/%d (%s): loss %.4f, val RankIC %s, %.0f samples/s, lr %.2e; %.1f s "
                    "(waiting for batches %.1f, forward %.1f, backward %.1f, optimizer %.1f, validation %.1f)",
                    self.fold, self.epoch, s.total_epochs, phase.name, stats.get("loss", math.nan),
                    " ".join(f"{h}d={scores[f'val_rank_ic_{h}d']:.4f}" for h in self.panel.horizons),
                    stats["samples_per_s"], stats["lr"], stats["epoch_s"], stats["time_data_s"],
                    stats["time_forward_s"], stats["time_backward_s"], stats["time_optimizer_s"],
                    stats["time_validate_s"],
                )
                if writer is not None:
                    for k, v in entry.items():
                        if isinstance(v, float) and math.isfinite(v):
                            tag = ("val/" if k.startswith("val_") else "train/") + k
                            writer.add_scalar(tag, v, self.epoch)
                    writer.flush()
                if self.phase_epoch >= phase.epochs or self.bad_epochs >= s.patience:
                    if self.bad_epochs >= s.patience:
                        log.info("fold %d: phase %s stops early (no better validation for %d epochs)",
                                 self.fold, phase.name, s.patience)
                    self._advance_phase()
                    self._skip_empty_phases()
                self.save_checkpoint()
                if self.on_epoch_end is not None:
                    self.on_epoch_end(self.fold, self.epoch, entry)
        finally:
            if writer is not None:
                writer.close()
        return self.snapshots

    def _record_snapshot(self, score: float, phase: Phase) -> None:
        best = max((snap["score"] for snap in self.snapshots), default=-math.inf)
        self.bad_epochs = 0 if score > best else self.bad_epochs + 1
        score = score if math.isfinite(score) else -math.inf
        snap = {"score": score, "epoch": self.epoch, "phase": phase.name,
                "components": {"adaptive_norm": phase.adaptive_norm, "gat": phase.gat},
                "state": {k: v.detach().clone().cpu() for k, v in self.ema.items()}}
        self.snapshots = sorted([*self.snapshots, snap], key=lambda x: -x["score"])
        self.snapshots = self.snapshots[: self.settings.snapshots]


# ---------------------------------------------------------------------- walk-forward
def _fingerprint_config(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The model config without what says where it runs: a GPU run may be resumed on another machine."""
    settings = dict(cfg)
    settings["training"] = {k: v for k, v in dict(cfg.get("training", {})).items() if k not in ("device", "compile")}
    return settings


@dataclass
class _Setup:
    """What every fold of a run shares: the parsed config, the panel of features and the daily graphs."""

    cfg: dict[str, Any]
    name: str
    settings: TrainSettings
    arch: ATFTConfig
    loss_cfg: LossConfig
    norm_cfg: dict[str, Any]
    panel: Panel
    df: pl.DataFrame


def _setup(df: pl.DataFrame, feature_cols: list[str], model_cfg: Mapping[str, Any], horizons: list[int],
           seed: int) -> _Setup:
    cfg = dict(model_cfg)
    name = str(cfg.get("name", "atft_gat_fan"))
    settings = TrainSettings.from_mapping(cfg.get("training", {}), seed)
    arch = ATFTConfig.from_mapping(cfg.get("architecture", {}), n_features=len(feature_cols),
                                   horizons=tuple(horizons), seq_len=settings.seq_len)
    loss_cfg = LossConfig.from_mapping(cfg.get("loss", {}), arch.quantiles, horizons)
    graph_cfg = dict(cfg.get("graph", {}))
    return_col = str(graph_cfg.pop("return_col", "returns_1d"))
    graph_params = GraphParams(**graph_cfg)
    norm_cfg = dict(cfg.get("normalize", {}))
    if os.environ.get("GOGOKU_TORCH_THREADS"):  # CPU intra-op threads (shared machines: fewer is faster)
        torch.set_num_threads(int(os.environ["GOGOKU_TORCH_THREADS"]))

    df = sort_columnwise(df, AtftModel.row_order)  # the dataset's own order: no copy
    panel = Panel(df, feature_cols, horizons)
    panel.graphs = frame_graphs(df, panel.dates, panel.codes, range(len(panel.dates)), graph_params, return_col)
    return _Setup(cfg, name, settings, arch, loss_cfg, norm_cfg, panel, df)


class AtftModel:
    """The walk-forward plug-in (gogoku.train.walkforward) for ATFT-GAT-FAN: per fold, the normalizer
    fitted on the fitting dates and a `FoldTrainer` (checkpoint after every epoch in the fold folder,
    TensorBoard logs in `tensorboard/fold{k}`); the folds can train in separate processes."""

    kind = "atft"
    fold_parallel = True
    row_order = ("Code", "Date")  # the panel's order (and the dataset file's)

    def __init__(self, model_cfg: Mapping[str, Any], *, seed: int = 42, valid_fraction: float = 0.15,
                 valid_embargo: int = 20, on_epoch_end: EpochHook | None = None) -> None:
        self.cfg = dict(model_cfg)
        self.seed, self.valid_fraction, self.valid_embargo = seed, valid_fraction, valid_embargo
        self.on_epoch_end = on_epoch_end
        self.samples_per_s: list[float] = []
        self.n_params: int | None = None

    @classmethod
    def from_config(cls, cfg: Any, on_epoch_end: EpochHook | None = None) -> AtftModel:
        """From a run's composed config (`cfg.model`: configs/model/atft_gat_fan.yaml and its variants)."""
        from omegaconf import OmegaConf

        return cls(OmegaConf.to_container(cfg.model, resolve=True), seed=int(cfg.seed),
                   valid_fraction=float(cfg.validation.fraction), valid_embargo=int(cfg.validation.embargo),
                   on_epoch_end=on_epoch_end)

    @staticmethod
    def extra_columns(model_cfg: Mapping[str, Any]) -> list[str]:
        """Columns the daily graphs need besides the features (read when present)."""
        return ["MarketCode", "Sector33Code", str(dict(model_cfg.get("graph", {})).get("return_col", "returns_1d"))]

    @property
    def name(self) -> str:
        return str(self.cfg.get("name", "atft_gat_fan"))

    def fingerprint_config(self) -> dict[str, Any]:
        return _fingerprint_config(self.cfg)

    def prepare(self, df: pl.DataFrame, features: list[str], horizons: list[int]) -> pl.DataFrame:
        self.features, self.horizons = features, horizons
        self.setup = _setup(df, features, self.cfg, horizons, self.seed)
        self.n_params = count_parameters(ATFTGATFAN(self.setup.arch))
        settings = self.setup.settings
        log.info("%s: %d parameters, %d features, seq_len %d, phases %s", self.name, self.n_params, len(features),
                 settings.seq_len, [(p.name, p.epochs) for p in settings.phases])
        return self.setup.df

    def _trainer(self, job: FoldJob) -> tuple[FoldTrainer, FoldNormalizer]:
        setup = self.setup
        normalizer = FoldNormalizer.fit(setup.df, self.features, job.fit_dates, **setup.norm_cfg)
        setup.panel.set_features(normalizer, setup.df)
        trainer = FoldTrainer(
            setup.panel, job.index, setup.panel.day_indices(job.fit_dates), setup.panel.day_indices(job.valid_dates),
            setup.arch, setup.loss_cfg, setup.settings, ckpt_dir=job.folder,
            log_dir=job.model_dir / "tensorboard" / f"fold{job.index}" if job.model_dir is not None else None,
            on_epoch_end=self.on_epoch_end, fingerprint=job.fingerprint,
        )
        return trainer, normalizer

    def fit_fold(self, job: FoldJob) -> FoldResult:
        panel = self.setup.panel
        trainer, normalizer = self._trainer(job)
        trainer.load_checkpoint()
        snapshots = trainer.run()

        def predictions(dates: Sequence[dt.date]) -> pl.DataFrame:
            batch, preds = trainer.predict(snapshots, panel.day_indices(dates))
            return panel.rows_frame(batch, {f"pred_{h}d": preds[h] for h in self.horizons})

        out = predictions(job.test_dates)
        speed = float(np.nanmean(trainer.samples_per_s)) if trainer.samples_per_s else None
        if speed is not None:
            self.samples_per_s.append(speed)
        best_epochs = [int(snap["epoch"]) for snap in snapshots]
        if job.folder is not None:
            atomic_write(job.folder / "snapshots.pt", lambda tmp: torch.save(
                {"snapshots": snapshots, "architecture": self.setup.arch.__dict__, "features": self.features,
                 "normalizer": normalizer.__dict__}, tmp))
        return FoldResult(
            out,
            info={"epochs_run": trainer.epoch, "snapshot_epochs": best_epochs,
                  "snapshot_phases": [snap["phase"] for snap in snapshots]},
            horizons={h: {"best_epoch": best_epochs[0]} for h in self.horizons},
            extra={"samples_per_s": speed, "history": [json_clean(e) for e in trainer.history]},
            valid_predictions=predictions(job.valid_dates),
        )

    def validate_fold(self, job: FoldJob) -> float:
        """The best validation score (horizon-weighted mean daily RankIC) of a run on the fitting dates."""
        trainer, _ = self._trainer(job)
        trainer.run()
        return max((e["val_score"] for e in trainer.history if math.isfinite(e["val_score"])), default=-math.inf)

    def summary(self) -> dict[str, Any]:
        settings = self.setup.settings
        return {"parameters": self.n_params, "phases": [p.__dict__ for p in settings.phases],
                "samples_per_s": float(np.mean(self.samples_per_s)) if self.samples_per_s else None,
                "device": str(resolve_device(settings.device))}

    def finish(self, model_dir: Path | None, last_fold: FoldJob | None) -> None:
        """Every fold keeps its own snapshots: nothing to add."""

    @classmethod
    def load_final(cls, folder: Path, description: Mapping[str, Any]) -> FinalModel:
        """The refit network of `folder` (final/snapshots.pt)."""
        return FinalModel(folder)

    def fit_final(self, df: pl.DataFrame, features: list[str], horizons: list[int], folder: Path,
                  metrics: Mapping[str, Any]) -> dict[str, Any]:
        return fit_final(df, features, self.cfg, horizons, seed=self.seed, valid_fraction=self.valid_fraction,
                         valid_embargo=self.valid_embargo, folder=folder, on_epoch_end=self.on_epoch_end)


def validation_scores(
    df: pl.DataFrame,
    feature_cols: Sequence[str],
    model_cfg: Mapping[str, Any],
    folds: Sequence[Fold],
    horizons: Sequence[int] = (1, 5, 10, 20),
    *,
    seed: int = 42,
    valid_fraction: float = 0.15,
    valid_embargo: int = 20,
    on_epoch_end: EpochHook | None = None,
) -> list[float]:
    """Per fold, the best validation score (horizon-weighted mean daily RankIC) of a run that trains
    on the fold's fitting dates and validates on the slice at the end of its training dates.

    The folds' test blocks are never read: this is the objective of hyperparameter search.
    """
    model = AtftModel(model_cfg, seed=seed, valid_fraction=valid_fraction, valid_embargo=valid_embargo,
                      on_epoch_end=on_epoch_end)
    return walkforward.validation_scores(model, df, feature_cols, horizons, folds, valid_fraction=valid_fraction,
                                         valid_embargo=valid_embargo)


def train_atft(
    df: pl.DataFrame,
    feature_cols: Sequence[str],
    model_cfg: Mapping[str, Any],
    horizons: Sequence[int] = (1, 5, 10, 20),
    folds: Sequence[Fold] | None = None,
    *,
    seed: int = 42,
    valid_fraction: float = 0.15,
    valid_embargo: int = 20,
    model_dir: Path | None = None,
    on_epoch_end: EpochHook | None = None,
    only_folds: Sequence[int] | None = None,
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Walk-forward train/predict; return (test predictions, metrics) shaped like `train_lightgbm`
    (gogoku.train.walkforward.run_walk_forward).

    `model_cfg` is the composed `model` config (architecture, graph, loss, training). With
    `model_dir`, checkpoints, TensorBoard logs and each fold's snapshots go there and an
    interrupted run resumes from them. With `only_folds` (and `model_dir`) only those folds are
    trained and saved: a later call without it on the same `model_dir` loads them.
    """
    model = AtftModel(model_cfg, seed=seed, valid_fraction=valid_fraction, valid_embargo=valid_embargo,
                      on_epoch_end=on_epoch_end)
    return walkforward.run_walk_forward(model, df, feature_cols, horizons, folds, seed=seed,
                                        valid_fraction=valid_fraction, valid_embargo=valid_embargo,
                                        model_dir=model_dir, only_folds=only_folds)


# ---------------------------------------------------------------- the production model


def fit_final(
    df: pl.DataFrame,
    feature_cols: Sequence[str],
    model_cfg: Mapping[str, Any],
    horizons: Sequence[int] = (1, 5, 10, 20),
    *,
    seed: int = 42,
    valid_fraction: float = 0.15,
    valid_embargo: int = 20,
    folder: Path,
    on_epoch_end: EpochHook | None = None,
) -> dict[str, Any]:
    """Train on every labelled date (the validation slice at their end chooses the snapshots, as in
    each fold) and save `snapshots.pt` (weights, architecture, features, normalizer, graph settings)
    into `folder`; a checkpoint after every epoch lets an interrupted refit resume."""
    feature_cols, horizons = list(feature_cols), [int(h) for h in horizons]
    setup = _setup(df, feature_cols, model_cfg, horizons, seed)
    labelled = (setup.df.filter(pl.any_horizontal(pl.col(f"target_{h}d").is_not_null() for h in horizons))
                ["Date"].unique().sort().to_list())
    fit_dates, valid_dates = validation_split(labelled, valid_fraction, valid_embargo)
    normalizer = FoldNormalizer.fit(setup.df, feature_cols, fit_dates, **setup.norm_cfg)
    setup.panel.set_features(normalizer, setup.df)
    fingerprint = walkforward.fingerprint(_fingerprint_config(setup.cfg), feature_cols, horizons, seed, fit_dates,
                                          valid_dates, "final")
    trainer = FoldTrainer(
        setup.panel, FINAL_FOLD, setup.panel.day_indices(fit_dates), setup.panel.day_indices(valid_dates), setup.arch,
        setup.loss_cfg, setup.settings, ckpt_dir=folder / "checkpoint", on_epoch_end=on_epoch_end,
        fingerprint=fingerprint,
    )
    trainer.load_checkpoint()
    snapshots = trainer.run()
    graph_cfg = dict(setup.cfg.get("graph", {}))
    atomic_write(folder / "snapshots.pt", lambda tmp: torch.save({
        "snapshots": snapshots, "architecture": setup.arch.__dict__, "features": feature_cols, "horizons": horizons,
        "normalizer": normalizer.__dict__, "seq_len": setup.settings.seq_len, "graph": graph_cfg,
        "precision": setup.settings.precision, "device": setup.settings.device,
    }, tmp))
    return {"fit_start": fit_dates[0].isoformat(), "fit_end": fit_dates[-1].isoformat(),
            "valid_start": valid_dates[0].isoformat(), "valid_end": valid_dates[-1].isoformat(),
            "epochs_run": trainer.epoch, "snapshot_epochs": [int(s["epoch"]) for s in snapshots]}


class FinalModel:
    """A refit ATFT-GAT-FAN loaded for scoring one day from a frame holding its history window."""

    def __init__(self, folder: Path) -> None:
        saved = torch.load(folder / "snapshots.pt", map_location="cpu", weights_only=False)
        arch = dict(saved["architecture"])
        self.arch = ATFTConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in arch.items()})
        self.features: list[str] = list(saved["features"])
        self.horizons: list[int] = [int(h) for h in saved["horizons"]]
        self.normalizer = FoldNormalizer(**saved["normalizer"])
        self.snapshots = saved["snapshots"]
        self.seq_len = int(saved["seq_len"])
        graph = dict(saved["graph"])
        self.return_col = str(graph.pop("return_col", "returns_1d"))
        self.graph = GraphParams(**graph)
        self.device = resolve_device(str(saved.get("device", "auto")))
        self.bf16 = self.device.type == "cuda" and saved.get("precision") == "bf16"

    @property
    def history_sessions(self) -> int:
        """Sessions of rows before the scored day that a score uses (features window, graph window)."""
        return max(self.seq_len, self.graph.lookback) - 1

    def score(self, frame: pl.DataFrame, day: dt.date) -> pl.DataFrame:
        """Code, Date and score_{h}d for the names present on `day`; `frame` holds their rows of the
        sessions before it too (at least `history_sessions`), with the features, the return column
        and MarketCode / Sector33Code when known."""
        frame = frame.with_columns(pl.lit(None, dtype=pl.Float32).alias(f"target_{h}d") for h in self.horizons
                                   if f"target_{h}d" not in frame.columns).sort("Code", "Date")
        panel = Panel(frame, self.features, self.horizons)
        panel.set_features(self.normalizer, frame)
        (d,) = panel.day_indices([day]) or [None]
        if d is None:
            raise InputError(f"score: no rows on {day}")
        panel.graphs = frame_graphs(frame, panel.dates, panel.codes, [d], self.graph, self.return_col)
        model = ATFTGATFAN(self.arch).to(self.device)
        autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if self.bf16 else (
            lambda: torch.autocast("cpu", enabled=False))
        batch, preds = predict_days(model, panel, self.snapshots, [d], self.seq_len, self.device, autocast)
        return panel.rows_frame(batch, {f"score_{h}d": preds[h] for h in self.horizons})
