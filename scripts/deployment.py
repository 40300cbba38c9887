"""A local Airflow deployment of this project from its own files: `make up`, `make down`.

PostgreSQL metadata database (the server at $GOGOKU_PG_HOST:$GOGOKU_PG_PORT, database
$GOGOKU_PG_DATABASE, created if missing), LocalExecutor, and the four Airflow services
(api-server, scheduler, dag-processor, triggerer) as background processes on loopback ports. Every
setting they need is written into `<deploy dir>/airflow.env` (AIRFLOW__SECTION__KEY variables, the
way the official image and Helm chart configure Airflow); secrets (Fernet key, API secret, JWT
secret, the admin password) are generated once into `<deploy dir>/secrets.env` and kept across
`down`/`up`. `up` migrates the database, applies airflow_settings.yaml, starts the services, waits
for the api-server's health check and prints the UI URL with the user and password.

    python scripts/deployment.py up [--dir .deploy] [--api-port 8080] [--log-port 8793] [--trigger-log-port 8794]
        [--database gogoku_airflow] [--parallelism 8] [--data-root DIR] [--timeout 180]
        [--set VARIABLE=VALUE ...] [--env NAME=VALUE ...]
    python scripts/deployment.py down [--dir .deploy] [--drop-database]
    python scripts/deployment.py status [--dir .deploy]

`--set` overrides (or adds) an Airflow Variable of airflow_settings.yaml in the metadata database
(scripts/apply_airflow_settings.py), e.g. `--set gogoku_plan_tier=free`; `--env` adds a setting to
airflow.env, given to every service and so to every task (e.g. `--env GOGOKU_RETRY_DELAY_S=5`,
`--env AIRFLOW_CONN_JQUANTS_DEFAULT=...`). The environment `up` runs in reaches the services too, but
only what airflow.env holds is written down. `down --drop-database` also drops the metadata database
(throw-away deployments: the scheduler tests).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import re
import secrets
import shlex
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SERVICES = ("api-server", "scheduler", "dag-processor", "triggerer")
ADMIN = "admin"
ASSET_MANAGER = "gogoku_airflow.asset_manager.GogokuAssetManager"


def _env_file(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    out = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            out[key.strip()] = value.strip()
    return out


def _write_env(path: Path, values: dict[str, str], header: str) -> None:
    lines = [f"# {header}"] + [f"{k}={v}" for k, v in values.items()]
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.chmod(0o600)
    tmp.replace(path)


def secrets_env(deploy: Path) -> dict[str, str]:
    """The deployment's secrets, generated once (a Fernet key, the API and JWT secrets, the admin password)."""
    path = deploy / "secrets.env"
    values = _env_file(path)
    wanted = {
        "AIRFLOW__CORE__FERNET_KEY": lambda: base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        "AIRFLOW__API__SECRET_KEY": lambda: secrets.token_urlsafe(32),
        "AIRFLOW__API_AUTH__JWT_SECRET": lambda: secrets.token_urlsafe(32),
        "GOGOKU_ADMIN_PASSWORD": lambda: secrets.token_urlsafe(12),
    }
    changed = False
    for key, make in wanted.items():
        if not values.get(key):
            values[key] = make()
            changed = True
    if changed:
        _write_env(path, values, "generated once by scripts/deployment.py; keep it private")
    return values


def airflow_env(deploy: Path, api_port: int, log_port: int, trigger_log_port: int, data_root: str,
                database: str | None = None, parallelism: int | None = None) -> dict[str, str]:
    """Every Airflow setting of the deployment (written to airflow.env, readable by an operator)."""
    pg_host = os.environ.get("GOGOKU_PG_HOST", "127.0.0.1")
    pg_port = os.environ.get("GOGOKU_PG_PORT", "5432")
    pg_user = os.environ.get("GOGOKU_PG_USER", "postgres")
    database = database or os.environ.get("GOGOKU_PG_DATABASE", "gogoku_airflow")
    home = deploy / "airflow"
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://{pg_user}@{pg_host}:{pg_port}/{database}",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": str(parallelism or os.environ.get("GOGOKU_PARALLELISM", "8")),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": os.environ.get("GOGOKU_PAUSED_AT_CREATION", "True"),
        # Every asset event is consumed by a run of its consumers (include/gogoku_airflow/asset_manager.py).
        "AIRFLOW__CORE__ASSET_MANAGER_CLASS": ASSET_MANAGER,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(deploy / "passwords.json"),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{api_port}",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(log_port),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(trigger_log_port),
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": os.environ.get("GOGOKU_DAG_REFRESH_S", "30"),
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
        "GOGOKU_DATA_ROOT": data_root,
        "GOGOKU_DEADLINE_ALERTS": "1",
        "PYTHONUNBUFFERED": "1",
    }


def _run(cmd: list[str], env: dict[str, str], what: str, timeout: float = 600) -> str:
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        sys.exit(f"deployment: {what} failed ({shlex.join(cmd)}):\n{(proc.stdout + proc.stderr)[-3000:]}")
    return proc.stdout


DATABASE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def _database(env: dict[str, str]) -> tuple[str, list[str]]:
    """(database name, the psql command on the server's `postgres` database) of the deployment's DB URL."""
    url = env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    database = url.rsplit("/", 1)[1]
    host, port = url.split("@", 1)[1].split("/", 1)[0].split(":")
    user = url.split("//", 1)[1].split("@", 1)[0]
    if not DATABASE_NAME.match(database):
        sys.exit(f"deployment: database name {database!r}: expected letters, digits and underscores")
    return database, ["psql", "-h", host, "-p", port, "-U", user, "-d", "postgres", "-tAc"]


def create_database(env: dict[str, str]) -> None:
    database, psql = _database(env)
    exists = _run([*psql, f"SELECT 1 FROM pg_database WHERE datname = '{database}'"], env, "checking the database")
    if exists.strip() != "1":
        _run([*psql, f'CREATE DATABASE "{database}"'], env, f"creating the database {database}")


def drop_database(env: dict[str, str]) -> str:
    database, psql = _database(env)
    _run([*psql, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'], env, f"dropping the database {database}")
    return database


def _pairs(items: list[str], flag: str) -> dict[str, str]:
    """NAME=VALUE items of a repeated option, checked."""
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            sys.exit(f"deployment: {flag} {item!r}: expected NAME=VALUE")
        out[name.strip()] = value
    return out


def log_tails(deploy: Path, lines: int = 40) -> str:
    """The last lines of each service's log, for a failure message."""
    parts = []
    for name in SERVICES:
        path = deploy / "logs" / f"{name}.log"
        if path.is_file():
            tail = path.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {path} (last {len(tail)} lines)\n" + "\n".join(tail))
    return "\n".join(parts)


def _pids(deploy: Path) -> dict[str, int]:
    found = {}
    for name in SERVICES:
        path = deploy / "run" / f"{name}.pid"
        if path.is_file():
            try:
                pid = int(path.read_text().strip())
                os.kill(pid, 0)
                found[name] = pid
            except (ValueError, ProcessLookupError, PermissionError):
                path.unlink(missing_ok=True)
    return found


def _healthy(api_port: int) -> dict | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{api_port}/api/v2/monitor/health", timeout=5) as resp:
            return json.load(resp)
    except (OSError, urllib.error.URLError, ValueError):
        return None


def up(args: argparse.Namespace) -> int:
    deploy = Path(args.dir).absolute()
    for sub in ("run", "logs", "airflow"):
        (deploy / sub).mkdir(parents=True, exist_ok=True)
    if _pids(deploy):
        print(f"deployment: already running ({', '.join(_pids(deploy))}); `make down` first", file=sys.stderr)
        return 1
    data_root = args.data_root or str(deploy / "data")
    env_values = airflow_env(deploy, args.api_port, args.log_port, args.trigger_log_port, data_root,
                             database=args.database, parallelism=args.parallelism)
    env_values.update(_pairs(args.env, "--env"))
    variables = _pairs(args.set, "--set")
    _write_env(deploy / "airflow.env", env_values, "written by scripts/deployment.py up; the deployment's settings")
    secret = secrets_env(deploy)
    (deploy / "passwords.json").write_text(json.dumps({ADMIN: secret["GOGOKU_ADMIN_PASSWORD"]}))
    (deploy / "passwords.json").chmod(0o600)
    env = {**os.environ, **env_values, **secret, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("GOGOKU_ADMIN_PASSWORD", None)
    create_database(env)
    print("deployment: migrating the metadata database ...", flush=True)
    _run([str(BIN / "airflow"), "db", "migrate"], env, "airflow db migrate", timeout=900)
    overrides = [f"{k}={v}" for k, v in {"gogoku_data_root": data_root, **variables}.items()]
    _run([str(BIN / "python"), str(ROOT / "scripts" / "apply_airflow_settings.py"), str(ROOT / "airflow_settings.yaml"),
          *(a for o in overrides for a in ("--set", o))], env, "applying airflow_settings.yaml")
    for name in SERVICES:
        cmd = [str(BIN / "airflow"), name]
        if name == "api-server":
            cmd += ["--port", str(args.api_port), "--host", "127.0.0.1"]
        log = open(deploy / "logs" / f"{name}.log", "ab")  # noqa: SIM115 (handed to the child process)
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, cwd=deploy)
        (deploy / "run" / f"{name}.pid").write_text(str(proc.pid))
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        health = _healthy(args.api_port)
        if health and health.get("scheduler", {}).get("status") == "healthy":
            break
        dead = [n for n in SERVICES if n not in _pids(deploy)]
        if dead:
            down(args)
            sys.exit(f"deployment: {', '.join(dead)} stopped at start; see {deploy / 'logs'}\n{log_tails(deploy)}")
        time.sleep(2)
    else:
        down(args)
        sys.exit(f"deployment: the api-server did not report a healthy scheduler within {args.timeout:g}s; "
                 f"see {deploy / 'logs'}\n{log_tails(deploy)}")
    print(json.dumps({"url": f"http://127.0.0.1:{args.api_port}", "user": ADMIN,
                      "password": secret["GOGOKU_ADMIN_PASSWORD"], "settings": str(deploy / "airflow.env"),
                      "logs": str(deploy / "logs"), "data_root": data_root}, indent=2))
    return 0


def down(args: argparse.Namespace) -> int:
    deploy = Path(args.dir).absolute()
    running = _pids(deploy)
    for pid in running.values():
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while _pids(deploy) and time.monotonic() < deadline:
        time.sleep(0.5)
    for pid in _pids(deploy).values():
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    for name in SERVICES:
        (deploy / "run" / f"{name}.pid").unlink(missing_ok=True)
    print(f"deployment: stopped {', '.join(running) or 'nothing (not running)'}")
    if getattr(args, "drop_database", False):
        settings = _env_file(deploy / "airflow.env")
        if "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN" in settings:
            env = {**os.environ, **settings}
            print(f"deployment: dropped the database {drop_database(env)}")
    return 0


def status(args: argparse.Namespace) -> int:
    deploy = Path(args.dir).absolute()
    settings = _env_file(deploy / "airflow.env")
    port = int(settings.get("AIRFLOW__API__PORT", args.api_port))
    print(json.dumps({"running": _pids(deploy), "health": _healthy(port), "url": f"http://127.0.0.1:{port}"}, indent=2))
    return 0 if _pids(deploy) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("up", "down", "status"))
    parser.add_argument("--dir", default=os.environ.get("GOGOKU_DEPLOY_DIR", str(ROOT / ".deploy")))
    parser.add_argument("--api-port", type=int, default=int(os.environ.get("GOGOKU_API_PORT", "8080")))
    parser.add_argument("--log-port", type=int, default=int(os.environ.get("GOGOKU_LOG_PORT", "8793")))
    parser.add_argument("--trigger-log-port", type=int, default=int(os.environ.get("GOGOKU_TRIGGER_LOG_PORT", "8794")))
    parser.add_argument("--data-root", default=os.environ.get("GOGOKU_DATA_ROOT"))
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for a healthy deployment")
    parser.add_argument("--database", default=None,
                        help="the metadata database on the PostgreSQL server (default $GOGOKU_PG_DATABASE or gogoku_airflow)")
    parser.add_argument("--parallelism", type=int, default=None,
                        help="task instances running at once (AIRFLOW__CORE__PARALLELISM; default $GOGOKU_PARALLELISM or 8)")
    parser.add_argument("--set", action="append", default=[], metavar="VARIABLE=VALUE",
                        help="up: set an Airflow Variable (overrides airflow_settings.yaml)")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="up: a setting for every service, written to airflow.env")
    parser.add_argument("--drop-database", action="store_true", help="down: also drop the metadata database")
    args = parser.parse_args(argv)
    return {"up": up, "down": down, "status": status}[args.action](args)


if __name__ == "__main__":
    sys.exit(main())
