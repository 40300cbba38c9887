"""The `local` runner: `gogoku <argv>` as a subprocess of the Airflow worker.

The CLI's output (stdout and stderr, merged as they happen) streams to the task log line by line.
Its last JSON line becomes the task's return value (the `return_value` XCom, a dict). A non-zero
exit fails the task, to be retried, with the CLI's last line (its one-line error) in the message:
the CLI's exit status does not yet tell bad input from an API that keeps failing, and only the
latter is worth a retry, so every failure gets the task's retries.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from gogoku_airflow.argv import CLI, finalize_argv
from gogoku_airflow.connection import CLI_ENV_NAMES, JQUANTS_CONN_ID, cli_env

_TAIL_LINES = 50


def find_cli() -> str:
    """The `gogoku` executable of this Python environment first, then the one on PATH."""
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    found = shutil.which(CLI, path=search)
    if found is None:
        raise AirflowFailException(f"the `{CLI}` command is not installed here (pip install -e <project>)")
    return found


def subprocess_env(mapped: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in CLI_ENV_NAMES and not k.startswith("AIRFLOW_CONN_")}
    env.update(mapped)
    env["PYTHONUNBUFFERED"] = "1"  # lines reach the task log as they are written
    return env


def last_json_object(lines: Sequence[str]) -> dict[str, Any] | None:
    for line in reversed(lines):
        text = line.strip()
        if text.startswith("{"):
            try:
                value = json.loads(text)
            except ValueError:
                continue
            if isinstance(value, dict):
                return value
    return None


class GogokuCliOperator(BaseOperator):
    """Run one `gogoku` CLI command in the worker; returns its JSON result."""

    template_fields: Sequence[str] = ("argv", "plan_tier")
    template_fields_renderers = {"argv": "py"}
    ui_color = "#e8f4ea"

    def __init__(self, *, argv: Any, plan_tier: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.argv = argv
        self.plan_tier = plan_tier
        self._process: subprocess.Popen[str] | None = None

    def execute(self, context: Any) -> dict[str, Any]:
        argv = finalize_argv(self.argv)
        mapped = cli_env(self.plan_tier or None)
        command = [find_cli(), *argv]
        self.log.info("Running: %s %s", CLI, shlex.join(argv))
        self.log.info("Environment from %s and variables: %s", JQUANTS_CONN_ID, ", ".join(sorted(mapped)))
        tail: deque[str] = deque(maxlen=_TAIL_LINES)
        self._process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=subprocess_env(mapped),
            text=True,
            bufsize=1,
            start_new_session=True,  # on_kill stops the whole process group
        )
        assert self._process.stdout is not None
        for raw in self._process.stdout:
            line = raw.rstrip("\n")
            self.log.info("%s", line)
            tail.append(line)
        returncode = self._process.wait()
        if returncode != 0:
            message = next((line.strip() for line in reversed(tail) if line.strip()), "no output")
            raise AirflowException(f"{CLI} {argv[0]} exited with status {returncode}: {message}")
        result = last_json_object(tail)
        if result is None:
            raise AirflowException(f"{CLI} {argv[0]} succeeded but printed no JSON object as its result")
        return result

    def on_kill(self) -> None:
        if self._process is not None and self._process.poll() is None:
            os.killpg(self._process.pid, signal.SIGTERM)
