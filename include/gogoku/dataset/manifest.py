"""Dataset files, manifests and the `latest.json` pointer (DESIGN contract 4), and their validation.

Layout in a datasets folder:
  ml_dataset_<YYYYMMDD>_<YYYYMMDD>.parquet   the frame (start and end of the requested range)
  ml_dataset_<...>.manifest.json             what it holds and how it was built
  latest.json                                {"dataset": "<file name>", ...}: the newest written
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl

import gogoku
from gogoku.errors import InputError
from gogoku.io import read_latest_pointer, write_json_atomic, write_latest_pointer, write_parquet_atomic

MANIFEST_SUFFIX = ".manifest.json"
KEYS = ("Code", "Date")
# Names that would carry the future into the inputs (the reference's forward returns are feat_ret_*).
LEAKY_PREFIXES = ("target", "feat_ret_", "fwd_", "future_")


def dataset_stem(start: dt.date, end: dt.date) -> str:
    return f"ml_dataset_{start:%Y%m%d}_{end:%Y%m%d}"


def manifest_path(dataset_path: Path) -> Path:
    dataset_path = Path(dataset_path)
    return dataset_path.with_name(dataset_path.stem + MANIFEST_SUFFIX)


def make_manifest(
    df: pl.DataFrame,
    *,
    groups: Mapping[str, Sequence[str]],
    targets: Sequence[str],
    start: dt.date,
    end: dt.date,
    plan: str,
    build: Mapping[str, Any],
) -> dict[str, Any]:
    identity = [c for c in df.columns if c not in KEYS and df.schema[c] == pl.Utf8]
    return {
        "range": {"start": start.isoformat(), "end": end.isoformat()},
        "first_date": df["Date"].min().isoformat() if df.height else None,
        "last_date": df["Date"].max().isoformat() if df.height else None,
        "plan": plan,
        "rows": df.height,
        "codes": df["Code"].n_unique(),
        "dates": df["Date"].n_unique(),
        "keys": list(KEYS),
        "identity_columns": identity,
        "features": [{"name": name, "group": group} for group, names in groups.items() for name in names],
        "feature_groups": {group: len(names) for group, names in groups.items()},
        "n_features": sum(len(names) for names in groups.values()),
        "targets": list(targets),
        "build": dict(build),
        "code_version": gogoku.__version__,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def write_dataset(df: pl.DataFrame, manifest: Mapping[str, Any], out_dir: Path) -> tuple[Path, Path]:
    """Write the parquet, its manifest and `latest.json` into `out_dir` (each atomically)."""
    out_dir = Path(out_dir)
    start = dt.date.fromisoformat(manifest["range"]["start"])
    end = dt.date.fromisoformat(manifest["range"]["end"])
    path = out_dir / f"{dataset_stem(start, end)}.parquet"
    write_parquet_atomic(df, path)
    meta = write_json_atomic(dict(manifest), manifest_path(path))
    write_latest_pointer(
        out_dir, path, "dataset", manifest=meta.name, range=manifest["range"], rows=manifest["rows"],
        created_at=manifest["created_at"],
    )
    return path, meta


def latest_dataset(datasets_dir: Path) -> Path:
    """The dataset file that `latest.json` in `datasets_dir` names (the newest one written)."""
    return read_latest_pointer(datasets_dir, "dataset")


def resolve_dataset(path: Path) -> Path:
    """A dataset file as given, or the one `latest.json` names when `path` is a datasets folder."""
    path = Path(path)
    return latest_dataset(path) if path.is_dir() else path


def read_manifest(dataset_path: Path) -> dict[str, Any]:
    meta = manifest_path(dataset_path)
    try:
        return json.loads(meta.read_text())
    except FileNotFoundError:
        raise InputError(f"{meta}: manifest not found next to the dataset") from None
    except ValueError as exc:
        raise InputError(f"{meta}: not valid JSON ({exc})") from None


def validate_dataset(path: Path) -> dict[str, Any]:
    """Check a dataset file against its manifest and the schema contract; raise InputError if bad."""
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
    }
