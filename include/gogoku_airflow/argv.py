"""Rendered argv for the `gogoku` CLI, shared by the local and the pod runners."""

from __future__ import annotations

from typing import Any

from airflow.sdk.exceptions import AirflowFailException

CLI = "gogoku"


def finalize_argv(rendered: Any) -> list[str]:
    """The argument list after templating.

    An item that renders to an empty string (or None) is dropped, so that a template can make an
    option conditional, e.g. `--futures-features=...` only where an upstream task produced a file.
    """
    if isinstance(rendered, str | bytes) or not isinstance(rendered, list | tuple):
        raise AirflowFailException(f"gogoku argv must be a list of strings, got {type(rendered).__name__}")
    argv = []
    for item in rendered:
        if item is None or item == "":
            continue
        if not isinstance(item, str | int | float):
            raise AirflowFailException(f"gogoku argv item {item!r} is a {type(item).__name__}, not a string")
        argv.append(str(item))
    if not argv:
        raise AirflowFailException("gogoku argv is empty: give a subcommand")
    return argv
