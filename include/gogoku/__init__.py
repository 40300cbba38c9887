"""gogoku: J-Quants data layer, dataset builder and ATFT-GAT-FAN training (no Airflow imports)."""

from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path

__version__ = "0.1.0"


@functools.cache
def code_version() -> str:
    """The package version plus the source commit: $GOGOKU_CODE_COMMIT (set in images), else the
    checkout's `git rev-parse`, else the version alone."""
    commit = os.environ.get("GOGOKU_CODE_COMMIT", "").strip()
    if not commit:
        try:
            commit = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=Path(__file__).resolve().parent,
                                    capture_output=True, text=True, timeout=5).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            commit = ""
    return f"{__version__}+{commit}" if commit else __version__
