"""The event router (issue 19): each change goes to the filtered streams of its job only.

Both stores; the app on a fake clock without its timer thread (``store.process_due()`` finishes
the due jobs), the router's pump a real thread reading the store's log.
"""

from __future__ import annotations

import json

import pytest

import vtwait.server.stream_router as stream_router
from tests.server.test_events import changes, make_fake, open_stream, start  # noqa: F401
from vtwait.server.state import app_state
from vtwait.server.stores.base import StoreClosedError
from vtwait.server.stream_router import StreamRouter

__all__ = ["make_fake"]  # the fixture, used by name

#: Generous wait for the pump (a real thread) to hand a change on; never reached when it works.
PATIENCE = 10.0


@pytest.fixture(params=["memory", "redis"])
def store_kind(request: pytest.FixtureRequest) -> str:
    return request.param


def test_a_change_reaches_the_feeds_of_its_job_and_no_other(make_fake, fake_clock):
    _, client, store = make_fake()
    a, b = start(client, delay=1), start(client, delay=5)
    router = StreamRouter(store)
    _, position = store.event_snapshot([])
    feed_a = router.subscribe(frozenset({a}), position)
    feed_b = router.subscribe(frozenset({b}), position)
    also_a = router.subscribe(frozenset({a, b}), position)
    assert router.feeds == 3 and feed_a.log_until == position
    fake_clock.advance(2)
    store.process_due()  # a completes
    got = feed_a.take(PATIENCE)
    assert [(e.job_id, e.kind) for e in got] == [(a, "completed")]
    assert json.loads(got[0].data)["result"] == "completed"
    assert [e.job_id for e in also_a.take(PATIENCE)] == [a]
    assert feed_b.take(0.2) == []  # not woken, nothing handed to it
    router.unsubscribe(feed_a)
    router.unsubscribe(also_a)
    assert router.feeds == 1
    store.shutdown()
    with pytest.raises(StoreClosedError):
        feed_b.take(PATIENCE)


def test_a_feed_subscribed_later_reads_the_changes_before_it_from_the_log(make_fake, fake_clock):
    _, client, store = make_fake()
    a, b = start(client, delay=1), start(client, delay=1)
    router = StreamRouter(store)
    _, position = store.event_snapshot([])
    first = router.subscribe(frozenset({a}), position)
    fake_clock.advance(2)
    store.process_due()  # both complete; the pump hands a's change out
    assert [e.job_id for e in first.take(PATIENCE)] == [a]
    late = router.subscribe(frozenset({b}), position)  # b's change is older than its feed
    assert late.log_until > position
    assert [e.job_id for e in store.events_after(position, 100)
            if position < e.event_id <= late.log_until and e.job_id == b] == [b]
    assert late.take(0.2) == []  # the stream reads it from the log; the router does not repeat it
    store.shutdown()


def test_an_inbox_past_its_limit_overflows_and_the_stream_reads_the_log_itself(
        make_fake, fake_clock, monkeypatch):
    monkeypatch.setattr(stream_router, "INBOX_LIMIT", 2)
    app, client, store = make_fake()
    jobs = [start(client, delay=1 + n * 0.01) for n in range(5)]
    stream = open_stream(client, "?" + "&".join(f"job_id={job}" for job in jobs))
    stream.read()  # the snapshot; the stream is subscribed
    router = app_state(app).streams.router
    assert router.feeds == 1
    fake_clock.advance(2)
    store.process_due()  # five changes for a feed that holds two
    seen: list[str] = []
    while len(seen) < 5:
        seen += [doc["job_id"] for _, doc in changes(stream.read())]
    assert sorted(seen) == sorted(jobs)  # nothing lost: the rest came from the log
    assert router.feeds == 0  # dropped from the router
    stream.close()


def test_a_filtered_stream_through_the_router_sends_only_its_jobs(make_fake, fake_clock):
    app, client, store = make_fake()
    watched, _ = start(client, delay=1), start(client, delay=1)  # the other job: not sent
    stream = open_stream(client, f"?job_id={watched}")
    stream.read()
    fake_clock.advance(2)
    store.process_due()
    assert [doc["job_id"] for _, doc in changes(stream.read())] == [watched]
    assert app_state(app).streams.router.feeds == 1
    stream.close()
    assert app_state(app).streams.router.feeds == 0  # unsubscribed when the stream ends
