"""``EVENT_MAX_AGE``: the server ends an event stream after that long, and a resume misses nothing.

In-process, on both stores: the jobs run on a fake clock; the stream's age is real time (it is
about the connection), so the streams here live 0.2 s.
"""

from __future__ import annotations

import pytest

import vtwait.server.events as event_stream
from tests.helpers import fast_settings
from tests.server.test_events import changes, make_fake, open_stream, start
from vtwait.server.settings import ConfigError, Settings

__all__ = ["make_fake"]  # the fixture, imported for the tests below

MAX_AGE = 0.2


@pytest.fixture(params=["memory", "redis"])
def store_kind(request: pytest.FixtureRequest) -> str:
    return request.param


def test_a_stream_ends_at_its_max_age_and_the_resume_replays_what_it_missed(make_fake) -> None:
    app, client, _ = make_fake(event_max_age=MAX_AGE, event_heartbeat=60)
    stream = open_stream(client)
    assert stream.read() == [{"retry": "1000"}]
    first = start(client, delay=60)
    seen = changes(stream.read())
    assert [doc["job_id"] for _, doc in seen] == [first]
    assert stream.rest() == []  # ended by the server, cleanly, after MAX_AGE
    assert event_stream.open_streams(app) == 0
    missed = start(client, delay=60)  # while the client is away
    resumed = open_stream(client, **{"Last-Event-ID": str(seen[-1][0])})
    assert resumed.read() == [{"retry": "1000"}]
    replayed = changes(resumed.read())
    assert [doc["job_id"] for _, doc in replayed] == [missed]
    assert replayed[0][0] > seen[-1][0]
    resumed.close()


@pytest.mark.parametrize("store_kind", ["memory"])
def test_no_max_age_by_default_and_a_negative_one_is_refused(store_kind) -> None:
    assert fast_settings().event_max_age == 0
    with pytest.raises(ConfigError, match="EVENT_MAX_AGE"):
        Settings(event_max_age=-1)
    assert Settings.from_env({"EVENT_MAX_AGE": "2.5"}).event_max_age == 2.5
