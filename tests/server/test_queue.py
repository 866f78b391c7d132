"""The queue (CONCURRENCY) and cancel: order, phases, estimates, events, and woken waiters.

Most tests run the app on a fake clock without the timer thread, so every number is exact; one
test holds a real long-poll on a live server and cancels the job under it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient

import vtwait.server.app as server
from tests.helpers import FakeClock, fast_settings
from vtwait.server.state import app_state
from vtwait.server.stores.base import JOB_CANCELED_MESSAGE, JobEvent
from vtwait.server.stores.memory import estimate_queue_starts

START_WALL = 1_700_000_000.0  # FakeClock's wall time at start


@pytest.fixture(params=["memory", "redis"])
def store_kind(request: pytest.FixtureRequest) -> str:
    """Every test here that builds an app runs on both stores (Redis: the queue is a list)."""
    return request.param


@pytest.fixture
def queue_app(make_app: Callable[..., Flask], fake_clock: FakeClock) -> Callable[..., tuple]:
    """Factory: an app on the fake clock with CONCURRENCY=n whose default job is already done.

    Returns (client, store, events): ``events`` collects every JobEvent the store publishes.
    """

    def factory(concurrency: int, **overrides) -> tuple[FlaskClient, server.JobStore, list]:
        app = make_app(fast_settings(concurrency=concurrency, **overrides),
                       clock=fake_clock.monotonic, wall_clock=fake_clock.wall,
                       start_worker=False)
        store = app_state(app).store
        fake_clock.advance(1)  # the default job (FAST_DELAY) ends and frees its slot
        store.process_due()
        events: list[JobEvent] = []
        store.add_listener(events.append)
        return app.test_client(), store, events

    return factory


def start(client: FlaskClient, delay: float, **extra) -> str:
    reply = client.post("/start", json={"delay": delay, **extra})
    assert reply.status_code == 201, reply.get_json()
    return reply.get_json()["job_id"]


def doc(client: FlaskClient, job_id: str) -> dict:
    return client.get(f"/status/{job_id}").get_json()


def kinds(events: list[JobEvent], job_id: str) -> list[str]:
    return [event.kind for event in events if event.job_id == job_id]


@pytest.mark.parametrize(("slots", "durations", "starts"), [
    ([0.0], [], []),
    ([10.0], [5, 5], [10.0, 15.0]),
    ([10.0, 20.0], [5, 5, 1], [10.0, 15.0, 20.0]),
    ([3.0, 3.0], [1, 1, 1], [3.0, 3.0, 4.0]),
    ([0.0, 0.0, 7.0], [2, 2, 2, 2], [0.0, 0.0, 2.0, 2.0]),
])
def test_estimate_queue_starts_fills_the_earliest_free_slot(slots, durations, starts) -> None:
    """Each queued job takes the slot that frees first; its expected end frees it again."""
    assert estimate_queue_starts(slots, durations) == starts


def test_jobs_past_concurrency_queue_in_fifo_order_with_positions_and_eta(queue_app) -> None:
    """With CONCURRENCY=2, two jobs run and the rest queue 1, 2, ... with the wait in their ETA."""
    client, _, _ = queue_app(2)
    a, b, c, d = (start(client, delay) for delay in (10, 20, 5, 5))
    assert doc(client, a)["phase"] == doc(client, b)["phase"] == "running"
    queued_c, queued_d = doc(client, c), doc(client, d)
    assert queued_c == {"job_id": c, "result": "pending", "phase": "queued", "progress": 0.0,
                        "created_at": START_WALL + 1, "queue_position": 1, "eta_seconds": 15.0}
    assert (queued_d["queue_position"], queued_d["eta_seconds"]) == (2, 20.0)
    assert "started_at" not in queued_c and client.get(f"/status/{c}").headers["Retry-After"] == "15"


def test_a_queued_job_runs_when_a_slot_frees_and_its_duration_counts_from_then(
        queue_app, fake_clock: FakeClock) -> None:
    """The head of the queue starts when the first running job ends; progress counts from then."""
    client, store, _ = queue_app(1)
    first, second, third = start(client, 10), start(client, 4), start(client, 4)
    fake_clock.advance(10)
    store.process_due()
    running = doc(client, second)
    assert running["phase"] == "running" and running["started_at"] == START_WALL + 11
    assert (running["progress"], running["eta_seconds"]) == (0.0, 4.0)
    assert doc(client, third)["queue_position"] == 1 and doc(client, third)["eta_seconds"] == 8.0
    fake_clock.advance(1)
    assert (doc(client, second)["progress"], doc(client, second)["eta_seconds"]) == (0.25, 3.0)
    assert doc(client, first)["phase"] == "completed"


def test_a_late_timer_starts_each_queued_job_when_its_slot_really_freed(
        queue_app, fake_clock: FakeClock) -> None:
    """Processed long after, a chain of queued jobs still starts back to back, in order."""
    client, store, events = queue_app(1)
    ids = [start(client, 3) for _ in range(3)]
    fake_clock.advance(100)
    store.process_due()
    docs = [doc(client, job_id) for job_id in ids]
    assert [d["started_at"] - START_WALL - 1 for d in docs] == [0.0, 3.0, 6.0]
    assert {d["phase"] for d in docs} == {"completed"}
    order = [(e.kind, e.job_id) for e in events if e.kind in ("running", "completed")]
    assert order == [("completed", ids[0]), ("running", ids[1]), ("completed", ids[1]),
                     ("running", ids[2]), ("completed", ids[2])]


def test_a_running_event_is_published_only_when_a_job_leaves_the_queue(
        queue_app, fake_clock: FakeClock) -> None:
    """A queued job is started (queued), running, completed; one that never queued has no running."""
    client, store, events = queue_app(1)
    direct, queued = start(client, 2), start(client, 2)
    fake_clock.advance(4)
    store.process_due()
    assert kinds(events, direct) == ["started", "completed"]
    assert kinds(events, queued) == ["started", "running", "completed"]
    by_kind = {e.kind: e.doc for e in events if e.job_id == queued}
    assert by_kind["started"]["phase"] == "queued" and by_kind["running"]["phase"] == "running"
    assert by_kind["running"]["started_at"] == START_WALL + 3


def test_the_default_job_takes_a_slot(make_app, fake_clock: FakeClock) -> None:
    """CONCURRENCY counts the server's default job: with 1 slot, a new job queues behind it."""
    app = make_app(fast_settings(concurrency=1, min_delay=5, max_delay=5),
                   clock=fake_clock.monotonic, wall_clock=fake_clock.wall, start_worker=False)
    client = app.test_client()
    job_id = start(client, 1)
    assert doc(client, job_id)["phase"] == "queued"
    assert doc(client, job_id)["eta_seconds"] == 6.0


def test_no_concurrency_means_no_queue(queue_app) -> None:
    """CONCURRENCY=0 (the default): every job runs at once, as before the queue existed."""
    client, _, events = queue_app(0)
    ids = [start(client, 60) for _ in range(50)]
    assert {doc(client, job_id)["phase"] for job_id in ids} == {"running"}
    assert all("queue_position" not in doc(client, job_id) for job_id in ids)
    assert {e.kind for e in events} == {"started"}


# --- cancel -----------------------------------------------------------------------------------


def test_cancelling_a_queued_job_ends_it_and_moves_the_queue_up(
        queue_app, fake_clock: FakeClock) -> None:
    """A queued job cancels at once (never started); the jobs behind it move up one place."""
    client, _, events = queue_app(1)
    start(client, 10)
    queued, behind = start(client, 5), start(client, 5)
    fake_clock.advance(2)
    reply = client.post(f"/status/{queued}/cancel")
    assert reply.status_code == 200
    assert reply.get_json() == {
        "job_id": queued, "result": "error", "phase": "canceled", "progress": 1.0,
        "created_at": START_WALL + 1, "finished_at": START_WALL + 3,
        "error": JOB_CANCELED_MESSAGE, "cancel_reason": "request"}
    assert (doc(client, behind)["queue_position"], doc(client, behind)["eta_seconds"]) == (1, 13.0)
    assert kinds(events, queued) == ["started", "canceled"]


def test_cancelling_a_running_job_frees_its_slot_for_the_next(
        queue_app, fake_clock: FakeClock) -> None:
    """A running job cancels at once, and the head of the queue starts at that moment."""
    client, _, events = queue_app(1)
    running, queued = start(client, 10), start(client, 5)
    fake_clock.advance(4)
    canceled = client.post(f"/status/{running}/cancel").get_json()
    assert canceled["phase"] == "canceled" and canceled["started_at"] == START_WALL + 1
    now_running = doc(client, queued)
    assert now_running["phase"] == "running" and now_running["started_at"] == START_WALL + 5
    assert now_running["eta_seconds"] == 5.0
    assert kinds(events, running)[-1] == "canceled" and kinds(events, queued)[-1] == "running"
    fake_clock.advance(10)
    assert doc(client, running) == canceled  # the cancelled job never completes later


def test_cancel_is_idempotent(queue_app, fake_clock: FakeClock) -> None:
    """Cancelling a cancelled job answers 200 with the same document and publishes nothing."""
    client, _, events = queue_app(0)
    job_id = start(client, 10)
    first = client.post(f"/status/{job_id}/cancel")
    fake_clock.advance(30)
    again = client.post(f"/status/{job_id}/cancel")
    assert again.status_code == 200 and again.get_json() == first.get_json()
    assert kinds(events, job_id) == ["started", "canceled"]


@pytest.mark.parametrize("outcome", ["completed", "error"])
def test_cancelling_a_finished_job_is_a_409_with_its_document(queue_app, fake_clock: FakeClock,
                                                              outcome: str) -> None:
    """A job that already completed or failed stays as it was: 409 with its unchanged document."""
    client, _, _ = queue_app(0)
    job_id = start(client, 1, outcome=outcome)
    fake_clock.advance(2)
    before = doc(client, job_id)
    reply = client.post(f"/status/{job_id}/cancel")
    assert reply.status_code == 409 and reply.get_json() == before
    assert before["phase"] == outcome


def test_cancelling_an_unknown_job_is_a_404(client: FlaskClient) -> None:
    """An unknown or malformed job id is a JSON 404, as for a status read."""
    for job_id in ("0" * 32, "x" * 200, "%C3%B1"):
        reply = client.post(f"/status/{job_id}/cancel")
        assert reply.status_code == 404 and reply.get_json()["error"]["code"] == "not_found"


def test_delete_is_not_a_cancel(client: FlaskClient) -> None:
    """DELETE /status/<id> answers 405, names the cancel route, and leaves the job running."""
    job_id = start(client, 60)
    reply = client.delete(f"/status/{job_id}")
    assert reply.status_code == 405 and "GET" in reply.headers["Allow"]
    assert "POST /status/<job_id>/cancel" in reply.get_json()["error"]["message"]
    assert doc(client, job_id)["phase"] == "running"


def test_a_cancelled_job_is_forgotten_job_ttl_later(queue_app, fake_clock: FakeClock) -> None:
    """A cancelled job is final like any other: evicted JOB_TTL after it was cancelled."""
    client, store, events = queue_app(0, job_ttl=100)
    job_id = start(client, 1000)
    client.post(f"/status/{job_id}/cancel")
    fake_clock.advance(100)
    store.process_due()
    assert client.get(f"/status/{job_id}").status_code == 404
    assert kinds(events, job_id) == ["started", "canceled", "evicted"]


def test_a_held_long_poll_returns_as_soon_as_its_job_is_cancelled(make_server) -> None:
    """A long-poll held on a one-hour job (wait up to 600 s) is answered by the cancel."""
    live = make_server(fast_settings(max_wait=600))
    job_id = requests.post(f"{live.url}/start", json={"delay": 3600}, timeout=5).json()["job_id"]
    with ThreadPoolExecutor(1) as pool:
        held = pool.submit(requests.get, f"{live.url}/status/{job_id}?wait=600", timeout=60)
        while live.store.waiters < 1 and not held.done():
            time.sleep(0.005)  # the request is in flight; the store counts it once it holds
        canceled = requests.post(f"{live.url}/status/{job_id}/cancel", timeout=5)
        # Without the wake-up this raises ReadTimeout after 60 s: the hold was 600 s.
        answer = held.result()
    assert canceled.status_code == 200
    assert answer.json() == canceled.json() and answer.headers["Preference-Applied"] == "wait=600"
