"""Walk-forward splits over trading dates with an embargo (defaults: 5 splits, 20-day
embargo, 252 training days at least, 63 test days at least).

The embargo drops the `embargo` trading dates right before each test block from training. With an
embargo at least as long as the longest target horizon, no training label (a forward return over
up to `embargo` days) reaches into the test period.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import polars as pl

from gogoku.errors import InputError

Frame = TypeVar("Frame", pl.DataFrame, pl.LazyFrame)
Part = Literal["train", "test", "embargo"]


@dataclass(frozen=True)
class Fold:
    index: int
    train_dates: tuple[dt.date, ...]
    test_dates: tuple[dt.date, ...]
    embargo_dates: tuple[dt.date, ...]

    def dates(self, part: Part) -> tuple[dt.date, ...]:
        if part == "train":
            return self.train_dates
        if part == "test":
            return self.test_dates
        if part == "embargo":
            return self.embargo_dates
        raise InputError(f"fold part must be 'train', 'test' or 'embargo', got {part!r}")

    def filter(self, frame: Frame, part: Part, date_col: str = "Date") -> Frame:
        """The rows of `frame` (eager or lazy) whose `date_col` falls in this fold's `part`."""
        return frame.filter(on_dates(self.dates(part), date_col))


def on_dates(dates: Sequence[dt.date], date_col: str = "Date") -> pl.Expr:
    """The rows whose `date_col` is one of `dates`."""
    return pl.col(date_col).is_in(pl.Series(list(dates), dtype=pl.Date).implode())


def sort_columnwise(df: pl.DataFrame, by: Sequence[str]) -> pl.DataFrame:
    """`df` sorted by `by` (itself when it already is), one column at a time: memory holds the frame
    once plus one column (`df.sort` holds both frames while it gathers), provided the caller drops its
    own reference to `df`."""
    by = list(by)
    if df.select(pl.struct(by).is_sorted() if len(by) > 1 else pl.col(by[0]).is_sorted()).item():
        return df
    order = df.select(pl.arg_sort_by(by)).to_series()
    for name in df.columns:
        df = df.with_columns(df.get_column(name).gather(order))
    return df


def _unique_dates(dates: Sequence[dt.date], name: str) -> list[dt.date]:
    days = sorted(set(dates))
    if any(not isinstance(d, dt.date) or isinstance(d, dt.datetime) for d in days):
        raise InputError(f"{name} must be datetime.date values")
    return days


def walk_forward_splits(
    dates: Sequence[dt.date],
    n_splits: int = 5,
    embargo: int = 20,
    min_train: int = 252,
    min_test: int = 63,
    mode: Literal["expanding", "rolling"] = "expanding",
    train_window: int | None = None,
) -> list[Fold]:
    """`n_splits` consecutive test blocks at the end of `dates`, each trained on what precedes it.

    With N dates, `available = N - min_train - embargo` dates can be tested; each block has
    `available // n_splits` dates (at least `min_test`), the blocks take the last
    `n_splits * test_len` dates and the first fold's training gets the rest. Rolling mode keeps
    the last `train_window` (default `min_train`) training dates of each fold.
    """
    for name, value, least in (
        ("n_splits", n_splits, 1),
        ("embargo", embargo, 0),
        ("min_train", min_train, 1),
        ("min_test", min_test, 1),
    ):
        if value < least:
            raise InputError(f"{name} must be >= {least}, got {value}")
    if mode not in ("expanding", "rolling"):
        raise InputError(f"mode must be 'expanding' or 'rolling', got {mode!r}")
    if mode == "expanding" and train_window is not None:
        raise InputError("train_window applies to mode='rolling' only")
    window = min_train if train_window is None else train_window
    if window < min_train:
        raise InputError(f"train_window {window} is shorter than min_train {min_train}")

    days = _unique_dates(dates, "dates")
    available = len(days) - min_train - embargo
    if available < n_splits * min_test:
        need = min_train + embargo + n_splits * min_test
        raise InputError(
            f"{len(days)} trading dates are too few for n_splits={n_splits} with min_train={min_train}, "
            f"embargo={embargo} and min_test={min_test}: need at least {need}"
        )
    test_len = available // n_splits
    first_test = len(days) - n_splits * test_len

    folds = []
    for k in range(n_splits):
        lo = first_test + k * test_len
        train_end = lo - embargo
        train_start = 0 if mode == "expanding" else max(0, train_end - window)
        folds.append(
            Fold(
                index=k,
                train_dates=tuple(days[train_start:train_end]),
                test_dates=tuple(days[lo : lo + test_len]),
                embargo_dates=tuple(days[train_end:lo]),
            )
        )
    return folds


def validation_split(
    train_dates: Sequence[dt.date], fraction: float = 0.15, embargo: int = 20
) -> tuple[tuple[dt.date, ...], tuple[dt.date, ...]]:
    """(fit_dates, valid_dates) inside one training period: the last `fraction` of the dates (at
    least one) validate early stopping, and the `embargo` dates before them are used for neither."""
    if not 0.0 < fraction < 1.0:
        raise InputError(f"validation fraction must be in (0, 1), got {fraction}")
    if embargo < 0:
        raise InputError(f"embargo must be >= 0, got {embargo}")
    days = _unique_dates(train_dates, "train_dates")
    n_valid = max(1, int(fraction * len(days) + 1e-9))  # 0.29 * 100 is 28.999...96 in floats
    n_fit = len(days) - n_valid - embargo
    if n_fit < 1:
        raise InputError(
            f"{len(days)} training dates are too few for a validation fraction of {fraction} "
            f"with an embargo of {embargo} dates"
        )
    return tuple(days[:n_fit]), tuple(days[-n_valid:])


def check_training_inputs(
    df: pl.DataFrame,
    feature_cols: Sequence[str],
    horizons: Sequence[int],
    folds: Sequence[Fold] | None,
    valid_embargo: int,
) -> list[Fold]:
    """The checks every walk-forward trainer makes before training; returns the folds (default splits).

    A label over h sessions ends h dates after its row: an embargo shorter than the longest horizon
    would let training (or early-stopping) labels see prices inside the block they are judged on.
    """
    targets = [f"target_{h}d" for h in horizons]
    missing = [c for c in ["Code", "Date", *feature_cols, *targets] if c not in df.columns]
    if missing:
        raise InputError(f"dataset: missing column(s) {', '.join(missing[:5])}")
    if not feature_cols:
        raise InputError("no feature columns selected")
    from gogoku.dataset.manifest import degenerate_columns

    null_features, flat_targets = degenerate_columns(df, feature_cols, targets)
    if flat_targets:
        raise InputError(f"target(s) without variance (constant or all null): {flat_targets}; nothing to learn or score")
    if len(null_features) == len(feature_cols):
        raise InputError(f"every selected feature is entirely null ({len(feature_cols)} columns): nothing to learn from")
    folds = list(folds) if folds is not None else walk_forward_splits(df["Date"].unique().to_list())
    longest = max(int(h) for h in horizons)
    short = [f.index for f in folds if len(f.embargo_dates) < longest]
    if short or valid_embargo < longest:
        raise InputError(f"embargo shorter than the longest horizon ({longest} sessions): "
                         f"folds {short}, validation embargo {valid_embargo}")
    return folds


def fold_summary(fold: Fold, fit_dates: Sequence[dt.date], valid_dates: Sequence[dt.date]) -> dict[str, Any]:
    """A fold's date boundaries (ISO dates) as training runs record them in metrics.json."""
    return {
        "fold": fold.index,
        "train_start": fold.train_dates[0].isoformat(),
        "fit_end": fit_dates[-1].isoformat(),
        "valid_start": valid_dates[0].isoformat(),
        "train_end": fold.train_dates[-1].isoformat(),
        "test_start": fold.test_dates[0].isoformat(),
        "test_end": fold.test_dates[-1].isoformat(),
    }
