"""Apply airflow_settings.yaml (the Astro CLI format) to the Airflow metadata database.

    python scripts/apply_airflow_settings.py [FILE] [--set NAME=VALUE ...]

Creates or updates each connection, pool and variable of FILE (default: airflow_settings.yaml next
to this folder), so running it twice changes nothing the second time. String values may use
`${NAME}` or `${NAME:-default}` for environment variables; `--set NAME=VALUE` overrides (or adds) a
variable, e.g. `--set gogoku_data_root=/abs/path`. Run it where the `airflow` command would run
(same AIRFLOW_HOME / database settings) after `airflow db migrate`. Secrets are never printed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import yaml

DEFAULT_FILE = Path(__file__).resolve().parents[1] / "airflow_settings.yaml"
PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
CONNECTION_FIELDS = {
    "conn_type": "conn_type", "conn_host": "host", "conn_schema": "schema", "conn_login": "login",
    "conn_password": "password", "conn_port": "port", "conn_extra": "extra", "conn_description": "description",
}


class SettingsError(Exception):
    pass


def expand(value: Any, where: str) -> Any:
    """Replace ${NAME} / ${NAME:-default} in strings (recursively in maps and lists)."""
    if isinstance(value, dict):
        return {k: expand(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [expand(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is None:
            raise SettingsError(f"{where}: environment variable {name} is not set (or write ${{{name}:-default}})")
        return default

    return PLACEHOLDER.sub(substitute, value)


def load_settings(path: Path, overrides: list[str]) -> dict[str, list[dict[str, Any]]]:
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise SettingsError(f"{path}: {exc}") from None
    section = doc.get("airflow") or {}
    settings = {key: expand(section.get(key) or [], key) for key in ("connections", "pools", "variables")}
    for item in overrides:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise SettingsError(f"--set {item!r}: expected NAME=VALUE")
        variables = [v for v in settings["variables"] if v.get("variable_name") != name]
        settings["variables"] = [*variables, {"variable_name": name, "variable_value": value}]
    return settings


def connection_fields(item: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(item) - set(CONNECTION_FIELDS) - {"conn_id", "conn_uri"})
    if unknown:
        raise SettingsError(f"connection {item.get('conn_id')}: unknown field(s) {', '.join(unknown)}")
    if item.get("conn_uri"):
        from airflow.models.connection import Connection

        parsed = Connection(conn_id=item["conn_id"], uri=item["conn_uri"])
        fields = {f: getattr(parsed, f) for f in ("conn_type", "host", "schema", "login", "password", "port")}
        fields["extra"] = parsed.extra
    else:
        fields = {attr: item.get(key) for key, attr in CONNECTION_FIELDS.items() if key != "conn_description"}
        if isinstance(fields["extra"], dict):
            fields["extra"] = json.dumps(fields["extra"], sort_keys=True)
        if fields["port"] not in (None, ""):
            fields["port"] = int(fields["port"])
    fields["description"] = item.get("conn_description")
    return {k: (None if v == "" else v) for k, v in fields.items()}


def apply(settings: dict[str, list[dict[str, Any]]]) -> list[str]:
    from airflow.models.connection import Connection
    from airflow.models.pool import Pool
    from airflow.models.variable import Variable
    from airflow.utils.session import create_session
    from sqlalchemy import select

    done = []
    with create_session() as session:
        for item in settings["connections"]:
            conn_id = item.get("conn_id")
            if not conn_id:
                raise SettingsError(f"connection without conn_id: {sorted(item)}")
            fields = connection_fields(item)
            existing = session.scalar(select(Connection).where(Connection.conn_id == conn_id))
            # Replaced, not updated: the model ignores an empty password, which would keep an old secret.
            if existing is not None:
                session.delete(existing)
                session.flush()
            session.add(Connection(conn_id=conn_id, **fields))
            action = "replaced" if existing is not None else "created"
            done.append(f"connection {conn_id} ({fields['conn_type']}, host {fields['host']}): {action}")
        for item in settings["pools"]:
            name = item.get("pool_name")
            try:
                slots = int(item.get("pool_slot"))
            except (TypeError, ValueError):
                raise SettingsError(f"pool {name}: pool_slot {item.get('pool_slot')!r} is not an integer") from None
            Pool.create_or_update_pool(
                name, slots, item.get("pool_description") or "", include_deferred=False, session=session
            )
            done.append(f"pool {name}: {slots} slots")
        for item in settings["variables"]:
            name = item.get("variable_name")
            if not name:
                raise SettingsError(f"variable without variable_name: {sorted(item)}")
            value = item.get("variable_value")
            Variable.set(name, "" if value is None else str(value), session=session)
            done.append(f"variable {name}")
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", nargs="?", type=Path, default=DEFAULT_FILE)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="NAME=VALUE",
                        help="set (or add) a variable, overriding the file")
    args = parser.parse_args(argv)
    try:
        for line in apply(load_settings(args.file, args.overrides)):
            print(line)
    except SettingsError as exc:
        print(f"apply_airflow_settings: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
