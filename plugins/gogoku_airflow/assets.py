"""Assets the gogoku DAGs produce (Airflow 3 assets: lineage in the UI, and a schedule for consumers)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow.sdk import Asset

# One event per validated dataset under <data root>/datasets; its extra names that dataset (URI, plan,
# range, size), so a consumer never has to guess which dataset is "the latest".
DATASETS = Asset(name="gogoku_datasets", group="gogoku")
EVENT_KEYS = ("uri", "manifest", "plan", "start", "end", "rows", "codes", "features", "feature_groups")


def dataset_event(built: Mapping[str, Any], validated: Mapping[str, Any]) -> dict[str, Any]:
    """The extra of a `gogoku_datasets` event from the build's and the validation's results."""
    if validated.get("uri") != built.get("uri"):
        raise ValueError(f"validated {validated.get('uri')} is not the dataset built, {built.get('uri')}")
    return {key: built[key] for key in EVENT_KEYS if key in built}


def uri_from_events(events: Mapping[Any, Any] | None) -> tuple[str | None, dict[str, Any]]:
    """(dataset URI, event extra) of the newest `gogoku_datasets` event among a run's triggering
    events (several coalesce into one run when builds finish close together); (None, {}) if none."""
    found = []
    for asset, asset_events in (events or {}).items():
        if getattr(asset, "name", None) != DATASETS.name:
            continue
        for event in asset_events or []:
            extra = dict(getattr(event, "extra", None) or {})
            if extra.get("uri"):
                found.append((getattr(event, "timestamp", None), extra))
    if not found:
        return None, {}
    found.sort(key=lambda item: (item[0] is not None, item[0]))
    extra = found[-1][1]
    return str(extra["uri"]), extra
