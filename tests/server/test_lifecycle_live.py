"""Issue 16 on a live server, both stores: ``Prefer: wait`` holds on ``POST /start``, a deadline
waking a held long-poll, and a download whose connection the server really drops.

One server per store for the module (short jobs, MAX_WAIT 2 s); holds are 0.05 to 1 s. The
same drop under gunicorn (``python server.py``) is in ``test_hostile.py``, on its server.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator

import pytest
import requests

from tests.helpers import LiveServer, fast_settings, start_live_server
from vtwait.testing import RedisServer

SIZE = 512 * 1024
DROP_AFTER = 100_000


@pytest.fixture(scope="module", params=["memory", "redis"])
def live(request: pytest.FixtureRequest) -> Iterator[LiveServer]:
    settings = fast_settings(max_wait=2.0, output_size=SIZE, fault_output_drop=DROP_AFTER)
    if request.param == "redis":
        redis: RedisServer = request.getfixturevalue("redis_server")
        settings = dataclasses.replace(settings, job_store=redis.fresh_url())
    server = start_live_server(settings)
    yield server
    server.stop()


def test_prefer_wait_answers_the_final_document_when_the_job_ends_inside_the_hold(live) -> None:
    """One request: 200, the final document, Preference-Applied, Location."""
    reply = requests.post(f"{live.url}/start", json={"delay": 0.1}, headers={"Prefer": "wait=5"},
                          timeout=10)
    assert reply.status_code == 200
    assert reply.json()["result"] == "completed" and "output" in reply.json()
    assert reply.headers["Preference-Applied"] == "wait=2"  # capped by MAX_WAIT
    assert reply.headers["Location"] == f"/status/{reply.json()['job_id']}"


def test_prefer_wait_gives_the_pending_answer_when_the_job_outlives_the_hold(live) -> None:
    """The hold runs out: today's 201 pending answer with its hints."""
    reply = requests.post(f"{live.url}/start", json={"delay": 30},
                          headers={"Prefer": "respond-async, wait=0.1"}, timeout=10)
    assert reply.status_code == 201 and reply.json()["result"] == "pending"
    assert reply.headers["Preference-Applied"] == "wait=0.1" and "Retry-After" in reply.headers
    requests.post(f"{live.url}/status/{reply.json()['job_id']}/cancel", timeout=10)


def test_an_idempotent_replay_with_prefer_wait_waits_on_the_same_job(live) -> None:
    """The replay holds on the first job and answers its final document."""
    headers = {"Idempotency-Key": f"live-{id(live)}", "Prefer": "wait=0.05"}
    first = requests.post(f"{live.url}/start", json={"delay": 0.4}, headers=headers, timeout=10)
    assert first.status_code == 201
    replay = requests.post(f"{live.url}/start", json={"delay": 0.4},
                           headers={**headers, "Prefer": "wait=2"}, timeout=10)
    assert replay.status_code == 200 and replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json()["job_id"] == first.json()["job_id"]
    assert replay.json()["result"] == "completed"


def test_no_preference_behaves_as_before(live) -> None:
    reply = requests.post(f"{live.url}/start", json={"delay": 0.2}, timeout=10)
    assert reply.status_code == 201 and "Preference-Applied" not in reply.headers


@pytest.mark.parametrize("prefer", ["wait=abc", "wait=-1", "wait=1e9", "wait=inf"])
def test_an_absurd_prefer_wait_is_a_400(live, prefer) -> None:
    reply = requests.post(f"{live.url}/start", headers={"Prefer": prefer}, timeout=10)
    assert reply.status_code == 400 and "Prefer" in reply.json()["error"]["message"]


def test_a_deadline_wakes_a_held_long_poll(live) -> None:
    """A waiter held on the job hears the deadline's cancel as it happens."""
    job = requests.post(f"{live.url}/start", json={"delay": 30, "cancel_after": 0.3},
                        timeout=10).json()["job_id"]
    reply = requests.get(f"{live.url}/status/{job}?wait=2", timeout=10)
    assert reply.json()["phase"] == "canceled" and reply.json()["cancel_reason"] == "deadline"


def test_a_dropped_download_resumes_with_range_to_the_same_bytes(live) -> None:
    """FAULT_OUTPUT_DROP cuts the first download on the socket; a Range resume completes it,
    and the bytes match the document's sha256; the second download of the job is whole."""
    reply = requests.post(f"{live.url}/start", json={"delay": 0}, headers={"Prefer": "wait=1"},
                          timeout=10)
    output = reply.json()["output"]
    received = bytearray()
    with pytest.raises(requests.exceptions.ChunkedEncodingError), \
            requests.get(output["url"], stream=True, timeout=10) as first:
        for chunk in first.iter_content(1000):  # small reads: a short one loses its data
            received += chunk
    assert len(received) == DROP_AFTER
    rest = requests.get(output["url"], headers={"Range": f"bytes={len(received)}-",
                                                "If-Range": f'"{output["sha256"]}"'}, timeout=10)
    assert rest.status_code == 206
    assert hashlib.sha256(bytes(received) + rest.content).hexdigest() == output["sha256"]
    again = requests.get(output["url"], timeout=10)
    assert len(again.content) == SIZE

