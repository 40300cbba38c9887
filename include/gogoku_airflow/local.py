"""The `local` runner: `gogoku <argv>` as a subprocess of the Airflow worker.

The CLI's output (stdout and stderr, merged as they happen) streams to the task log line by line.
Its last JSON line becomes the task's return value (the `return_value` XCom, a dict). Exit status 2
is the CLI's bad-input answer (a bad argument, a missing file, a configuration error): retrying
cannot help, so the task fails at once; any other failure, and an API that kept failing through the
client's retries (TRANSIENT_MARKERS), is left to the task's retries.
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
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from airflow.sdk.exceptions import AirflowException, AirflowFailException

from gogoku_airflow.argv import CLI
from gogoku_airflow.connection import CLI_ENV_NAMES

TAIL_LINES = 50
INPUT_ERROR_STATUS = 2  # the CLI's exit status for bad input
# The CLI exits with the same status when the J-Quants API kept failing (5xx, 429, resets) through the
# client's own retries ("... still failing after N attempts ...; retry later ..."): not bad input, so the
# task's retries (minutes later) apply.
TRANSIENT_MARKERS = ("still failing after",)


def find_cli() -> str:
    """The `gogoku` executable of this Python environment first, then the one on PATH."""
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    found = shutil.which(CLI, path=search)
    if found is None:
        raise AirflowFailException(f"the `{CLI}` command is not installed here (pip install -e <project>)")
    return found


def subprocess_env(mapped: Mapping[str, str]) -> dict[str, str]:
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


def failure(argv: Sequence[str], returncode: int, tail: Sequence[str]) -> AirflowException:
    """The task failure for a CLI that exited non-zero: no retry for bad input (status 2)."""
    message = next((line.strip() for line in reversed(tail) if line.strip()), "no output")
    text = f"{CLI} {argv[0]} exited with status {returncode}: {message}"
    if returncode == INPUT_ERROR_STATUS and not any(marker in message for marker in TRANSIENT_MARKERS):
        return AirflowFailException(f"{text} (bad input or configuration: not retried)")
    return AirflowException(text)


class CliProcess:
    """One `gogoku` run whose merged output goes to `log` line by line; `stop()` ends its process group."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[str] | None = None

    def run(self, command: Sequence[str], env: Mapping[str, str], log: Any, cwd: str | None = None
            ) -> tuple[int, list[str]]:
        tail: deque[str] = deque(maxlen=TAIL_LINES)
        self.process = subprocess.Popen(
            list(command), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=dict(env), cwd=cwd, text=True, bufsize=1,
            start_new_session=True,  # stop() ends the whole process group
        )
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            line = raw.rstrip("\n")
            log.info("%s", line)
            tail.append(line)
        return self.process.wait(), list(tail)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)


def run_local(argv: Sequence[str], mapped: Mapping[str, str], log: Any, process: CliProcess) -> dict[str, Any]:
    """Run `gogoku <argv>` in the worker with the mapped environment; its JSON result."""
    log.info("Running: %s %s", CLI, shlex.join(argv))
    log.info("Environment from the connection and variables: %s", ", ".join(sorted(mapped)))
    returncode, tail = process.run([find_cli(), *argv], subprocess_env(mapped), log)
    if returncode != 0:
        raise failure(argv, returncode, tail)
    result = last_json_object(tail)
    if result is None:
        raise AirflowException(f"{CLI} {argv[0]} succeeded but printed no JSON object as its result")
    return result
