"""The control API (/_admin/): who may call it, fault rules on every route, the request journal,
reset, scripted jobs, the clock; and CORS.

Fault kinds that need a socket (drop, trickle, the event stream) and CORS go over real HTTP to
one live server for the module (``requests``); the rest use the in-process test client. Store-
dependent parts (reset, scripted jobs) run on both stores.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from flask import Flask

from tests.helpers import FakeClock, LiveServer, fast_settings, start_live_server
from vtwait.server.faults import GARBAGE_BODY
from vtwait.server.settings import Settings
from vtwait.server.state import app_state

TOKEN = "admin-token-for-tests"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
ORIGIN = "https://app.example:8443"
LATENCY = 0.05


def admin_settings(**overrides: Any) -> Settings:
    return fast_settings(admin_token=TOKEN, **overrides)


@pytest.fixture(scope="module")
def live() -> Iterator[LiveServer]:
    """One live server for the module: control API on, CORS for ORIGIN."""
    server = start_live_server(admin_settings(cors_origins=ORIGIN, max_wait=0.1))
    yield server
    server.stop()


@pytest.fixture
def fresh(live: LiveServer) -> LiveServer:
    """The live server after a reset: no jobs, rules or journal entries."""
    assert requests.post(f"{live.url}/_admin/reset", headers=ADMIN, timeout=5).status_code == 204
    return live


def add_rule(url: str, **rule: Any) -> dict[str, Any]:
    reply = requests.post(f"{url}/_admin/faults", json=rule, headers=ADMIN, timeout=5)
    assert reply.status_code == 201, reply.text
    return reply.json()


def journal(url: str, **filters: Any) -> list[dict[str, Any]]:
    reply = requests.get(f"{url}/_admin/requests", params=filters, headers=ADMIN, timeout=5)
    assert reply.status_code == 200, reply.text
    return reply.json()["requests"]


def rules(url: str) -> list[dict[str, Any]]:
    return requests.get(f"{url}/_admin/faults", headers=ADMIN, timeout=5).json()["rules"]


# ------------------------------------------------------------------------------ access


ADMIN_ROUTES = [("POST", "/_admin/reset"), ("GET", "/_admin/faults"), ("POST", "/_admin/faults"),
                ("DELETE", "/_admin/faults"), ("DELETE", "/_admin/faults/r1"),
                ("GET", "/_admin/requests"), ("DELETE", "/_admin/requests"),
                ("POST", "/_admin/scripts"), ("GET", "/_admin/clock"), ("POST", "/_admin/clock")]


@pytest.mark.parametrize(("method", "path"), ADMIN_ROUTES)
def test_control_api_is_404_when_off_401_without_token_403_when_remote(
        make_app: Callable[..., Flask], method: str, path: str) -> None:
    off = make_app(fast_settings()).test_client()
    assert off.open(path, method=method, headers=ADMIN).status_code == 404
    on = make_app(admin_settings()).test_client()
    for headers in ({}, {"Authorization": "Bearer wrong-token-123"},
                    {"Authorization": "Basic " + base64.b64encode(TOKEN.encode()).decode()}):
        reply = on.open(path, method=method, headers=headers)
        assert reply.status_code == 401 and reply.get_json()["error"]["code"] == "unauthorized"
        assert reply.headers["WWW-Authenticate"].startswith("Bearer")
    remote = on.open(path, method=method, headers=ADMIN,
                     environ_base={"REMOTE_ADDR": "192.0.2.7"})
    assert remote.status_code == 403 and remote.get_json()["error"]["code"] == "forbidden"


def test_unknown_control_paths_are_404_for_callers_with_the_token(
        make_app: Callable[..., Flask]) -> None:
    client = make_app(admin_settings(api_username="u", api_password="api-pw-123")).test_client()
    assert client.get("/_admin/nothing-here").status_code == 401  # only callers who may call
    reply = client.get("/_admin/nothing-here", headers=ADMIN)
    assert reply.status_code == 404 and reply.get_json()["error"]["code"] == "not_found"
    assert client.put("/_admin/faults", headers=ADMIN).status_code == 405


def test_remote_clients_pass_with_admin_allow_remote(make_app: Callable[..., Flask]) -> None:
    client = make_app(admin_settings(admin_allow_remote=True)).test_client()
    reply = client.get("/_admin/faults", headers=ADMIN, environ_base={"REMOTE_ADDR": "192.0.2.7"})
    assert reply.status_code == 200 and reply.get_json() == {"rules": []}


def test_control_api_needs_no_api_credentials_and_is_not_rate_limited(
        make_app: Callable[..., Flask]) -> None:
    """With API auth and a rate limit of 1/s, the control API still answers every time; the API
    still wants its own credentials (the admin token is not one)."""
    client = make_app(admin_settings(api_username="u", api_password="api-pw-123", rate_limit=1,
                                     rate_burst=1)).test_client()
    for _ in range(5):
        assert client.get("/_admin/requests", headers=ADMIN).status_code == 200
    assert client.post("/start", headers=ADMIN).status_code == 401


# ------------------------------------------------------------------------------ fault rules

ROUTES = ["start", "status", "cancel", "events"]
KINDS = ["status", "garbage", "latency", "trickle", "drop"]


def call(url: str, route: str, job_id: str) -> requests.Response:
    """One request to ``route``; an event stream is read up to its first bytes, then closed."""
    if route == "start":
        return requests.post(f"{url}/start", json={"delay": 3600}, timeout=5)
    if route == "status":
        return requests.get(f"{url}/status/{job_id}", timeout=5)
    if route == "cancel":
        return requests.post(f"{url}/status/{job_id}/cancel", timeout=5)
    reply = requests.get(f"{url}/events", params={"job_id": job_id}, stream=True, timeout=5)
    if reply.headers.get("Content-Type", "").startswith("text/event-stream"):
        reply._content = next(reply.iter_content(64))  # the stream's first bytes: enough
    else:
        reply._content = reply.raw.read()
    reply.close()
    return reply


def rule_for(kind: str) -> dict[str, Any]:
    if kind == "status":
        return {"action": "status", "status": 503, "retry_after": 2}
    if kind in ("latency", "trickle"):
        return {"action": kind, "latency": LATENCY}
    return {"action": kind}


def outcome(url: str, route: str, job_id: str) -> str:
    """What one request got: "drop", "status", "garbage", or "normal" (any regular answer)."""
    try:
        reply = call(url, route, job_id)
    except requests.ConnectionError:
        return "drop"
    if reply.status_code == 503:
        assert reply.json()["error"]["code"] == "service_unavailable"
        assert reply.headers["Retry-After"] == "2"
        return "status"
    if reply.headers["Content-Type"].startswith("text/html"):
        assert reply.text == GARBAGE_BODY
        return "garbage"
    expected = {"start": 201, "status": 200, "cancel": 200, "events": 200}[route]
    assert reply.status_code in (expected, 409), reply.text
    return "normal"


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("kind", KINDS)
def test_each_fault_kind_on_each_route_for_the_next_n_requests(
        fresh: LiveServer, kind: str, route: str) -> None:
    """A rule with times=2 fires on the next 2 matching requests only, counted in fired; other
    routes are untouched."""
    url = fresh.url
    job_id = requests.post(f"{url}/start", json={"delay": 3600}, timeout=5).json()["job_id"]
    rule = add_rule(url, route=route, times=2, **rule_for(kind))
    assert rule["fired"] == 0 and rule["probability"] == 1
    other = "status" if route != "status" else "start"
    assert outcome(url, other, job_id) == "normal"
    seen = [outcome(url, route, job_id) for _ in range(3)]
    terminal = kind in ("status", "garbage", "drop")
    assert seen == ([kind, kind, "normal"] if terminal else ["normal"] * 3)
    assert [r["fired"] for r in rules(url)] == [2]
    entries = journal(url, route=route)
    assert len(entries) == 3 + (route == "start")  # the setup start is journaled too
    if kind == "latency":
        assert all(e["duration_ms"] >= LATENCY * 1000 for e in entries[-3:-1])
    if kind == "drop":
        assert [e["status"] for e in entries[-3:]][:2] == [0, 0]


def test_trickle_sends_the_whole_body_slowly(fresh: LiveServer) -> None:
    job_id = requests.post(f"{fresh.url}/start", json={"delay": 3600}, timeout=5).json()["job_id"]
    add_rule(fresh.url, route="status", action="trickle", latency=0.2)
    began = time.monotonic()
    reply = requests.get(f"{fresh.url}/status/{job_id}", timeout=5)
    assert time.monotonic() - began >= 0.2  # a lower bound: the pauses are real sleeps
    assert reply.json()["job_id"] == job_id
    assert int(reply.headers["Content-Length"]) == len(reply.content)
    assert rules(fresh.url)[0]["fired"] == 1


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("kind", ["status", "garbage", "drop"])
def test_seeded_probability_is_reproducible(fresh: LiveServer, kind: str, route: str) -> None:
    """The same seed gives the same faults on the same requests; fired counts them."""
    url = fresh.url
    job_id = requests.post(f"{url}/start", json={"delay": 3600}, timeout=5).json()["job_id"]
    patterns = []
    for seed in (7, 7, 8):
        requests.delete(f"{url}/_admin/faults", headers=ADMIN, timeout=5)
        add_rule(url, route=route, probability=0.5, seed=seed, **rule_for(kind))
        pattern = [outcome(url, route, job_id) for _ in range(16)]
        assert set(pattern) <= {kind, "normal"}
        assert rules(url)[0]["fired"] == pattern.count(kind)
        patterns.append(pattern)
    assert patterns[0] == patterns[1] != patterns[2]
    assert 0 < patterns[0].count(kind) < 16


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("kind", ["latency", "trickle"])
def test_seeded_probability_of_latency_and_trickle(fresh: LiveServer, kind: str,
                                                   route: str) -> None:
    """Latency and trickle leave the answer intact; the same seed fires on as many requests."""
    url = fresh.url
    job_id = requests.post(f"{url}/start", json={"delay": 3600}, timeout=5).json()["job_id"]
    counts = []
    for seed in (3, 3):
        requests.delete(f"{url}/_admin/faults", headers=ADMIN, timeout=5)
        add_rule(url, route=route, probability=0.3, seed=seed, action=kind, latency=0.001)
        assert [outcome(url, route, job_id) for _ in range(16)] == ["normal"] * 16
        counts.append(rules(url)[0]["fired"])
    assert counts[0] == counts[1] and 0 < counts[0] < 16


def test_rules_by_method_and_job_and_removal(make_app: Callable[..., Flask]) -> None:
    client = make_app(admin_settings()).test_client()
    one = client.post("/start", json={"delay": 3600}).get_json()["job_id"]
    two = client.post("/start", json={"delay": 3600}).get_json()["job_id"]
    rule = client.post("/_admin/faults", headers=ADMIN, json={
        "route": "*", "method": "GET", "job_id": one, "action": "status", "status": 429}).get_json()
    assert client.get(f"/status/{one}").status_code == 429
    assert client.get(f"/status?job_id={one}").status_code == 429
    assert client.get(f"/status/{two}").status_code == 200
    assert client.post(f"/status/{one}/cancel").status_code == 200  # POST: not matched
    assert client.delete(f"/_admin/faults/{rule['id']}", headers=ADMIN).status_code == 204
    assert client.delete(f"/_admin/faults/{rule['id']}", headers=ADMIN).status_code == 404
    assert client.get(f"/status/{one}").status_code == 200


def test_fault_settings_become_rules_on_the_status_route(make_app: Callable[..., Flask]) -> None:
    client = make_app(admin_settings(fault_503=1.0, fault_latency=0.01)).test_client()
    listed = client.get("/_admin/faults", headers=ADMIN).get_json()["rules"]
    assert [(r["route"], r["action"], r["status"]) for r in listed] == [
        ("status", "latency", None), ("status", "status", 503)]
    assert client.post("/start").status_code == 201
    assert client.get("/status").status_code == 503
    fired = [r["fired"] for r in client.get("/_admin/faults", headers=ADMIN).get_json()["rules"]]
    assert fired == [1, 1]
    assert client.delete("/_admin/faults", headers=ADMIN).status_code == 204
    assert client.get("/status").status_code == 200


# ------------------------------------------------------------------------------ the journal


def test_journal_filters(make_app: Callable[..., Flask], fake_clock: FakeClock) -> None:
    app = make_app(admin_settings(), clock=fake_clock.monotonic, wall_clock=fake_clock.wall,
                   start_worker=False)
    client = app.test_client()
    job_id = client.post("/start", json={"delay": 10}).get_json()["job_id"]
    middle = fake_clock.wall()
    fake_clock.advance(5)
    client.get(f"/status/{job_id}")
    client.get("/status/unknown-job")
    client.post(f"/status/{job_id}/cancel")
    client.get("/_admin/faults", headers=ADMIN)  # the control API is never journaled

    def query(**filters: Any) -> list[tuple[str, str, int]]:
        reply = client.get("/_admin/requests", query_string=filters, headers=ADMIN)
        assert reply.status_code == 200, reply.get_json()
        return [(e["method"], e["path"], e["status"]) for e in reply.get_json()["requests"]]

    everything = client.get("/_admin/requests", headers=ADMIN).get_json()["requests"]
    assert [e["route"] for e in everything] == ["start", "status", "status", "cancel"]
    assert everything[0]["job_id"] == job_id  # a start's job is read from its answer
    assert set(everything[0]) == {"id", "time", "method", "path", "route", "job_id", "status",
                                  "duration_ms", "headers"}
    assert query(route="status") == [("GET", f"/status/{job_id}", 200),
                                     ("GET", "/status/unknown-job", 404)]
    assert query(job_id=job_id, method="post") == [("POST", "/start", 201),
                                                   ("POST", f"/status/{job_id}/cancel", 200)]
    assert query(status=404) == [("GET", "/status/unknown-job", 404)]
    assert query(since=middle + 1) == query()[1:]
    assert query(limit=1) == [("POST", f"/status/{job_id}/cancel", 200)]
    assert client.delete("/_admin/requests", headers=ADMIN).status_code == 204
    assert query() == []


def test_journal_is_a_bounded_ring(make_app: Callable[..., Flask]) -> None:
    client = make_app(admin_settings(journal_size=3)).test_client()
    for n in range(5):
        client.get(f"/status/job{n}")
    entries = client.get("/_admin/requests", headers=ADMIN).get_json()["requests"]
    assert [e["path"] for e in entries] == ["/status/job2", "/status/job3", "/status/job4"]
    assert [e["id"] for e in entries] == [3, 4, 5]


def test_no_secret_reaches_the_journal_or_the_logs(make_app: Callable[..., Flask],
                                                   caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    password, key, api_key = "api-pass-word-1", "key-abcdef-999", "the-api-key-4242"
    client = make_app(admin_settings(api_username="alice", api_password=password,
                                     api_key=api_key)).test_client()
    client.set_cookie("session", "cookie-secret-77")
    basic = "Basic " + base64.b64encode(f"alice:{password}".encode()).decode()
    wrong = "Basic " + base64.b64encode(b"alice:wrong-pass-22").decode()
    for auth in (basic, wrong, f"Bearer {TOKEN}"):
        client.post("/start", headers={"Authorization": auth, "X-Api-Key": key,
                                       "X-Echo": f"see {password} here",
                                       "Idempotency-Key": "not-a-secret"})
    client.get("/status", headers={"X-Trace": f"k={api_key}"})  # a key where none belongs
    client.get("/_admin/requests", headers={"Authorization": "Bearer wrong-token-xyz"})
    entries = client.get("/_admin/requests", headers=ADMIN).get_json()["requests"]
    assert [e["status"] for e in entries] == [201, 401, 401, 401]
    assert entries[3]["headers"]["X-Trace"] == "[redacted]"
    headers = entries[0]["headers"]
    assert headers["Authorization"] == "Basic [redacted]"
    assert headers["X-Api-Key"] == headers["Cookie"] == headers["X-Echo"] == "[redacted]"
    assert headers["Idempotency-Key"] == "not-a-secret"
    text = json.dumps(entries) + "\n".join(r.getMessage() for r in caplog.records)
    for secret in (password, "wrong-pass-22", basic[6:], wrong[6:], TOKEN, "wrong-token-xyz",
                   key, "cookie-secret-77", api_key):
        assert secret not in text


# ------------------------------------------------------------------------------ bad input

BAD = [
    ("/_admin/faults", {"action": "explode"}, "action"),
    ("/_admin/faults", {"action": "status", "status": 200}, "status"),
    ("/_admin/faults", {"action": "drop", "route": "nowhere"}, "route"),
    ("/_admin/faults", {"action": "drop", "method": "PUT"}, "method"),
    ("/_admin/faults", {"action": "drop", "probability": 1.5}, "probability"),
    ("/_admin/faults", {"action": "drop", "probability": "half"}, "probability"),
    ("/_admin/faults", {"action": "drop", "times": 0}, "times"),
    ("/_admin/faults", {"action": "drop", "seed": "x"}, "seed"),
    ("/_admin/faults", {"action": "latency"}, "latency"),
    ("/_admin/faults", {"action": "latency", "latency": -1}, "latency"),
    ("/_admin/faults", {"action": "drop", "job_id": "no/such"}, "job_id"),
    ("/_admin/faults", {"action": "drop", "retry_after": 1}, "retry_after"),
    ("/_admin/faults", {"action": "drop", "id": "r9"}, "id"),
    ("/_admin/faults", [1], "body"),
    ("/_admin/scripts", {"timeline": []}, "timeline"),
    ("/_admin/scripts", {"timeline": [{"at": 2, "progress": 0.1}, {"at": 1, "progress": 0.2}]},
     "timeline[1].at"),
    ("/_admin/scripts", {"timeline": [{"at": 1, "phase": "done"}]}, "timeline[0].phase"),
    ("/_admin/scripts", {"timeline": [{"at": 1, "result": "error"}, {"at": 2, "progress": 1}]},
     "timeline[0].result"),
    ("/_admin/scripts", {"timeline": [{"at": 1, "progress": 2}]}, "timeline[0].progress"),
    ("/_admin/scripts", {"timeline": [{"at": 1, "result": "completed"}], "count": 0}, "count"),
    ("/_admin/clock", {"advance": -1}, "advance"),
    ("/_admin/clock", {"advance": "soon"}, "advance"),
    ("/start", {"script": {"timeline": [{"at": -1, "result": "completed"}]}},
     "script.timeline[0].at"),
]


@pytest.mark.parametrize(("path", "body", "field"), BAD, ids=[b[2] + ":" + b[0] for b in BAD])
def test_bad_control_input_is_a_400_naming_the_field(
        make_app: Callable[..., Flask], path: str, body: Any, field: str) -> None:
    client = make_app(admin_settings()).test_client()
    reply = client.post(path, json=body, headers=ADMIN)
    assert reply.status_code == 400
    error = reply.get_json()["error"]
    assert error["code"] == "bad_request" and error["message"].startswith(field)


@pytest.mark.parametrize(("query", "field"), [
    ("route=nowhere", "route"), ("status=abc", "status"), ("limit=0", "limit"),
    ("since=nan", "since"), ("job_id=a/b", "job_id"), ("colour=red", "colour")])
def test_bad_journal_query_is_a_400_naming_the_field(make_app: Callable[..., Flask], query: str,
                                                     field: str) -> None:
    reply = make_app(admin_settings()).test_client().get(f"/_admin/requests?{query}",
                                                         headers=ADMIN)
    assert reply.status_code == 400 and reply.get_json()["error"]["message"].startswith(field)


def test_clock_is_real_and_cannot_be_advanced_without_virtual_time(
        make_app: Callable[..., Flask], fake_clock: FakeClock) -> None:
    client = make_app(admin_settings(), clock=fake_clock.monotonic,
                      wall_clock=fake_clock.wall).test_client()
    assert client.get("/_admin/clock", headers=ADMIN).get_json() == {
        "virtual": False, "time": fake_clock.wall(), "monotonic": fake_clock.monotonic()}
    reply = client.post("/_admin/clock", json={"advance": 10}, headers=ADMIN)
    assert reply.status_code == 409 and reply.get_json()["error"]["code"] == "conflict"


def test_scripted_job_and_clock_routes_under_virtual_time(
        make_app: Callable[..., Flask]) -> None:
    """CLOCK=virtual: POST /_admin/clock moves the clock, and a scripted hour-long job follows it
    (memory store only: the Redis store refuses a virtual clock)."""
    client = make_app(admin_settings(clock="virtual")).test_client()
    before = client.get("/_admin/clock", headers=ADMIN).get_json()
    assert before["virtual"] is True
    timeline = [{"at": 1800, "progress": 0.5}, {"at": 3600, "result": "completed"}]
    job_id = client.post("/start", json={"script": {"timeline": timeline}}).get_json()["job_id"]
    after = client.post("/_admin/clock", json={"advance": 1800}, headers=ADMIN).get_json()
    assert after["time"] == before["time"] + 1800
    assert after["monotonic"] == before["monotonic"] + 1800
    doc = client.get(f"/status/{job_id}").get_json()
    assert (doc["result"], doc["progress"], doc["eta_seconds"]) == ("pending", 0.5, 1800)
    client.post("/_admin/clock", json={"advance": 1800}, headers=ADMIN)
    assert client.get(f"/status/{job_id}").get_json()["result"] == "completed"

# ------------------------------------------------------------------------------ CORS


def test_cors_preflight_and_actual_requests(fresh: LiveServer) -> None:
    url = fresh.url
    preflight = requests.options(f"{url}/start", headers={
        "Origin": ORIGIN, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, prefer, idempotency-key, content-type"},
        timeout=5)
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    allowed = preflight.headers["Access-Control-Allow-Headers"].lower()
    for header in ("authorization", "prefer", "idempotency-key", "last-event-id", "cancel-after",
                   "content-type"):
        assert header in allowed
    started = requests.post(f"{url}/start", json={"delay": 3600}, headers={"Origin": ORIGIN},
                            timeout=5)
    assert started.status_code == 201
    assert started.headers["Access-Control-Allow-Origin"] == ORIGIN
    exposed = started.headers["Access-Control-Expose-Headers"]
    for header in ("Retry-After", "Location", "RateLimit", "RateLimit-Policy"):
        assert header in exposed
    assert "Origin" in started.headers["Vary"]
    error = requests.get(f"{url}/status/nope", headers={"Origin": ORIGIN}, timeout=5)
    assert error.status_code == 404 and error.headers["Access-Control-Allow-Origin"] == ORIGIN
    # Preflights are journaled like any request, with their route.
    assert [e["method"] for e in journal(url, route="start")] == ["OPTIONS", "POST"]


def test_cors_other_origins_and_cors_off(fresh: LiveServer, make_server: Callable[..., Any]) -> None:
    other = {"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    preflight = requests.options(f"{fresh.url}/start", headers=other, timeout=5)
    assert preflight.status_code == 204 and "Access-Control-Allow-Origin" not in preflight.headers
    plain = requests.get(f"{fresh.url}/status", headers={"Origin": "https://evil.example"},
                         timeout=5)
    assert plain.status_code == 200 and "Access-Control-Allow-Origin" not in plain.headers
    off = make_server(fast_settings())
    reply = requests.get(f"{off.url}/status", headers={"Origin": ORIGIN}, timeout=5)
    assert "Access-Control-Allow-Origin" not in reply.headers
    assert requests.options(f"{off.url}/start", headers={
        "Origin": ORIGIN, "Access-Control-Request-Method": "POST"}, timeout=5).headers.get(
        "Access-Control-Allow-Origin") is None


def test_admin_state_is_reachable(make_app: Callable[..., Flask]) -> None:
    """The app state carries the control API's parts (the pytest plugin reads them)."""
    state = app_state(make_app(admin_settings()))
    assert state.admin is not None and state.admin.faults is state.faults


def test_control_api_answers_conform_to_the_document(make_app: Callable[..., Flask]) -> None:
    """Each control-API answer, success and error, is as openapi.yaml documents it."""
    from tests.server.test_contract import RESPONSE_CHECKS, schema

    def conforms(response: Any, path: str, method: str) -> None:
        params = {"rule_id": "r1"} if "{rule_id}" in path else None
        case = schema[path][method].Case(path_parameters=params)
        case.validate_response(response, checks=RESPONSE_CHECKS)

    client = make_app(admin_settings()).test_client()
    client.get("/status")
    rule = {"route": "status", "action": "status", "status": 502, "retry_after": 1, "times": 1}
    timeline = {"timeline": [{"at": 1, "progress": 0.5}, {"at": 2, "result": "completed"}]}
    calls = [
        ("/_admin/faults", "post", lambda: client.post("/_admin/faults", json=rule, headers=ADMIN)),
        ("/_admin/faults", "post", lambda: client.post("/_admin/faults", json={}, headers=ADMIN)),
        ("/_admin/faults", "get", lambda: client.get("/_admin/faults", headers=ADMIN)),
        ("/_admin/faults", "get", lambda: client.get("/_admin/faults")),
        ("/_admin/faults/{rule_id}", "delete",
         lambda: client.delete("/_admin/faults/r1", headers=ADMIN)),
        ("/_admin/requests", "get", lambda: client.get("/_admin/requests", headers=ADMIN)),
        ("/_admin/requests", "delete", lambda: client.delete("/_admin/requests", headers=ADMIN)),
        ("/_admin/scripts", "post", lambda: client.post("/_admin/scripts", json=timeline,
                                                        headers=ADMIN)),
        ("/_admin/clock", "get", lambda: client.get("/_admin/clock", headers=ADMIN)),
        ("/_admin/clock", "post", lambda: client.post("/_admin/clock", json={"advance": 1},
                                                      headers=ADMIN)),
        ("/_admin/reset", "post", lambda: client.post("/_admin/reset", headers=ADMIN)),
        ("/_admin/reset", "post", lambda: client.post("/_admin/reset", headers=ADMIN,
                                                      environ_base={"REMOTE_ADDR": "192.0.2.1"})),
    ]
    for path, method, send in calls:
        conforms(send(), path, method)
    off = make_app(fast_settings()).test_client()
    conforms(off.get("/_admin/faults", headers=ADMIN), "/_admin/faults", "get")


def test_the_start_banner_never_shows_the_admin_token() -> None:
    from vtwait.server.cli import start_banner

    banner = start_banner(admin_settings(admin_allow_remote=True))
    assert TOKEN not in banner and "ADMIN_ALLOW_REMOTE=on" in banner
