"""`gogoku sim serve` with the protocol options: plan window and today, rate limit, row cap, v1 credentials,
per-kind faults; and a `gogoku fetch` through them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import polars as pl
import pytest

pytestmark = pytest.mark.integration

GOGOKU = [sys.executable, "-m", "gogoku.cli"]


def request(url: str, method: str = "GET", params: dict[str, str] | None = None, body: dict[str, Any] | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any], dict[str, str]]:
    full = url + ("?" + urllib.parse.urlencode(params) if params else "")
    req = urllib.request.Request(full, method=method, data=json.dumps(body).encode() if body else None,
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.load(resp), dict(resp.headers)
    except urllib.error.HTTPError as err:
        return err.code, json.load(err), dict(err.headers)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Any:
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    args = ["sim", "serve", "--port", "0", "--stocks", "8", "--start", "2023-06-01", "--end", "2024-06-28",
            "--plan", "light", "--today", "2024-05-31", "--rate-limit", "40", "--rate-window-s", "1",
            "--max-rows", "100", "--mailaddress", "me@example.com", "--password", "pw", "--error-rate", "0.1"]
    with open(log, "w") as fh:
        proc = subprocess.Popen(GOGOKU + args, stdout=subprocess.PIPE, stderr=fh, text=True)
        line = proc.stdout.readline()
    try:
        yield json.loads(line)["url"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_sim_serve_options(served: str) -> None:
    key = {"x-api-key": "k"}
    status, body, _ = request(served + "/v2/equities/bars/daily", params={"code": "1301", "from": "2019-05-30"},
                              headers=key)
    assert status == 400 and "2019-05-31 ~ 2024-05-31" in body["message"]
    status, body, _ = request(served + "/v2/indices/bars/daily/topix", params={"from": "2024-01-04"}, headers=key)
    assert status in (413, 500, 502, 503)  # 8 stocks x 100 sessions > --max-rows 100, unless a fault came first
    status, body, _ = request(served + "/v1/token/auth_user", "POST", body={"mailaddress": "me@example.com",
                                                                             "password": "other"})
    assert status in (400, 500, 502, 503)
    week = {"from": "2024-05-01", "to": "2024-05-07"}
    answers = [request(served + "/v2/markets/calendar", params=week, headers=key)[0] for _ in range(45)]
    assert 429 in answers and set(answers) <= {200, 429, 500, 502, 503}


def test_fetch_through_faults_rate_limit_and_413(served: str, tmp_path: Path) -> None:
    env = {**os.environ, "JQUANTS_API_URL": served, "JQUANTS_API_VERSION": "v1", "JQUANTS_MAILADDRESS": "me@example.com",
           "JQUANTS_PASSWORD": "pw", "JQUANTS_PLAN_TIER": "light", "JQUANTS_RATE_LIMIT": "2000",
           "GOGOKU_DATA_ROOT": str(tmp_path / "data")}
    out = tmp_path / "topix.parquet"
    proc = subprocess.run(GOGOKU + ["fetch", "topix", "--from", "2023-06-01", "--to", "2024-05-31", "--out", str(out)],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    frame = pl.read_parquet(out)
    assert result["rows"] == frame.height > 200 and frame["Date"].is_sorted() and frame["Date"].is_unique().all()
    assert "too large (413): splitting" in proc.stderr
