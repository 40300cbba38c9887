"""`gogoku -v fetch` against `gogoku sim serve` processes: no credential or token ever reaches the CLI's output,
whatever fails (wrong key, wrong mail address or password, expired tokens, token endpoints failing until the
retries run out); and a bad JQUANTS_API_URL fails at once with one line saying what to set."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

GOGOKU = [sys.executable, "-m", "gogoku.cli"]
KEY, WRONG_KEY = f"key-{secrets.token_hex(12)}", f"wrongkey-{secrets.token_hex(12)}"
MAIL, WRONG_MAIL = f"quant.{secrets.token_hex(6)}@example.com", f"other.{secrets.token_hex(6)}@example.com"
PASSWORD, WRONG_PASSWORD = f"pw-{secrets.token_hex(12)}", f"wrongpw-{secrets.token_hex(12)}"
CREDENTIALS = ["--api-key", KEY, "--mailaddress", MAIL, "--password", PASSWORD]
MARKET = ["--port", "0", "--stocks", "8", "--start", "2024-01-04", "--end", "2024-04-30", "--plan", "standard",
          "--no-rate-limit"]
# With --error-rate 0.9 the token endpoints draw by path, the same for a seed: under seed 4 the first sign-in
# passes and the first 7 token refreshes fail; under seed 5 the first 7 sign-ins fail (checked below).
REFRESH_FAILS_SEED, SIGN_IN_FAILS_SEED = "4", "5"


def call(url: str, path: str, method: str = "GET", params: dict[str, str] | None = None,
         body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    full = url + path + ("?" + urllib.parse.urlencode(params) if params else "")
    request = urllib.request.Request(full, method=method, data=json.dumps(body).encode() if body else None,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as err:
        return err.code, json.load(err)


@contextmanager
def serve(args: list[str], log: Path) -> Iterator[str]:
    with open(log, "w") as fh:
        proc = subprocess.Popen(GOGOKU + ["sim", "serve", *MARKET, *args], stdout=subprocess.PIPE, stderr=fh, text=True)
    try:
        assert proc.stdout is not None
        yield json.loads(proc.stdout.readline())["url"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def cli_env(tmp_path: Path, name: str, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JQUANTS_", "GOGOKU_"))}
    env.update(JQUANTS_PLAN_TIER="standard", JQUANTS_RATE_LIMIT="6000", GOGOKU_DATA_ROOT=str(tmp_path / name))
    env.update(settings)
    return env


def test_no_secret_reaches_the_cli_output(tmp_path: Path) -> None:
    with ExitStack() as stack:
        plain = stack.enter_context(serve(CREDENTIALS, tmp_path / "plain.log"))
        # ~320 pages, 8 at a time, 100 ms each (4 s at least): id tokens (2 s) expire mid-fetch, and by then
        # the refresh token (1.2 s) too, so each renewal is refused (400) and signs in again. (An id token of
        # 0.5 s could expire again between a renewal and the server on a loaded machine: seen once.)
        expiring = stack.enter_context(serve(CREDENTIALS + ["--latency-ms", "100", "--page-size", "2",
                                                            "--id-token-ttl-s", "2", "--refresh-token-ttl-s", "1.2"],
                                             tmp_path / "expiring.log"))
        refresh_fails = stack.enter_context(serve(CREDENTIALS + ["--error-rate", "0.9", "--seed", REFRESH_FAILS_SEED],
                                                  tmp_path / "refresh.log"))
        sign_in_fails = stack.enter_context(serve(CREDENTIALS + ["--error-rate", "0.9", "--seed", SIGN_IN_FAILS_SEED],
                                                  tmp_path / "sign_in.log"))
        servers = [plain, expiring, refresh_fails, sign_in_fails]

        # The fault draws these servers were chosen for (then forgotten by a reset, so the CLI meets them again).
        sign_in = {"mailaddress": MAIL, "password": PASSWORD}
        assert call(refresh_fails, "/v1/token/auth_user", "POST", body=sign_in)[0] == 200
        assert {call(refresh_fails, "/v1/token/auth_refresh", "POST", {"refreshtoken": "x"})[0]
                for _ in range(7)} <= {500, 502, 503}
        assert {call(sign_in_fails, "/v1/token/auth_user", "POST", body=sign_in)[0] for _ in range(7)} <= {500, 502, 503}
        for url in (refresh_fails, sign_in_fails):
            assert call(url, "/__sim__/reset", "POST")[0] == 200

        v1 = {"JQUANTS_API_VERSION": "v1"}
        runs: dict[str, tuple[list[str], dict[str, str]]] = {
            "v2_wrong_key": (["daily_quotes"], {"JQUANTS_API_URL": plain, "JQUANTS_API_KEY": WRONG_KEY}),
            "v2_right_key": (["topix"], {"JQUANTS_API_URL": plain, "JQUANTS_API_KEY": KEY}),
            "v1_wrong_password": (["topix"], {**v1, "JQUANTS_API_URL": plain, "JQUANTS_MAILADDRESS": MAIL,
                                              "JQUANTS_PASSWORD": WRONG_PASSWORD}),
            "v1_wrong_mail": (["topix"], {**v1, "JQUANTS_API_URL": plain, "JQUANTS_MAILADDRESS": WRONG_MAIL,
                                          "JQUANTS_PASSWORD": PASSWORD}),
            "v1_tokens_expire": (["daily_quotes"], {**v1, "JQUANTS_API_URL": expiring, "JQUANTS_MAILADDRESS": MAIL,
                                                    "JQUANTS_PASSWORD": PASSWORD}),
            "v1_refresh_fails": (["topix"], {**v1, "JQUANTS_API_URL": refresh_fails, "JQUANTS_MAILADDRESS": MAIL,
                                             "JQUANTS_PASSWORD": PASSWORD}),
            "v1_sign_in_fails": (["topix"], {**v1, "JQUANTS_API_URL": sign_in_fails, "JQUANTS_MAILADDRESS": MAIL,
                                             "JQUANTS_PASSWORD": PASSWORD}),
            "url_with_version": (["topix"], {"JQUANTS_API_URL": plain + "/v2", "JQUANTS_API_KEY": KEY}),
            "url_without_scheme": (["topix"], {"JQUANTS_API_URL": "api.jquants.com", "JQUANTS_API_KEY": KEY}),
        }
        # All at once (the token endpoints failing take ~30 s of backoff), output to files.
        procs = {}
        t0 = time.monotonic()
        for name, (source, env) in runs.items():
            args = ["-v", "fetch", *source, "--from", "2024-01-04", "--to", "2024-04-30",
                    "--out", str(tmp_path / f"{name}.parquet")]
            with open(tmp_path / f"{name}.out", "w") as fh:
                procs[name] = subprocess.Popen(GOGOKU + args, env=cli_env(tmp_path, name, **env), stdout=fh,
                                               stderr=subprocess.STDOUT, text=True)
        elapsed: dict[str, float] = {}
        while len(elapsed) < len(procs) and time.monotonic() - t0 < 300:
            elapsed.update({name: time.monotonic() - t0 for name, proc in procs.items()
                            if name not in elapsed and proc.poll() is not None})
            time.sleep(0.05)
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        out = {name: (proc.returncode, (tmp_path / f"{name}.out").read_text(), elapsed.get(name, 300.0))
               for name, proc in procs.items()}
        stats = {url: call(url, "/__sim__/stats")[1] for url in servers}

    def error_line(name: str) -> str:
        (line,) = [ln for ln in out[name][1].splitlines() if ln.startswith("gogoku fetch: error: ")]
        return line

    for name, (code, text, _) in out.items():
        assert "Traceback" not in text, (name, text[-3000:])
        assert code == (0 if name in ("v2_right_key", "v1_tokens_expire") else 2), (name, text[-3000:])
    assert "check JQUANTS_API_KEY" in error_line("v2_wrong_key")
    for name in ("v1_wrong_password", "v1_wrong_mail"):
        assert "'mailaddress' or 'password' is incorrect" in error_line(name)
        assert "check JQUANTS_MAILADDRESS and JQUANTS_PASSWORD" in error_line(name)
    assert "/v1/token/auth_refresh {'refreshtoken': '***'} still failing after 7 attempts" in error_line(
        "v1_refresh_fails")
    assert "/v1/token/auth_user {} still failing after 7 attempts" in error_line("v1_sign_in_fails")
    for name in ("v1_refresh_fails", "v1_sign_in_fails"):
        assert out[name][1].count("; retry ") == 6  # the -v log of each retry, redacted too
    for name in ("url_with_version", "url_without_scheme"):
        line = error_line(name)
        assert "JQUANTS_API_URL=" in line and "e.g. JQUANTS_API_URL=https://api.jquants.com" in line
        assert out[name][2] < 20 and "retry" not in out[name][1]  # no request was even tried
    assert "ends in the API version" in error_line("url_with_version")
    assert "is not an http(s) URL" in error_line("url_without_scheme")

    # The expiring server saw every renewal path: an id token expired (401), then the refresh token (400).
    expired = stats[expiring]
    assert expired["statuses"]["401"] >= 1 and expired["statuses"]["400"] >= 1
    assert expired["requests"]["/v1/token/auth_user"] >= 2 and expired["requests"]["/v1/token/auth_refresh"] >= 3
    assert "signed in as q***@example.com" in out["v1_tokens_expire"][1]
    # The refresh-failing server did hand the CLI a refresh token, which its messages then left out.
    assert stats[refresh_fails]["requests"]["/v1/token/auth_refresh"] == 7

    issued = [token for s in stats.values() for token in s["issued_tokens"]]
    assert len(issued) >= 6
    leaked = {(name, label) for name, (_, text, _) in out.items()
              for label, value in [("api key", KEY), ("wrong api key", WRONG_KEY), ("mail address", MAIL),
                                   ("wrong mail address", WRONG_MAIL), ("password", PASSWORD),
                                   ("wrong password", WRONG_PASSWORD)] + [("token", t) for t in issued]
              if value in text}
    assert not leaked
