"""Lenient start bodies (unknown keys ignored, logged once) or strict ones (STRICT_BODY), and
API_KEY: accepted as a bearer token or in X-Api-Key beside Basic, wrong ones refused, and the
key never in a log line, a message or the banner."""

from __future__ import annotations

import base64
import logging
import re

import pytest

import vtwait.server.cli as cli
from tests.helpers import fast_settings
from vtwait.server.settings import ConfigError, Settings
from vtwait.server.start_body import MAX_LOGGED_KEYS, UnknownKeys

KEY = "Kq7-the-real-api-key"
WRONG = "Kq7-the-wrong-api-key"
USER, PASSWORD = "alice", "Zq8-basic-secret"


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


# --- bodies -----------------------------------------------------------------------------------


def test_unknown_keys_are_ignored_and_logged_once_per_key_with_the_request_id(make_app, caplog):
    caplog.set_level(logging.WARNING, logger="vtwait.server.start_body")
    client = make_app().test_client()
    first = client.post("/start", json={"delay": 5, "processing_duration": 3, "role": "x"},
                        headers={"X-Request-Id": "req-1"})
    assert first.status_code == 201
    assert first.headers["X-Request-Id"] == "req-1"
    again = client.post("/start", json={"processing_duration": 3, "job_id": "mine"})
    assert again.status_code == 201
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3, lines  # processing_duration and role once, then job_id once
    assert all("ignoring unknown key" in line for line in lines)
    assert "req-1" in lines[0] and "'processing_duration'" in lines[0]
    assert again.headers["X-Request-Id"] in lines[2] and "'job_id'" in lines[2]


def test_known_keys_are_still_validated_strictly_when_lenient(make_app) -> None:
    client = make_app().test_client()
    answer = client.post("/start", json={"delay": "5", "extra": 1})
    assert answer.status_code == 400
    assert "delay" in answer.get_json()["error"]["message"]


def test_strict_body_refuses_unknown_keys_naming_them(make_app, caplog) -> None:
    client = make_app(fast_settings(strict_body=True)).test_client()
    answer = client.post("/start", json={"delay": 1, "colour": "red"})
    assert answer.status_code == 400
    assert answer.get_json()["error"]["message"] == "unknown keys in body: colour"
    assert "colour" not in caplog.text


def test_a_dialect_body_is_lenient_too(make_app) -> None:
    client = make_app(fast_settings(dialect="replicate", strict_body=True)).test_client()
    refused = client.post("/v1/predictions", json={"version": "v", "input": {"prompt": "x"}})
    assert refused.status_code == 400 and "prompt" in refused.get_json()["detail"]
    lenient = make_app(fast_settings(dialect="replicate")).test_client()
    assert lenient.post("/v1/predictions", json={"input": {"prompt": "x"}}).status_code == 201


def test_the_record_of_logged_keys_is_bounded(caplog) -> None:
    record = UnknownKeys(strict=False)
    record.check([f"k{i}" for i in range(MAX_LOGGED_KEYS + 50)], ())
    assert len(record._seen) == MAX_LOGGED_KEYS
    assert record.check(["k1", "delay"], ["delay"]) == ["k1"]


def test_a_forged_request_id_is_replaced(make_app) -> None:
    client = make_app().test_client()
    answer = client.get("/healthz", headers={"X-Request-Id": "a b\tforged"})
    assert answer.headers["X-Request-Id"] != "a b\tforged"
    made = answer.headers["X-Request-Id"]  # this process's prefix and a counter
    assert re.fullmatch(r"[0-9a-f]{12}-[0-9a-f]+", made)
    assert client.get("/healthz").headers["X-Request-Id"] != made


# --- API keys ---------------------------------------------------------------------------------


@pytest.mark.parametrize("header", [{"Authorization": f"Bearer {KEY}"},
                                    {"Authorization": f"bearer   {KEY}"},
                                    {"X-Api-Key": KEY},
                                    basic(USER, PASSWORD)])
def test_each_scheme_is_accepted_with_the_right_secret(make_app, header) -> None:
    app = make_app(fast_settings(api_key=KEY, api_username=USER, api_password=PASSWORD))
    assert app.test_client().post("/start", headers=header).status_code == 201


@pytest.mark.parametrize("header", [{}, {"Authorization": f"Bearer {WRONG}"},
                                    {"Authorization": f"Bearer {KEY}x"},
                                    {"Authorization": f"Basic {KEY}"},
                                    {"Authorization": KEY},
                                    {"X-Api-Key": WRONG}, {"X-Api-Key": ""},
                                    {"Ocp-Apim-Subscription-Key": KEY},  # azure's, not native
                                    basic(USER, WRONG), basic("", "")])
def test_each_scheme_is_refused_with_a_wrong_secret(make_app, header) -> None:
    app = make_app(fast_settings(api_key=KEY, api_username=USER, api_password=PASSWORD))
    answer = app.test_client().post("/start", headers=header)
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"] == ('Basic realm="video-translation", '
                                                  'Bearer realm="video-translation"')
    assert "X-Api-Key" in answer.get_json()["error"]["message"]


def test_empty_basic_credentials_fail_when_only_a_key_is_set(make_app) -> None:
    """With API_KEY alone, Basic is not configured: an empty user and password must not match
    the unset ones."""
    client = make_app(fast_settings(api_key=KEY)).test_client()
    assert client.get("/status", headers=basic("", "")).status_code == 401
    assert client.get("/status", headers={"X-Api-Key": KEY}).status_code == 200
    assert client.get("/healthz").status_code == 200  # open routes stay open


def test_the_key_is_never_logged_shown_or_quoted(make_app, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    client = make_app(fast_settings(api_key=KEY)).test_client()
    for header in ({"Authorization": f"Bearer {KEY}"}, {"X-Api-Key": KEY},
                   {"Authorization": f"Bearer {WRONG}"}, {"X-Api-Key": WRONG}):
        client.post("/start", headers=header, json={"unknown": 1})
        client.get("/status/" + "f" * 32, headers=header)
    settings = Settings(api_key=KEY)
    said = [caplog.text, repr(settings), cli.start_banner(settings)]
    with pytest.raises(ConfigError) as bad:
        Settings(api_key=KEY + " with a space")
    said.append(str(bad.value))
    assert "API_KEY" in cli.start_banner(settings)
    assert any("authentication failed" in r.getMessage() for r in caplog.records)
    for text in said:
        assert KEY not in text and WRONG not in text
