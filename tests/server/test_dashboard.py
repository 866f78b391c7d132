"""The dashboard's server side: the page and its files behind auth, and ``GET /dashboard/summary``.

In-process (Flask test client). The summary's counts are store-driven, so those tests run on both
stores on a fake clock without the timer thread, where every count is exact. The page itself is
driven in a real browser by ``tests/e2e/test_dashboard_browser.py``.
"""

from __future__ import annotations

import base64
import html.parser
import re
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask

from tests.helpers import FakeClock, fast_settings
from vtwait.server.dashboard import ASSETS, CONTENT_SECURITY_POLICY
from vtwait.server.state import app_state

AUTH = {"Authorization": "Basic " + base64.b64encode(b"u:p").decode()}
PAGES = ["/", "/dashboard/app.js", "/dashboard/style.css", "/dashboard/summary"]


@pytest.fixture(params=["memory", "redis"])
def store_kind(request: pytest.FixtureRequest) -> str:
    """The summary tests run on both stores."""
    return request.param


@pytest.fixture
def fake_app(make_app: Callable[..., Flask], fake_clock: FakeClock) -> Callable[..., Any]:
    """Factory: an app on the fake clock, no timer, its default job finished -> (app, client)."""

    def factory(**overrides: Any) -> tuple[Flask, Any]:
        app = make_app(fast_settings(**overrides), clock=fake_clock.monotonic,
                       wall_clock=fake_clock.wall, start_worker=False)
        fake_clock.advance(1)
        app_state(app).store.process_due()
        return app, app.test_client()

    return factory


def summary(client: Any) -> dict[str, Any]:
    reply = client.get("/dashboard/summary", headers=AUTH)
    assert reply.status_code == 200, reply.get_json()
    return reply.get_json()


@pytest.mark.parametrize("store_kind", ["memory"])
def test_the_page_and_its_files_need_the_api_credentials(make_app, store_kind) -> None:
    client = make_app(fast_settings(api_username="u", api_password="p")).test_client()
    for path in PAGES:
        reply = client.get(path)
        assert reply.status_code == 401, path
        assert reply.headers["WWW-Authenticate"].startswith("Basic "), path  # the browser asks
        assert client.get(path, headers=AUTH).status_code == 200, path


@pytest.mark.parametrize("store_kind", ["memory"])
def test_the_files_come_from_the_package_with_their_types_and_policy(client, store_kind) -> None:
    for name, path in (("index.html", "/"), ("app.js", "/dashboard/app.js"),
                       ("style.css", "/dashboard/style.css")):
        reply = client.get(path)
        assert reply.status_code == 200
        assert reply.headers["Content-Type"] == ASSETS[name]
        assert reply.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
        assert reply.headers["X-Content-Type-Options"] == "nosniff"
        assert len(reply.data) > 500
    assert "default-src 'none'" in CONTENT_SECURITY_POLICY and "http" not in CONTENT_SECURITY_POLICY


@pytest.mark.parametrize("store_kind", ["memory"])
@pytest.mark.parametrize("path", ["/dashboard/index.html", "/dashboard/nope.js",
                                  "/dashboard/..%2Fopenapi.yaml", "/dashboard/__init__.py"])
def test_other_names_under_dashboard_are_404_json(client, path, store_kind) -> None:
    reply = client.get(path)
    assert reply.status_code == 404
    assert reply.get_json()["error"]["code"] == "not_found"


class _Links(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [value or "" for name, value in attrs if name in ("src", "href", "action")]


@pytest.mark.parametrize("store_kind", ["memory"])
def test_the_page_loads_nothing_from_another_host(client, store_kind) -> None:
    """Every URL in the page is this origin's (or inline data), and the script and the style
    name no other host: the page works offline."""
    links = _Links()
    links.feed(client.get("/").get_data(as_text=True))
    assert "/dashboard/app.js" in links.urls and "/dashboard/style.css" in links.urls
    for url in links.urls:
        assert url.startswith(("/", "#", "data:")) and not url.startswith("//"), url
    for path in ("/dashboard/app.js", "/dashboard/style.css"):
        text = client.get(path).get_data(as_text=True)
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]", text.replace("// ", "")), path
        assert "@import" not in text and "import(" not in text, path


def test_the_summary_counts_jobs_by_phase_as_they_move(fake_app, fake_clock) -> None:
    app, client = fake_app(concurrency=1, job_ttl=100)
    before = summary(client)
    assert before["jobs"] == {"queued": 0, "running": 0, "completed": 1, "error": 0, "canceled": 0}
    assert before["live_jobs"] == 1  # the default job
    client.post("/start", json={"delay": 10})
    queued = client.post("/start", json={"delay": 10}).get_json()["job_id"]
    client.post("/start", json={"delay": 10, "outcome": "error"})
    assert summary(client)["jobs"] == {"queued": 2, "running": 1, "completed": 1, "error": 0,
                                       "canceled": 0}
    assert client.post(f"/status/{queued}/cancel").status_code == 200
    assert summary(client)["jobs"] == {"queued": 1, "running": 1, "completed": 1, "error": 0,
                                       "canceled": 1}
    fake_clock.advance(10)
    app_state(app).store.process_due()  # the first ends, the third starts
    assert summary(client)["jobs"] == {"queued": 0, "running": 1, "completed": 2, "error": 0,
                                       "canceled": 1}
    fake_clock.advance(10)
    app_state(app).store.process_due()
    after = summary(client)
    assert after["jobs"] == {"queued": 0, "running": 0, "completed": 2, "error": 1, "canceled": 1}
    assert after["live_jobs"] == 4
    fake_clock.advance(1000)  # past JOB_TTL: the jobs are forgotten, so are their counts
    app_state(app).store.process_due()
    gone = summary(client)
    assert gone["live_jobs"] == 1 and sum(gone["jobs"].values()) == 1


def test_the_summary_gives_the_stream_resume_points(fake_app) -> None:
    """``last_event_id`` is the log's last id (a stream opened after it misses nothing) and
    ``replay_from`` replays the retained log from its start."""
    app, client = fake_app()
    store = app_state(app).store
    for _ in range(3):
        client.post("/start", json={"delay": 10})
    first = summary(client)
    assert first["last_event_id"] == store.event_snapshot([])[1]
    replayed = store.events_after(first["replay_from"], 100)
    assert replayed[-1].event_id == first["last_event_id"] and len(replayed) >= 4
    client.post("/start", json={"delay": 10})
    assert [e.event_id for e in store.events_after(first["last_event_id"], 100)] == [
        summary(client)["last_event_id"]]


def test_the_summary_counts_answers_streams_and_says_what_is_on(fake_app) -> None:
    app, client = fake_app()
    first = summary(client)
    client.get("/healthz")
    client.get("/status")
    second = summary(client)
    assert second["requests_total"] == first["requests_total"] + 3  # two, and the first summary
    assert first["streams_open"] == 0 and first["long_polls_held"] == 0
    stream = client.get("/events", buffered=False)
    next(iter(stream.response))  # the stream is open once its first bytes are out
    assert summary(client)["streams_open"] == 1
    stream.close()
    assert summary(client)["streams_open"] == 0
    assert first["events"] is True and first["control_api"] is False
    assert isinstance(first["time"], float)
