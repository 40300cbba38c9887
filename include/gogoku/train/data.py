"""Day-grouped model inputs: the fold normalizer, the dense (day, stock) panel and its batches.

- `FoldNormalizer` is fitted on one fold's fitting dates only (docs/model.md, pitfall 5: never on
  the whole frame). Features that vary across the names of a day are z-scored per Date
  (same-day statistics, clipped) and then standardized with the training mean/std of those
  z-scores; features that are the same for every name of a day (market-wide) are clipped to their
  training quantiles and standardized with training statistics. Missing values become 0.
- `Panel` holds x [D, N, F], the targets [D, N, H] (NaN where unknown) and which (day, stock)
  rows exist; a batch is one or more whole days: for each day, its names' last `seq_len` sessions
  of features (zeros before a name's first row), their targets and the day's graph edges.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
import torch

from gogoku.dataset.splits import on_dates
from gogoku.errors import InputError
from gogoku.model.gat_graph import DayGraph

log = logging.getLogger(__name__)


FEATURE_BLOCK = 32  # features normalized at a time (memory: one block's working copies, not the matrix's)


def feature_blocks(features: Sequence[str], size: int = FEATURE_BLOCK) -> list[list[str]]:
    features = list(features)
    return [features[i:i + size] for i in range(0, len(features), size)]


@dataclass
class FoldNormalizer:
    features: list[str]
    cross_sectional: dict[str, bool]
    lower: dict[str, float]
    upper: dict[str, float]
    mean: dict[str, float]
    std: dict[str, float]
    clip: float

    @classmethod
    def fit(cls, frame: pl.DataFrame, features: Sequence[str], dates: Sequence[dt.date],
            clip: float = 5.0, tail: float = 0.005) -> FoldNormalizer:
        features = list(features)
        cs: dict[str, bool] = {}
        lower: dict[str, float] = {}
        upper: dict[str, float] = {}
        mean: dict[str, float] = {}
        std: dict[str, float] = {}
        # A block of features at a time: the Float64 working copies are a block's, not the matrix's.
        for block in feature_blocks(features):
            train = frame.lazy().filter(on_dates(dates)).select(
                "Date", *[pl.col(f).cast(pl.Float64).fill_nan(None) for f in block])
            spread = (
                train.group_by("Date").agg((pl.col(f).std() > 1e-12).alias(f) for f in block)
                .select(pl.col(f).mean() for f in block).collect()
            )
            if spread.height == 0:
                raise InputError("normalizer: no training rows on the fitting dates")
            cs.update({f: bool((spread[f][0] or 0.0) >= 0.5) for f in block})
            lf = train.with_columns(cls._cs_expr(f, clip) for f in block if cs[f]).collect().lazy()
            q = lf.select(
                *[pl.col(f).quantile(tail).alias(f"{f}__lo") for f in block],
                *[pl.col(f).quantile(1 - tail).alias(f"{f}__hi") for f in block],
            ).collect().row(0, named=True)
            lower.update({f: q[f"{f}__lo"] if q[f"{f}__lo"] is not None else 0.0 for f in block})
            upper.update({f: q[f"{f}__hi"] if q[f"{f}__hi"] is not None else 0.0 for f in block})
            stats = lf.select(pl.col(f).clip(lower[f], upper[f]) for f in block).select(
                *[pl.col(f).mean().alias(f"{f}__m") for f in block],
                *[pl.col(f).std().alias(f"{f}__s") for f in block],
            ).collect().row(0, named=True)
            mean.update({f: float(stats[f"{f}__m"] or 0.0) for f in block})
            std.update({f: float(stats[f"{f}__s"]) if stats[f"{f}__s"] and stats[f"{f}__s"] > 1e-12 else 1.0
                        for f in block})
        n_cs = sum(cs.values())
        log.info("normalizer: %d cross-sectional and %d market-wide features fitted on %d dates", n_cs, len(features) - n_cs, len(dates))
        return cls(features, cs, lower, upper, mean, std, clip)

    @staticmethod
    def _cs_expr(f: str, clip: float) -> pl.Expr:
        x = pl.col(f)
        std = x.std().over("Date")
        return pl.when(std > 1e-12).then(((x - x.mean().over("Date")) / std).clip(-clip, clip)).alias(f)

    def transform(self, frame: pl.DataFrame, features: Sequence[str] | None = None) -> pl.DataFrame:
        """Code, Date and the normalized features (Float32, no nulls): all of them, or `features`."""
        features = self.features if features is None else list(features)
        lf = frame.lazy().select("Code", "Date", *[pl.col(f).cast(pl.Float64).fill_nan(None) for f in features])
        lf = lf.with_columns(self._cs_expr(f, self.clip) for f in features if self.cross_sectional[f])
        return lf.select(
            "Code", "Date",
            *[((pl.col(f).clip(self.lower[f], self.upper[f]) - self.mean[f]) / self.std[f])
              .clip(-self.clip, self.clip).fill_null(0.0).cast(pl.Float32).alias(f) for f in features],
        ).collect()


@dataclass
class Batch:
    x: torch.Tensor  # [n, T, F]
    targets: dict[int, torch.Tensor]  # h -> [n] raw forward returns, NaN unknown
    day: torch.Tensor  # [n] 0..len(days)-1
    edge_index: torch.Tensor  # [2, E] over the batch's rows
    edge_attr: torch.Tensor  # [E, 3]
    day_index: np.ndarray  # [n] panel day of each row
    stock_index: np.ndarray  # [n] panel stock of each row

    @property
    def size(self) -> int:
        return int(self.x.shape[0])

    def to(self, device: torch.device) -> Batch:
        """On `device`; the copy is asynchronous from pinned memory (`pin`)."""
        def move(t: torch.Tensor) -> torch.Tensor:
            return t.to(device, non_blocking=True)

        return Batch(move(self.x), {h: move(t) for h, t in self.targets.items()}, move(self.day),
                     move(self.edge_index), move(self.edge_attr), self.day_index, self.stock_index)

    def pin(self) -> Batch:
        """In page-locked host memory (CUDA only), so that `to` can copy while the device computes."""
        return Batch(self.x.pin_memory(), {h: t.pin_memory() for h, t in self.targets.items()}, self.day.pin_memory(),
                     self.edge_index.pin_memory(), self.edge_attr.pin_memory(), self.day_index, self.stock_index)


class Panel:
    """Dense [day, stock] arrays of one dataset (dates and codes sorted)."""

    def __init__(self, frame: pl.DataFrame, features: Sequence[str], horizons: Sequence[int]) -> None:
        self.features = list(features)
        self.horizons = [int(h) for h in horizons]
        self.dates: list[dt.date] = frame["Date"].unique().sort().to_list()
        self.codes: list[str] = frame["Code"].unique().sort().to_list()
        self._date_pos = {d: i for i, d in enumerate(self.dates)}
        keys = self._keys(frame)
        self.rows_day, self.rows_stock = keys["_d"].to_numpy(), keys["_c"].to_numpy()
        shape = (len(self.dates), len(self.codes))
        self.present = np.zeros(shape, dtype=bool)
        self.present[self.rows_day, self.rows_stock] = True
        self.y = np.full((*shape, len(self.horizons)), np.nan, dtype=np.float32)
        for j, h in enumerate(self.horizons):
            self.y[self.rows_day, self.rows_stock, j] = frame[f"target_{h}d"].cast(pl.Float32).fill_null(np.nan).to_numpy()
        self.x = np.zeros((*shape, len(self.features)), dtype=np.float32)
        self.graphs: dict[int, DayGraph] = {}

    def _keys(self, frame: pl.DataFrame) -> pl.DataFrame:
        date_idx = pl.DataFrame({"Date": self.dates, "_d": np.arange(len(self.dates))}).with_columns(pl.col("Date").cast(pl.Date))
        code_idx = pl.DataFrame({"Code": self.codes, "_c": np.arange(len(self.codes))})
        return frame.select("Code", "Date").join(date_idx, on="Date", how="left", maintain_order="left").join(
            code_idx, on="Code", how="left", maintain_order="left")

    def set_features(self, normalizer: FoldNormalizer, frame: pl.DataFrame) -> None:
        """Fill x with `frame`'s features as `normalizer` transforms them, a block of features at a time
        (memory holds x and one block, never a second copy of the matrix)."""
        keys = self._keys(frame)
        days, stocks = keys["_d"].to_numpy(), keys["_c"].to_numpy()
        self.x[:] = 0.0
        start = 0
        for block in feature_blocks(self.features):
            part = normalizer.transform(frame, block).select(block)
            self.x[days, stocks, start:start + len(block)] = part.to_numpy()
            start += len(block)

    def rows_frame(self, batch: Batch, values: dict[str, np.ndarray]) -> pl.DataFrame:
        """Code, Date of each row of `batch` and `values` (one Float64 column per name, in row order)."""
        frame = pl.DataFrame({"Code": [self.codes[i] for i in batch.stock_index],
                              "Date": [self.dates[i] for i in batch.day_index]}, schema={"Code": pl.Utf8, "Date": pl.Date})
        return frame.with_columns(pl.Series(name, v, dtype=pl.Float64) for name, v in values.items())

    def day_indices(self, dates: Sequence[dt.date]) -> list[int]:
        return [self._date_pos[d] for d in dates if d in self._date_pos]

    def batch(self, days: Sequence[int], seq_len: int, with_graph: bool = True, need_target: bool = False) -> Batch:
        xs, ys, day_ids, edges, attrs, d_idx, s_idx = [], [], [], [], [], [], []
        offset = 0
        for k, d in enumerate(days):
            rows = self.present[d]
            if need_target:
                rows = rows & np.isfinite(self.y[d]).any(1)
            stocks = np.flatnonzero(rows)
            lo = d - seq_len + 1
            window = self.x[max(lo, 0) : d + 1, stocks]  # [t, n, F]
            if lo < 0:
                window = np.concatenate([np.zeros((-lo, len(stocks), window.shape[2]), np.float32), window])
            xs.append(window.transpose(1, 0, 2))
            ys.append(self.y[d, stocks])
            day_ids.append(np.full(len(stocks), k))
            d_idx.append(np.full(len(stocks), d))
            s_idx.append(stocks)
            if with_graph and d in self.graphs:
                g = self.graphs[d]
                local = np.full(len(self.codes), -1)
                local[stocks] = np.arange(len(stocks))
                src, dst = local[g.edge_index[0].numpy()], local[g.edge_index[1].numpy()]
                keep = (src >= 0) & (dst >= 0)
                edges.append(torch.from_numpy(np.stack([src[keep], dst[keep]]) + offset))
                attrs.append(g.edge_attr[torch.from_numpy(keep)])
            offset += len(stocks)
        y = np.concatenate(ys)
        return Batch(
            x=torch.from_numpy(np.concatenate(xs)),
            targets={h: torch.from_numpy(y[:, j].copy()) for j, h in enumerate(self.horizons)},
            day=torch.from_numpy(np.concatenate(day_ids)).long(),
            edge_index=torch.cat(edges, 1).long() if edges else torch.zeros((2, 0), dtype=torch.long),
            edge_attr=torch.cat(attrs) if attrs else torch.zeros((0, 3)),
            day_index=np.concatenate(d_idx),
            stock_index=np.concatenate(s_idx),
        )
