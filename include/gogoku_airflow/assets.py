"""Assets the gogoku DAGs produce (Airflow 3 assets: lineage in the UI, and a schedule for consumers)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow.sdk import Asset

# One event per validated dataset under <data root>/datasets; its extra names that dataset (URI, plan,
# range, size), so a consumer never has to guess which dataset is "the latest".
DATASETS = Asset(name="gogoku_datasets", group="gogoku")
# One event per market morning whose refresh succeeded; its extra names the Tokyo market date and the
# refreshed window (`end` = the last closed session, the date the day's predictions are made as of).
MARKET_DATA = Asset(name="gogoku_market_data", group="gogoku")
# One event per published prediction file; its extra names the file's URI, its date and the model.
PREDICTIONS = Asset(name="gogoku_predictions", group="gogoku")
EVENT_KEYS = ("uri", "manifest", "plan", "start", "end", "rows", "codes", "features", "feature_groups")


def dataset_event(built: Mapping[str, Any], validated: Mapping[str, Any]) -> dict[str, Any]:
    """The extra of a `gogoku_datasets` event from the build's and the validation's results."""
    if validated.get("uri") != built.get("uri"):
        raise ValueError(f"validated {validated.get('uri')} is not the dataset built, {built.get('uri')}")
    return {key: built[key] for key in EVENT_KEYS if key in built}


def events_of(events: Any, asset: Asset) -> list[dict[str, Any]]:
    """The extras of `asset`'s events in a run's triggering events or inlet events, oldest first."""
    if not events:
        return []
    try:
        found = list(events[asset])
    except (KeyError, TypeError, ValueError):
        found = [e for a, es in dict(events).items() if getattr(a, "name", None) == asset.name for e in es or []]
    found.sort(key=lambda e: (getattr(e, "timestamp", None) is not None, getattr(e, "timestamp", None)))
    return [dict(getattr(e, "extra", None) or {}) for e in found]


def uri_from_events(events: Mapping[Any, Any] | None) -> tuple[str | None, dict[str, Any]]:
    """(dataset URI, event extra) of the newest `gogoku_datasets` event among a run's triggering
    events (several coalesce into one run when builds finish close together); (None, {}) if none."""
    found = [extra for extra in events_of(events, DATASETS) if extra.get("uri")]
    if not found:
        return None, {}
    return str(found[-1]["uri"]), found[-1]
