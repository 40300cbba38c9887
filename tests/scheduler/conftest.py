"""The scheduler tests' deployment: one per session (sched_harness.py has the details).

`simulator`: `gogoku sim serve` with a scaled standard-plan rate limit; `deployment`: a real Airflow
deployment (scripts/deployment.py up) on a fresh PostgreSQL database, its connection on that
simulator and its tasks on one shared request budget in Redis; `rest`: the REST client. Teardown
always stops the deployment, ends its leftover processes and drops its databases.

`refresh_dag`: gogoku_cache_refresh unpaused. With catchup off, the scheduler then starts the run of
the latest 08:00 Tokyo (as a production deployment does when the DAG is switched on); the fixture
waits for it, so that it never overlaps the tests' own runs, and returns its run id.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # sched_harness

from sched_harness import (  # noqa: E402
    AirflowRest,
    Deployment,
    HarnessError,
    Simulator,
    missing_services,
    start_deployment,
    start_simulator,
    unpause_refresh,
)


@pytest.fixture(scope="session")
def simulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    try:
        sim = start_simulator(tmp_path_factory.mktemp("simulator"))
    except HarnessError as exc:
        pytest.fail(str(exc))
    yield sim
    sim.stop()


@pytest.fixture(scope="session")
def deployment(simulator: Simulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    missing = missing_services()
    if missing:
        pytest.skip(f"the scheduler tests need {', '.join(missing)} (bash .ci/run starts PostgreSQL and Redis)")
    try:
        deployed = start_deployment(simulator, tmp_path_factory.mktemp("deploy"))
    except HarnessError as exc:
        pytest.fail(f"the deployment did not start:\n{exc}")
    print(f"\ndeployment up in {deployed.started_s:.1f}s at {deployed.url} (dir {deployed.dir})", file=sys.stderr)
    try:
        yield deployed
    finally:
        deployed.stop()


@pytest.fixture(scope="session")
def rest(deployment: Deployment) -> AirflowRest:
    assert deployment.rest is not None
    return deployment.rest


@pytest.fixture(scope="session")
def refresh_dag(rest: AirflowRest) -> str | None:
    """Unpause gogoku_cache_refresh and wait for the scheduled run it starts; that run's id (None if none)."""
    return unpause_refresh(rest)
