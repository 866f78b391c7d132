"""Rate limits: the token bucket on a fake clock, the IETF fields, 429s, keys and exemptions."""

from __future__ import annotations

import base64
from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient

import vtwait.server.app as server
import vtwait.server.ratelimit as rate_limits
from tests.helpers import FakeClock, fast_settings
from vtwait.server.ratelimit import RateDecision, RateLimiter

USER, PASSWORD = "alice", "alice-pw"
AUTH = {"Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}


@pytest.fixture
def limited(make_app: Callable[..., Flask], fake_clock: FakeClock) -> Callable[..., FlaskClient]:
    """Factory: a test client of an app with the given settings on the fake clock."""

    def factory(**overrides) -> FlaskClient:
        app = make_app(fast_settings(**overrides), clock=fake_clock.monotonic,
                       wall_clock=fake_clock.wall, start_worker=False)
        return app.test_client()

    return factory


def test_the_bucket_spends_refills_and_refuses_exactly(fake_clock: FakeClock) -> None:
    """rate 2/s, burst 3: three at once, then one token every 0.5 s; a refusal spends nothing."""
    limiter = RateLimiter(2, 3, clock=fake_clock)
    taken = [limiter.take("k") for _ in range(4)]
    assert [(d.allowed, d.remaining, d.reset) for d in taken] == [
        (True, 2, 1), (True, 1, 1), (True, 0, 2), (False, 0, 2)]
    assert taken[-1].retry_after == 1
    fake_clock.advance(0.25)
    assert not limiter.take("k").allowed  # half a token
    fake_clock.advance(0.25)
    assert limiter.take("k").allowed  # one whole token
    fake_clock.advance(100)
    assert limiter.take("k") == RateDecision(True, 2, 2, 1, 0)  # never more than the burst


def test_each_key_has_its_own_bucket(fake_clock: FakeClock) -> None:
    """Spending one caller's bucket leaves another's full."""
    limiter = RateLimiter(1, 1, clock=fake_clock)
    assert limiter.take("a").allowed and not limiter.take("a").allowed
    assert limiter.take("b").allowed


def test_retry_after_is_the_wait_for_one_token(fake_clock: FakeClock) -> None:
    """With 1 token per second and none left, Retry-After says 1; slower rates cannot go below 1."""
    limiter = RateLimiter(1, 5, clock=fake_clock)
    for _ in range(5):
        limiter.take("k")
    refused = limiter.take("k")
    assert (refused.allowed, refused.retry_after, refused.reset) == (False, 1, 5)
    assert refused.headers() == {
        "RateLimit-Policy": '"default";q=1;w=1',
        "RateLimit": '"default";r=0;t=5',
        "Retry-After": "1",
    }


def test_full_buckets_are_forgotten_past_the_bound(fake_clock: FakeClock, monkeypatch) -> None:
    """Memory stays bounded: past MAX_BUCKETS keys, the buckets of idle callers are dropped."""
    monkeypatch.setattr(rate_limits, "MAX_BUCKETS", 100)
    limiter = RateLimiter(10, 10, clock=fake_clock)
    for n in range(100):
        limiter.take(f"caller-{n}")
    fake_clock.advance(1)  # every bucket is full again
    limiter.take("newcomer")
    assert len(limiter) == 1


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (1, 0), (-1, 5)])
def test_a_limiter_needs_a_positive_rate_and_burst(rate: int, burst: int) -> None:
    """rate and burst below 1 are a ValueError."""
    with pytest.raises(ValueError, match="at least 1"):
        RateLimiter(rate, burst)


def test_past_the_bucket_the_server_answers_429_json_with_retry_after(limited) -> None:
    """RATE_LIMIT=2: the third request in the same instant is a JSON 429 naming the setting."""
    client = limited(rate_limit=2)
    first, second, third = (client.get("/status") for _ in range(3))
    assert first.status_code == second.status_code == 200
    assert third.status_code == 429 and third.headers["Retry-After"] == "1"
    error = third.get_json()["error"]
    assert error["code"] == "too_many_requests" and "RATE_LIMIT" in error["message"]
    assert third.headers["RateLimit"] == '"default";r=0;t=1'


def test_every_answer_carries_the_ietf_fields(limited) -> None:
    """Success, client error and 429 alike carry RateLimit-Policy and RateLimit."""
    client = limited(rate_limit=5, rate_burst=10)
    answers = [client.post("/start"), client.get("/status/nope"), client.post("/start", data=b"[")]
    answers += [client.get("/status") for _ in range(10)]
    assert {a.status_code for a in answers} == {201, 404, 400, 200, 429}
    for answer in answers:
        assert answer.headers["RateLimit-Policy"] == '"default";q=5;w=1'
        assert answer.headers["RateLimit"].startswith('"default";r=')
    remaining = [int(a.headers["RateLimit"].split("r=")[1].split(";")[0]) for a in answers]
    assert remaining[:10] == [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]


def test_tokens_come_back_with_time(limited, fake_clock: FakeClock) -> None:
    """After a 429, waiting Retry-After seconds is enough for the next request."""
    client = limited(rate_limit=1)
    assert client.get("/status").status_code == 200
    refused = client.get("/status")
    assert refused.status_code == 429
    fake_clock.advance(int(refused.headers["Retry-After"]))
    assert client.get("/status").status_code == 200


def test_healthz_is_exempt(limited) -> None:
    """/healthz never costs a token nor carries the fields, even with the bucket empty."""
    client = limited(rate_limit=1)
    client.get("/status")
    for _ in range(5):
        probe = client.get("/healthz")
        assert probe.status_code == 200 and "RateLimit" not in probe.headers
    assert client.get("/status").status_code == 429


def test_no_rate_limit_no_fields(client: FlaskClient) -> None:
    """RATE_LIMIT unset (the default): no 429 and no rate-limit fields."""
    answers = [client.get("/status") for _ in range(50)]
    assert {a.status_code for a in answers} == {200}
    assert not any("RateLimit" in a.headers or "RateLimit-Policy" in a.headers for a in answers)


def test_the_credential_is_the_basic_user_and_failures_are_charged_to_the_address(limited) -> None:
    """With auth on, a valid user has its own bucket; wrong passwords spend the address's bucket,
    so guessing is rate-limited too (429 instead of 401 once it is spent)."""
    client = limited(rate_limit=2, api_username=USER, api_password=PASSWORD)
    wrong = {"Authorization": "Basic " + base64.b64encode(b"alice:guess").decode()}
    guesses = [client.get("/status", headers=wrong).status_code for _ in range(3)]
    assert guesses == [401, 401, 429]
    assert [client.get("/status", headers=AUTH).status_code for _ in range(3)] == [200, 200, 429]


def test_without_auth_the_credential_is_the_client_address(limited) -> None:
    """With auth off, callers from different addresses have separate buckets."""
    client = limited(rate_limit=1)
    here = {"REMOTE_ADDR": "127.0.0.1"}
    there = {"REMOTE_ADDR": "127.0.0.2"}
    assert client.get("/status", environ_base=here).status_code == 200
    assert client.get("/status", environ_base=here).status_code == 429
    assert client.get("/status", environ_base=there).status_code == 200


def test_a_held_long_poll_costs_one_token(make_app) -> None:
    """A request held by long-poll is charged once, when it arrives, however long it is held."""
    app = make_app(fast_settings(rate_limit=1, rate_burst=2))
    client = app.test_client()
    job_id = client.post("/start", json={"delay": 3600}).get_json()["job_id"]  # token 1 of 2
    held = client.get(f"/status/{job_id}?wait=0.3")  # token 2, held 0.3 s
    assert held.headers["Preference-Applied"] == "wait=0.3"
    assert held.headers["RateLimit"].startswith('"default";r=0;')


@pytest.mark.parametrize(("env", "words"), [
    ({"RATE_LIMIT": "-1"}, "RATE_LIMIT must be at least 0"),
    ({"RATE_LIMIT": "2.5"}, "RATE_LIMIT must be an integer"),
    ({"RATE_BURST": "0"}, "RATE_BURST must be at least 1"),
    ({"CONCURRENCY": "-2"}, "CONCURRENCY must be at least 0"),
])
def test_bad_rate_and_queue_settings_name_the_setting(env: dict, words: str) -> None:
    """A bad RATE_LIMIT, RATE_BURST or CONCURRENCY is a ConfigError naming it."""
    with pytest.raises(server.ConfigError, match=words):
        server.Settings.from_env(env)


def test_the_burst_defaults_to_one_seconds_worth() -> None:
    """RATE_BURST unset means RATE_LIMIT tokens."""
    assert server.Settings(rate_limit=7).rate_capacity == 7
    assert server.Settings(rate_limit=7, rate_burst=20).rate_capacity == 20
