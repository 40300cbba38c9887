"""The two images, checked as far as a machine without a Docker engine allows: hadolint, one Python
(the one their base images ship and constraints.txt was frozen with), the same pins, and the worker
image's pip command resolved in a clean venv of that Python. (The Airflow image's pip command is
`make install`'s, which every clean clone runs in a clean venv.)"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = {"airflow": ROOT / "docker" / "airflow.Dockerfile", "worker": ROOT / "docker" / "worker.Dockerfile"}
HADOLINT = Path(sys.executable).parent / "hadolint"


def pins(path: Path) -> dict[str, str]:
    """name -> version of the `name==version` lines of a requirements file (following -r includes)."""
    found: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("-r "):
            found.update(pins(path.parent / line[3:].strip()))
        elif "==" in line:
            name, version = line.split("==", 1)
            found[re.sub(r"[-_.]+", "-", name.lower())] = version
    return found


def run_lines(dockerfile: Path) -> list[str]:
    """The RUN instructions, continuation lines joined."""
    text = dockerfile.read_text().replace("\\\n", " ")
    return [line[4:].strip() for line in text.splitlines() if line.startswith("RUN ")]


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_hadolint_passes(image: str) -> None:
    proc = subprocess.run([str(HADOLINT), "--no-color", str(DOCKERFILES[image])], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_both_images_use_the_python_of_the_pins() -> None:
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert python == "3.11"  # constraints.txt was frozen on it
    bases = {name: re.search(r"^FROM (\S+)", path.read_text(), re.M).group(1) for name, path in DOCKERFILES.items()}
    assert bases["airflow"] == "apache/airflow:3.3.2-python3.11"
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", bases["worker"]), bases["worker"]
    for name, path in DOCKERFILES.items():
        # No other interpreter is installed or called: the base image's python and pip do everything.
        assert not [line for line in run_lines(path) if re.search(r"python3\.\d+|apt-get install[^&]*python", line)], name


def test_the_images_install_the_same_pins() -> None:
    constraints = pins(ROOT / "constraints.txt")
    everything = pins(ROOT / "requirements.txt")
    worker = pins(ROOT / "requirements-worker.txt")
    assert worker.items() <= everything.items()  # the Airflow image installs the worker's pins too
    for name, version in {**everything, **worker}.items():
        assert constraints.get(name) == version, (name, version, constraints.get(name))
    assert not any(name.startswith("apache-airflow") for name in worker)
    airflow_run = " ".join(run_lines(DOCKERFILES["airflow"]))
    assert "-r /opt/gogoku/requirements.txt -c /opt/gogoku/constraints.txt" in airflow_run
    makefile = (ROOT / "Makefile").read_text()
    assert "pip install --quiet -r requirements.txt -c constraints.txt" in makefile  # the same command
    worker_run = " ".join(run_lines(DOCKERFILES["worker"]))
    assert "pip install --no-cache-dir -r requirements-worker.txt -c constraints.txt" in worker_run


def test_the_worker_pip_command_resolves_in_a_clean_venv(tmp_path: Path) -> None:
    """The worker's install, resolved (not downloaded) by pip in a fresh Python 3.11 venv against the
    package index: a pin that conflicts with another or does not exist fails here, not in a build."""
    python = shutil.which("python3.11") or sys.executable
    venv = tmp_path / "venv"
    subprocess.run([python, "-m", "venv", str(venv)], check=True, timeout=120)
    report = tmp_path / "report.json"
    cmd = [str(venv / "bin" / "pip"), "install", "--dry-run", "--ignore-installed", "--quiet", "--report", str(report),
           "-r", "requirements-worker.txt", "-c", "constraints.txt"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    if proc.returncode != 0 and re.search(r"NewConnectionError|Temporary failure in name resolution|Network is unreachable",
                                          proc.stderr):
        pytest.skip(f"the package index cannot be reached: {proc.stderr.strip().splitlines()[-1]}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    # Without the local label: this machine's torch file is 2.13.0+cpu, PyPI's (the image's) 2.13.0.
    resolved = {re.sub(r"[-_.]+", "-", item["metadata"]["name"].lower()): item["metadata"]["version"].split("+")[0]
                for item in json.loads(report.read_text())["install"]}
    wanted = pins(ROOT / "requirements-worker.txt")
    for name, version in wanted.items():
        assert resolved.get(name) == version, (name, version, resolved.get(name))
    assert "apache-airflow" not in resolved
