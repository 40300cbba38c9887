"""A throw-away Airflow deployment of this project, driven through its REST API: the scheduler tests
(tests/scheduler/conftest.py) and bench/scheduler_ratelimit.py use it.

- `start_simulator()`: `gogoku sim serve` as its own process (a small universe, every plan's endpoints,
  a scaled rate limit of RATE_LIMIT requests per RATE_WINDOW_S seconds), its tables warmed up;
- `start_deployment()`: `scripts/deployment.py up` on a fresh PostgreSQL database with a unique name
  (plus one for Optuna studies), free loopback ports, a temporary deploy dir and data root, the
  connection `jquants_default` on that simulator, the Variable gogoku_rate_limiter = a Redis URL on a
  test-only database (every task draws from one request budget; JQUANTS_RATE_LIMIT /
  JQUANTS_RATE_WINDOW_S match the simulator), retries after RETRY_DELAY_S seconds and DAGs paused at
  creation. It waits until the api-server reports a healthy scheduler and every DAG is parsed, within
  STARTUP_TIMEOUT_S, else raises with the tails of the services' logs; `Deployment.stop()` runs
  `deployment.py down --drop-database` and ends whatever still runs with the deployment's
  AIRFLOW_HOME (task processes included);
- `AirflowRest`: the official client (apache-airflow-client) with a JWT of the SimpleAuthManager user
  (POST /auth/token); its waits poll with a timeout and raise with the run's task states and the tail
  of each failed task's log;
- `measure_refresh_rate()`: a gogoku_cache_refresh run whose refresh tasks (pool jquants_api) run at
  once, and the simulator's figures over it (requests, 429s, throughput against the enforced rate
  while the tasks wanted the API).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
GOGOKU = str(BIN / "gogoku")
DEPLOYMENT = ROOT / "scripts" / "deployment.py"
PG_HOST, PG_PORT, PG_USER = "127.0.0.1", "5432", "postgres"
# A Redis database of its own (the unit and integration tests use /15); the limiter's key is a hash of
# this session's simulator URL and API key, so concurrent sessions never share a budget.
REDIS_URL = os.environ.get("GOGOKU_TEST_REDIS_URL", "redis://127.0.0.1:6379/14")
SIM_STOCKS = 20
SIM_SEED = 7
# Through tomorrow (UTC): the refresh of the latest 08:00 Tokyo that unpausing the DAG starts asks for the
# sessions just before today, as in production; a cache whose newest file is empty (a range past the
# simulated market) fails `gogoku monitor` (gogoku.predict.latest_cached_date).
SIM_START = "2022-06-01"
SIM_END = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1)).isoformat()
# The standard plan's limit (120 requests per 60 s) with the window scaled: RATE_LIMIT per RATE_WINDOW_S.
# The shared limiter spaces requests window x 1.05 / limit apart, so a longer window leaves more slack
# (5 % of it) for a busy machine's delays between a reservation and the server.
RATE_LIMIT = int(os.environ.get("GOGOKU_TEST_RATE_LIMIT", "48"))
RATE_WINDOW_S = float(os.environ.get("GOGOKU_TEST_RATE_WINDOW_S", "12"))
RETRY_DELAY_S = 3
STARTUP_TIMEOUT_S = 180.0
EXPECTED_DAGS = frozenset({"gogoku_cache_refresh", "gogoku_dataset", "gogoku_dataset_monthly", "gogoku_training",
                           "gogoku_hpo", "gogoku_daily"})
# Runs the scheduler starts for new datasets have the params' defaults: the small LightGBM of the DAG tests.
TRAINING_OVERRIDES = ["horizons=[1,5]", "splits.n_splits=2", "splits.min_train=40", "splits.min_test=20",
                      "splits.embargo=5", "validation.embargo=5", "model.num_boost_round=20",
                      "model.params.min_data_in_leaf=20"]
TERMINAL = frozenset({"success", "failed"})
# One query per source, so that the simulator builds each table before the tests count time or 429s: a
# cold table holds its event loop for up to a few hundred ms, and requests queued behind it reach the
# rate check together.
WARM_SOURCES = ("trading_calendar", "listed_info", "daily_quotes", "statements", "announcement", "topix",
                "trades_spec", "weekly_margin_interest", "daily_margin_interest", "short_selling",
                "short_selling_positions", "index_option", "futures")


class HarnessError(RuntimeError):
    """The deployment or the simulator could not be started."""


def reachable(url: str) -> bool:
    """Whether something listens at the host and port of `url` (scheme://[user@]host:port/...)."""
    parts = urllib.parse.urlsplit(url)
    with contextlib.suppress(OSError), socket.create_connection((parts.hostname, parts.port), timeout=2):
        return True
    return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def psql(sql: str, database: str = "postgres") -> str:
    proc = subprocess.run(["psql", "-h", PG_HOST, "-p", PG_PORT, "-U", PG_USER, "-d", database, "-tAc", sql],
                          capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise HarnessError(f"psql {sql!r}: {proc.stderr.strip()}")
    return proc.stdout.strip()


def missing_services() -> list[str]:
    """What the deployment needs and this machine lacks (empty: all there)."""
    missing = []
    if shutil.which("psql") is None:
        missing.append("the psql client")
    if not reachable(f"postgresql://{PG_HOST}:{PG_PORT}"):
        missing.append(f"PostgreSQL at {PG_HOST}:{PG_PORT}")
    if not reachable(REDIS_URL):
        missing.append(f"Redis at {urllib.parse.urlsplit(REDIS_URL).netloc}")
    return missing


# ---------------------------------------------------------------- the simulator
@dataclass
class Simulator:
    """`gogoku sim serve` as its own process, and its test hooks."""

    process: subprocess.Popen[str]
    url: str
    api_key: str
    log: Path
    rate_limit: int
    rate_window_s: float

    @property
    def rate_per_s(self) -> float:
        return self.rate_limit / self.rate_window_s

    def _call(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.url}{path}", data=data, method="GET" if body is None else "POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as resp:
            return json.loads(resp.read())

    def stats(self) -> dict[str, Any]:
        """Requests per path, answers per status, faults per kind (GET /__sim__/stats)."""
        stats = self._call("/__sim__/stats")
        stats.pop("issued_tokens", None)
        return stats

    def reset(self) -> None:
        """Zero the counters (and the server's rate window)."""
        self._call("/__sim__/reset", {})

    def faults(self, **rates: float) -> dict[str, Any]:
        """Replace the fault rates from the next request on (no arguments: no faults)."""
        return self._call("/__sim__/faults", rates)

    def warm_up(self, day: str = "2024-06-03") -> None:
        from gogoku.jquants.endpoints import endpoint

        for source in WARM_SOURCES:
            query = urllib.parse.urlencode({"date": day})
            request = urllib.request.Request(f"{self.url}{endpoint(source).path('v2')}?{query}",
                                             headers={"x-api-key": self.api_key})
            with contextlib.suppress(urllib.error.HTTPError), urllib.request.urlopen(request, timeout=120) as resp:
                resp.read()
        self.reset()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        # The limiter's state of this account (it would expire by itself once idle).
        with contextlib.suppress(Exception):
            import redis

            from gogoku.jquants.ratelimit import limiter_key

            redis.Redis.from_url(REDIS_URL).delete(limiter_key(self.url, f"v2:{self.api_key}"))


def start_simulator(workdir: Path, rate_limit: int = RATE_LIMIT, rate_window_s: float = RATE_WINDOW_S) -> Simulator:
    log = workdir / "simulator.log"
    api_key = f"scheduler-tests-{uuid.uuid4().hex[:12]}"
    cmd = [GOGOKU, "sim", "serve", "--port", "0", "--plan", "premium", "--no-date-windows",
           "--stocks", str(SIM_STOCKS), "--seed", str(SIM_SEED), "--start", SIM_START, "--end", SIM_END,
           "--api-key", api_key, "--rate-limit", str(rate_limit), "--rate-window-s", f"{rate_window_s:g}"]
    with open(log, "ab") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL, text=True,
                                start_new_session=True)
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 60)
    line = proc.stdout.readline() if ready else ""
    if not line:
        proc.kill()
        raise HarnessError(f"gogoku sim serve printed no URL within 60 s:\n{log.read_text()[-3000:]}")
    sim = Simulator(proc, json.loads(line)["url"], api_key, log, rate_limit, rate_window_s)
    try:
        sim.warm_up()
    except BaseException:
        sim.stop()
        raise
    return sim


# ---------------------------------------------------------------- the REST client
def _state(value: Any) -> str:
    return "none" if value is None else str(getattr(value, "value", value))


class AirflowRest:
    """The official REST client (apache-airflow-client) with a JWT of the SimpleAuthManager user."""

    def __init__(self, url: str, user: str, password: str) -> None:
        import airflow_client.client as client

        self.url, self.user, self.password = url, user, password
        self.client = client
        self.api_client = client.ApiClient(client.Configuration(host=url, access_token=self.token()))
        self.dags = client.DAGApi(self.api_client)
        self.runs = client.DagRunApi(self.api_client)
        self.tis = client.TaskInstanceApi(self.api_client)
        self.xcoms = client.XComApi(self.api_client)
        self.backfills = client.BackfillApi(self.api_client)
        self.assets = client.AssetApi(self.api_client)
        self.variables = client.VariableApi(self.api_client)
        self.pools = client.PoolApi(self.api_client)

    def token(self) -> str:
        """POST /auth/token with the user's name and password: the access token (a JWT)."""
        body = json.dumps({"username": self.user, "password": self.password}).encode()
        request = urllib.request.Request(f"{self.url}/auth/token", data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as resp:
            return json.loads(resp.read())["access_token"]

    # -- DAGs, variables
    def unpause(self, dag_id: str) -> None:
        self.dags.patch_dag(dag_id, self.client.DAGPatchBody(is_paused=False))

    def pause(self, dag_id: str) -> None:
        self.dags.patch_dag(dag_id, self.client.DAGPatchBody(is_paused=True))

    def set_variable(self, key: str, value: str) -> None:
        self.variables.patch_variable(key, self.client.VariableBody(key=key, value=value))

    def get_variable(self, key: str) -> str:
        return self.variables.get_variable(key).value

    # -- runs and task instances
    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        body = self.client.TriggerDAGRunPostBody(conf=conf or {}, logical_date=None)
        return self.runs.trigger_dag_run(dag_id, body).dag_run_id

    def dag_runs(self, dag_id: str) -> list[Any]:
        return list(self.runs.get_dag_runs(dag_id, limit=100).dag_runs)

    def run_state(self, dag_id: str, run_id: str) -> str:
        return _state(self.runs.get_dag_run(dag_id, run_id).state)

    def task_instances(self, dag_id: str, run_id: str) -> list[Any]:
        return list(self.tis.get_task_instances(dag_id, run_id, limit=200).task_instances)

    def states(self, dag_id: str, run_id: str) -> dict[str, str]:
        """task_id (task_id[k] for a mapped one) -> state."""
        return {(ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"): _state(ti.state)
                for ti in self.task_instances(dag_id, run_id)}

    def xcom(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> Any:
        entry = self.xcoms.get_xcom_entry(dag_id, task_id, run_id, "return_value", map_index=map_index,
                                          deserialize=True)
        value = getattr(entry, "actual_instance", entry).value
        return json.loads(value) if isinstance(value, str) and value[:1] in "{[" else value

    def log(self, dag_id: str, run_id: str, task_id: str, try_number: int, map_index: int = -1) -> str:
        """A task try's log as text, one line per log event."""
        resp = self.tis.get_log(dag_id, run_id, task_id, try_number, full_content=True, map_index=map_index)
        content = resp.to_dict().get("content")
        if isinstance(content, str):
            return content
        lines = []
        for item in content or []:
            if hasattr(item, "to_dict"):
                item = item.to_dict()
            if not isinstance(item, dict):
                lines.append(str(item))
                continue
            extra = {k: v for k, v in item.items() if k not in ("event", "timestamp", "level", "logger")}
            lines.append(" ".join(str(p) for p in (item.get("timestamp", ""), item.get("level", ""),
                                                    item.get("event", ""), extra or "") if p))
        return "\n".join(lines)

    def report(self, dag_id: str, run_id: str) -> str:
        """The run's task states and the tail of each failed, retrying or running task's log."""
        try:
            tis = self.task_instances(dag_id, run_id)
        except Exception as exc:  # a failure's report must not fail
            return f"(no task instances: {exc})"
        lines = [f"{dag_id} {run_id}: " + json.dumps(
            {(ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"): _state(ti.state) for ti in tis},
            sort_keys=True)]
        for ti in tis:
            if _state(ti.state) in ("failed", "up_for_retry", "running") and ti.try_number:
                with contextlib.suppress(Exception):
                    tail = self.log(dag_id, run_id, ti.task_id, ti.try_number, ti.map_index).splitlines()[-40:]
                    lines.append(f"--- {ti.task_id}[{ti.map_index}] try {ti.try_number} ({_state(ti.state)}), "
                                 "last lines of its log:")
                    lines.extend(tail)
        return "\n".join(lines)

    def wait_run(self, dag_id: str, run_id: str, timeout_s: float, expect: str | None = "success") -> str:
        """Poll the run until it finishes, within `timeout_s`; raise with its report on a timeout or when it
        ends in another state than `expect` (None: any final state)."""
        deadline = time.monotonic() + timeout_s
        state = ""
        while time.monotonic() < deadline:
            state = self.run_state(dag_id, run_id)
            if state in TERMINAL:
                break
            time.sleep(1.0)
        else:
            raise AssertionError(f"{dag_id} {run_id} still {state} after {timeout_s:g}s\n{self.report(dag_id, run_id)}")
        if expect is not None and state != expect:
            raise AssertionError(f"{dag_id} {run_id} ended {state}, expected {expect}\n{self.report(dag_id, run_id)}")
        return state

    def wait_for(self, what: str, check: Callable[[], Any], timeout_s: float, explain: Callable[[], str],
                 every_s: float = 1.0) -> Any:
        """Poll `check()` until it returns something truthy (returned); raise with `explain()` on a timeout."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            value = check()
            if value:
                return value
            time.sleep(every_s)
        raise AssertionError(f"{what}: not within {timeout_s:g}s\n{explain()}")


# ---------------------------------------------------------------- the deployment
@dataclass
class Deployment:
    dir: Path
    url: str
    user: str
    password: str
    data_root: Path
    database: str
    hpo_database: str
    alerts_file: Path
    simulator: Simulator
    rest: AirflowRest | None = None
    env: dict[str, str] = field(repr=False, default_factory=dict)
    started_s: float = 0.0

    @property
    def hpo_storage(self) -> str:
        return f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{self.hpo_database}"

    @property
    def airflow_home(self) -> str:
        return str(self.dir / "airflow")

    def alerts(self) -> list[dict[str, Any]]:
        if not self.alerts_file.is_file():
            return []
        return [json.loads(line) for line in self.alerts_file.read_text().splitlines() if line.strip()]

    def log_tails(self, lines: int = 40) -> str:
        parts = []
        for path in sorted((self.dir / "logs").glob("*.log")):
            tail = path.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {path} (last {len(tail)} lines)\n" + "\n".join(tail))
        return "\n".join(parts)

    def stop(self) -> None:
        """`deployment.py down --drop-database`, then end leftovers and drop both databases (always)."""
        with contextlib.suppress(Exception):
            subprocess.run([sys.executable, str(DEPLOYMENT), "down", "--dir", str(self.dir), "--drop-database"],
                           env=self.env, capture_output=True, text=True, timeout=120)
        kill_leftovers(self.airflow_home)
        for database in (self.database, self.hpo_database):
            with contextlib.suppress(Exception):
                psql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def clean_environment() -> dict[str, str]:
    """This process's environment without Airflow, gogoku and J-Quants settings: other test folders
    (tests/dags) and the Makefile set some (a SQLite DB, AIRFLOW_VAR_* overrides) that would win over
    the deployment's own."""
    prefixes = ("AIRFLOW", "GOGOKU_", "JQUANTS_", "STORAGE_EMULATOR_HOST")
    return {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}


def _processes_with_env(name: str, value: str) -> list[int]:
    """Ids of the processes whose environment has name=value (a deployment's leftovers), this one excluded."""
    needle = f"{name}={value}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
    return found


def kill_leftovers(airflow_home: str) -> list[int]:
    """End (TERM, then KILL) every process started with AIRFLOW_HOME=`airflow_home`; their ids."""
    pids = _processes_with_env("AIRFLOW_HOME", airflow_home)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in pids):
            time.sleep(0.2)
    return pids


def start_deployment(simulator: Simulator, workdir: Path | None = None, *, parallelism: int = 8,
                     variables: dict[str, str] | None = None, settings: dict[str, str] | None = None,
                     timeout_s: float = STARTUP_TIMEOUT_S) -> Deployment:
    """`deployment.py up` for `simulator` (see the module docstring); raises HarnessError with the services'
    log tails when it is not healthy with every DAG parsed within `timeout_s`."""
    t0 = time.monotonic()
    deploy = Path(workdir or tempfile.mkdtemp(prefix="gogoku-deploy-"))
    data_root = deploy / "data"
    name = f"gogoku_sched_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    host, port = simulator.url.split("//", 1)[1].split(":")
    connection = {"conn_type": "http", "host": host, "schema": "http", "port": int(port),
                  "password": simulator.api_key, "extra": {"api_version": "v2"}}
    alerts_file = deploy / "alerts.jsonl"
    deployment = Deployment(deploy, "", "", "", data_root, name, f"{name}_hpo", alerts_file, simulator,
                            env=clean_environment())
    env_settings = {
        "AIRFLOW_CONN_JQUANTS_DEFAULT": json.dumps(connection),
        "JQUANTS_RATE_LIMIT": str(simulator.rate_limit),
        "JQUANTS_RATE_WINDOW_S": f"{simulator.rate_window_s:g}",
        "GOGOKU_RETRY_DELAY_S": str(RETRY_DELAY_S),
        # The DAG files are parsed once: nothing changes them during a session (saves a busy machine's CPU).
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "3600",
        "GOGOKU_TORCH_THREADS": "1",
        **(settings or {}),
    }
    variable_values = {
        "gogoku_plan_tier": "free",
        "gogoku_rate_limiter": REDIS_URL,
        "gogoku_alerts_file": str(alerts_file),
        "gogoku_hpo_storage": deployment.hpo_storage,
        "gogoku_training_overrides": json.dumps(TRAINING_OVERRIDES),
        **(variables or {}),
    }
    cmd = [sys.executable, str(DEPLOYMENT), "up", "--dir", str(deploy), "--api-port", str(free_port()),
           "--log-port", str(free_port()), "--trigger-log-port", str(free_port()), "--database", name,
           "--parallelism", str(parallelism), "--data-root", str(data_root), "--timeout", f"{timeout_s:g}",
           *(a for k, v in variable_values.items() for a in ("--set", f"{k}={v}")),
           *(a for k, v in env_settings.items() for a in ("--env", f"{k}={v}"))]
    try:
        psql(f'CREATE DATABASE "{deployment.hpo_database}"')
        try:
            proc = subprocess.run(cmd, env=deployment.env, capture_output=True, text=True, timeout=timeout_s + 120)
        except subprocess.TimeoutExpired:
            raise HarnessError(f"deployment.py up did not return within {timeout_s + 120:g}s\n"
                               f"{deployment.log_tails()}") from None
        if proc.returncode != 0:
            raise HarnessError(f"deployment.py up failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n"
                               f"{proc.stderr[-8000:]}")
        info = json.loads(proc.stdout[proc.stdout.index("{"):])
        deployment.url, deployment.user, deployment.password = info["url"], info["user"], info["password"]
        rest = deployment.rest = AirflowRest(info["url"], info["user"], info["password"])
        found: set[str] = set()

        def parsed() -> bool:
            found.update(d.dag_id for d in rest.dags.get_dags(limit=100).dags)
            return found >= EXPECTED_DAGS

        try:
            rest.wait_for("every DAG parsed", parsed, max(timeout_s - (time.monotonic() - t0), 10),
                          lambda: f"DAGs so far: {sorted(found)}\n{deployment.log_tails()}", every_s=2)
        except AssertionError as exc:
            raise HarnessError(str(exc)) from None
        errors = rest.client.ImportErrorApi(rest.api_client).get_import_errors().import_errors
        if errors:
            raise HarnessError("import errors: " + "\n".join(f"{e.filename}: {e.stack_trace}" for e in errors))
    except BaseException:
        deployment.stop()
        raise
    deployment.started_s = time.monotonic() - t0
    return deployment


# ---------------------------------------------------------------- the shared request budget
REFRESH_DAG = "gogoku_cache_refresh"


def _overlap(intervals: list[tuple[dt.datetime, dt.datetime]]) -> int:
    """The most intervals open at one moment."""
    edges = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals],
                   key=lambda e: (e[0], e[1]))
    most = current = 0
    for _, step in edges:
        current += step
        most = max(most, current)
    return most


def unpause_refresh(rest: AirflowRest, appear_s: float = 30.0, timeout_s: float = 240.0) -> str | None:
    """Unpause gogoku_cache_refresh and wait for the scheduled run it starts (catchup off: the latest
    08:00 Tokyo) to finish, in any state; its run id (None if none came within `appear_s`)."""
    rest.unpause(REFRESH_DAG)
    deadline = time.monotonic() + appear_s
    scheduled: list[Any] = []
    while time.monotonic() < deadline and not scheduled:
        scheduled = [r for r in rest.dag_runs(REFRESH_DAG) if _state(r.run_type) == "scheduled"]
        if not scheduled:
            time.sleep(1)
    if not scheduled:
        return None
    run_id = scheduled[0].dag_run_id
    rest.wait_run(REFRESH_DAG, run_id, timeout_s, expect=None)
    return run_id


ANNOUNCE = re.compile(r"request\(s\) to (/\S+)")
LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?)")


def demand_intervals(logs: dict[str, str], samples: list[tuple[float, int, dict[str, int]]]
                     ) -> dict[str, tuple[float, float]]:
    """Per refresh task, when it wanted the API: from its client's "N request(s) to <path>" log line
    (every request of the range is then waiting for the limiter) to the last sample at which its
    path's count grew (epoch seconds). Tasks that made no request are left out."""
    found = {}
    for task_id, text in logs.items():
        announced, paths = [], set()
        for line in text.splitlines():
            match, stamp = ANNOUNCE.search(line), LOG_TIME.match(line)
            if match and stamp:
                announced.append(dt.datetime.fromisoformat(stamp.group(1).replace(" ", "T")).timestamp())
                paths.add(match.group(1))
        grew = [moment for i, (moment, _, counts) in enumerate(samples) if i and any(
            counts.get(p, 0) > samples[i - 1][2].get(p, 0) for p in paths)]
        if announced and grew:
            found[task_id] = (min(announced), max(grew))
    return found


def rate_while(intervals: list[tuple[float, float]], samples: list[tuple[float, int, dict[str, int]]],
               at_least: int = 1) -> tuple[float, int]:
    """(seconds, answered requests) over the polling intervals that lie within at least `at_least` of
    `intervals` (1: some task wanted the API; 2: two or more shared it)."""
    seconds, answered = 0.0, 0
    for (t0, ok0, _), (t1, ok1, _) in zip(samples, samples[1:], strict=False):
        if sum(1 for first, last in intervals if first <= t0 and t1 <= last) >= at_least:
            seconds += t1 - t0
            answered += ok1 - ok0
    return seconds, answered


def measure_refresh_rate(rest: AirflowRest, sim: Simulator, *, date: str = "2022-10-14", window_days: int = 120,
                         plan: str = "premium", timeout_s: float = 300.0, poll_s: float = 0.2) -> dict[str, Any]:
    """One gogoku_cache_refresh run on `plan` for `date` (an uncached window, before the tests' datasets
    and their lookback: every day-by-day source asks once per business day, 82 requests each), its
    refresh tasks 4 at a time (pool jquants_api), all through the shared limiter. Any refresh run still active ends first; then the
    simulator's counters are zeroed and polled every `poll_s` (answers, and requests per API path).

    `rate_per_s` is the rate of answered requests while some refresh task wanted the API (from its
    client's "N request(s)" log line to its last answer: `demand_intervals`), `shared_s` the part of that
    time when two or more did. `overall_rate_per_s` is the rate between the first and the last answer
    of the run, which also counts the seconds when no task was asking (a task's process starting, the
    scheduler queuing the next one)."""
    for run in rest.dag_runs(REFRESH_DAG):
        if _state(run.state) not in TERMINAL:
            rest.wait_run(REFRESH_DAG, run.dag_run_id, timeout_s, expect=None)
    previous_plan = rest.get_variable("gogoku_plan_tier")
    pool = rest.pools.get_pool("jquants_api")
    rest.set_variable("gogoku_plan_tier", plan)
    try:
        rest.unpause(REFRESH_DAG)
        sim.reset()
        t0 = time.monotonic()
        run_id = rest.trigger(REFRESH_DAG, {"date": date, "window_days": window_days})
        samples: list[tuple[float, int, dict[str, int]]] = []
        state = ""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            stats = sim.stats()
            samples.append((time.time(), stats["statuses"].get("200", 0), stats["requests"]))
            state = rest.run_state(REFRESH_DAG, run_id)
            if state in TERMINAL:
                break
            time.sleep(poll_s)
        wall = time.monotonic() - t0
        stats = sim.stats()
    finally:
        rest.set_variable("gogoku_plan_tier", previous_plan)
    if state != "success":
        raise AssertionError(f"{REFRESH_DAG} {run_id} is {state} after {wall:.0f}s\n{rest.report(REFRESH_DAG, run_id)}")
    tis = [ti for ti in rest.task_instances(REFRESH_DAG, run_id) if ti.task_id.startswith("refresh_")]
    ran = [ti for ti in tis if _state(ti.state) == "success"]
    calls = {ti.task_id: rest.xcom(REFRESH_DAG, run_id, ti.task_id)["api_calls"] for ti in ran}
    moved = [s for i, s in enumerate(samples) if s[1] and (i == 0 or s[1] > samples[i - 1][1])]
    span = moved[-1][0] - moved[0][0] if len(moved) > 1 else 0.0
    overall = (moved[-1][1] - moved[0][1]) / span if span else 0.0
    demand = demand_intervals({ti.task_id: rest.log(REFRESH_DAG, run_id, ti.task_id, ti.try_number)
                               for ti in ran if calls[ti.task_id]}, samples)
    demand_s, demand_ok = rate_while(list(demand.values()), samples)
    shared_s, shared_ok = rate_while(list(demand.values()), samples, at_least=2)
    rate = demand_ok / demand_s if demand_s else 0.0
    return {
        "scenario": {"dag": REFRESH_DAG, "run_id": run_id, "plan": plan, "date": date, "window_days": window_days,
                     "server_limit": f"{sim.rate_limit} per {sim.rate_window_s:g}s", "limiter": "redis (shared)",
                     "pool_slots": pool.slots, "stocks": SIM_STOCKS},
        "refresh_tasks": len(ran),
        "most_refresh_tasks_at_once": _overlap([(ti.start_date, ti.end_date) for ti in ran]),
        "api_calls_per_task": dict(sorted(calls.items())),
        "requests": stats["total"],
        "http_200": stats["statuses"].get("200", 0),
        "http_429": stats["statuses"].get("429", 0),
        "statuses": stats["statuses"],
        "run_wall_s": round(wall, 1),
        "api_span_s": round(span, 2),
        "tasks_asking": len(demand),
        "demand_s": round(demand_s, 2),
        "demand_requests": demand_ok,
        "shared_s": round(shared_s, 2),
        "shared_requests": shared_ok,
        "rate_per_s": round(rate, 3),
        "overall_rate_per_s": round(overall, 3),
        "plan_rate_per_s": round(sim.rate_per_s, 3),
        "rate_vs_plan": round(rate / sim.rate_per_s, 3),
        "overall_rate_vs_plan": round(overall / sim.rate_per_s, 3),
    }
