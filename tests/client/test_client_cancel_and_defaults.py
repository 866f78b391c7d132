"""cancel(), the queue fields of JobStatus, and "None means the default" across the public API.

Scripted sessions and a fake clock: no network, no waiting.
"""

from __future__ import annotations

import inspect
import math
import random

import pytest

import vtwait.core as client
from tests.fakes import Call, FakeSession, final, pending, response
from tests.helpers import FakeClock
from vtwait import (
    InvalidRequestError,
    JobNotFoundError,
    JobResult,
    PollingPolicy,
    RetryPolicy,
    VideoTranslationClient,
)
from vtwait.core.batch_state import BatchState
from vtwait.core.errors import NoOutputError

BASE = "http://127.0.0.1:9"


def make_client(handler, **kwargs):
    clock = FakeClock()
    session = FakeSession(handler)
    api = VideoTranslationClient(BASE, session=session, clock=clock, sleep=clock.sleep,
                                 rng=random.Random(1), **kwargs)
    return api, session


CANCELED = {"job_id": "j1", "result": "error", "phase": "canceled",
            "error": "job was cancelled", "progress": 0.4, "finished_at": 5.0}


# ------------------------------------------------------------------------------ cancel
def test_cancel_posts_and_returns_the_final_cancelled_status():
    """POST /status/<id>/cancel; the answer is a final error with phase 'canceled'."""
    api, session = make_client(lambda call: response(200, CANCELED))
    status = api.cancel("j1")
    assert session.calls[0].method == "POST" and session.calls[0].url == \
        BASE + "/status/j1/cancel"
    assert status.done and status.result is JobResult.ERROR and status.phase == "canceled"
    assert status.error == "job was cancelled"


def test_cancelling_a_finished_job_returns_its_final_status_not_an_error():
    """409 'already finished' carries the document: that final status is returned."""
    api, session = make_client(lambda call: response(409, final("completed")))
    status = api.cancel("j1")
    assert status.result is JobResult.COMPLETED and len(session.calls) == 1


def test_cancelling_an_unknown_job_raises_job_not_found():
    """404: JobNotFoundError naming the job."""
    api, _ = make_client(lambda call: response(404, {"error": {"message": "no such job"}}))
    with pytest.raises(JobNotFoundError, match="j1") as caught:
        api.cancel("j1")
    assert caught.value.status_code == 404


def test_a_server_without_cancel_is_an_invalid_request():
    """405 from a server with no cancel route: InvalidRequestError with its words."""
    api, _ = make_client(lambda call: response(405, {"error": {"message": "method not allowed"}}))
    with pytest.raises(InvalidRequestError, match="method not allowed"):
        api.cancel("j1")


def test_a_cancel_answered_before_it_took_effect_is_awaited():
    """A server that cancels asynchronously (answers pending): the wait returns the final one."""
    answers = iter([response(202, pending()), response(200, CANCELED)])
    api, session = make_client(lambda call: next(answers))
    assert api.cancel("j1").phase == "canceled"
    assert [c.method for c in session.calls] == ["POST", "GET"]


def test_the_cancel_url_is_a_template():
    """cancel_url fills in the URL-quoted job id; a template without {job_id} is refused."""
    api, session = make_client(lambda call: response(200, CANCELED),
                               cancel_url="/jobs/{job_id}:cancel")
    api.cancel("a/b")
    assert session.calls[0].url == BASE + "/jobs/a%2Fb:cancel"
    with pytest.raises(ValueError, match="cancel_url"):
        VideoTranslationClient(BASE, cancel_url="/cancel")


# ------------------------------------------------------------------------- queue fields
@pytest.mark.parametrize("document,phase,position,started,result", [
    ({"result": "pending", "phase": "queued", "queue_position": 3}, "queued", 3, None,
     "pending"),
    ({"result": "pending", "phase": "running", "started_at": 12.5}, "running", None, 12.5,
     "pending"),
    ({"result": "error", "phase": "canceled"}, "canceled", None, None, "error"),
    ({"result": "pending", "phase": "Cancelled"}, "canceled", None, None, "error"),
    ({"status": "canceled"}, "canceled", None, None, "error"),
    ({"status": "queued"}, "queued", None, None, "pending"),
    ({"status": {"state": "running", "started_at": 3}}, "running", None, 3.0, "pending"),
    ({"result": "completed"}, None, None, None, "completed"),
    ({"result": "pending", "phase": "teleporting", "queue_position": 0}, None, None, None,
     "pending"),
    ({"result": "pending", "queue_position": True, "started_at": "soon"}, None, None, None,
     "pending"),
    ({"result": "pending", "queue_position": 2.0}, None, 2, None, "pending"),
])
def test_phase_queue_position_and_started_at_are_read_when_given(document, phase, position,
                                                                 started, result):
    """phase (or a queued/running/canceled status word), a 1-based queue_position and
    started_at; a canceled phase is a final error; nonsense is None, never a guess."""
    status = client.parse_status_document(document)
    assert (status.phase, status.queue_position, status.started_at, status.result.value) == \
        (phase, position, started, result)


# ------------------------------------------------------------- None means the default
def client_state(api: VideoTranslationClient) -> tuple:
    """What a client's construction decided, comparable between two clients."""
    return (api.base_url, api.policy, api.retry, api.wait_timeout, api.request_timeout,
            api.status_url, api.single_status_url, api.start_url, api.cancel_url, api._clock,
            api._sleep, api._pacer is not None, api.session.auth)


def optional_parameters(function) -> list[str]:
    """Every parameter of ``function`` that has a default (self and *args excluded)."""
    return [name for name, p in inspect.signature(function).parameters.items()
            if p.default is not inspect.Parameter.empty and name != "self"]


#: Parameters where None is a value of its own, not the default (documented so).
NONE_IS_A_VALUE = {
    (PollingPolicy, "jitter"): "no jitter",
    (PollingPolicy.doubling, "retries"): "no limit but the deadline",
}


@pytest.mark.parametrize("name", optional_parameters(VideoTranslationClient.__init__))
def test_none_for_any_constructor_argument_means_its_default(name, monkeypatch):
    """VideoTranslationClient(**{name: None}) builds the same client as leaving it out."""
    monkeypatch.delenv("API_USERNAME", raising=False)
    monkeypatch.delenv("API_PASSWORD", raising=False)
    with VideoTranslationClient() as default, VideoTranslationClient(**{name: None}) as given:
        assert client_state(given) == client_state(default)


CALLS = {
    "start_job": ({}, response(201, pending())),
    "get_status": ({"job_id": "j1"}, response(200, final())),
    "wait_for_completion": ({"job_id": "j1"}, response(200, final())),
    "cancel": ({"job_id": "j1"}, response(200, CANCELED)),
    "start_jobs": ({"count": 1}, response(200, {"jobs": [pending()]})),  # POST /start/batch
    "wait_many": ({"job_ids": ["j1"]}, response(200, final())),
    "as_completed": ({"job_ids": ["j1"]}, response(200, final())),
    "submit": ({}, response(201, pending())),
    "run": ({}, response(200, final())),
    "jobs": ({}, response(200, {"jobs": [], "next_cursor": None})),
    "watch_batch": ({"state": lambda: BatchState.new(["j1"])}, response(200, final())),
    "download": ({"job_or_id": "j1", "path": "unused.bin"}, response(200, final("error"))),
}
#: Calls whose scripted answer makes them raise, after the request compared.
RAISES = {"download": NoOutputError}


@pytest.mark.parametrize("method,name", [
    (method, name) for method in CALLS
    for name in optional_parameters(getattr(VideoTranslationClient, method))])
def test_none_for_any_method_argument_means_its_default(method, name):
    """Each method with {name: None} sends the same request as without it."""
    template, answer = CALLS[method]
    sent = []
    for kwargs in ({}, {name: None}):
        base = {k: v() if callable(v) else v for k, v in template.items() if k != name}
        api, session = make_client(lambda call: answer)
        api.use_event_stream = False  # batches wait per job: the scripted answers are JSON
        if method in RAISES:
            with pytest.raises(RAISES[method]):
                getattr(api, method)(**base, **kwargs)
        else:
            result = getattr(api, method)(**base, **kwargs)
            if inspect.isgenerator(result):
                list(result)
        call: Call = session.calls[0]
        headers = {k: v for k, v in call.kwargs.get("headers", {}).items()
                   if k != "Idempotency-Key"}
        sent.append((call.method, call.url, _without_keys(call.kwargs.get("json")), headers))
    assert sent[0] == sent[1]


def _without_keys(body: object) -> object:
    """A request body without the idempotency keys a batch start makes afresh for each call."""
    if isinstance(body, dict) and isinstance(body.get("jobs"), list):
        return {"jobs": [{k: v for k, v in item.items() if k != "idempotency_key"}
                         for item in body["jobs"]]}
    return body


def test_every_public_method_with_optional_arguments_is_in_the_table():
    """The table above covers each public method of the client that takes optional arguments."""
    public = {name for name, member in inspect.getmembers(VideoTranslationClient,
                                                          inspect.isfunction)
              if not name.startswith("_") and optional_parameters(member)}
    assert public <= set(CALLS), public - set(CALLS)


@pytest.mark.parametrize("config,name", [
    (config, field) for config in (PollingPolicy, RetryPolicy)
    for field in optional_parameters(config)])
def test_none_for_any_policy_field_means_its_default(config, name):
    """PollingPolicy(x=None) and RetryPolicy(x=None) equal the defaults, except where None is
    a documented value of its own (jitter: none; max_attempts: its default is None)."""
    given = config(**{name: None})
    if (config, name) in NONE_IS_A_VALUE:
        assert getattr(given, name) is None
    else:
        assert given == config()


@pytest.mark.parametrize("function,args,default_call", [
    (PollingPolicy.fixed, (), lambda: PollingPolicy.fixed()),
    (PollingPolicy.doubling, (), lambda: PollingPolicy.doubling()),
    (client.parse_retry_after, ("5",), lambda: client.parse_retry_after("5")),
    (client.parse_rate_limit, ({"X-RateLimit-Remaining": "3"},),
     lambda: client.parse_rate_limit({"X-RateLimit-Remaining": "3"})),
    (client.read_status_answer, ({"result": "pending"}, {}),
     lambda: client.read_status_answer({"result": "pending"}, {}, job_id=None)),
])
def test_none_for_optional_arguments_of_the_helpers_means_the_default(function, args,
                                                                      default_call):
    """Each helper's optional arguments given as None behave as left out."""
    for name in optional_parameters(function):
        if (function, name) in NONE_IS_A_VALUE:
            continue
        kwargs = {"job_id": None} if function is client.read_status_answer else {}
        assert function(*args, **{**kwargs, name: None}) == default_call(), name


def test_none_for_the_wait_timeout_is_the_finite_default_not_forever():
    """wait_for_completion(timeout=None) waits DEFAULT_WAIT_TIMEOUT, not forever."""
    api, _ = make_client(lambda call: response(200, pending()),
                         policy=PollingPolicy.fixed(600.0))
    started = api._clock()
    with pytest.raises(TimeoutError):
        api.wait_for_completion("j1", timeout=None)
    assert api._clock() - started == pytest.approx(client.DEFAULT_WAIT_TIMEOUT)
    assert math.isfinite(client.DEFAULT_WAIT_TIMEOUT)
