"""Alerts: one notifier for failed tasks, missed deadlines and monitoring alarms.

`GogokuNotifier` always logs the alert (the task log, or the triggerer's log for deadlines) and
appends it as one JSON line to the alerts file (the Variable `gogoku_alerts_file`, default
`$AIRFLOW_HOME/gogoku-alerts.jsonl`), so an operator with only the UI and the logs sees every alarm;
it then forwards the alert to the channel the Variable `gogoku_alert_channel` names, if any (see
`forward`). It works as a task failure callback (sync), and as a deadline callback in the triggerer
(async).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from pathlib import Path
from typing import Any

from airflow.sdk import BaseNotifier

log = logging.getLogger("gogoku.alerts")

ALERTS_FILE_VARIABLE = "gogoku_alerts_file"
CHANNEL_VARIABLE = "gogoku_alert_channel"


def alerts_file() -> Path:
    from airflow.sdk import Variable

    default = Path(os.environ.get("AIRFLOW_HOME") or "~/airflow").expanduser() / "gogoku-alerts.jsonl"
    try:
        return Path(Variable.get(ALERTS_FILE_VARIABLE, default=str(default)))
    except Exception:  # no Variable access here (e.g. a triggerer without the execution API)
        return default


def record(kind: str, message: str, **details: Any) -> dict[str, Any]:
    """Log the alert and append it to the alerts file; the entry."""
    entry = {"at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "kind": kind, "message": message,
             **{k: str(v) for k, v in details.items() if v is not None}}
    log.error("ALERT [%s] %s %s", kind, message,
              json.dumps({k: v for k, v in entry.items() if k not in ("at", "kind", "message")}))
    path = alerts_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:  # one line per alert, appended: readers never see a torn entry
        fh.write(json.dumps(entry, default=str) + "\n")
    return entry


def _field(obj: Any, *names: str) -> Any:
    """The first of `names` that `obj` has: a task's context holds objects, a deadline callback's
    (run in the triggerer) the run as a JSON dict (`dag_run_id`) and `deadline` {id, deadline_time}."""
    for name in names:
        value = obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)
        if value is not None:
            return value
    return None


class GogokuNotifier(BaseNotifier):
    """Record an alert (see the module docstring); `message` is a template rendered with the context."""

    template_fields = ("message",)

    def __init__(self, message: str = "", kind: str = "alert", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.message = message
        self.kind = kind

    def _details(self, context: Any) -> dict[str, Any]:
        ti = context.get("ti") or context.get("task_instance")
        run = context.get("dag_run")
        deadline = context.get("deadline")
        return {"dag_id": getattr(ti, "dag_id", None) or _field(run, "dag_id") or context.get("dag_id"),
                "run_id": getattr(ti, "run_id", None) or _field(run, "run_id", "dag_run_id"),
                "task_id": getattr(ti, "task_id", None), "try_number": getattr(ti, "try_number", None),
                "deadline": _field(deadline, "deadline_time"),
                "exception": context.get("exception")}

    def notify(self, context: Any) -> None:
        entry = record(self.kind, self.message or "task failed", **self._details(context))
        forward(entry)

    async def async_notify(self, context: Any) -> None:
        entry = record(self.kind, self.message or "deadline missed", **self._details(context or {}))
        forward(entry)


def forward(entry: dict[str, Any], timeout_s: float = 10.0) -> bool:
    """POST the alert as JSON ({"text": ..., and the entry's fields}: what Slack, Teams or Mattermost
    incoming webhooks accept) to the URL in the Variable `gogoku_alert_channel`; nothing when it is
    unset. A failing channel is logged, never raised: the alert is already in the log and the file."""
    try:
        from airflow.sdk import Variable

        url = (Variable.get(CHANNEL_VARIABLE, default="") or "").strip()
    except Exception:
        url = ""
    if not url:
        return False
    if not url.startswith(("http://", "https://")):
        log.error("Variable %s=%r is not an http(s) webhook URL; the alert stays in the log and the alerts file",
                  CHANNEL_VARIABLE, url)
        return False
    import urllib.request

    body = json.dumps({"text": f"[gogoku {entry['kind']}] {entry['message']}", **entry}, default=str).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as resp:
            ok = 200 <= resp.status < 300
    except OSError as exc:
        log.error("alert webhook %s failed: %s", url.split("?")[0], exc)
        return False
    if not ok:
        log.error("alert webhook %s answered %s", url.split("?")[0], resp.status)
    return ok


def on_failure(context: Any) -> None:
    """Task failure callback: every gogoku task's failure (after its last retry) is an alert."""
    GogokuNotifier(message="task failed after its retries", kind="task_failed")(context)
