"""client_base: the constructor arguments both clients share, normalized and checked once.

Pure functions and a frozen dataclass: no network, no clock.
"""

from __future__ import annotations

import pytest

from vtwait.client.base import ClientConfig
from vtwait.core.errors import ProtocolError
from vtwait.core.policy import DEFAULT_BASE_URL, PollingPolicy
from vtwait.core.status import start_answer_job_id


def test_none_means_the_default_for_every_argument(monkeypatch):
    """Every argument given as None gives the same settings as every argument left out."""
    monkeypatch.delenv("API_USERNAME", raising=False)
    monkeypatch.delenv("API_PASSWORD", raising=False)
    given = ClientConfig.from_args(None, None, None, auth=None, policy=None, retry=None,
                                   wait_timeout=None, request_timeout=None, status_url=None,
                                   single_status_url=None, start_url=None, cancel_url=None,
                                   respect_rate_limits=None, clock=None, rng=None)
    default = ClientConfig.from_args()
    assert given.base_url == default.base_url == DEFAULT_BASE_URL.rstrip("/")
    assert (given.policy, given.retry, given.wait_timeout, given.request_timeout,
            given.status_url, given.single_status_url, given.start_url, given.cancel_url,
            given.clock, given.respect_rate_limits, given.auth) == \
        (default.policy, default.retry, default.wait_timeout, default.request_timeout,
         default.status_url, default.single_status_url, default.start_url, default.cancel_url,
         default.clock, True, None)


def test_url_credentials_become_auth_and_leave_the_url(monkeypatch):
    """user:password in the URL is unquoted into auth, an explicit password wins, the URL is clean."""
    monkeypatch.delenv("API_USERNAME", raising=False)
    config = ClientConfig.from_args("http://al%40x:p%3Aw@127.0.0.1:8000/", None, "given")
    assert (config.base_url, config.auth) == ("http://127.0.0.1:8000", ("al@x", "given"))


def test_credentials_come_from_the_environment_last(monkeypatch):
    """API_USERNAME / API_PASSWORD fill in what neither the arguments nor the URL gave."""
    monkeypatch.setenv("API_USERNAME", "env-user")
    monkeypatch.setenv("API_PASSWORD", "env-pw")
    assert ClientConfig.from_args("http://127.0.0.1:1", "me").auth == ("me", "env-pw")
    assert ClientConfig.from_args("http://127.0.0.1:1", auth="mine").auth == "mine"


@pytest.mark.parametrize("kwargs, match", [
    ({"base_url": "ftp://127.0.0.1"}, "base_url must be an http"),
    ({"base_url": "127.0.0.1:8000"}, "base_url must be an http"),
    ({"status_url": "/status"}, "status_url must contain"),
    ({"cancel_url": "/cancel"}, "cancel_url must contain"),
    ({"wait_timeout": 0}, "wait_timeout must be > 0"),
])
def test_bad_arguments_are_a_value_error_naming_them(kwargs, match):
    """A bad URL, a template without {job_id} or a non-positive timeout: ValueError naming it."""
    with pytest.raises(ValueError, match=match):
        ClientConfig.from_args(**kwargs)


def test_given_objects_are_kept():
    """A policy passed in is used as it is."""
    policy = PollingPolicy(initial_delay=2.0)
    assert ClientConfig.from_args(policy=policy).policy is policy


@pytest.mark.parametrize("document, location, job_id", [
    ({"job_id": "a1"}, "", "a1"),
    ({"id": 7}, "", "7"),
    ({"job_id": True}, "/status/b2/", "b2"),
    ("not a mapping", "/status/c3", "c3"),
])
def test_start_answer_job_id_reads_the_body_then_location(document, location, job_id):
    """job_id (or id) from the body, else the last segment of Location; bools are no id."""
    assert start_answer_job_id(document, location) == job_id


def test_start_answer_without_an_id_is_a_protocol_error():
    """No id in the body and no Location: ProtocolError."""
    with pytest.raises(ProtocolError, match="no job id"):
        start_answer_job_id({"result": "pending"}, "")
