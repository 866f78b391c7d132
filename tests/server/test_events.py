"""The job event stream, ``GET /events``: the store's event log and the Server-Sent Events route.

In-process tests run the app on a fake clock without its timer thread and read the stream's chunks
as the server yields them; live tests read it over real HTTP on 127.0.0.1 with a small SSE reader
written here (the client's parser is not the thing under test).
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from flask import Flask

import vtwait.server.app as server
import vtwait.server.events as event_stream
import vtwait.testing as testing
from tests.helpers import ROOT, FakeClock, LiveServer, fast_settings
from vtwait.server.state import app_state
from vtwait.server.stores.base import EventIdExpiredError, JobEvent, LoggedEvent, StoreClosedError
from vtwait.server.stores.memory import ADVANCE_SLICE, MemoryJobStore

#: Generous bound for conditions a live test waits for (the machine is shared and noisy).
PATIENCE = 30.0
#: Heartbeat of the live servers: short, so a reader thread that was told to stop wakes soon.
LIVE_HEARTBEAT = 0.2


@pytest.fixture(params=["memory", "redis"])
def store_kind(request: pytest.FixtureRequest) -> str:
    """Every test here that builds an app runs on both stores (Redis: the log is a stream)."""
    return request.param


# --- helpers ----------------------------------------------------------------------------------


def parse_sse(text: str) -> list[dict[str, str]]:
    """Splits SSE text into its blocks: each a dict of its fields (``comment`` for ``: x``)."""
    blocks = []
    for raw in text.split("\n\n"):
        if not raw:
            continue
        block: dict[str, str] = {}
        for line in raw.split("\n"):
            name, _, value = line.partition(":")
            block[name or "comment"] = value.removeprefix(" ")
        blocks.append(block)
    return blocks


class Stream:
    """An in-process stream: the test client's response, read chunk by chunk."""

    def __init__(self, response: Any) -> None:
        self.response = response
        self._chunks = iter(response.response)

    def read(self) -> list[dict[str, str]]:
        """The blocks of the next chunk the server yields (waits for it)."""
        return parse_sse(next(self._chunks).decode())

    def rest(self) -> list[dict[str, str]]:
        """Every block until the stream ends (it must end: the store is closed or left behind)."""
        return parse_sse(b"".join(self._chunks).decode())

    def close(self) -> None:
        self.response.close()


@pytest.fixture
def make_fake(make_app: Callable[..., Flask], fake_clock: FakeClock):
    """Factory: an app on the fake clock, no timer thread, its default job already finished
    (so it adds no event to a test's own) -> (app, client, store)."""

    def factory(**overrides: Any) -> tuple[Flask, Any, server.JobStore]:
        app = make_app(fast_settings(**overrides), clock=fake_clock.monotonic,
                       wall_clock=fake_clock.wall, start_worker=False)
        store = app_state(app).store
        fake_clock.advance(1)
        store.process_due()
        return app, app.test_client(), store

    return factory


def open_stream(client: Any, query: str = "", **headers: str) -> Stream:
    response = client.get(f"/events{query}", headers=headers, buffered=False)
    assert response.status_code == 200, response.data
    assert response.mimetype == "text/event-stream"
    return Stream(response)


def start(client: Any, **body: Any) -> str:
    return client.post("/start", json=body).get_json()["job_id"]


def changes(blocks: list[dict[str, str]]) -> list[tuple[int, dict[str, Any]]]:
    """The (id, document) of each change block (those with an ``id:``)."""
    return [(int(b["id"]), json.loads(b["data"])) for b in blocks if "id" in b]


# --- settings ---------------------------------------------------------------------------------


def test_event_settings_defaults() -> None:
    """The stream's settings default to the documented values."""
    settings = server.Settings()
    assert settings.events and (settings.event_retention, settings.event_heartbeat) == (100_000, 15)
    assert (settings.event_send_timeout, settings.max_streams, settings.max_stream_jobs) == (
        30, 1000, 1000)


@pytest.mark.parametrize(
    ("overrides", "name"),
    [({"events": "yes"}, "EVENTS"), ({"event_retention": 0}, "EVENT_RETENTION"),
     ({"event_heartbeat": 0}, "EVENT_HEARTBEAT"), ({"event_heartbeat": -1}, "EVENT_HEARTBEAT"),
     ({"event_send_timeout": 0}, "EVENT_SEND_TIMEOUT"), ({"max_streams": -1}, "MAX_STREAMS"),
     ({"max_stream_jobs": 0}, "MAX_STREAM_JOBS"), ({"max_stream_jobs": 1.5}, "MAX_STREAM_JOBS")],
)
def test_bad_event_settings_are_refused_naming_the_setting(overrides: dict, name: str) -> None:
    """Each invalid stream setting raises ConfigError whose message starts with its name."""
    with pytest.raises(server.ConfigError, match=f"^{name} "):
        server.Settings(**overrides)


def test_cli_bad_event_setting_exits_2(tmp_path) -> None:
    """`python server.py --event-heartbeat 0` exits 2 with one line naming EVENT_HEARTBEAT."""
    command = [sys.executable, str(ROOT / "server.py"), "--env-file", os.devnull,
               "--event-heartbeat", "0"]
    result = subprocess.run(command, check=False, capture_output=True, text=True,
                            timeout=PATIENCE, cwd=tmp_path)
    assert result.returncode == 2 and "EVENT_HEARTBEAT" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


# --- the store's event log ----------------------------------------------------------------------


def test_each_change_but_eviction_is_logged_once_with_increasing_ids(make_fake, fake_clock) -> None:
    """started, completed and error are logged in order with consecutive ids; eviction is not."""
    _, client, store = make_fake(job_ttl=5)
    _, cursor = store.event_snapshot([])
    ok, bad = start(client, delay=1), start(client, delay=2, outcome="error")
    fake_clock.advance(3)
    store.process_due()
    logged = store.events_after(cursor, 100)
    assert [(e.job_id, e.kind) for e in logged] == [
        (ok, "started"), (bad, "started"), (ok, "completed"), (bad, "error")]
    assert [e.event_id for e in logged] == list(range(cursor + 1, cursor + 1 + len(logged)))
    final = next(e for e in logged if e.job_id == ok and e.kind == "completed")
    status = client.get(f"/status/{ok}").get_json()
    status.pop("output")  # signed per answer for its host: not in the logged document
    assert json.loads(final.data) == status
    fake_clock.advance(6)  # both evicted now, but the log is younger than JOB_TTL
    assert store.process_due() == 2 and store.events_after(logged[-1].event_id, 100) == []


def test_events_after_returns_at_most_limit_oldest_first(make_fake) -> None:
    """A read returns the oldest `limit` events after the id; reading on continues without gaps."""
    _, client, store = make_fake()
    _, cursor = store.event_snapshot([])
    for _ in range(5):
        start(client, delay=60)
    first = store.events_after(cursor, 2)
    second = store.events_after(first[-1].event_id, 10)
    assert [e.event_id for e in first + second] == list(range(cursor + 1, cursor + 6))


def test_retention_by_count_and_by_job_ttl_and_unknown_ids_raise(make_fake, fake_clock) -> None:
    """Ids older than the last EVENT_RETENTION events, older than JOB_TTL, or never given raise."""
    _, client, store = make_fake(event_retention=3, job_ttl=10)
    _, cursor = store.event_snapshot([])
    for _ in range(5):
        start(client, delay=60)
    with pytest.raises(EventIdExpiredError) as info:
        store.events_after(cursor, 10)
    assert info.value.oldest == cursor + 3 and info.value.last == cursor + 5
    assert len(store.events_after(cursor + 2, 10)) == 3  # the oldest retained one is cursor + 3
    with pytest.raises(EventIdExpiredError):
        store.events_after(cursor + 6, 10)  # above the last id: from another run
    fake_clock.advance(11)
    store.process_due()
    with pytest.raises(EventIdExpiredError):
        store.events_after(cursor + 4, 10)
    assert store.events_after(cursor + 5, 10) == []  # the last id itself is still a valid cursor


def test_ids_follow_the_order_of_changes_under_concurrent_starts(app: Flask) -> None:
    """8 threads starting 50 jobs each: 400 'started' events, ids consecutive, no id twice."""
    store = app_state(app).store
    _, cursor = store.event_snapshot([])
    client = app.test_client()

    def starts() -> None:
        for _ in range(50):
            client.post("/start", json={"delay": 60})

    threads = [threading.Thread(target=starts) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    logged = [e for e in store.events_after(cursor, 10_000) if e.kind == "started"]
    ids = [e.event_id for e in store.events_after(cursor, 10_000)]
    assert ids == sorted(set(ids)) and ids == list(range(cursor + 1, cursor + 1 + len(ids)))
    assert len({e.job_id for e in logged}) == 400


def test_a_snapshot_matches_the_log_up_to_its_cursor_while_jobs_finish(make_app) -> None:
    """Snapshots taken while the timer finishes 300 jobs: each document shows exactly the state
    its job's last event up to the snapshot's cursor gives (snapshot and tail are atomic)."""
    app = make_app(fast_settings(min_delay=0.0, max_delay=0.3, error_probability=0.5))
    store = app_state(app).store
    _, baseline = store.event_snapshot([])
    jobs = [store.start()[0]["job_id"] for _ in range(300)]
    snapshots: list[Any] = []
    while not snapshots or any(d["result"] == "pending" for d in snapshots[-1][0]):
        snapshots.append(store.event_snapshot(jobs))
    log = store.events_after(baseline, 10_000)
    assert len(snapshots) > 1
    for docs, cursor in snapshots:
        state: dict[str, str] = {}
        for event in log:
            if event.event_id <= cursor:
                state[event.job_id] = json.loads(event.data)["result"]
        assert [d["result"] for d in docs] == [state[job] for job in jobs]


def test_wait_events_returns_empty_on_timeout_and_raises_once_closed(make_fake) -> None:
    """A hold that times out returns []; after shutdown a hold raises StoreClosedError at once."""
    _, _, store = make_fake()
    _, cursor = store.event_snapshot([])
    assert store.wait_events(cursor, 10, 0.0) == []
    store.shutdown()
    with pytest.raises(StoreClosedError):
        store.wait_events(cursor, 10, 60.0)


@pytest.mark.parametrize("store_kind", ["memory"])  # reads the memory store's condition
def test_shutdown_releases_a_held_wait_events(make_fake) -> None:
    """A reader held in wait_events (for 60 s) is released by shutdown with StoreClosedError."""
    _, _, store = make_fake()
    _, cursor = store.event_snapshot([])
    outcome: list[BaseException] = []

    def hold() -> None:
        try:
            store.wait_events(cursor, 10, 60.0)
        except StoreClosedError as exc:
            outcome.append(exc)

    holder = threading.Thread(target=hold)
    holder.start()
    # The condition's waiter list (stdlib internals) shows when the reader is really held.
    wait_until(lambda: len(store._new_events._waiters) == 1)
    store.shutdown()
    holder.join(PATIENCE)
    assert not holder.is_alive() and isinstance(outcome[0], StoreClosedError)


# --- the route, in process ----------------------------------------------------------------------


def test_a_stream_carries_one_status_event_per_change(make_fake, fake_clock) -> None:
    """Unfiltered: retry line first, then each later change once, ids strictly increasing."""
    _, client, store = make_fake()
    stream = open_stream(client)
    opening = stream.read()
    assert opening == [{"retry": str(event_stream.RECONNECT_MS)}]
    job = start(client, delay=1, outcome="error")
    started = changes(stream.read())
    fake_clock.advance(2)
    store.process_due()
    seen = started + changes(stream.read())
    mine = [(doc["result"], doc["job_id"]) for _, doc in seen if doc["job_id"] == job]
    assert mine == [("pending", job), ("error", job)]
    assert [i for i, _ in seen] == sorted({i for i, _ in seen})
    assert seen[-1][1] == client.get(f"/status/{job}").get_json()
    stream.close()


def test_queue_and_cancel_changes_are_streamed_too(make_fake, fake_clock) -> None:
    """CONCURRENCY=1: a queued job's 'running' and its cancel are status events with ids."""
    _, client, store = make_fake(concurrency=1)
    first, second = start(client, delay=1), start(client, delay=60)
    stream = open_stream(client, f"?job_id={second}")
    assert json.loads(stream.read()[1]["data"])["phase"] == "queued"
    fake_clock.advance(2)
    store.process_due()  # the first ends, the second leaves the queue
    assert client.post(f"/status/{second}/cancel").status_code == 200
    seen = changes(stream.read())  # both were logged before the read, but the router's pump
    while len(seen) < 2:  # may hand them on in two steps (issue 19): read until both came
        seen += changes(stream.read())
    assert [doc["phase"] for _, doc in seen] == ["running", "canceled"]
    assert seen[-1][1] == client.get(f"/status/{second}").get_json() and first != second
    stream.close()


def test_job_id_filter_starts_with_a_snapshot_without_ids(make_fake, fake_clock) -> None:
    """?job_id=: a snapshot event per listed job (no id), then only those jobs' changes."""
    _, client, store = make_fake()
    watched, other = start(client, delay=1), start(client, delay=1)
    done = start(client, delay=0)  # finished before the stream opened: must not be missed
    stream = open_stream(client, f"?job_id={watched}&job_id={done}&job_id={watched}")
    opening = stream.read()
    assert opening[0] == {"retry": "1000"}
    assert [(b["event"], "id" in b) for b in opening[1:]] == [("status", False)] * 2
    docs = [json.loads(b["data"]) for b in opening[1:]]
    assert [(d["job_id"], d["result"]) for d in docs] == [(watched, "pending"), (done, "completed")]
    fake_clock.advance(2)
    store.process_due()
    live = changes(stream.read())
    assert [(doc["job_id"], doc["result"]) for _, doc in live] == [(watched, "completed")]
    assert other not in {doc["job_id"] for _, doc in live}
    stream.close()


@pytest.mark.parametrize("job_id", ["0123456789abcdef0123456789abcdef", "bad id!", "x" * 129])
def test_unknown_or_malformed_listed_jobs_get_not_found_events(make_fake, job_id: str) -> None:
    """A listed job the server does not know (any form) gets event: not_found with a JSON error."""
    _, client, _ = make_fake()
    stream = open_stream(client, "?" + requests.compat.urlencode({"job_id": job_id}))
    block = stream.read()[1]
    assert block["event"] == "not_found" and "id" not in block
    data = json.loads(block["data"])
    assert data["job_id"] == job_id and data["error"]["code"] == "not_found"
    assert data["error"]["message"]
    stream.close()


def test_a_job_id_cannot_inject_lines_into_the_stream(make_fake) -> None:
    """A listed id holding CR, LF, U+2028 and 'id:' text stays inside one escaped data line."""
    _, client, _ = make_fake()
    hostile = "x\r\nid: 1\nevent: status\n\ndata: {}\u2028\u0085"
    response = client.get("/events?" + requests.compat.urlencode({"job_id": hostile}),
                          buffered=False)
    stream = Stream(response)
    raw = next(stream._chunks)
    assert raw.isascii() and raw.count(b"\n") == 2 + 3  # retry + blank, then one block
    block = parse_sse(raw.decode())[1]
    assert block["event"] == "not_found" and json.loads(block["data"])["job_id"] == hostile
    stream.close()


def test_resume_replays_exactly_the_changes_after_last_event_id(make_fake, fake_clock) -> None:
    """Last-Event-ID (or ?last_event_id=): the changes after it, once each, then live."""
    _, client, store = make_fake()
    stream = open_stream(client)
    stream.read()
    jobs = [start(client, delay=1) for _ in range(3)]
    first = changes(stream.read())[:2]  # the client got two changes, then its connection dropped
    stream.close()
    fake_clock.advance(2)
    store.process_due()  # three completions while it was away
    hows: tuple[dict[str, Any], ...] = ({"headers": {"Last-Event-ID": str(first[-1][0])}},
                                        {"query": f"?last_event_id={first[-1][0]}"})
    for how in hows:
        resumed = open_stream(client, how.get("query", ""), **how.get("headers", {}))
        assert resumed.read() == [{"retry": "1000"}]
        replay = changes(resumed.read())
        combined = [i for i, _ in first + replay]
        assert combined == list(range(combined[0], combined[0] + len(combined)))
        assert [d["result"] for _, d in replay] == ["pending"] + ["completed"] * 3
        assert {d["job_id"] for _, d in replay} == set(jobs)
        resumed.close()


def test_resume_with_job_ids_sends_the_snapshot_first(make_fake, fake_clock) -> None:
    """With job_id and Last-Event-ID: snapshot first, then the job's replayed changes."""
    _, client, store = make_fake()
    _, cursor = store.event_snapshot([])
    job = start(client, delay=1)
    fake_clock.advance(2)
    store.process_due()
    stream = open_stream(client, f"?job_id={job}", **{"Last-Event-ID": str(cursor)})
    opening, replay = stream.read(), stream.read()
    assert [json.loads(b["data"])["result"] for b in opening[1:]] == ["completed"]
    assert [d["result"] for _, d in changes(replay)] == ["pending", "completed"]
    stream.close()


def test_the_header_wins_over_the_query_parameter(make_fake) -> None:
    """Last-Event-ID (what EventSource sends on reconnect) beats a stale ?last_event_id=."""
    _, client, store = make_fake()
    _, cursor = store.event_snapshot([])
    start(client, delay=60)
    stream = open_stream(client, "?last_event_id=1", **{"Last-Event-ID": str(cursor)})
    stream.read()
    assert [i for i, _ in changes(stream.read())] == [cursor + 1]
    stream.close()


def test_an_expired_event_id_is_a_410_before_the_stream(make_fake) -> None:
    """An id older than the retained events, or from another run, is a JSON 410."""
    _, client, store = make_fake(event_retention=2)
    _, cursor = store.event_snapshot([])
    for _ in range(3):
        start(client, delay=60)
    for value in (str(cursor), "0", str(cursor + 10)):
        reply = client.get("/events", headers={"Last-Event-ID": value})
        assert reply.status_code == 410 and reply.mimetype == "application/json"
        assert reply.get_json()["error"]["code"] == "event_id_expired"
    assert client.get(f"/events?last_event_id={cursor}").status_code == 410
    assert event_stream.open_streams(client.application) == 0


@pytest.mark.parametrize(
    ("query", "headers"),
    [("?last_event_id=-1", {}), ("?last_event_id=1.5", {}), ("?last_event_id=1e3", {}),
     ("?last_event_id=" + "9" * 400, {}), ("?last_event_id=%EF%BC%91", {}),  # fullwidth "1"
     ("", {"Last-Event-ID": "abc"}), ("", {"Last-Event-ID": "9" * 21}),
     ("?last_event_id=x", {"Last-Event-ID": ""}),  # the header wins, but both must be well formed
     ("?job_id=a&job_id=b&job_id=c", {})],
)
def test_malformed_ids_and_too_many_jobs_are_400(make_fake, query: str, headers: dict) -> None:
    """A malformed event id, or more job_id values than MAX_STREAM_JOBS (2 here), is a JSON 400."""
    _, client, _ = make_fake(max_stream_jobs=2)
    reply = client.get(f"/events{query}", headers=headers)
    assert reply.status_code == 400 and reply.get_json()["error"]["code"] == "bad_request"


def test_max_streams_answers_429_with_retry_after_and_frees_on_close(make_fake) -> None:
    """Past MAX_STREAMS open streams: 429 + Retry-After; closing one frees its slot."""
    app, client, _ = make_fake(max_streams=2)
    streams = [open_stream(client) for _ in range(2)]
    reply = client.get("/events")
    assert reply.status_code == 429 and reply.get_json()["error"]["code"] == "too_many_streams"
    assert int(reply.headers["Retry-After"]) >= 1
    assert event_stream.open_streams(app) == 2
    streams[0].close()
    assert event_stream.open_streams(app) == 1
    open_stream(client).close()
    head = client.head("/events")  # a HEAD takes a slot and frees it when the server closes it
    head.close()
    assert head.status_code == 200
    assert event_stream.open_streams(app) == 1


@pytest.mark.parametrize("overrides", [{"events": False}, {"plain": True}])
def test_events_off_or_plain_server_answers_404_like_an_old_server(make_fake, overrides) -> None:
    """EVENTS=0 or PLAIN=1: no /events route, a JSON 404 (what a client falls back on)."""
    _, client, _ = make_fake(**overrides)
    reply = client.get("/events")
    assert reply.status_code == 404 and reply.get_json()["error"]["code"] == "not_found"


def test_the_stream_needs_credentials(make_app) -> None:
    """With auth on, /events without valid Basic credentials is a 401; with them, a stream."""
    app = make_app(fast_settings(api_username="u", api_password="p"))
    client = app.test_client()
    assert client.get("/events").status_code == 401
    good = "Basic " + base64.b64encode(b"u:p").decode()
    assert open_stream(client, Authorization=good).read()[0] == {"retry": "1000"}


def test_a_reader_left_behind_retention_is_ended(make_fake) -> None:
    """A stream more than EVENT_RETENTION events behind ends (its resume will get a 410)."""
    app, client, _ = make_fake(event_retention=5)
    stream = open_stream(client)
    stream.read()
    for _ in range(6):
        start(client, delay=60)
    assert stream.rest() == []
    assert event_stream.open_streams(app) == 0


def test_a_silent_stream_sends_pings(make_fake) -> None:
    """After EVENT_HEARTBEAT seconds without a write, the stream sends a ': ping' comment."""
    _, client, _ = make_fake(event_heartbeat=0.01)
    stream = open_stream(client)
    stream.read()
    assert stream.read() == [{"comment": "ping"}]
    stream.close()


def test_store_shutdown_ends_a_stream_cleanly(make_fake) -> None:
    """store.shutdown() ends an open stream: the body finishes and its slot is freed."""
    app, client, store = make_fake()
    stream = open_stream(client)
    stream.read()
    store.shutdown()
    assert stream.rest() == []
    assert event_stream.open_streams(app) == 0


# --- live: real HTTP on 127.0.0.1 ---------------------------------------------------------------


class LiveReader:
    """A real SSE client over requests (stream=True) in a thread, collecting blocks."""

    def __init__(self, url: str, **headers: str) -> None:
        self.blocks: list[dict[str, str]] = []
        self.error: BaseException | None = None
        self.ended = threading.Event()
        self._response = requests.get(url, headers=headers, stream=True, timeout=PATIENCE)
        assert self._response.status_code == 200
        assert self._response.headers["Content-Type"].startswith("text/event-stream")
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        block: dict[str, str] = {}
        try:
            for line in self._response.iter_lines(decode_unicode=True):
                if line:
                    name, _, value = line.partition(":")
                    block[name or "comment"] = value.removeprefix(" ")
                elif block:
                    self.blocks.append(block)
                    block = {}
        except BaseException as exc:  # noqa: BLE001 - recorded for the test to assert on
            self.error = exc
        finally:
            self.ended.set()

    def wait_for(self, condition: Callable[[list[dict[str, str]]], bool]) -> None:
        """Waits (up to PATIENCE) until condition(blocks) holds."""
        deadline = time.monotonic() + PATIENCE
        while not condition(list(self.blocks)):
            assert time.monotonic() < deadline and not self.ended.is_set(), self.blocks[-5:]
            time.sleep(0.01)

    def close(self) -> None:
        self._response.close()
        self._thread.join(PATIENCE)


def wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + PATIENCE
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


def test_live_stream_reports_every_job_once_with_its_final_status(make_server) -> None:
    """50 jobs over real HTTP: each job's final document arrives once, equal to GET /status."""
    live: LiveServer = make_server(fast_settings(error_probability=0.5, event_heartbeat=LIVE_HEARTBEAT))
    session = requests.Session()
    jobs = [session.post(f"{live.url}/start").json()["job_id"] for _ in range(50)]
    query = "&".join(f"job_id={job}" for job in jobs)
    reader = LiveReader(f"{live.url}/events?{query}")

    def finals(blocks: list[dict[str, str]]) -> dict[str, dict[str, Any]]:
        docs = [json.loads(b["data"]) for b in blocks if b.get("event") == "status"]
        return {d["job_id"]: d for d in docs if d["result"] != "pending"}

    reader.wait_for(lambda blocks: len(finals(blocks)) == 50)
    reader.close()
    ids = [int(b["id"]) for b in reader.blocks if "id" in b]
    assert ids == sorted(set(ids))
    for job, doc in finals(reader.blocks).items():
        status = session.get(f"{live.url}/status/{job}").json()
        status.pop("output", None)  # signed per answer for its host: not in events
        assert doc == status
    assert {d["result"] for d in finals(reader.blocks).values()} == {"completed", "error"}


def test_live_resume_after_a_dropped_connection_has_no_gap_and_no_duplicate(make_server) -> None:
    """Drop the stream mid-way, resume with Last-Event-ID: together, every change exactly once."""
    live: LiveServer = make_server(fast_settings(min_delay=0.2, max_delay=0.6,
                                                event_heartbeat=LIVE_HEARTBEAT))
    first = LiveReader(f"{live.url}/events")
    jobs = [requests.post(f"{live.url}/start").json()["job_id"] for _ in range(20)]
    first.wait_for(lambda blocks: sum("id" in b for b in blocks) >= 10)
    first.close()  # the connection drops; jobs go on finishing meanwhile
    got = [b for b in first.blocks if "id" in b]
    second = LiveReader(f"{live.url}/events", **{"Last-Event-ID": got[-1]["id"]})
    wait_until(lambda: all((live.store.status(job) or {})["result"] != "pending" for job in jobs))
    _, last = live.store.event_snapshot([])
    second.wait_for(lambda blocks: any(b.get("id") == str(last) for b in blocks))
    second.close()
    received = got + [b for b in second.blocks if "id" in b]
    ids = [int(b["id"]) for b in received]
    assert ids == list(range(ids[0], last + 1))
    docs = [json.loads(b["data"]) for b in received]
    results = [(d["job_id"], d["result"]) for d in docs if d["job_id"] in jobs]
    assert sorted(results) == sorted([(job, "pending") for job in jobs] + [
        (job, (live.store.status(job) or {})["result"]) for job in jobs])


def test_live_heartbeat_comments_arrive(make_server) -> None:
    """With EVENT_HEARTBEAT=0.05, an idle stream carries ': ping' comments over real HTTP."""
    live: LiveServer = make_server(fast_settings(event_heartbeat=0.05))
    reader = LiveReader(f"{live.url}/events")
    reader.wait_for(lambda blocks: sum(b == {"comment": "ping"} for b in blocks) >= 2)
    reader.close()


def test_live_server_stop_ends_open_streams_cleanly(make_server) -> None:
    """Stopping the server ends each open stream with a proper end of body, no error."""
    live: LiveServer = make_server(fast_settings(event_heartbeat=LIVE_HEARTBEAT))
    readers = [LiveReader(f"{live.url}/events") for _ in range(3)]
    for reader in readers:
        reader.wait_for(lambda blocks: len(blocks) >= 1)
    live.stop()
    for reader in readers:
        assert reader.ended.wait(PATIENCE) and reader.error is None
    assert event_stream.open_streams(live.app) == 0


def raw_stream(url: str, receive_buffer: int = 4096) -> socket.socket:
    """A raw socket that asks for /events and then never reads (a stuck client)."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.connect((host, int(port)))
    sock.sendall(f"GET /events HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    return sock


def test_a_client_that_stops_reading_is_dropped_and_blocks_nobody(make_server, caplog) -> None:
    """A stuck reader: its stream is dropped after EVENT_SEND_TIMEOUT of stalled writes, while
    the timer, other requests and another stream go on."""
    live: LiveServer = make_server(fast_settings(event_send_timeout=0.5, max_jobs=10**6,
                                                event_heartbeat=LIVE_HEARTBEAT))
    stuck = raw_stream(live.url)
    wait_until(lambda: event_stream.open_streams(live.app) == 1)
    healthy = LiveReader(f"{live.url}/events?job_id=x")  # filtered: it gets none of the flood
    try:
        rounds = 0
        while event_stream.open_streams(live.app) > 1:  # flood until the stuck one is dropped
            assert rounds < 100, "a stuck reader was never dropped"
            for _ in range(500):
                live.store.start(delay=0)
            rounds += 1
            time.sleep(0.05)
        # The rest of the server never waited on it: a job finishes by the timer, long-poll wakes.
        job = requests.post(f"{live.url}/start", json={"delay": 0.05}).json()["job_id"]
        reply = requests.get(f"{live.url}/status/{job}?wait={PATIENCE}", timeout=PATIENCE)
        assert reply.json()["result"] == "completed"
        assert not healthy.ended.is_set() and event_stream.open_streams(live.app) == 1
        assert "(client gone)" in caplog.text  # dropped by the send timeout, not left behind
    finally:
        healthy.close()
        stuck.close()


def test_a_client_that_went_away_is_noticed_by_the_next_ping(make_server) -> None:
    """A closed connection is found out at the next write (a heartbeat) and its slot freed."""
    live: LiveServer = make_server(fast_settings(event_heartbeat=0.05))
    sock = raw_stream(live.url, receive_buffer=65536)
    wait_until(lambda: event_stream.open_streams(live.app) == 1)
    sock.close()
    wait_until(lambda: event_stream.open_streams(live.app) == 0)


def test_python_server_py_streams_with_auth_and_ends_on_sigterm() -> None:
    """`python server.py` with auth: a stream carries a started job's completion; SIGTERM ends it."""
    auth = ("u", "pw")
    with testing.ServerProcess.start(env={"API_USERNAME": "u", "API_PASSWORD": "pw",
                                         "MIN_DELAY": "0.2", "MAX_DELAY": "0.2",
                                         "ERROR_PROBABILITY": "0"}) as proc:
        assert requests.get(f"{proc.url}/events", timeout=PATIENCE).status_code == 401
        job = requests.post(f"{proc.url}/start", auth=auth, timeout=PATIENCE).json()["job_id"]
        response = requests.get(f"{proc.url}/events?job_id={job}", auth=auth, stream=True,
                                timeout=PATIENCE)
        lines: Iterator[str] = response.iter_lines(decode_unicode=True)
        seen = []
        for line in lines:
            if line.startswith("data:"):
                seen.append(json.loads(line[5:])["result"])
                if seen[-1] != "pending":
                    break
        assert seen[-1] == "completed"
        proc.stop()
        assert proc.process.returncode == 0
        try:  # the body ends (a read timeout would fail the test), with or without a last chunk
            list(lines)
        except requests.exceptions.ChunkedEncodingError:
            pass  # the process exited before its last chunk went out
        response.close()


# --- a burst of due jobs: finished in slices (memory store) -------------------------------------


BURST = 2000


def burst_store(
    fake_clock: FakeClock, *, due: bool = True, **overrides: Any
) -> tuple[MemoryJobStore, list[str], int]:
    """A memory store on the fake clock with BURST jobs all due in 1 s (now, if ``due``); their
    ids and the event cursor before they end."""
    settings = fast_settings(max_jobs=BURST + 10, max_waiters=BURST + 10, job_ttl=600,
                             **overrides)  # fmt: skip
    store = MemoryJobStore(settings, clock=fake_clock.monotonic, wall_clock=fake_clock.wall)
    ids = [store.start(delay=1.0)[0]["job_id"] for _ in range(BURST)]
    _, cursor = store.event_snapshot([])
    if due:
        fake_clock.advance(1.0)
    return store, ids, cursor


def completions(store: MemoryJobStore, cursor: int) -> list[LoggedEvent]:
    """The ``completed`` events logged after ``cursor`` (a read: it advances a slice itself)."""
    return [e for e in store.events_after(cursor, 10 * BURST) if e.kind == "completed"]


def heard_completions(store: MemoryJobStore) -> list[str]:
    """The ids of the jobs whose completion ``store`` publishes from now on, in order (a
    listener: it observes without advancing anything)."""
    heard: list[str] = []
    store.add_listener(lambda event: heard.append(event.job_id) if event.kind == "completed"
                       else None)  # fmt: skip
    return heard


def test_timer_finishes_a_burst_in_slices_each_job_once(fake_clock: FakeClock) -> None:
    """2,000 jobs due at once: the timer publishes its first slice before finishing the rest;
    every job completes exactly once, one event each, ids strictly increasing."""
    store, ids, cursor = burst_store(fake_clock)
    heard = heard_completions(store)
    seen_at_first: list[int] = []
    done = threading.Event()

    def listener(event: JobEvent) -> None:
        if len(heard) == 1 and not seen_at_first:
            # A reader running now: its own read finishes one more slice, no more.
            seen_at_first.append(store.event_snapshot([])[1] - cursor)
        if len(heard) == BURST:
            done.set()

    store.add_listener(listener)
    try:
        store.start_worker()
        assert done.wait(PATIENCE)
    finally:
        store.shutdown()
    assert seen_at_first == [2 * ADVANCE_SLICE]
    assert sorted(heard) == sorted(ids)
    logged = completions(store, cursor)
    assert sorted(e.job_id for e in logged) == sorted(ids)
    assert all(a.event_id < b.event_id for a, b in zip(logged, logged[1:], strict=False))


def test_a_read_of_a_due_job_finishes_it_on_the_spot_and_advances_one_slice(
    fake_clock: FakeClock,
) -> None:
    """status() of the last due job of a burst answers it final at once, finishing only one
    slice besides; the rest is finished later, that job not again."""
    store, ids, cursor = burst_store(fake_clock)
    heard = heard_completions(store)
    doc = store.status(ids[-1])
    assert doc is not None and doc["result"] == "completed"
    assert doc["finished_at"] == fake_clock.wall()
    assert len(heard) == ADVANCE_SLICE + 1 and heard[-1] == ids[-1]
    assert store.process_due() == BURST - ADVANCE_SLICE - 1
    assert sorted(heard) == sorted(ids)
    logged = completions(store, cursor)
    assert [e.job_id for e in logged] == heard
    assert json.loads(logged[ADVANCE_SLICE].data) == doc


def test_every_read_finishes_the_due_jobs_it_names(fake_clock: FakeClock) -> None:
    """wait, cancel, a replayed start and the event snapshot each answer a due job final."""
    store, ids, _ = burst_store(fake_clock)
    assert store.wait(ids[-1], 0)[0]["result"] == "completed"  # type: ignore[index]
    assert store.cancel(ids[-2])["phase"] == "completed"  # type: ignore[index]
    docs, _ = store.event_snapshot(ids[-5:-2])
    assert [d["result"] for d in docs] == ["completed"] * 3  # type: ignore[index]
    keyed = MemoryJobStore(fast_settings(), clock=fake_clock.monotonic, wall_clock=fake_clock.wall)
    keyed.start(delay=1.0, idempotency_key="k")
    fake_clock.advance(1.0)
    doc, created = keyed.start(idempotency_key="k")
    assert not created and doc["result"] == "completed"


def test_a_woken_long_poll_answers_final_without_taking_the_backlog(fake_clock: FakeClock) -> None:
    """A long-poll woken by a read that finished its job answers the final document; its own
    read finishes one slice, not the rest of the burst."""
    store, ids, _ = burst_store(fake_clock, due=False)  # due once the long-poll holds
    heard = heard_completions(store)
    answer: list[tuple[dict[str, Any] | None, bool]] = []
    waiter = threading.Thread(target=lambda: answer.append(store.wait(ids[-1], PATIENCE)))
    waiter.start()
    deadline = time.monotonic() + PATIENCE
    while store.waiters == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    fake_clock.advance(1.0)
    assert store.status(ids[-1])["result"] == "completed"  # type: ignore[index]
    waiter.join(PATIENCE)
    assert answer and answer[0][1] and answer[0][0]["result"] == "completed"  # type: ignore[index]
    assert len(heard) == 2 * ADVANCE_SLICE + 1


def test_a_queued_job_takes_the_slot_a_read_frees(fake_clock: FakeClock) -> None:
    """With CONCURRENCY full, a read that finishes a due job starts the queue's head at that
    job's due time; the slice that later pops the finished job skips it."""
    settings = fast_settings(concurrency=ADVANCE_SLICE + 1, max_jobs=1000)
    store = MemoryJobStore(settings, clock=fake_clock.monotonic, wall_clock=fake_clock.wall)
    running = [store.start(delay=1.0)[0]["job_id"] for _ in range(ADVANCE_SLICE + 1)]
    queued = store.start(delay=5.0)[0]
    assert queued["phase"] == "queued"
    fake_clock.advance(1.0)
    assert store.status(running[-1])["result"] == "completed"  # type: ignore[index]
    doc = store.status(queued["job_id"])
    assert doc is not None and doc["phase"] == "running"
    assert doc["started_at"] == fake_clock.wall()
    assert store.process_due() == 0  # the slice already took every due job
    fake_clock.advance(5.0)
    store.process_due()
    assert store.status(queued["job_id"])["result"] == "completed"  # type: ignore[index]
