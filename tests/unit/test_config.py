"""Settings from the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from gogoku.config import Settings
from gogoku.errors import InputError


def test_defaults_run_on_the_builtin_simulator() -> None:
    s = Settings.from_env({})
    assert s.api_url is None and s.api_version == "v2" and s.plan_tier == "standard"
    assert s.data_root == Path("data").absolute() and s.data_root_url == "./data"
    assert (s.sim_seed, s.sim_stocks, s.rate_limit) == (42, 300, None)


def test_a_bucket_root_works_on_its_local_copy(tmp_path: Path) -> None:
    s = Settings.from_env({"GOGOKU_DATA_ROOT": "gs://gogoku-data/prod", "GOGOKU_LOCAL_CACHE": str(tmp_path)})
    assert s.data_root_url == "gs://gogoku-data/prod"  # kept intact for the sync
    assert s.data_root == tmp_path / "gs" / "gogoku-data" / "prod"
    assert s.store.url == "gs://gogoku-data/prod" and s.store.root.local == s.data_root


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"JQUANTS_PLAN_TIER": "gold"}, "JQUANTS_PLAN_TIER"),
        ({"JQUANTS_API_VERSION": "v3"}, "JQUANTS_API_VERSION"),
        ({"GOGOKU_SIM_SEED": "x"}, "GOGOKU_SIM_SEED"),
        ({"JQUANTS_RATE_LIMIT": "0"}, "JQUANTS_RATE_LIMIT"),
        ({"GOGOKU_DATA_ROOT": "gs:/"}, "GOGOKU_DATA_ROOT"),
    ],
)
def test_bad_settings_name_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(InputError, match=named):
        Settings.from_env(env)
