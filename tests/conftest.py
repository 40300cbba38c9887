"""Fixtures every test folder may use: a real GCS emulator on loopback (gcp-storage-emulator, in memory)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def gcs_emulator() -> Iterator[str]:
    """The emulator's URL (http://127.0.0.1:<port>), for STORAGE_EMULATOR_HOST."""
    from gcp_storage_emulator.server import create_server

    server = create_server("127.0.0.1", 0, in_memory=True)
    server.start()
    # Clients that drop a keep-alive connection make the emulator print a traceback per socket.
    server._api._httpd.handle_error = lambda request, client_address: None
    # The emulator binds port 0 itself; its HTTP server knows the port it got.
    yield f"http://127.0.0.1:{server._api._httpd.server_port}"
    server.stop()


@pytest.fixture()
def gcs_bucket(gcs_emulator: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A new empty bucket on the emulator; STORAGE_EMULATOR_HOST points at it for this test."""
    from gcsfs.core import GCSFileSystem

    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_emulator)
    name = f"gogoku-{uuid.uuid4().hex[:12]}"
    GCSFileSystem(token="anon", project="gogoku-emulator", skip_instance_cache=True).mkdir(name)
    assert os.environ["STORAGE_EMULATOR_HOST"] == gcs_emulator
    return name


# The longest test files, started first: with `--dist loadfile --no-loadscope-reorder` (make test) xdist
# hands files to the workers in collection order, so a long file collected last would run alone at the end
# while the other worker idles. (xdist's default reorders files by their number of tests, most first: the
# one-test chain files then ran last, one per worker, after everything else.)
LONGEST_FIRST = ("dags/test_isolated_chain.py", "dags/test_isolated_volume.py", "dags/test_dag_runs.py", "integration/test_point_in_time.py",
                 "dags/test_daily.py", "unit/test_hpo.py", "unit/test_trainer.py", "integration/test_cli_chunked.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        path = item.nodeid.split("::", 1)[0].removeprefix("tests/")
        return LONGEST_FIRST.index(path) if path in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: the order within a rank stays the collection order
