"""The Airflow-side helpers: connection -> CLI environment, params, plans, the market window, the local runner."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from airflow.sdk import Connection
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from gogoku_airflow.argv import finalize_argv
from gogoku_airflow.connection import InvalidConnection, cli_env, connection_env
from gogoku_airflow.log_tables import metrics_table
from gogoku_airflow.market_date import refresh_window
from gogoku_airflow.params import InvalidParam, check_choice, validate_date_range, validate_overrides
from gogoku_airflow.plans import MINIMUM_PLAN, PLAN_TIERS, SOURCES, plan_allows, sources_for_plan
from gogoku_airflow.runners import GogokuOperator

UTC = dt.UTC


def conn(**fields) -> Connection:
    return Connection(conn_id="jquants_default", conn_type="http", **fields)


# ---------------------------------------------------------------- connection -> environment
def test_simulator_host_sets_no_api_url() -> None:
    assert connection_env(conn(host="simulator")) == {"JQUANTS_API_VERSION": "v2"}
    extra = json.dumps({"sim_stocks": 50, "sim_seed": 3})
    assert connection_env(conn(host="simulator", extra=extra)) == {
        "JQUANTS_API_VERSION": "v2", "GOGOKU_SIM_STOCKS": "50", "GOGOKU_SIM_SEED": "3",
    }


def test_v2_connection_maps_url_and_key() -> None:
    env = connection_env(conn(host="api.jquants.com", schema="https", password="KEY", login="ignored@x"))
    assert env == {"JQUANTS_API_VERSION": "v2", "JQUANTS_API_URL": "https://api.jquants.com", "JQUANTS_API_KEY": "KEY"}
    env = connection_env(conn(host="127.0.0.1", schema="http", port=8765, password="k"))
    assert env["JQUANTS_API_URL"] == "http://127.0.0.1:8765"
    assert connection_env(conn(host="https://api.jquants.com/"))["JQUANTS_API_URL"] == "https://api.jquants.com"


def test_v1_connection_maps_mail_and_password() -> None:
    env = connection_env(conn(host="api.jquants.com", login="me@example.com", password="pw",
                              extra=json.dumps({"api_version": "v1"})))
    assert env == {
        "JQUANTS_API_VERSION": "v1", "JQUANTS_API_URL": "https://api.jquants.com",
        "JQUANTS_MAILADDRESS": "me@example.com", "JQUANTS_PASSWORD": "pw",
    }


@pytest.mark.parametrize(
    ("fields", "message"),
    [({"host": "api.jquants.com", "extra": json.dumps({"api_version": "v3"})}, "api_version 'v3'"),
     ({"host": ""}, "has no host")],
)
def test_bad_connection_fails_naming_the_field(fields: dict, message: str) -> None:
    with pytest.raises(InvalidConnection, match=message):
        connection_env(conn(**fields))


def test_cli_env_reads_connection_and_variables_at_run_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_JQUANTS_DEFAULT", json.dumps(
        {"conn_type": "http", "host": "api.jquants.com", "password": "KEY2"}))
    monkeypatch.setenv("AIRFLOW_VAR_GOGOKU_PLAN_TIER", "light")
    monkeypatch.setenv("AIRFLOW_VAR_GOGOKU_DATA_ROOT", "/srv/gogoku")
    assert cli_env() == {
        "JQUANTS_API_VERSION": "v2", "JQUANTS_API_URL": "https://api.jquants.com", "JQUANTS_API_KEY": "KEY2",
        "JQUANTS_PLAN_TIER": "light", "GOGOKU_DATA_ROOT": "/srv/gogoku",
    }
    assert cli_env("premium")["JQUANTS_PLAN_TIER"] == "premium"
    # The shared request budget and the HPO study's RDB reach every task from their Variables.
    monkeypatch.setenv("AIRFLOW_VAR_GOGOKU_RATE_LIMITER", "redis://:pw@redis:6379/0")
    monkeypatch.setenv("AIRFLOW_VAR_GOGOKU_HPO_STORAGE", "postgresql://u:pw@db/optuna")
    env = cli_env()
    assert env["JQUANTS_RATE_LIMITER"] == "redis://:pw@redis:6379/0"
    assert env["GOGOKU_HPO_STORAGE"] == "postgresql://u:pw@db/optuna"
    monkeypatch.setenv("AIRFLOW_VAR_GOGOKU_PLAN_TIER", "gold")
    with pytest.raises(AirflowFailException, match="gogoku_plan_tier='gold'"):
        cli_env()


# ---------------------------------------------------------------- params and plans
def test_date_range_checks_name_the_param() -> None:
    start, end = validate_date_range({"start": "2024-06-01", "end": "2024-06-30"})
    assert (start, end) == (dt.date(2024, 6, 1), dt.date(2024, 6, 30))
    with pytest.raises(InvalidParam, match=r"param 'end' \(2024-01-01\) is before param 'start' \(2024-06-01\)"):
        validate_date_range({"start": "2024-06-01", "end": "2024-01-01"})
    with pytest.raises(InvalidParam, match=r"param 'start' \(2024-13-01\) is not a date"):
        validate_date_range({"start": "2024-13-01", "end": "2024-01-01"})
    with pytest.raises(InvalidParam, match=r"param 'end' \(None\) is not a date"):
        validate_date_range({"start": "2024-01-01"})


def test_choice_and_overrides_checks_name_the_param() -> None:
    assert check_choice("plan_tier", "premium", PLAN_TIERS) == "premium"
    with pytest.raises(InvalidParam, match=r"param 'plan_tier' \(gold\) is not one of free, light, standard, premium"):
        check_choice("plan_tier", "gold", PLAN_TIERS)
    assert validate_overrides([" splits.n_splits=2 ", "+x=1"]) == ["splits.n_splits=2", "+x=1"]
    with pytest.raises(InvalidParam, match="param 'overrides'"):
        validate_overrides("splits.n_splits=2")
    with pytest.raises(InvalidParam, match="starts with '-'"):
        validate_overrides(["--help"])


def test_plans_mirror_the_endpoint_table() -> None:
    from gogoku.config import PLAN_TIERS as CORE_TIERS
    from gogoku.jquants.endpoints import ENDPOINTS

    assert PLAN_TIERS == CORE_TIERS
    assert set(MINIMUM_PLAN) == set(ENDPOINTS) and set(SOURCES) <= set(ENDPOINTS)
    for source, endpoint in ENDPOINTS.items():
        assert {p for p in PLAN_TIERS if plan_allows(p, source)} == set(endpoint.plans), source
    assert sources_for_plan("free") == ["daily_quotes", "statements", "listed_info", "trading_calendar", "announcement"]
    assert sources_for_plan("light") == [*sources_for_plan("free"), "topix", "trades_spec"]
    assert sources_for_plan("premium") == list(SOURCES)


def test_the_dags_fetch_every_dataset_input() -> None:
    from gogoku.dataset.inputs import CORE_SOURCES
    from gogoku.features.family_groups import FAMILY_SOURCES

    assert set(SOURCES) == {*CORE_SOURCES, *FAMILY_SOURCES, "futures"}


# ---------------------------------------------------------------- the market window
def test_tokyo_market_date_of_an_0800_jst_run() -> None:
    # 2025-01-05T23:00Z is 08:00 on Monday 2025-01-06 in Tokyo (not the UTC date 2025-01-05).
    window = refresh_window(dt.datetime(2025, 1, 5, 23, 0, tzinfo=UTC), None, 30)
    # The first session of 2025 opens that morning: the last closed one is 2024-12-30.
    assert window == {"market_date": "2025-01-06", "start": "2024-11-30", "end": "2024-12-30"}


@pytest.mark.parametrize(
    "moment",
    [dt.datetime(2025, 1, 10, 23, 0, tzinfo=UTC),  # Saturday 2025-01-11 in Tokyo
     dt.datetime(2025, 1, 12, 23, 0, tzinfo=UTC),  # Monday 2025-01-13, Coming of Age Day
     dt.datetime(2024, 12, 31, 23, 0, tzinfo=UTC)],  # 2025-01-01, exchange holiday
)
def test_no_window_off_business_days(moment: dt.datetime) -> None:
    assert refresh_window(moment, None, 30) is None


def test_date_override_wins_and_is_checked() -> None:
    window = refresh_window(dt.datetime(2025, 1, 10, 23, 0, tzinfo=UTC), "2025-01-14", 5)
    assert window == {"market_date": "2025-01-14", "start": "2025-01-05", "end": "2025-01-10"}
    with pytest.raises(InvalidParam, match=r"param 'date' \(14/01/2025\)"):
        refresh_window(dt.datetime(2025, 1, 10, 23, 0, tzinfo=UTC), "14/01/2025", 5)


# ---------------------------------------------------------------- argv and the local runner
def test_finalize_argv_drops_empty_items_only() -> None:
    assert finalize_argv(["dataset", "build", "", None, 420, "--offline"]) == ["dataset", "build", "420", "--offline"]
    with pytest.raises(AirflowFailException, match="list of strings"):
        finalize_argv("dataset build")
    with pytest.raises(AirflowFailException, match="is a dict"):
        finalize_argv(["train", {"a": 1}])


def test_local_runner_returns_the_cli_result_and_ignores_inherited_api_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # An inherited API URL pointing nowhere: the connection (the simulator) must win.
    monkeypatch.setenv("JQUANTS_API_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AIRFLOW_VAR_GOGOKU_DATA_ROOT", str(tmp_path / "data"))
    op = GogokuOperator(
        task_id="refresh_topix",
        argv=["cache", "refresh", "--sources", "topix", "--start", "2025-01-06", "--end", "2025-01-17"],
        plan_tier="light", runner="local",
    )
    result = op.execute(context={})
    topix = result["sources"]["topix"]
    assert Path(topix["uri"]).parent == tmp_path / "data" / "raw" / "topix"
    assert Path(topix["uri"]).is_file()
    assert topix["rows"] == 9  # business days 2025-01-06 .. 2025-01-17 (01-13 is a holiday)


def test_local_runner_bad_input_fails_at_once_with_the_cli_error_line(tmp_path: Path) -> None:
    missing = tmp_path / "nope.parquet"
    op = GogokuOperator(task_id="validate_dataset", argv=["dataset", "validate", str(missing)], runner="local")
    with pytest.raises(AirflowFailException, match=r"gogoku dataset exited with status 2: gogoku dataset: error: .*nope"
                       r".*not retried"):
        op.execute(context={})


def test_local_runner_other_failures_keep_their_retries() -> None:
    from gogoku_airflow.local import failure

    error = failure(["cache", "refresh"], 1, ["Traceback ...", "ConnectionResetError: reset by peer"])
    assert type(error) is AirflowException and "status 1: ConnectionResetError" in str(error)


def test_unknown_runner_fails_naming_the_variable() -> None:
    op = GogokuOperator(task_id="t", argv=["dataset", "validate", "x"], runner="slurm")
    with pytest.raises(AirflowFailException, match="Variable gogoku_runner='slurm': expected one of local"):
        op.execute(context={})


def test_metrics_table() -> None:
    table = metrics_table({"1d": {"rank_ic_mean": 0.0312, "n_days": 40}, "5d": {"rank_ic_mean": None, "n_days": 38}})
    assert table.splitlines() == [
        "    rank_ic_mean  n_days",
        "1d        0.0312      40",
        "5d             -      38",
    ]


@pytest.mark.usefixtures("airflow_db")
def test_a_pod_runner_without_a_kube_config_fails_at_once_saying_what_to_set(monkeypatch: pytest.MonkeyPatch,
                                                                             tmp_path: Path) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    monkeypatch.setenv("AIRFLOW_CONN_KUBERNETES_DEFAULT", json.dumps(
        {"conn_type": "kubernetes", "extra": {"kube_config_path": str(tmp_path / "no-such-kubeconfig")}}))
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-such-kubeconfig"))
    op = GogokuOperator(task_id="validate_dataset", argv=["dataset", "validate", "latest"], runner="kubernetes")
    with pytest.raises(AirflowFailException, match="kubernetes runner: no Kubernetes configuration .*kubernetes_default"):
        op.execute(context={})


def test_gke_runner_names_the_missing_cluster_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    for name in ("PROJECT", "LOCATION", "CLUSTER"):
        monkeypatch.delenv(f"AIRFLOW_VAR_GOGOKU_GKE_{name}", raising=False)
    op = GogokuOperator(task_id="t", argv=["dataset", "validate", "latest"], runner="gke")
    with pytest.raises(AirflowFailException, match="gke runner: set the Variable.s. gogoku_gke_project"):
        op.execute(context={})


# ---------------------------------------------------------------- deadlines
def test_market_morning_deadline_is_on_the_tokyo_clock() -> None:
    from gogoku_airflow.deadlines import MarketMorningDeadline, market_deadline

    # A run of 08:00 JST on 2025-01-08 (23:00 UTC the day before): its deadline is 08:45 JST that morning.
    run_at = dt.datetime(2025, 1, 7, 23, 0, tzinfo=dt.UTC)
    assert market_deadline(run_at, 8, 45) == dt.datetime(2025, 1, 7, 23, 45, tzinfo=dt.UTC)
    # A late run (08:40 JST) keeps the same deadline: nearer, not later.
    assert market_deadline(run_at + dt.timedelta(minutes=40), 8, 45) == market_deadline(run_at, 8, 45)
    reference = MarketMorningDeadline(hour=8, minute=30)
    assert MarketMorningDeadline.deserialize_reference(reference.serialize_reference()) == reference


def test_deadline_alerts_on_the_refresh_and_the_daily_dags(monkeypatch: pytest.MonkeyPatch) -> None:
    """Parsed as the scheduler parses them (GOGOKU_DEADLINE_ALERTS unset): both DAGs carry an 08:45 JST
    deadline that fires the gogoku notifier; `dags test` environments leave them out."""
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.delenv("GOGOKU_DEADLINE_ALERTS", raising=False)
    bag = DagBag(dag_folder=str(Path(__file__).resolve().parents[2] / "dags"))
    assert bag.import_errors == {}
    for dag_id in ("gogoku_cache_refresh", "gogoku_daily"):
        (alert,) = bag.dags[dag_id].deadline
        assert (alert.reference.hour, alert.reference.minute) == (8, 45)
        assert alert.callback.path.endswith("GogokuNotifier")
        assert alert.callback.kwargs["kind"] == "deadline_missed"
    monkeypatch.setenv("GOGOKU_DEADLINE_ALERTS", "0")
    bag = DagBag(dag_folder=str(Path(__file__).resolve().parents[2] / "dags"))
    assert not bag.dags["gogoku_daily"].deadline
