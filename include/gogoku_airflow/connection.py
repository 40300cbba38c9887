"""The environment of a `gogoku` CLI run, from the connection `jquants_default` and the gogoku variables.

Connection (conn_type http):
- host `simulator`: the CLI's built-in simulator; JQUANTS_API_URL stays unset. Optional extras
  `sim_seed` / `sim_stocks` -> GOGOKU_SIM_SEED / GOGOKU_SIM_STOCKS (for pods, which inherit no env).
- otherwise JQUANTS_API_URL = schema://host[:port] (schema defaults to https; a host that already
  has a scheme is used as is), extra `api_version` -> JQUANTS_API_VERSION (v2 default, or v1);
  v2: password -> JQUANTS_API_KEY; v1: login/password -> JQUANTS_MAILADDRESS/JQUANTS_PASSWORD.
Variables: the plan tier (a DAG param where the DAG has one, else `gogoku_plan_tier`) ->
JQUANTS_PLAN_TIER; `gogoku_data_root` -> GOGOKU_DATA_ROOT.

Everything here is resolved when a task runs, never while a DAG file is parsed. Values are never
logged: callers log the names only (Airflow masks the connection password in logs as well).
"""

from __future__ import annotations

from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from gogoku_airflow.plans import DEFAULT_PLAN_TIER, PLAN_TIERS

JQUANTS_CONN_ID = "jquants_default"
SIMULATOR_HOST = "simulator"
DATA_ROOT_VARIABLE = "gogoku_data_root"
PLAN_TIER_VARIABLE = "gogoku_plan_tier"
HPO_STORAGE_VARIABLE = "gogoku_hpo_storage"
# redis://host:6379/0: one request budget for every task and pod using the API key (see the README).
RATE_LIMITER_VARIABLE = "gogoku_rate_limiter"
DEFAULT_DATA_ROOT = "data"
API_VERSIONS = ("v2", "v1")

# Every variable the mapping may set: a local run drops inherited values of these first, so that the
# connection is the only source of the API settings.
CLI_ENV_NAMES = (
    "JQUANTS_API_URL",
    "JQUANTS_API_VERSION",
    "JQUANTS_API_KEY",
    "JQUANTS_MAILADDRESS",
    "JQUANTS_PASSWORD",
    "JQUANTS_PLAN_TIER",
    "GOGOKU_DATA_ROOT",
    "GOGOKU_HPO_STORAGE",
)
SIM_EXTRAS = {"sim_seed": "GOGOKU_SIM_SEED", "sim_stocks": "GOGOKU_SIM_STOCKS"}


class InvalidConnection(AirflowFailException):
    """The J-Quants connection cannot be mapped: retrying cannot help."""


def connection_env(conn: Any) -> dict[str, str]:
    """JQUANTS_* variables for a connection (anything with host, schema, port, login, password, extra_dejson)."""
    extra = conn.extra_dejson or {}
    version = str(extra.get("api_version", "v2")).strip()
    if version not in API_VERSIONS:
        raise InvalidConnection(
            f"connection {conn.conn_id}: extra api_version {version!r} is not one of {', '.join(API_VERSIONS)}"
        )
    host = (conn.host or "").strip()
    if not host:
        raise InvalidConnection(f"connection {conn.conn_id} has no host: give '{SIMULATOR_HOST}' or the API host")
    env = {"JQUANTS_API_VERSION": version}
    if host == SIMULATOR_HOST:
        env.update({name: str(extra[key]) for key, name in SIM_EXTRAS.items() if extra.get(key) is not None})
        return env
    url = host if "://" in host else f"{(conn.schema or 'https').strip()}://{host}"
    env["JQUANTS_API_URL"] = f"{url.rstrip('/')}:{conn.port}" if conn.port else url.rstrip("/")
    if version == "v2":
        if conn.password:
            env["JQUANTS_API_KEY"] = conn.password
    else:
        if conn.login:
            env["JQUANTS_MAILADDRESS"] = conn.login
        if conn.password:
            env["JQUANTS_PASSWORD"] = conn.password
    return env


def variable_plan_tier() -> str:
    from airflow.sdk import Variable

    plan = str(Variable.get(PLAN_TIER_VARIABLE, default=DEFAULT_PLAN_TIER)).strip()
    if plan not in PLAN_TIERS:
        raise AirflowFailException(f"Variable {PLAN_TIER_VARIABLE}={plan!r} is not one of {', '.join(PLAN_TIERS)}")
    return plan


def cli_env(plan_tier: str | None = None) -> dict[str, str]:
    """The full environment mapping for a task run: connection + plan tier + data root."""
    from airflow.sdk import Connection, Variable

    env = connection_env(Connection.get(JQUANTS_CONN_ID))
    plan = plan_tier.strip() if plan_tier else variable_plan_tier()
    if plan not in PLAN_TIERS:
        raise AirflowFailException(f"plan tier {plan!r} is not one of {', '.join(PLAN_TIERS)}")
    env["JQUANTS_PLAN_TIER"] = plan
    env["GOGOKU_DATA_ROOT"] = Variable.get(DATA_ROOT_VARIABLE, default=DEFAULT_DATA_ROOT)
    # Both may hold a password: in pods they come from the credentials Secret when one is configured.
    for variable, name in ((HPO_STORAGE_VARIABLE, "GOGOKU_HPO_STORAGE"), (RATE_LIMITER_VARIABLE, "JQUANTS_RATE_LIMITER")):
        value = Variable.get(variable, default="")
        if value:
            env[name] = value
    return env
