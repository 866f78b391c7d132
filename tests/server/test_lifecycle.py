"""Issue 16's server side on both stores: deadlines, outputs, GET /jobs and DELETE /jobs/<id>.

Every test runs the app on a fake clock without the timer thread (``process_due()`` after each
``advance``), through the in-process test client: the numbers are exact and nothing waits. The
holds of ``Prefer: wait`` and dropped connections need a live server: ``test_lifecycle_live.py``.
"""

from __future__ import annotations

import hashlib
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

import vtwait.server.app as server
from tests.helpers import FakeClock, fast_settings
from vtwait.server.outputs import BLOCK, TAIL, artifact_chunks
from vtwait.server.state import app_state
from vtwait.server.stores.base import JOB_DEADLINE_MESSAGE, JobEvent

START_WALL = 1_700_000_000.0  # FakeClock's wall time at start


@pytest.fixture(params=["memory", "redis"])
def store_kind(request: pytest.FixtureRequest) -> str:
    """Every test here runs on both stores."""
    return request.param


@pytest.fixture
def lifecycle_app(make_app: Callable[..., Flask], fake_clock: FakeClock) -> Callable[..., tuple]:
    """Factory: (client, store, events) of an app on the fake clock, its default job done."""

    def factory(**overrides) -> tuple[FlaskClient, server.JobStore, list[JobEvent]]:
        app = make_app(fast_settings(**overrides), clock=fake_clock.monotonic,
                       wall_clock=fake_clock.wall, start_worker=False)
        store = app_state(app).store
        fake_clock.advance(1)
        store.process_due()
        events: list[JobEvent] = []
        store.add_listener(events.append)
        return app.test_client(), store, events

    return factory


@pytest.fixture
def memory_client() -> Iterator[FlaskClient]:
    """A client of one app on the memory store, for input checks that no store sees (run once,
    not per store)."""
    app = server.create_app(fast_settings(output_size=1000))
    yield app.test_client()
    app_state(app).store.shutdown()
    app_state(app).webhooks.close()


def start(client: FlaskClient, delay: float, headers: dict | None = None, **extra) -> str:
    reply = client.post("/start", json={"delay": delay, **extra}, headers=headers or {})
    assert reply.status_code == 201, reply.get_json()
    return reply.get_json()["job_id"]


def doc(client: FlaskClient, job_id: str) -> dict:
    return client.get(f"/status/{job_id}").get_json()


def tick(fake_clock: FakeClock, store: server.JobStore, seconds: float) -> None:
    fake_clock.advance(seconds)
    store.process_due()


# --- deadlines ------------------------------------------------------------------------------


def test_a_running_job_is_cancelled_by_its_deadline_header(lifecycle_app, fake_clock) -> None:
    """Cancel-After: 2 on a 10 s job: cancelled at 2 s, with cancel_reason "deadline"."""
    client, store, events = lifecycle_app()
    job = start(client, 10, headers={"Cancel-After": "2"})
    tick(fake_clock, store, 1.5)
    assert doc(client, job)["result"] == "pending"
    tick(fake_clock, store, 1)
    final = doc(client, job)
    assert (final["result"], final["phase"], final["cancel_reason"]) == ("error", "canceled",
                                                                           "deadline")
    assert final["error"] == JOB_DEADLINE_MESSAGE
    assert [e.kind for e in events if e.job_id == job] == ["started", "canceled"]


def test_a_queued_job_is_cancelled_by_its_deadline_key(lifecycle_app, fake_clock) -> None:
    """The body's cancel_after counts queue time: a job still queued at its deadline is cancelled,
    and the job behind it moves up."""
    client, store, _ = lifecycle_app(concurrency=1)
    first = start(client, 10)
    queued = start(client, 1, cancel_after=3)
    behind = start(client, 1)
    tick(fake_clock, store, 3)
    assert doc(client, queued)["cancel_reason"] == "deadline"
    assert "started_at" not in doc(client, queued)
    assert doc(client, behind)["queue_position"] == 1
    tick(fake_clock, store, 8)
    assert doc(client, first)["phase"] == doc(client, behind)["phase"] == "completed"


def test_a_read_cancels_a_job_past_its_deadline_without_the_timer(lifecycle_app,
                                                                  fake_clock) -> None:
    """With no timer run, the status read itself sees the passed deadline (both stores)."""
    client, _, _ = lifecycle_app()
    job = start(client, 10, headers={"Cancel-After": "1"})
    fake_clock.advance(5)
    assert doc(client, job)["cancel_reason"] == "deadline"


def test_a_job_due_before_its_deadline_completes(lifecycle_app, fake_clock) -> None:
    """A deadline after the job's end changes nothing, even when the timer runs late."""
    client, store, _ = lifecycle_app()
    job = start(client, 2, headers={"Cancel-After": "3"})
    tick(fake_clock, store, 10)
    final = doc(client, job)
    assert final["phase"] == "completed" and "cancel_reason" not in final


def test_a_cancel_by_request_says_so(lifecycle_app) -> None:
    """POST /status/<id>/cancel: cancel_reason "request"."""
    client, _, _ = lifecycle_app()
    job = start(client, 10, headers={"Cancel-After": "5"})
    assert client.post(f"/status/{job}/cancel").get_json()["cancel_reason"] == "request"


@pytest.mark.parametrize("value", ["0", "-1", "abc", "1e9", "inf", "nan", "604801", "", "1 2",
                                   "1_0", "0e5", "1e99999"])
def test_a_bad_cancel_after_header_is_a_400_naming_it(memory_client, value) -> None:
    """Not a positive finite number of seconds, or above 7 days: a 400, and no job starts."""
    client = memory_client
    store = app_state(client.application).store
    before = len(store)
    reply = client.post("/start", headers={"Cancel-After": value})
    assert reply.status_code == 400 and "Cancel-After" in reply.get_json()["error"]["message"]
    assert len(store) == before


@pytest.mark.parametrize("value", [0, -5, "10", True, 1e309, 10**400, [1], 604801])
def test_a_bad_cancel_after_key_is_a_400_naming_it(memory_client, value) -> None:
    """The body key is checked the same way (JSON numbers only)."""
    client = memory_client
    body = '{"cancel_after": %s}' % ("1e309" if value == 1e309 else
                                     __import__("json").dumps(value))
    reply = client.post("/start", data=body, content_type="application/json")
    assert reply.status_code == 400 and "cancel_after" in reply.get_json()["error"]["message"]


# --- outputs --------------------------------------------------------------------------------


def _output(client: FlaskClient, job_id: str) -> dict:
    return doc(client, job_id)["output"]


def _path(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.path}?{parts.query}"


def test_a_completed_job_carries_a_signed_output(lifecycle_app, fake_clock) -> None:
    """output: absolute URL, whole-second expiry OUTPUT_TTL ahead, size, sha256 of the bytes."""
    client, store, _ = lifecycle_app(output_size=3 * BLOCK + 100, output_ttl=60)
    job = start(client, 1)
    assert "output" not in doc(client, job)
    tick(fake_clock, store, 1)
    output = _output(client, job)
    assert output["url"].startswith(f"http://localhost/outputs/{job}?expires=")
    assert output["expires_at"] == int(fake_clock.wall()) + 60
    assert (output["content_type"], output["size"]) == ("application/octet-stream", 3 * BLOCK + 100)
    body = client.get(_path(output["url"]))
    assert body.status_code == 200 and body.headers["Accept-Ranges"] == "bytes"
    assert len(body.data) == output["size"]
    assert hashlib.sha256(body.data).hexdigest() == output["sha256"]
    assert body.headers["ETag"] == f'"{output["sha256"]}"'


def test_outputs_differ_by_job_and_need_no_credentials(lifecycle_app, fake_clock) -> None:
    """Two jobs, two artifacts; with Basic auth on, the signed URL alone downloads."""
    client, store, _ = lifecycle_app(api_username="u", api_password="p")
    auth = {"Authorization": "Basic dTpw"}
    jobs = [start(client, 1, headers=auth) for _ in range(2)]
    tick(fake_clock, store, 1)
    outputs = [client.get(f"/status/{j}", headers=auth).get_json()["output"] for j in jobs]
    assert outputs[0]["sha256"] != outputs[1]["sha256"]
    assert client.get(_path(outputs[0]["url"])).status_code == 200  # no Authorization header


def test_failed_and_cancelled_jobs_have_no_output(lifecycle_app, fake_clock) -> None:
    client, store, _ = lifecycle_app()
    failed = start(client, 1, outcome="error")
    cancelled = start(client, 5)
    client.post(f"/status/{cancelled}/cancel")
    tick(fake_clock, store, 2)
    assert "output" not in doc(client, failed) and "output" not in doc(client, cancelled)


def test_a_late_output_appears_after_the_fault_delay(lifecycle_app, fake_clock) -> None:
    """FAULT_OUTPUT_LATE: completed first, output FAULT_OUTPUT_LATE seconds later."""
    client, store, _ = lifecycle_app(fault_output_late=2)
    job = start(client, 1)
    tick(fake_clock, store, 1.5)
    assert doc(client, job)["phase"] == "completed" and "output" not in doc(client, job)
    tick(fake_clock, store, 2)
    assert "output" in doc(client, job)


def test_ranges_if_range_and_head(lifecycle_app, fake_clock) -> None:
    """206 with Content-Range; suffix ranges; If-Range with another ETag gives the whole 200; HEAD
    gives the headers only; a range past the end is a 416 naming the size."""
    size = 2 * BLOCK + 10
    client, store, _ = lifecycle_app(output_size=size)
    job = start(client, 1)
    tick(fake_clock, store, 1)
    output = _output(client, job)
    whole = client.get(_path(output["url"])).data
    part = client.get(_path(output["url"]), headers={"Range": f"bytes={BLOCK - 5}-{BLOCK + 4}"})
    assert part.status_code == 206 and part.data == whole[BLOCK - 5:BLOCK + 5]
    assert part.headers["Content-Range"] == f"bytes {BLOCK - 5}-{BLOCK + 4}/{size}"
    tail = client.get(_path(output["url"]), headers={"Range": "bytes=-100"})
    assert tail.status_code == 206 and tail.data == whole[-100:]
    open_end = client.get(_path(output["url"]), headers={"Range": f"bytes={size - 3}-"})
    assert open_end.data == whole[-3:]
    etag = f'"{output["sha256"]}"'
    resumed = client.get(_path(output["url"]), headers={"Range": "bytes=10-", "If-Range": etag})
    assert resumed.status_code == 206 and resumed.data == whole[10:]
    changed = client.get(_path(output["url"]), headers={"Range": "bytes=10-", "If-Range": '"x"'})
    assert changed.status_code == 200 and changed.data == whole
    head = client.head(_path(output["url"]))
    assert head.status_code == 200 and head.data == b""
    assert head.headers["Content-Length"] == str(size)
    beyond = client.get(_path(output["url"]), headers={"Range": f"bytes={size}-"})
    assert beyond.status_code == 416 and beyond.headers["Content-Range"] == f"bytes */{size}"
    assert beyond.get_json()["error"]["code"] == "range_not_satisfiable"
    ignored = client.get(_path(output["url"]), headers={"Range": "bytes=5-1"})
    assert ignored.status_code == 200 and ignored.data == whole


def test_forged_and_expired_output_urls_are_403(lifecycle_app, fake_clock) -> None:
    """A changed signature, expiry or job id is signature_invalid; an old URL is url_expired."""
    client, store, _ = lifecycle_app(output_ttl=10)
    jobs = [start(client, 1) for _ in range(2)]
    tick(fake_clock, store, 1)
    url = _path(_output(client, jobs[0])["url"])
    path, query = url.split("?")
    params = dict(urllib.parse.parse_qsl(query))

    def code(p: str, **changes) -> tuple[int, str]:
        reply = client.get(f"{p}?{urllib.parse.urlencode({**params, **changes})}")
        return reply.status_code, reply.get_json()["error"]["code"]

    assert code(path, signature="0" * 64) == (403, "signature_invalid")
    assert code(path, expires=str(int(params["expires"]) + 3600)) == (403, "signature_invalid")
    assert code(f"/outputs/{jobs[1]}") == (403, "signature_invalid")
    assert code(path, expires="-1") == (403, "signature_invalid")
    assert code(path, expires="9" * 40) == (403, "signature_invalid")
    assert client.get(path).get_json()["error"]["code"] == "signature_invalid"
    fake_clock.advance(11)
    assert code(path) == (403, "url_expired")
    fresh = _path(_output(client, jobs[0])["url"])
    assert client.get(fresh).status_code == 200


def test_a_drop_fault_cuts_one_download_per_job(lifecycle_app, fake_clock) -> None:
    """FAULT_OUTPUT_DROP: the first download stops after that many bytes; the resume is whole."""
    client, store, _ = lifecycle_app(output_size=4 * BLOCK, fault_output_drop=BLOCK + 7)
    job = start(client, 1)
    tick(fake_clock, store, 1)
    url = _path(_output(client, job)["url"])
    first = client.get(url).data
    assert len(first) == BLOCK + 7
    rest = client.get(url, headers={"Range": f"bytes={len(first)}-"})
    assert rest.status_code == 206
    assert hashlib.sha256(first + rest.data).hexdigest() == _output(client, job)["sha256"]


@pytest.mark.parametrize(("range_header", "status"), [
    ("bytes=" + "9" * 5000 + "-", 200),  # malformed (too many digits): ignored
    ("bytes=99999999999999999-", 416),
    ("bytes=-0", 416),
    ("bytes=-99999999999999999", 206),  # a suffix longer than the artifact: all of it
    ("bytes=0-0,5-6", 200),  # several ranges: ignored
    ("bytes=abc", 200),
    ("items=0-5", 200),
    ("bytes=-", 200),
    ("bytes=0-99999999999999999", 206),
])
def test_hostile_ranges_get_a_documented_answer(memory_client, range_header, status) -> None:
    """Absurd, malformed and out-of-range Range headers: 200 (ignored), 206 or 416, never 5xx."""
    client = memory_client
    job = start(client, 0)
    reply = client.get(_path(_output(client, job)["url"]), headers={"Range": range_header})
    assert reply.status_code == status
    if status != 416:
        assert int(reply.headers["Content-Length"]) == len(reply.data) > 0


@pytest.mark.parametrize("size", [0, 1, TAIL, TAIL + 1, BLOCK, BLOCK + TAIL, 3 * BLOCK - 1])
def test_artifact_ranges_are_slices_of_the_whole(size) -> None:
    """Any [start, end) read equals the same slice of the whole artifact."""
    whole = b"".join(artifact_chunks("job", size))
    assert len(whole) == size
    for start, end in [(0, size), (1, size), (size // 2, size), (0, size // 3),
                       (max(size - TAIL - 1, 0), size)]:
        assert b"".join(artifact_chunks("job", size, start, end)) == whole[start:end]


# --- listing --------------------------------------------------------------------------------


def _page(client: FlaskClient, query: str = "") -> tuple[list[str], str | None, Any]:
    reply = client.get(f"/jobs{query}")
    assert reply.status_code == 200, reply.get_json()
    body = reply.get_json()
    return [d["job_id"] for d in body["jobs"]], body["next_cursor"], reply


def test_jobs_are_listed_newest_first_with_cursor_pages(lifecycle_app, fake_clock) -> None:
    """limit=2 pages through 5 jobs (plus the default one); Link names the next page."""
    client, store, _ = lifecycle_app()
    jobs = []
    for _ in range(5):
        jobs.append(start(client, 60))
        fake_clock.advance(0.001)
    default = store.default_job_id
    ids, cursor, reply = _page(client, "?limit=2")
    assert ids == jobs[::-1][:2] and cursor is not None
    link = reply.headers["Link"]
    assert link.startswith("<http://localhost/jobs?") and link.endswith('>; rel="next"')
    seen = list(ids)
    while cursor is not None:
        ids, cursor, _ = _page(client, f"?limit=2&cursor={cursor}")
        seen += ids
    assert seen == [*jobs[::-1], default]


def test_a_job_started_between_pages_is_neither_lost_nor_repeated(lifecycle_app) -> None:
    """Jobs with the same created_at (the fake clock stands still) page by id; a new job sorts
    first, so the pages after the first hold each old job exactly once."""
    client, _, _ = lifecycle_app()
    old = [start(client, 60) for _ in range(6)]
    first, cursor, _ = _page(client, "?limit=3")
    start(client, 60)
    seen = list(first)
    while cursor is not None:
        ids, cursor, _ = _page(client, f"?limit=3&cursor={cursor}")
        seen += ids
    assert sorted(set(seen) & set(old)) == sorted(old) and len(seen) == len(set(seen))


def test_jobs_filter_by_result_and_phase(lifecycle_app, fake_clock) -> None:
    client, store, _ = lifecycle_app()
    done = start(client, 1)
    failed = start(client, 1, outcome="error")
    running = start(client, 60)
    tick(fake_clock, store, 2)
    assert _page(client, "?result=pending")[0] == [running]
    assert _page(client, "?result=error")[0] == [failed]
    assert done in _page(client, "?phase=completed")[0]
    listed = client.get("/jobs?phase=completed").get_json()["jobs"]
    assert all("output" in d for d in listed)


@pytest.mark.parametrize("query", ["limit=0", "limit=1001", "limit=-1", "limit=abc",
                                   "limit=99999999999", "result=done", "phase=finished",
                                   "cursor=garbage", "cursor=", "cursor=%FF%FE"])
def test_bad_listing_parameters_are_a_400_naming_them(memory_client, query) -> None:
    client = memory_client
    reply = client.get(f"/jobs?{query}")
    assert reply.status_code == 400
    assert query.split("=")[0] in reply.get_json()["error"]["message"]


def test_a_cursor_from_another_server_is_a_400(make_app, fake_clock, lifecycle_app) -> None:
    """Each server signs its cursors with its own key: another's is refused, not misread."""
    client, _, _ = lifecycle_app()
    for _ in range(3):
        start(client, 60)
    cursor = _page(client, "?limit=1")[1]
    other = make_app(fast_settings(output_secret="another-server")).test_client()
    reply = other.get(f"/jobs?cursor={cursor}")
    assert reply.status_code == 400 and "cursor" in reply.get_json()["error"]["message"]


# --- DELETE /jobs/<id> ----------------------------------------------------------------------


def test_delete_forgets_a_final_job_and_refuses_a_pending_one(lifecycle_app, fake_clock) -> None:
    """204 for a final job (then 404 everywhere, its idempotency key free); 409 with the document
    while pending; 404 for an unknown id; the default job stays (409)."""
    client, store, events = lifecycle_app()
    done = client.post("/start", json={"delay": 1},
                       headers={"Idempotency-Key": "k1"}).get_json()["job_id"]
    pending = start(client, 60)
    tick(fake_clock, store, 1)
    live = len(store)
    assert client.delete(f"/jobs/{pending}").status_code == 409
    assert client.delete(f"/jobs/{pending}").get_json()["job_id"] == pending
    assert client.delete(f"/jobs/{done}").status_code == 204
    assert len(store) == live - 1
    assert client.get(f"/status/{done}").status_code == 404
    assert client.delete(f"/jobs/{done}").status_code == 404
    assert done not in _page(client)[0]
    assert [e.kind for e in events if e.job_id == done][-1] == "evicted"
    again = client.post("/start", json={"delay": 1}, headers={"Idempotency-Key": "k1"})
    assert again.status_code == 201 and again.get_json()["job_id"] != done
    assert client.delete(f"/jobs/{store.default_job_id}").status_code == 409
    assert client.delete("/jobs/no-such-job").status_code == 404
    tick(fake_clock, store, 7200)  # the deleted job's expiry passes: nothing breaks
    assert client.get("/jobs").status_code == 200 and len(store) >= 1


# --- PLAIN ----------------------------------------------------------------------------------


def test_plain_turns_the_lifecycle_off(lifecycle_app, fake_clock) -> None:
    """PLAIN: no output, no GET /jobs or DELETE (404 as before), Cancel-After ignored."""
    client, store, _ = lifecycle_app(plain=True)
    job = start(client, 1, headers={"Cancel-After": "0.5", "Prefer": "wait=5"})
    tick(fake_clock, store, 1)
    assert doc(client, job)["phase"] == "completed" and "output" not in doc(client, job)
    assert client.get("/jobs").status_code == 404
    assert client.delete(f"/jobs/{job}").status_code == 404
    assert client.get(f"/outputs/{job}?expires=1&signature={'0' * 64}").status_code == 404
    refused = client.post("/start", json={"cancel_after": 5})  # as an older server: unknown key
    assert refused.status_code == 400 and "cancel_after" in refused.get_json()["error"]["message"]


# --- Prefer: wait on POST /start (the holds themselves: test_lifecycle_live.py) --------------


def test_prefer_wait_on_start_counts_against_max_waiters(lifecycle_app) -> None:
    """No waiter place left: the start answers at once, 201 pending, no Preference-Applied."""
    client, _, _ = lifecycle_app(max_waiters=0)
    reply = client.post("/start", json={"delay": 10}, headers={"Prefer": "wait=5"})
    assert reply.status_code == 201 and reply.get_json()["result"] == "pending"
    assert "Preference-Applied" not in reply.headers


def test_prefer_wait_on_a_job_final_at_once_is_a_200(lifecycle_app) -> None:
    """A zero delay is final before any hold: 200, the final document, the wait echoed."""
    client, _, _ = lifecycle_app()
    reply = client.post("/start", json={"delay": 0}, headers={"Prefer": "wait=5"})
    assert reply.status_code == 200 and reply.get_json()["phase"] == "completed"
    assert reply.headers["Preference-Applied"] == "wait=5" and "output" in reply.get_json()
