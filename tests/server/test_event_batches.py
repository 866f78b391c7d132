"""``GET /events?batch=1`` (issue 19): several changes per event, opt-in, on both stores.

In-process: the app on a fake clock without its timer thread, the stream read chunk by chunk as
the server yields it (the helpers of test_events.py).
"""

from __future__ import annotations

import json

import pytest

from tests.server.test_events import changes, make_fake, open_stream, start  # noqa: F401

__all__ = ["make_fake"]  # the fixture, used by name


@pytest.fixture(params=["memory", "redis"])
def store_kind(request: pytest.FixtureRequest) -> str:
    return request.param


def test_batch_mode_sends_the_changes_of_one_read_as_one_statuses_event(make_fake, fake_clock):
    _, client, store = make_fake()
    jobs = [start(client, delay=1 + n * 0.001) for n in range(5)]
    other = start(client, delay=1)
    query = "?batch=1&" + "&".join(f"job_id={job}" for job in jobs)
    stream = open_stream(client, query)
    opening = stream.read()
    assert [b.get("event") for b in opening[1:]] == ["status"] * 5  # the snapshot, one per job
    fake_clock.advance(2)
    store.process_due()
    blocks = stream.read()
    assert len(blocks) == 1 and blocks[0]["event"] == "statuses"
    docs = json.loads(blocks[0]["data"])
    assert [d["job_id"] for d in docs] == jobs  # in the order of their ids; not the other job
    assert all(d["result"] == "completed" for d in docs) and other not in blocks[0]["data"]
    _, last = store.event_snapshot([])  # the last change logged: the batch's last, jobs[4]'s
    assert blocks[0]["id"] == str(last)
    stream.close()


def test_without_batch_each_change_is_its_own_status_event(make_fake, fake_clock):
    _, client, store = make_fake()
    jobs = [start(client, delay=1) for _ in range(3)]
    stream = open_stream(client, "?" + "&".join(f"job_id={job}" for job in jobs))
    stream.read()
    fake_clock.advance(2)
    store.process_due()
    blocks = stream.read()
    assert [b["event"] for b in blocks] == ["status"] * 3
    assert sorted(doc["job_id"] for _, doc in changes(blocks)) == sorted(jobs)


def test_an_unfiltered_batch_stream_gets_every_change(make_fake, fake_clock):
    _, client, store = make_fake()
    stream = open_stream(client, "?batch=1")
    stream.read()
    jobs = [start(client, delay=1) for _ in range(3)]
    blocks = stream.read()  # the three starts
    assert [b["event"] for b in blocks] == ["statuses"]
    assert [d["job_id"] for d in json.loads(blocks[0]["data"])] == jobs
    stream.close()
