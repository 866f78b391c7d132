"""``POST /start/batch`` (issue 19): many starts in one request, each with its own answer.

Every test runs on both stores (the app's own Flask test client; Redis: a private server).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.helpers import fast_settings
from vtwait.core.starts import BATCH_LIMIT_HEADER
from vtwait.server.batch_start import batch_body_limit
from vtwait.server.routes import MAX_CONTENT_LENGTH
from vtwait.server.state import app_state


@pytest.fixture(params=["memory", "redis"])
def store_kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def batch_app(make_app: Callable[..., Flask]) -> Callable[..., Flask]:
    """Factory: an app of long jobs (nothing ends during a test), settings overridable."""
    return lambda **overrides: make_app(fast_settings(min_delay=60, max_delay=60, **overrides))


def post_batch(client: FlaskClient, jobs: object) -> list[dict]:
    reply = client.post("/start/batch", json={"jobs": jobs})
    assert reply.status_code == 200, reply.get_json()
    return reply.get_json()["jobs"]


def test_each_item_starts_a_job_with_its_own_answer_in_order(batch_app):
    app = batch_app()
    client = app.test_client()
    answers = post_batch(client, [{"delay": 30}, {"outcome": "error", "delay": 40}, {}])
    assert [a["result"] for a in answers] == ["pending"] * 3
    assert len({a["job_id"] for a in answers}) == 3
    assert [round(a["eta_seconds"]) for a in answers] == [30, 40, 60]
    for answer in answers:  # each is a job the single routes know
        status = client.get(f"/status/{answer['job_id']}").get_json()
        assert status["job_id"] == answer["job_id"] and status["result"] == "pending"
    assert len(app_state(app).store) == 4  # the default job and the three


def test_a_bad_item_fails_alone_with_its_index_and_a_named_error(batch_app):
    """Each item follows the single start's rules: with STRICT_BODY an unknown key fails too."""
    app = batch_app(strict_body=True)
    answers = post_batch(app.test_client(), [
        {"delay": 1}, {"delay": -1}, "not an object", {"colour": "red"},
        {"idempotency_key": "no spaces allowed"}, {"outcome": "maybe"}, {"delay": 2}])
    good = [a for a in answers if "job_id" in a]
    bad = {a["index"]: a["error"] for a in answers if "error" in a}
    assert [answers.index(a) for a in good] == [0, 6]
    assert sorted(bad) == [1, 2, 3, 4, 5]
    assert all(e["code"] == "bad_request" for e in bad.values())
    assert "delay must be in" in bad[1]["message"]
    assert "JSON object" in bad[2]["message"]
    assert "colour" in bad[3]["message"]
    assert "idempotency_key" in bad[4]["message"]
    assert "outcome" in bad[5]["message"]
    assert len(app_state(app).store) == 3


def test_idempotency_keys_are_per_item_and_shared_with_the_single_start(batch_app):
    client = batch_app().test_client()
    single = client.post("/start", headers={"Idempotency-Key": "k-single"}).get_json()
    answers = post_batch(client, [{"idempotency_key": "k-1"}, {"idempotency_key": "k-2"},
                                  {"idempotency_key": "k-1"}, {"idempotency_key": "k-single"}])
    ids = [a["job_id"] for a in answers]
    assert ids[0] == ids[2] != ids[1]
    assert ids[3] == single["job_id"]
    again = post_batch(client, [{"idempotency_key": "k-2"}])  # a retried batch starts nothing new
    assert again[0]["job_id"] == ids[1]


def test_more_items_than_the_cap_is_refused_whole_and_names_the_cap(batch_app):
    app = batch_app(max_batch_start=3)
    client = app.test_client()
    reply = client.post("/start/batch", json={"jobs": [{}] * 4})
    assert reply.status_code == 400
    assert reply.headers[BATCH_LIMIT_HEADER] == "3"
    assert "at most 3" in reply.get_json()["error"]["message"]
    assert len(app_state(app).store) == 1  # nothing started
    assert len(post_batch(client, [{}] * 3)) == 3


@pytest.mark.parametrize("body", [b"", b"[]", b'{"jobs": {}}', b'{"job": []}', b"{nope"])
def test_a_body_that_is_not_a_list_of_jobs_is_a_400(batch_app, body):
    reply = batch_app().test_client().post("/start/batch", data=body,
                                           content_type="application/json")
    assert reply.status_code == 400
    assert reply.get_json()["error"]["code"] == "bad_request"


def test_a_batch_may_be_larger_than_a_single_start_body_but_not_unbounded(batch_app):
    client = batch_app(max_batch_start=1000).test_client()
    jobs = [{"delay": 30, "callback_id": "x" * 100} for _ in range(1000)]
    assert len(post_batch(client, jobs)) == 1000  # about 130 kB: past the single start's 64 KiB
    assert batch_body_limit(1000) > MAX_CONTENT_LENGTH
    huge = b'{"jobs": [' + b" " * batch_body_limit(1000) + b"]}"
    reply = client.post("/start/batch", data=huge, content_type="application/json")
    assert reply.status_code == 413


def test_items_past_max_jobs_fail_as_too_many_jobs(batch_app):
    app = batch_app(max_jobs=2)
    answers = post_batch(app.test_client(), [{}, {}, {}])
    assert ["job_id" in a for a in answers] == [True, True, False]
    assert answers[2]["error"]["code"] == "too_many_jobs" and answers[2]["index"] == 2


def test_an_unknown_key_is_ignored_in_an_item_as_in_a_single_start(batch_app):
    """Lenient bodies by default (issue 20): an unknown key starts the job; the deadline and the
    script keys of a single start's body work in an item too."""
    app = batch_app()
    answers = post_batch(app.test_client(), [{"colour": "red"}, {"cancel_after": 0.5},
                                             {"cancel_after": -1}])
    assert "job_id" in answers[0] and "job_id" in answers[1]
    assert "cancel_after" in answers[2]["error"]["message"]
    assert len(app_state(app).store) == 3  # the default job and the two started
