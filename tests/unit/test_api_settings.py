"""J-Quants settings checked before any request: the API URL, the Retry-After cap, secrets kept out of reprs."""

from __future__ import annotations

import pytest

from gogoku.config import DEFAULT_MAX_RETRY_AFTER_S, Settings, check_api_url
from gogoku.errors import InputError
from gogoku.jquants.client import JQuantsClient, shown_params
from gogoku.jquants.session import make_client


@pytest.mark.parametrize("url", ["https://api.jquants.com", "https://api.jquants.com/", " http://127.0.0.1:8765 ",
                                 "http://proxy.internal:8080/jquants"])
def test_base_urls_are_accepted(url: str) -> None:
    assert check_api_url(url) == url.strip().rstrip("/")
    assert Settings.from_env({"JQUANTS_API_URL": url}).api_url == url.strip().rstrip("/")


@pytest.mark.parametrize(("url", "why"), [
    ("https://api.jquants.com/v2", "ends in the API version"),
    ("https://api.jquants.com/v1/", "ends in the API version"),
    ("http://127.0.0.1:8765/V2", "ends in the API version"),
    ("api.jquants.com", "is not an http"),
    ("ftp://api.jquants.com", "is not an http"),
    ("https://", "is not an http"),
    ("http://host:port", "is not an http"),
    ("https://api.jquants.com?x=1", "query or fragment"),
    ("https://user:pw@api.jquants.com", "must not carry a user name or password"),
])
def test_bad_urls_fail_at_once_and_say_what_to_set(url: str, why: str) -> None:
    for check in (lambda: Settings.from_env({"JQUANTS_API_URL": url}),
                  lambda: JQuantsClient(url, api_key="key")):
        with pytest.raises(InputError, match=why) as err:
            check()
        message = str(err.value)
        assert "JQUANTS_API_URL" in message and "e.g. JQUANTS_API_URL=https://api.jquants.com" in message
        assert "\n" not in message
    # The password of a URL with credentials is not repeated in the message.
    if "@" in url:
        assert "pw@" not in message


def test_the_retry_after_cap_is_read_and_passed_to_the_client() -> None:
    assert Settings.from_env({}).max_retry_after_s == DEFAULT_MAX_RETRY_AFTER_S == 120.0
    settings = Settings.from_env({"JQUANTS_MAX_RETRY_AFTER_S": "7.5", "JQUANTS_API_URL": "https://api.jquants.com",
                                  "JQUANTS_API_KEY": "key"})
    client = make_client(settings)
    assert settings.max_retry_after_s == client.max_retry_after_s == 7.5
    assert client.base_url == "https://api.jquants.com"
    for bad in ("0", "-1", "x", "inf", "nan"):
        with pytest.raises(InputError, match="JQUANTS_MAX_RETRY_AFTER_S"):
            Settings.from_env({"JQUANTS_MAX_RETRY_AFTER_S": bad})
    with pytest.raises(InputError, match="JQUANTS_MAX_RETRY_AFTER_S"):
        JQuantsClient("https://api.jquants.com", api_key="key", max_retry_after_s=0)


def test_credentials_stay_out_of_reprs_and_shown_parameters() -> None:
    settings = Settings.from_env({"JQUANTS_API_KEY": "key-0123456789", "JQUANTS_MAILADDRESS": "me@example.com",
                                  "JQUANTS_PASSWORD": "pass-0123456789"})
    assert settings.api_key == "key-0123456789"
    for secret in ("key-0123456789", "me@example.com", "pass-0123456789"):
        assert secret not in repr(settings)
    assert shown_params("/v1/token/auth_refresh", {"refreshtoken": "tok"}) == {"refreshtoken": "***"}
    assert shown_params("/v1/prices/daily_quotes", {"date": "2024-03-01", "idToken": "tok"}) == {
        "date": "2024-03-01", "idToken": "***"}


def test_retry_after_takes_seconds_or_an_http_date() -> None:
    import email.utils
    import time

    from gogoku.jquants.client import _retry_after

    assert _retry_after("900") == 900.0 and _retry_after("-3") == 0.0
    assert _retry_after(None) is None and _retry_after("soon") is None and _retry_after("nan") is None
    assert _retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # already past
    later = _retry_after(email.utils.formatdate(time.time() + 60, usegmt=True))
    assert later is not None and 55 < later <= 60
