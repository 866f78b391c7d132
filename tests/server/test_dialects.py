"""DIALECT: each service's routes, start answer, status words, error envelope and auth header.

The jobs are the native ones (fake clock, timer driven by hand), so each shape is reached on
purpose: queued, running, succeeded, failed, cancelled. The status monitor is always found from
the start answer (``Operation-Location``, ``urls.get``, the id in the body), as a client would.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from flask import Flask, request
from flask.testing import FlaskClient

import vtwait.server.app as server
from tests.helpers import FakeClock, fast_settings, start_server_process
from vtwait.server.dialects import DIALECT_CLASSES
from vtwait.server.dialects.base import call_native
from vtwait.server.settings import DIALECTS, ConfigError, Settings
from vtwait.server.state import app_state

KEY = "k-3f9a-dialect-key"


@dataclasses.dataclass(frozen=True)
class Shape:
    """How one dialect is spoken, as its public documentation says."""

    start: str  # the create route
    start_status: int
    monitor: Callable[[Any, Any], str]  # (start answer body, headers) -> status URL
    word: Callable[[Any], str]  # status answer body -> the state it tells
    words: dict[str, str]  # our state -> that word
    auth: dict[str, str]  # the service's own credential header
    error: Callable[[Any], str]  # error body -> the message inside
    cancel: Callable[[str], str] | None = None  # status URL -> cancel URL


def _openai_word(body: Any) -> str:
    return body["status"] + (f"/{body['error']['code']}" if body["error"] else "")


def _heygen_word(body: Any) -> str:
    data = body["data"]
    return data["status"] + (f"/{data['error']['code']}" if data["error"] else "")


def _google_word(body: Any) -> str:
    if not body["done"]:
        return "pending"
    return "response" if "response" in body else f"error:{body['error']['code']}"


SHAPES: dict[str, Shape] = {
    "native": Shape(
        "/start", 201, lambda body, headers: headers["Location"], lambda body: body["phase"],
        {"queued": "queued", "running": "running", "succeeded": "completed", "failed": "error",
         "cancelled": "canceled"},
        {"Authorization": f"Bearer {KEY}"}, lambda body: body["error"]["message"],
        cancel=lambda url: url + "/cancel"),
    "azure": Shape(
        "/translations", 202, lambda body, headers: headers["Operation-Location"],
        lambda body: body["status"],
        {"queued": "NotStarted", "running": "Running", "succeeded": "Succeeded",
         "failed": "Failed", "cancelled": "Canceled"},
        {"Ocp-Apim-Subscription-Key": KEY}, lambda body: body["error"]["message"]),
    "google": Shape(
        "/v1/videos:translate", 200, lambda body, headers: "/v1/" + body["name"], _google_word,
        {"queued": "pending", "running": "pending", "succeeded": "response", "failed": "error:2",
         "cancelled": "error:1"},
        {"x-goog-api-key": KEY}, lambda body: body["error"]["message"],
        cancel=lambda url: url + ":cancel"),
    "replicate": Shape(
        "/v1/predictions", 201, lambda body, headers: body["urls"]["get"],
        lambda body: body["status"],
        {"queued": "starting", "running": "processing", "succeeded": "succeeded",
         "failed": "failed", "cancelled": "canceled"},
        {"Authorization": f"Bearer {KEY}"}, lambda body: body["detail"],
        cancel=lambda url: url + "/cancel"),
    "openai": Shape(
        "/v1/videos", 200, lambda body, headers: f"/v1/videos/{body['id']}", _openai_word,
        {"queued": "queued", "running": "in_progress", "succeeded": "completed",
         "failed": "failed/video_generation_failed", "cancelled": "failed/cancelled"},
        {"Authorization": f"Bearer {KEY}"}, lambda body: body["error"]["message"]),
    "heygen": Shape(
        "/v2/video/generate", 200,
        lambda body, headers: f"/v1/video_status.get?video_id={body['data']['video_id']}",
        _heygen_word,
        {"queued": "pending", "running": "processing", "succeeded": "completed",
         "failed": "failed/render_failed", "cancelled": "failed/cancelled"},
        {"X-Api-Key": KEY}, lambda body: body["error"]["message"]),
}


@pytest.fixture
def make_dialect_app() -> Iterator[Callable[..., tuple[Flask, FakeClock]]]:
    apps: list[Flask] = []

    def factory(dialect: str, *, store: Callable[[Settings], Settings] = lambda s: s,
                **overrides: Any) -> tuple[Flask, FakeClock]:
        clock = FakeClock()
        settings = store(fast_settings(dialect=dialect, api_key=KEY, **overrides))
        app = server.create_app(settings, clock=clock.monotonic, wall_clock=clock.wall,
                                start_worker=False)
        apps.append(app)
        return app, clock

    yield factory
    for app in apps:
        app_state(app).store.shutdown()
        app_state(app).webhooks.close()


def start(client: FlaskClient, shape: Shape, body: dict[str, Any]) -> str:
    """Starts a job; returns its status URL, found in the start answer."""
    answer = client.post(shape.start, json=body, headers=shape.auth)
    assert answer.status_code == shape.start_status, answer.get_data(as_text=True)
    return shape.monitor(answer.get_json(), answer.headers)


def job_of(url: str) -> str:
    """The native job id inside a status URL."""
    return url.split("/")[-1].split("=")[-1].removeprefix("video_")


def test_every_dialect_has_a_shape_here() -> None:
    assert set(SHAPES) == set(DIALECTS) == set(DIALECT_CLASSES)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_each_state_reads_in_the_dialects_words(make_dialect_app, with_store,
                                                 dialect: str) -> None:
    """Queued, running, succeeded, failed and cancelled jobs, each read from its status monitor
    (on both stores)."""
    shape = SHAPES[dialect]
    app, clock = make_dialect_app(dialect, store=with_store)
    client = app.test_client()
    urls = {
        "succeeded": start(client, shape, {"delay": 1, "outcome": "completed"}),
        "failed": start(client, shape, {"delay": 1, "outcome": "error"}),
        "running": start(client, shape, {"delay": 100}),
        "cancelled": start(client, shape, {"delay": 100}),
    }
    store = app_state(app).store
    assert store.cancel(job_of(urls["cancelled"])) is not None
    clock.advance(2)
    store.process_due()
    # The default job holds the one slot.
    queued_app, _ = make_dialect_app(dialect, store=with_store, concurrency=1)
    queued_client = queued_app.test_client()
    urls_queued = start(queued_client, shape, {"delay": 1})
    seen = {state: shape.word(client.get(url, headers=shape.auth).get_json())
            for state, url in urls.items()}
    seen["queued"] = shape.word(queued_client.get(urls_queued, headers=shape.auth).get_json())
    assert seen == {state: shape.words[state] for state in seen}


@pytest.mark.parametrize("dialect", DIALECTS)
def test_errors_come_in_the_dialects_envelope(make_dialect_app, dialect: str) -> None:
    """Unknown job (404), malformed body (400), no credentials (401): the service's envelope."""
    shape = SHAPES[dialect]
    app, _ = make_dialect_app(dialect)
    client = app.test_client()
    url = start(client, shape, {"delay": 1})
    unknown = client.get(url.replace(job_of(url), "f" * 32), headers=shape.auth)
    assert unknown.status_code == 404
    assert "no job" in shape.error(unknown.get_json())
    bad = client.post(shape.start, data=b"[1]", content_type="application/json",
                      headers=shape.auth)
    assert bad.status_code == 400
    assert "object" in shape.error(bad.get_json())
    refused = client.get(url)
    assert refused.status_code == 401
    assert "credentials" in shape.error(refused.get_json())
    assert refused.headers["WWW-Authenticate"]


def test_envelopes_are_each_services_own(make_dialect_app) -> None:
    """The fields each service documents for an error, beyond the message."""
    bodies = {}
    for dialect in DIALECTS:
        app, _ = make_dialect_app(dialect)
        answer = app.test_client().get(SHAPES[dialect].start, headers=SHAPES[dialect].auth)
        bodies[dialect] = (answer.status_code, answer.mimetype, answer.get_json(),
                           answer.headers.get("x-ms-error-code"))
    assert bodies["azure"][2]["error"]["code"] == "MethodNotAllowed" == bodies["azure"][3]
    assert bodies["google"][2]["error"]["code"] == 405
    assert bodies["google"][2]["error"]["status"] == "UNKNOWN"
    assert bodies["replicate"][1] == "application/problem+json"
    assert bodies["replicate"][2]["status"] == 405 and bodies["replicate"][2]["title"]
    assert bodies["openai"][2]["error"]["type"] == "invalid_request_error"
    assert bodies["heygen"][2]["data"] is None
    assert bodies["native"][2]["error"]["code"] == "method_not_allowed"


@pytest.mark.parametrize("dialect", DIALECTS)
def test_the_services_auth_header_and_a_wrong_key(make_dialect_app, dialect: str) -> None:
    shape = SHAPES[dialect]
    app, _ = make_dialect_app(dialect)
    client = app.test_client()
    assert client.post(shape.start, headers=shape.auth).status_code == shape.start_status
    wrong = {name: value.replace(KEY, KEY[:-1] + "x") for name, value in shape.auth.items()}
    assert client.post(shape.start, headers=wrong).status_code == 401
    # Bearer and X-Api-Key are accepted in every dialect, beside the service's own header.
    for header in ({"Authorization": f"Bearer {KEY}"}, {"X-Api-Key": KEY}):
        assert client.post(shape.start, headers=header).status_code == shape.start_status


def test_azure_start_is_202_with_an_absolute_operation_location_and_hints(make_dialect_app):
    app, _ = make_dialect_app("azure")
    client = app.test_client()
    answer = client.post("/translations", json={"delay": 10}, headers=SHAPES["azure"].auth)
    location = answer.headers["Operation-Location"]
    assert location.startswith("http://localhost/operations/")
    assert answer.headers["Retry-After"] == "10"  # the guidelines' hint, from eta_seconds
    monitor = client.get(location, headers=SHAPES["azure"].auth)
    assert monitor.get_json()["id"] == answer.get_json()["id"]
    assert "Retry-After" in monitor.headers


@pytest.mark.parametrize("dialect", ["google", "replicate", "openai", "heygen"])
def test_dialects_without_hints_send_none(make_dialect_app, dialect: str) -> None:
    shape = SHAPES[dialect]
    app, _ = make_dialect_app(dialect)
    client = app.test_client()
    answer = client.post(shape.start, json={"delay": 10}, headers=shape.auth)
    status = client.get(shape.monitor(answer.get_json(), answer.headers), headers=shape.auth)
    assert "Retry-After" not in answer.headers and "Retry-After" not in status.headers


def test_google_cancel_answers_empty_and_the_operation_ends_cancelled(make_dialect_app) -> None:
    shape = SHAPES["google"]
    app, clock = make_dialect_app("google")
    client = app.test_client()
    url = start(client, shape, {"delay": 100})
    cancelled = client.post(url + ":cancel", headers=shape.auth)
    assert (cancelled.status_code, cancelled.get_json()) == (200, {})
    assert client.get(url, headers=shape.auth).get_json()["error"]["code"] == 1
    done = start(client, shape, {"delay": 1})
    clock.advance(2)
    app_state(app).store.process_due()
    refused = client.post(done + ":cancel", headers=shape.auth)
    assert refused.status_code == 400
    assert refused.get_json()["error"]["status"] == "FAILED_PRECONDITION"
    progress = client.get(start(client, shape, {"delay": 10}), headers=shape.auth).get_json()
    assert progress["metadata"]["progressPercent"] == 0


def test_replicate_urls_cancel_the_prediction(make_dialect_app) -> None:
    shape = SHAPES["replicate"]
    app, _ = make_dialect_app("replicate")
    client = app.test_client()
    answer = client.post(shape.start, json={"version": "v1", "input": {"delay": 100}},
                         headers=shape.auth)
    created = answer.get_json()
    assert answer.headers["Location"] == created["urls"]["get"]
    assert created["urls"]["cancel"].startswith("http://localhost/v1/predictions/")
    cancelled = client.post(created["urls"]["cancel"], headers=shape.auth)
    assert cancelled.status_code == 200
    assert cancelled.get_json()["status"] == "canceled"


@pytest.mark.parametrize("prefer", ["wait=61", "wait=0"])
def test_replicate_refuses_a_prefer_wait_out_of_range(make_dialect_app, prefer: str) -> None:
    app, _ = make_dialect_app("replicate")
    answer = app.test_client().post("/v1/predictions", json={},
                                    headers={**SHAPES["replicate"].auth, "Prefer": prefer})
    assert answer.status_code == 400
    assert "Prefer: wait" in answer.get_json()["detail"]


@pytest.mark.parametrize("video_id", ["abc", "video_", "video_" + "f" * 32])
def test_openai_unknown_or_malformed_ids_are_404(make_dialect_app, video_id: str) -> None:
    app, _ = make_dialect_app("openai")
    answer = app.test_client().get(f"/v1/videos/{video_id}", headers=SHAPES["openai"].auth)
    assert answer.status_code == 404
    content = app.test_client().get(f"/v1/videos/{video_id}/content",
                                    headers=SHAPES["openai"].auth)
    assert content.status_code == 404


def test_heygen_status_needs_a_video_id(make_dialect_app) -> None:
    app, _ = make_dialect_app("heygen")
    answer = app.test_client().get("/v1/video_status.get", headers=SHAPES["heygen"].auth)
    assert answer.status_code == 400
    assert answer.get_json()["error"]["message"] == "video_id is required"


def test_native_routes_stay_beside_a_dialect(make_dialect_app) -> None:
    """Health checks, metrics and the native API answer in every dialect, in the native shape."""
    app, _ = make_dialect_app("azure")
    client = app.test_client()
    assert client.get("/healthz").get_json() == {"status": "ok"}
    answer = client.get("/status/" + "f" * 32, headers=SHAPES["azure"].auth)
    assert answer.get_json()["error"]["code"] == "not_found"


def test_dialect_views_never_see_the_native_long_poll_parameters() -> None:
    """What a dialect lacks is not offered: ``?wait=`` and ``Prefer`` are gone for the native
    view it calls."""
    app = Flask(__name__)
    seen: dict[str, Any] = {}

    def view() -> Any:
        seen.update(args=dict(request.args), prefer=request.headers.get("Prefer"),
                    body=request.get_data())
        return "ok"

    with app.test_request_context("/x?wait=5&a=1", method="POST", data=b'{"z": 1}',
                                  headers={"Prefer": "wait=5"}):
        assert request.args["wait"] == "5"  # cached before the call, as a view would
        call_native(view, body={"delay": 1})
    assert seen == {"args": {"a": "1"}, "prefer": None, "body": b'{"delay": 1}'}


def test_an_unknown_dialect_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="DIALECT must be one of native, azure"):
        Settings(dialect="aws")
    assert Settings.from_env({"DIALECT": "replicate"}).dialect == "replicate"


# --- both stores: the hold of Replicate's Prefer: wait, and a round trip --------------------


@pytest.fixture(params=["memory", "redis"])
def store_kind(request: pytest.FixtureRequest) -> str:
    return request.param


def test_replicate_prefer_wait_holds_the_create_until_the_end(make_app) -> None:
    app = make_app(fast_settings(dialect="replicate"))
    client = app.test_client()
    held = client.post("/v1/predictions", json={"input": {"delay": 0.05}},
                       headers={"Prefer": "wait=5"})
    assert held.status_code == 201
    assert held.get_json()["status"] == "succeeded"
    assert held.get_json()["completed_at"] is not None
    not_held = client.post("/v1/predictions", json={"input": {"delay": 100}})
    assert not_held.get_json()["status"] == "processing"


def test_a_status_fault_comes_in_the_dialects_envelope(make_dialect_app) -> None:
    """FAULT_503 on a status monitor: the service's envelope, the native Retry-After kept."""
    shape = SHAPES["google"]
    app, _ = make_dialect_app("google", fault_503=1.0)
    client = app.test_client()
    answer = client.get(start(client, shape, {"delay": 10}), headers=shape.auth)
    assert answer.status_code == 503
    assert answer.get_json()["error"]["status"] == "UNAVAILABLE"
    assert answer.headers["Retry-After"] == "1"


def test_a_dialect_through_gunicorn_with_a_chunked_body() -> None:
    """``python server.py`` with DIALECT and API_KEY from its environment: create with a chunked
    body, the long-poll of Replicate's sync mode, read (a ``?wait`` is not a long-poll here),
    cancel, a wrong key."""
    settings = fast_settings(dialect="replicate", api_key=KEY)
    auth = {"Authorization": f"Bearer {KEY}"}
    with start_server_process(settings) as srv:
        created = requests.post(f"{srv.url}/v1/predictions", headers=auth,
                                data=iter([b'{"input": ', b'{"delay": 100}}']), timeout=10)
        assert created.status_code == 201, created.text
        prediction = created.json()
        assert prediction["status"] == "processing"
        assert prediction["urls"]["get"].startswith(srv.url)
        read = requests.get(prediction["urls"]["get"] + "?wait=5", headers=auth, timeout=10)
        assert read.json()["status"] == "processing"
        cancelled = requests.post(prediction["urls"]["cancel"], headers=auth, timeout=10)
        assert cancelled.json()["status"] == "canceled"
        held = requests.post(f"{srv.url}/v1/predictions", json={"input": {"delay": 0.05}},
                             headers={**auth, "Prefer": "wait=5"}, timeout=10)
        assert held.json()["status"] == "succeeded"
        refused = requests.get(prediction["urls"]["get"], headers={"X-Api-Key": "nope"},
                               timeout=10)
        assert refused.status_code == 401
        assert refused.headers["Content-Type"] == "application/problem+json"


def test_the_request_log_shows_the_query_as_sent(make_dialect_app, caplog) -> None:
    caplog.set_level(logging.INFO, logger="vtwait.server.app")
    shape = SHAPES["openai"]
    app, _ = make_dialect_app("openai")
    client = app.test_client()
    url = start(client, shape, {"delay": 10})
    assert client.get(url + "?wait=5&x=1", headers=shape.auth).status_code == 200
    assert any(f"GET {url}?wait=5&x=1 200" in r.getMessage() for r in caplog.records)


def test_the_output_url_lands_where_each_service_puts_it() -> None:
    """A completed document with the lifecycle contract's ``output`` (issue 16): each dialect
    names its URL in its own field."""
    from vtwait.server.dialects import azure, google, heygen, openai, replicate

    url = "http://127.0.0.1:8000/outputs/abc?expires=1900000000&signature=00"
    doc = {"job_id": "abc", "result": "completed", "phase": "completed", "progress": 1.0,
           "created_at": 1_700_000_000.0, "started_at": 1_700_000_000.5,
           "finished_at": 1_700_000_004.0,
           "output": {"url": url, "expires_at": 1_900_000_000, "content_type": "video/mp4",
                      "size": 10, "sha256": "0" * 64}}
    app = Flask(__name__)
    app.register_blueprint(replicate.blueprint)
    with app.test_request_context():
        assert replicate.prediction(doc)["output"] == url
    assert azure.status_monitor(doc)["result"]["outputUrl"] == url
    assert google.operation_of(doc)["response"]["outputUri"] == url
    assert openai.video(doc)["expires_at"] == 1_900_000_000
    assert heygen.video_status(doc)["video_url"] == url
    assert heygen.video_status(doc)["duration"] == 3.5
    del doc["output"]  # not produced yet: no URL, in every shape
    assert azure.status_monitor(doc)["result"]["outputUrl"] is None
    assert "outputUri" not in google.operation_of(doc)["response"]
    assert heygen.video_status(doc)["video_url"] is None


def test_fault_rules_and_the_journal_name_a_dialects_routes(make_dialect_app) -> None:
    """A control-API rule on the "status" route fires on the dialect's status monitor, and the
    journal names the dialect's requests by the native route names and job."""
    shape = SHAPES["replicate"]
    app, _ = make_dialect_app("replicate", admin_token="t0ken-for-tests")
    client = app.test_client()
    admin = {"Authorization": "Bearer t0ken-for-tests"}
    rule = client.post("/_admin/faults", json={"route": "status", "action": "status",
                                               "status": 503, "times": 1}, headers=admin)
    assert rule.status_code == 201, rule.get_data(as_text=True)
    monitor = start(client, shape, {"delay": 10})
    assert client.get(monitor, headers=shape.auth).status_code == 503
    assert client.get(monitor, headers=shape.auth).status_code == 200
    journal = client.get("/_admin/requests", headers=admin).get_json()["requests"]
    assert [(entry["route"], entry["status"]) for entry in journal] == [
        ("start", 201), ("status", 503), ("status", 200)]
    assert journal[1]["job_id"] == job_of(monitor)
