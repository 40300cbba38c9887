"""Dataset files, manifests and the `latest` pointers, and their validation.

Layout in a datasets folder (`<data root>/datasets/`, docs/data.md):
  ml_dataset_<plan>_<YYYYMMDD>_<YYYYMMDD>.parquet   the frame (plan tier, start and end of the range)
  ml_dataset_<...>.manifest.json                    what it holds and how it was built
  latest_<plan>.json                                {"dataset": "<file name>", ...}: the newest of a plan
The plan is part of a dataset's identity: builds of one range on two plans coexist.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

import gogoku
from gogoku.config import PLAN_TIERS
from gogoku.errors import InputError
from gogoku.io import (
    atomic_write,
    read_latest_pointer,
    write_json_atomic,
    write_latest_pointer,
    write_parquet_atomic,
)
from gogoku.storage import Store

DATASETS = "datasets"
MANIFEST_SUFFIX = ".manifest.json"
KEYS = ("Code", "Date")
# Names that would carry the future into the inputs (forward returns under a feature-like name, e.g. feat_ret_*).
LEAKY_PREFIXES = ("target", "feat_ret_", "fwd_", "future_")


def dataset_stem(plan: str, start: dt.date, end: dt.date) -> str:
    if plan not in PLAN_TIERS:
        raise InputError(f"dataset plan {plan!r}: expected one of {', '.join(PLAN_TIERS)}")
    return f"ml_dataset_{plan}_{start:%Y%m%d}_{end:%Y%m%d}"


def latest_pointer_name(plan: str) -> str:
    """The pointer to the newest dataset of a plan tier."""
    if plan not in PLAN_TIERS:
        raise InputError(f"plan {plan!r}: expected one of {', '.join(PLAN_TIERS)}")
    return f"latest_{plan}.json"


def manifest_path(dataset_path: Path) -> Path:
    dataset_path = Path(dataset_path)
    return dataset_path.with_name(dataset_path.stem + MANIFEST_SUFFIX)


@dataclass(frozen=True)
class DatasetSummary:
    """What a manifest says of a dataset's rows, for a dataset that is not in memory as one frame."""

    rows: int
    codes: int
    dates: int
    first_date: dt.date | None
    last_date: dt.date | None
    identity_columns: list[str]

    @classmethod
    def of(cls, df: pl.DataFrame) -> DatasetSummary:
        return cls(
            rows=df.height,
            codes=df["Code"].n_unique(),
            dates=df["Date"].n_unique(),
            first_date=df["Date"].min() if df.height else None,
            last_date=df["Date"].max() if df.height else None,
            identity_columns=[c for c in df.columns if c not in KEYS and df.schema[c] == pl.Utf8],
        )


# A dataset to write: a frame, or a function that writes the parquet file at the path it is given.
DatasetData = pl.DataFrame | Callable[[Path], None]


def make_manifest(
    df: pl.DataFrame | DatasetSummary,
    *,
    groups: Mapping[str, Sequence[str]],
    targets: Sequence[str],
    start: dt.date,
    end: dt.date,
    plan: str,
    build: Mapping[str, Any],
) -> dict[str, Any]:
    summary = DatasetSummary.of(df) if isinstance(df, pl.DataFrame) else df
    return {
        "range": {"start": start.isoformat(), "end": end.isoformat()},
        "first_date": summary.first_date.isoformat() if summary.first_date is not None else None,
        "last_date": summary.last_date.isoformat() if summary.last_date is not None else None,
        "plan": plan,
        "rows": summary.rows,
        "codes": summary.codes,
        "dates": summary.dates,
        "keys": list(KEYS),
        "identity_columns": list(summary.identity_columns),
        "features": [{"name": name, "group": group} for group, names in groups.items() for name in names],
        "feature_groups": {group: len(names) for group, names in groups.items()},
        "n_features": sum(len(names) for names in groups.values()),
        "targets": list(targets),
        "build": dict(build),
        "code_version": gogoku.code_version(),
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def write_dataset(df: DatasetData, manifest: Mapping[str, Any], out_dir: Path) -> tuple[Path, Path]:
    """Write the parquet, its manifest and then the plan's `latest_<plan>.json` into `out_dir`
    (each atomically, the pointer last). `df` is a frame, or a function that writes the parquet at
    the temp path it is given (an out-of-core build's merge), renamed into place once complete."""
    out_dir = Path(out_dir)
    plan = str(manifest["plan"])
    start = dt.date.fromisoformat(manifest["range"]["start"])
    end = dt.date.fromisoformat(manifest["range"]["end"])
    path = out_dir / f"{dataset_stem(plan, start, end)}.parquet"
    if isinstance(df, pl.DataFrame):
        write_parquet_atomic(df, path)
    else:
        atomic_write(path, df)
    meta = write_json_atomic(dict(manifest), manifest_path(path))
    write_latest_pointer(
        out_dir, path, "dataset", name=latest_pointer_name(plan), manifest=meta.name, plan=plan,
        range=manifest["range"], rows=manifest["rows"], created_at=manifest["created_at"],
    )
    return path, meta


def publish_dataset(store: Store, df: DatasetData, manifest: Mapping[str, Any]) -> dict[str, str]:
    """Write a dataset into the data root: the parquet and its manifest, then the plan's pointer
    (uploaded in that order on an object store, so the pointer never names a missing file)."""
    path, meta = write_dataset(df, manifest, store.local_path(DATASETS))
    pointer = f"{DATASETS}/{latest_pointer_name(str(manifest['plan']))}"
    uri, manifest_uri, pointer_uri = store.publish(f"{DATASETS}/{path.name}", f"{DATASETS}/{meta.name}", pointer)
    return {"uri": uri, "manifest_uri": manifest_uri, "pointer_uri": pointer_uri, "local": str(path)}


def latest_dataset(datasets_dir: Path, plan: str) -> Path:
    """The dataset file that `latest_<plan>.json` in a local `datasets_dir` names."""
    return read_latest_pointer(datasets_dir, "dataset", name=latest_pointer_name(plan))


def resolve_dataset(path: Path, plan: str = "standard") -> Path:
    """A local dataset file as given, or the newest of `plan` when `path` is a datasets folder."""
    path = Path(path)
    return latest_dataset(path, plan) if path.is_dir() else path


def localize_dataset(store: Store, location: str | None, plan: str, what: str = "--dataset") -> tuple[Path, str]:
    """(local file, URI) of a dataset given as a URI or path, or as `latest` / None / "" (the newest
    dataset of `plan` in the data root). Its manifest is fetched beside it. Errors name `what`."""
    try:
        return _localize_dataset(store, location, plan)
    except InputError as exc:
        raise InputError(f"{what} {location or 'latest'}: {exc}") from None


def _localize_dataset(store: Store, location: str | None, plan: str) -> tuple[Path, str]:
    text = str(location or "").strip()
    if text in ("", "latest"):
        pointer = f"{DATASETS}/{latest_pointer_name(plan)}"
        if not store.exists(pointer):
            raise InputError(f"{store.uri(pointer)}: no {plan} dataset has been built under {store.url} yet; "
                             f"build one (gogoku dataset build --plan {plan}) or give --dataset")
        info = store.read_json(pointer)
        name = info.get("dataset") if isinstance(info, dict) else None
        if not isinstance(name, str) or "/" in name:
            raise InputError(f"{store.uri(pointer)}: not a dataset pointer")
        text = store.uri(f"{DATASETS}/{name}")
    if not text.endswith(".parquet"):
        raise InputError("expected a dataset .parquet file (or `latest`)")
    path = store.localize(text)
    if "://" in text:  # objects land in the working copy with their layout: the manifest beside the parquet
        store.localize(text[: -len(".parquet")] + MANIFEST_SUFFIX)
    rel = store.root.relative(text)
    if rel is not None:
        return path, store.uri(rel)
    return path, text if "://" in text else str(path.absolute())


def read_manifest(dataset_path: Path) -> dict[str, Any]:
    meta = manifest_path(dataset_path)
    try:
        manifest = json.loads(meta.read_text())
    except FileNotFoundError:
        raise InputError(f"{meta}: manifest not found next to the dataset") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"{meta}: not valid JSON ({exc})") from None
    if not isinstance(manifest, dict):
        raise InputError(f"{meta}: expected a JSON object, got a {type(manifest).__name__}")
    bad = [k for k, kind in (("features", list), ("targets", list)) if not isinstance(manifest.get(k), kind)]
    if bad or not all(isinstance(f, dict) and "name" in f and "group" in f for f in manifest["features"]):
        raise InputError(f"{meta}: not a dataset manifest (features and targets must be lists of entries)")
    return manifest


# A dataset whose share of entirely null feature columns exceeds this is refused: a source that went
# missing, not a market (a normal build has none; see `degenerate_columns`).
MAX_NULL_FEATURE_SHARE = 0.1


def degenerate_columns(df: pl.DataFrame | pl.LazyFrame, features: Sequence[str], targets: Sequence[str]
                       ) -> tuple[list[str], list[str]]:
    """(feature columns that are entirely null or NaN, target columns without variance: constant,
    or fewer than two finite values). Either makes a trained model's metrics meaningless."""
    lf = df.lazy()
    finite = [pl.col(c).cast(pl.Float64).is_finite() for c in [*features, *targets]]
    stats = lf.select(
        *(f.any().alias(f"f{i}") for i, f in enumerate(finite[: len(features)])),
        *(pl.col(t).cast(pl.Float64).filter(pl.col(t).cast(pl.Float64).is_finite()).std().alias(f"s{i}")
          for i, t in enumerate(targets)),
    ).collect().row(0)
    null_features = [c for c, ok in zip(features, stats[: len(features)], strict=True) if not ok]
    flat_targets = [t for t, sd in zip(targets, stats[len(features):], strict=True) if sd is None or not sd > 0]
    return null_features, flat_targets


def validate_dataset(path: Path, max_null_share: float = MAX_NULL_FEATURE_SHARE) -> dict[str, Any]:
    """Check a dataset file against its manifest and the schema contract, and refuse degenerate
    data (more than `max_null_share` of the features entirely null, a target without variance);
    raise InputError if bad."""
    path = resolve_dataset(Path(path))
    manifest = read_manifest(path)
    try:
        df = pl.read_parquet(path)
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise InputError(f"{path}: cannot read the dataset ({exc.__class__.__name__}: {exc})") from None

    def fail(why: str) -> InputError:
        return InputError(f"{path}: {why}")

    if df.is_empty():
        raise fail("no rows")
    schema = df.schema
    if schema.get("Code") != pl.Utf8 or schema.get("Date") != pl.Date:
        raise fail(f"keys must be Code: String and Date: Date, got {schema.get('Code')} and {schema.get('Date')}")
    # Since 2024 new securities codes may hold letters (e.g. 130A -> "130A0").
    if not df["Code"].str.contains(r"^[0-9A-Z]{5}$").all():
        raise fail("Code must be 5 characters (digits or capital letters)")
    if df.select(pl.struct(*KEYS).is_duplicated().any()).item():
        raise fail("(Code, Date) keys are not unique")
    if not df.select(KEYS).equals(df.select(KEYS).sort(*KEYS)):
        raise fail("rows are not sorted by (Code, Date)")
    features = [f["name"] for f in manifest.get("features", [])]
    if len(features) != manifest.get("n_features"):
        raise fail(f"manifest lists {len(features)} features but says n_features={manifest.get('n_features')}")
    missing = [c for c in features if c not in schema]
    if missing:
        raise fail(f"{len(missing)} manifest feature(s) missing, e.g. {missing[:3]}")
    not_float = [c for c in features if schema[c] not in (pl.Float32, pl.Float64)]
    if not_float:
        raise fail(f"features must be Float32/Float64: {not_float[:3]}")
    leaky = [c for c in features if c.startswith(LEAKY_PREFIXES)]
    if leaky:
        raise fail(f"target-like columns among the features: {leaky[:3]}")
    targets = manifest.get("targets") or []
    if not targets:
        raise fail("manifest names no targets")
    bad_targets = [t for t in targets if t not in schema or schema[t] not in (pl.Float32, pl.Float64)]
    if bad_targets:
        raise fail(f"target column(s) missing or not float: {bad_targets}")
    if manifest.get("rows") != df.height:
        raise fail(f"{df.height} rows but the manifest says {manifest.get('rows')}")
    null_features, flat_targets = degenerate_columns(df, features, targets)
    if flat_targets:
        raise fail(f"target(s) without variance (constant or all null): {flat_targets}; "
                   "a model trained on them would report nothing")
    if features and len(null_features) > max_null_share * len(features):
        raise fail(f"{len(null_features)} of {len(features)} features are entirely null (allowed: "
                   f"{max_null_share:.0%}), e.g. {null_features[:5]}: a source is missing; rebuild after a refresh")
    return {
        "dataset": str(path),
        "manifest": str(manifest_path(path)),
        "valid": True,
        "rows": df.height,
        "codes": df["Code"].n_unique(),
        "first_date": df["Date"].min().isoformat(),
        "last_date": df["Date"].max().isoformat(),
        "n_features": len(features),
        "feature_groups": manifest.get("feature_groups", {}),
        "targets": targets,
        "null_features": null_features,
    }
