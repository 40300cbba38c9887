"""The model registry: which trained models may serve predictions, and which one does (the champion).

It lives in the data root (`models/registry/`), so the scheduler's tasks and every pod share it, as
an append-only log: each event (register, promote, rollback) is one small JSON object written once
under a unique name and never changed. The state is the log replayed in order, so concurrent writers
never lose each other's events (no read-modify-write of a shared file, which an object store could
not make atomic), and the history is kept for free.

A model is a training run folder `models/<id>/` with a production model in `final/` (`refit=true`).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import uuid
from dataclasses import dataclass, field
from typing import Any

from gogoku.errors import InputError
from gogoku.storage import Store

log = logging.getLogger(__name__)

MODELS = "models"
REGISTRY = f"{MODELS}/registry"
EVENTS = ("register", "promote", "rollback")


@dataclass
class RegistryState:
    """The log replayed: registered models (id -> their register event), the champion, the history."""

    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    champion: str | None = None
    champions: list[str] = field(default_factory=list)  # every champion in turn, the current last
    history: list[dict[str, Any]] = field(default_factory=list)

    def apply(self, event: dict[str, Any]) -> None:
        kind, model = event["event"], event["model"]
        if kind == "register":
            self.models[model] = event
        elif kind in ("promote", "rollback"):
            self.champion = model
            self.champions.append(model)
        self.history.append(event)


class Registry:
    def __init__(self, store: Store) -> None:
        self.store = store

    # ---------------------------------------------------------------- reading
    def events(self) -> list[dict[str, Any]]:
        """Every event in order (by time, then name: names start with the time)."""
        if self.store.remote:
            names = sorted(self.store.list(REGISTRY))
            paths = [self.store.fetch(f"{REGISTRY}/{name}") for name in names if name.endswith(".json")]
        else:
            folder = self.store.local_path(REGISTRY)
            paths = sorted(folder.glob("*.json")) if folder.is_dir() else []
        events = []
        for path in paths:
            try:
                event = json.loads(path.read_text())
            except (OSError, ValueError) as exc:
                raise InputError(f"{path}: unreadable registry event ({exc}); remove it to repair the registry") from None
            if not isinstance(event, dict) or event.get("event") not in EVENTS or not event.get("model"):
                raise InputError(f"{path}: not a registry event")
            events.append(event)
        return sorted(events, key=lambda e: (e["at"], e["name"]))

    def state(self) -> RegistryState:
        state = RegistryState()
        for event in self.events():
            state.apply(event)
        return state

    def champion(self) -> str:
        """The champion's id; InputError when no model has been promoted yet."""
        champion = self.state().champion
        if champion is None:
            raise InputError(f"{self.store.uri(REGISTRY)}: no champion yet; promote a registered model "
                             "(gogoku model promote <id>) or pass --model")
        return champion

    def model_rel(self, model_id: str) -> str:
        """The run folder of a registered model (relative to the data root)."""
        if model_id not in self.state().models:
            known = ", ".join(sorted(self.state().models)) or "none"
            raise InputError(f"model {model_id!r} is not registered (registered: {known})")
        return f"{MODELS}/{model_id}"

    # ---------------------------------------------------------------- writing
    def _append(self, event_kind: str, model: str, **info: Any) -> dict[str, Any]:
        kind = event_kind
        now = dt.datetime.now(dt.UTC)
        name = f"{now:%Y%m%dT%H%M%S%fZ}_{kind}_{uuid.uuid4().hex[:8]}.json"
        event = {"event": kind, "model": model, "at": now.isoformat(), "name": name,
                 "by": os.environ.get("GOGOKU_ACTOR") or os.environ.get("USER") or "gogoku", **info}
        rel = f"{REGISTRY}/{name}"
        path = self.store.local_path(rel)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "x") as fh:  # create-only: an event is written once
            fh.write(json.dumps(event, indent=2, default=str) + "\n")
        if self.store.remote:
            self.store.upload(path, rel, create_only=True)
        log.info("registry: %s %s (%s)", kind, model, {k: v for k, v in info.items() if k != "figures"})
        return event

    def register(self, model_id: str) -> dict[str, Any]:
        """Register a training run that holds a production model (`final/model.json`)."""
        if "/" in model_id or model_id in ("", ".", ".."):
            raise InputError(f"model id {model_id!r}: expected a run folder name under {self.store.uri(MODELS)}")
        description = f"{MODELS}/{model_id}/final/model.json"
        if not self.store.exists(description):
            raise InputError(f"{self.store.uri(f'{MODELS}/{model_id}')}: no production model (final/model.json); "
                             "train with refit=true")
        if not self.store.exists(f"{MODELS}/{model_id}/metrics.json"):
            raise InputError(f"{self.store.uri(f'{MODELS}/{model_id}')}: the run has not finished (no metrics.json)")
        info = self.store.read_json(description)
        if model_id in self.state().models:
            log.info("registry: %s is already registered", model_id)
            return self.state().models[model_id]
        return self._append("register", model_id, kind=info.get("kind"), model_name=info.get("model"),
                            plan=info.get("plan"), dataset=info.get("dataset"),
                            trained_through=info.get("trained_through"), walk_forward=info.get("walk_forward"))

    def promote(self, model_id: str, reason: str, figures: Any = None) -> dict[str, Any]:
        self.model_rel(model_id)
        return self._append("promote", model_id, reason=reason, figures=figures,
                            previous=self.state().champion)

    def rollback(self, to: str | None = None, reason: str = "rollback") -> dict[str, Any]:
        """Make `to` (default: the champion before the current one) the champion again."""
        state = self.state()
        if state.champion is None:
            raise InputError("rollback: there is no champion to roll back from")
        if to is None:
            earlier = [m for m in state.champions if m != state.champion]
            if not earlier:
                raise InputError(f"rollback: {state.champion} is the only champion there has been; give --to")
            to = earlier[-1]
        self.model_rel(to)
        return self._append("rollback", to, reason=reason, previous=state.champion)


def promote_if_better(registry: Registry, model_id: str, force: bool = False,
                      margins: dict[int, float] | None = None) -> dict[str, Any]:
    """Promote `model_id` when it beats the champion on their common test rows (evaluate/compare.py),
    when there is no champion yet, or when `force`; the decision and its figures either way."""
    from gogoku.evaluate.compare import DEFAULT_MIN_DAYS, compare_runs, margins_from
    from gogoku.evaluate.report import resolve_model_dirs

    store = registry.store
    candidate_rel = registry.model_rel(model_id)
    state = registry.state()
    champion = state.champion
    if champion == model_id:
        return {"model": model_id, "promoted": False, "champion": champion, "reason": "already the champion"}
    description = store.read_json(f"{candidate_rel}/final/model.json")
    config = (description.get("config") or {}).get("promotion") or {}
    horizons = [int(h) for h in description.get("horizons") or []]
    comparison = None
    if champion is None:
        decision, reason = True, "no champion yet: the first registered model becomes it"
    else:
        cand_dir, champ_dir = resolve_model_dirs([store.uri(candidate_rel), store.uri(registry.model_rel(champion))], store)
        comparison = compare_runs(cand_dir, champ_dir, horizons, margins or margins_from(config, horizons),
                                  min_days=int(config.get("min_common_days", DEFAULT_MIN_DAYS)))
        decision, reason = comparison["beats"], f"against {champion}: {comparison['reason']}"
    if force and not decision:
        decision, reason = True, f"forced ({reason})"
    result: dict[str, Any] = {"model": model_id, "promoted": decision, "previous_champion": champion,
                              "reason": reason, "comparison": comparison}
    if decision:
        result["event"] = registry.promote(model_id, reason, comparison)["name"]
    result["champion"] = model_id if decision else champion
    log.info("promotion of %s: %s (%s)", model_id, "promoted" if decision else "not promoted", reason)
    return result
