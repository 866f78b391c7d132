"""The client's decisions, tested without a network and without real waiting.

Time is a FakeClock; the transport is a FakeSession answering from a script.
"""

from __future__ import annotations

import logging
import math
import random
from datetime import datetime, timezone
from email.utils import format_datetime

import pytest
import requests

import vtwait
import vtwait.core as client
from tests.fakes import Call, FakeSession, final, pending, response
from tests.helpers import FakeClock
from vtwait import (
    AuthenticationError,
    InvalidRequestError,
    JobNotFoundError,
    JobResult,
    JobStatus,
    PollingPolicy,
    ProtocolError,
    RetryPolicy,
    ServerError,
    ServerUnreachableError,
    VideoTranslationClient,
    WaitTimeout,
)
from vtwait.core import WaitPlanner

BASE = "http://127.0.0.1:9"  # never contacted: every test here uses a FakeSession


def make_client(handler, *, clock=None, policy=None, **kwargs):
    clock = clock or FakeClock()
    session = FakeSession(handler)
    api = VideoTranslationClient(BASE, session=session, clock=clock, sleep=clock.sleep,
                                 rng=random.Random(7), policy=policy, **kwargs)
    return api, session, clock


def status(**fields) -> JobStatus:
    return JobStatus(job_id="j1", result=JobResult.PENDING, **fields)


# ------------------------------------------------------------------------------ pure helpers
def test_exponential_delays_grow_by_the_multiplier_and_stop_at_the_cap():
    """The backoff schedule is plain data: initial, times multiplier, capped."""
    delays = client.exponential_delays(1.0, 2.0, 5.0)
    assert [next(delays) for _ in range(6)] == [1.0, 2.0, 4.0, 5.0, 5.0, 5.0]


@pytest.mark.parametrize("jitter,low,high", [
    (client.full_jitter, 0.0, 10.0),
    (client.equal_jitter, 5.0, 10.0),
    (client.scaled_jitter(0.2), 8.0, 10.0),
    (client.scaled_jitter(0.0), 10.0, 10.0),
])
def test_jitter_stays_in_its_range(jitter, low, high):
    """Each jitter function draws within its documented range, and spreads values."""
    rng = random.Random(3)
    draws = [jitter(10.0, rng) for _ in range(500)]
    assert all(low <= d <= high for d in draws)
    assert high - low == 0 or len(set(draws)) > 400


def test_scaled_jitter_rejects_a_share_outside_0_1():
    """A share above 1 would allow negative delays: refused with ValueError naming it."""
    with pytest.raises(ValueError, match="share"):
        client.scaled_jitter(1.5)


NOW = 1_700_000_000.0


@pytest.mark.parametrize("value,expected", [
    (None, None),
    ("5", 5.0),
    (" 7 ", 7.0),
    ("0", 0.0),  # "now", not "no header" (urllib3's quirk avoided)
    ("-3", 0.0),
    ("2.5", 2.5),
    ("abc", None),
    ("", None),
    ("nan", None),
    ("inf", 60.0),
    ("99999999", 60.0),
    (format_datetime(datetime.fromtimestamp(NOW + 30, timezone.utc), usegmt=True), 30.0),
    (format_datetime(datetime.fromtimestamp(NOW - 30, timezone.utc), usegmt=True), 0.0),
    ("Sun, 06 Nov 1994 08:49:37", None),  # no zone: not an RFC 9110 date
])
def test_parse_retry_after(value, expected):
    """Retry-After: seconds or HTTP date, clamped to [0, maximum]; unreadable is None."""
    assert client.parse_retry_after(value, now=NOW, maximum=60.0) == expected


@pytest.mark.parametrize("value,expected", [
    (None, None), ("", None), ("wait=10", 10.0), ("respond-async, wait=3", 3.0),
    ("WAIT=2.5", 2.5), ('wait="4"', 4.0), ("wait=abc", None), ("wait=-1", None),
    ("return=minimal", None),
])
def test_parse_preference_applied(value, expected):
    """Preference-Applied (RFC 7240): the applied wait, or None."""
    assert client.parse_preference_applied(value) == expected


@pytest.mark.parametrize("document,result,progress", [
    ({"result": "pending", "progress": 0.25}, "pending", 0.25),
    ({"status": "completed"}, "completed", None),
    ({"state": "RUNNING", "progress": 40}, "pending", 0.4),
    ({"status": {"status": "pending", "progress": 40}}, "pending", 0.4),
    ({"status": {"state": "Succeeded"}}, "completed", None),
    ({"result": "failed", "error": "codec"}, "error", None),
    ({"result": "Queued"}, "pending", None),
    ({"status": "processing", "progress": 250}, "pending", 1.0),
    ({"status": "in-progress", "progress": -3}, "pending", 0.0),
    ({"result": "done", "progress": True}, "completed", None),
])
def test_parse_status_document_reads_plain_and_nested_shapes(document, result, progress):
    """Status words under result/status/state, nested once, any case, synonyms, % progress."""
    parsed = client.parse_status_document(document, job_id="j9")
    assert parsed.result.value == result
    assert parsed.progress == progress
    assert parsed.job_id == "j9"


def test_parse_status_document_reads_our_servers_fields():
    """Our server's document: id, eta, finished_at and the error message come through."""
    parsed = client.parse_status_document({
        "job_id": "abc", "result": "error", "progress": 1.0, "created_at": 1.0,
        "finished_at": 2.5, "error": "translation failed"})
    assert (parsed.job_id, parsed.result, parsed.finished_at, parsed.error) == \
        ("abc", JobResult.ERROR, 2.5, "translation failed")
    assert str(parsed) == "error" and parsed.done
    eta = client.parse_status_document({"result": "pending", "eta_seconds": 3.25})
    assert eta.eta_seconds == 3.25 and not eta.done


@pytest.mark.parametrize("document,named", [
    (["pending"], "'[\"pending\"]'"),
    ("pending", "'pending'"),
    ({"progress": 0.5}, "has no job state"),
    ({"result": "exploded"}, "unknown job status 'exploded'"),
    ({"status": {"progress": 3}}, "has no job state"),
])
def test_parse_status_document_rejects_what_it_cannot_read(document, named):
    """Anything without a recognisable status is a ProtocolError naming what arrived."""
    with pytest.raises(ProtocolError) as caught:
        client.parse_status_document(document)
    assert named in str(caught.value)


# ---------------------------------------------------------------------------------- policies
@pytest.mark.parametrize("kwargs,named", [
    ({"initial_delay": -1}, "initial_delay"),
    ({"multiplier": 0.5}, "multiplier"),
    ({"initial_delay": 5, "max_delay": 1}, "max_delay"),
    ({"max_attempts": 0}, "max_attempts"),
    ({"max_long_poll": -1}, "max_long_poll"),
    ({"max_hint_delay": 0}, "max_hint_delay"),
    ({"max_protocol_errors": -1}, "max_protocol_errors"),
])
def test_polling_policy_rejects_bad_values(kwargs, named):
    """A bad policy value is a ValueError naming the field."""
    with pytest.raises(ValueError, match=named):
        PollingPolicy(**kwargs)


def test_polling_policy_is_frozen_and_keyword_only():
    """Policies are immutable values, built with keywords."""
    policy = PollingPolicy()
    with pytest.raises(AttributeError):
        policy.multiplier = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        PollingPolicy(1.0)  # type: ignore[misc]


def backoff_delays(policy: PollingPolicy, n: int) -> list[float]:
    planner = WaitPlanner(policy, rng=random.Random(1))
    return [planner.after_answer(status(), asked_wait=None, sent_at=0, received_at=0).delay
            for _ in range(n)]


def test_doubling_policy_is_plain_doubling():
    """'Doubling up to N retries', what simple clients do, is expressible exactly."""
    policy = PollingPolicy.doubling(initial=1.0, retries=4)
    assert backoff_delays(policy, 5) == [1.0, 2.0, 4.0, 8.0, 16.0]
    assert policy.max_attempts == 5 and not policy.long_poll and not policy.use_hints


def test_fixed_policy_asks_at_a_constant_interval():
    """The trivial loop: the same delay every time."""
    assert backoff_delays(PollingPolicy.fixed(0.5), 4) == [0.5, 0.5, 0.5, 0.5]


def test_default_backoff_is_jittered_exponential_within_bounds():
    """Default backoff: 1 s growing x1.3, capped at 20 s, each cut by at most 20 %."""
    delays = backoff_delays(PollingPolicy(), 30)
    for k, delay in enumerate(delays):
        base = min(1.0 * 1.3 ** k, 20.0)
        assert 0.8 * base - 1e-9 <= delay <= base + 1e-9
    assert max(delays) <= 20.0


# ------------------------------------------------------------------------------ the planner
@pytest.mark.parametrize("time_left,expected", [
    (math.inf, 30), (100.0, 30), (12.7, 12), (1.0, 1), (0.99, None), (0.0, None)])
def test_long_poll_window_is_bounded_by_the_time_left(time_left, expected):
    """The hold asked for never outlasts the caller's deadline, and is whole seconds."""
    assert WaitPlanner(PollingPolicy()).long_poll_for(time_left) == expected


def test_no_long_poll_when_the_policy_says_so():
    """long_poll=False never asks the server to hold."""
    assert WaitPlanner(PollingPolicy(long_poll=False)).long_poll_for(100.0) is None


def test_a_held_request_is_followed_at_once():
    """After a long-poll window that the server held, ask again with no delay."""
    planner = WaitPlanner(PollingPolicy())
    held = planner.after_answer(status(wait_applied=30.0), asked_wait=30, sent_at=0,
                                received_at=30.0)
    assert held.delay == 0.0 and "long-poll" in held.reason
    silent = planner.after_answer(status(), asked_wait=10, sent_at=0, received_at=9.5)
    assert silent.delay == 0.0  # held without saying so still counts


def test_an_echo_without_a_hold_is_not_trusted():
    """A server that says Preference-Applied but answers at once gets no tight loop."""
    decision = WaitPlanner(PollingPolicy()).after_answer(
        status(wait_applied=30.0), asked_wait=30, sent_at=0, received_at=0.01)
    assert decision.delay > 0.5 and "backoff" in decision.reason


def test_a_server_ignoring_long_poll_falls_to_hints_at_no_extra_cost():
    """Asked to hold, answered at once with an ETA: the ETA decides, no extra request."""
    decision = WaitPlanner(PollingPolicy()).after_answer(
        status(eta_seconds=0.8), asked_wait=30, sent_at=0, received_at=0.002)
    assert decision.delay == pytest.approx(0.805)


def test_a_long_eta_gets_one_check_in_halfway():
    """The first long ETA is checked halfway, to measure how fast it really runs."""
    decision = WaitPlanner(PollingPolicy()).after_answer(
        status(eta_seconds=6.0), asked_wait=None, sent_at=0, received_at=0)
    assert decision.delay == pytest.approx(3.0) and "halfway" in decision.reason


@pytest.mark.parametrize("bias", [0.8, 1.0, 1.2])
def test_the_eta_is_calibrated_against_our_clock(bias):
    """With an ETA biased by a constant factor, the second ask lands just after the end."""
    true_end = 10.0
    planner = WaitPlanner(PollingPolicy())
    first = planner.after_answer(status(eta_seconds=bias * true_end), asked_wait=None,
                                 sent_at=0, received_at=0.0)
    t1 = first.delay
    second = planner.after_answer(status(eta_seconds=bias * (true_end - t1)), asked_wait=None,
                                  sent_at=t1, received_at=t1)
    assert t1 + second.delay == pytest.approx(true_end + 0.005)


def test_retry_after_alone_is_followed():
    """With no ETA, a Retry-After on a pending answer says when to ask."""
    decision = WaitPlanner(PollingPolicy()).after_answer(
        status(retry_after=4.0), asked_wait=None, sent_at=0, received_at=0)
    assert decision.delay == 4.0 and "Retry-After" in decision.reason


@pytest.mark.parametrize("hint,expected", [
    ({"retry_after": 10_000.0}, 300.0), ({"eta_seconds": 0.5}, 0.505),
    ({"retry_after": 0.0}, 0.0)])
def test_hints_are_clamped_to_the_policy(hint, expected):
    """Absurd hints are cut to max_hint_delay; 0 means now."""
    decision = WaitPlanner(PollingPolicy()).after_answer(status(**hint), asked_wait=None,
                                                         sent_at=0, received_at=0)
    assert decision.delay == pytest.approx(expected)


def test_hints_are_ignored_when_the_policy_says_so():
    """use_hints=False: the backoff schedule decides even when the server hints."""
    decision = WaitPlanner(PollingPolicy.fixed(2.0)).after_answer(
        status(eta_seconds=0.1, retry_after=1.0), asked_wait=None, sent_at=0, received_at=0)
    assert decision.delay == 2.0


def test_an_overdue_eta_is_followed_by_short_growing_steps():
    """ETA 0 while still pending: due any moment; short doubling steps, not Retry-After's 1 s."""
    planner = WaitPlanner(PollingPolicy())
    delays = [planner.after_answer(status(eta_seconds=0.0, retry_after=1.0), asked_wait=None,
                                   sent_at=0, received_at=0).delay for _ in range(4)]
    assert delays == [0.01, 0.02, 0.04, 0.08]


# ---------------------------------------------------------------------- the wait, scripted
def test_long_poll_learns_the_end_with_one_request():
    """Against a long-polling server: one request, answered when the job ends."""
    clock = FakeClock()

    def handler(call: Call):
        assert call.kwargs["headers"]["Prefer"] == "wait=30"
        assert call.kwargs["params"] == {"wait": 30}
        assert call.kwargs["timeout"][1] >= 30  # the read timeout covers the hold
        clock.now += 4.2  # held until the job ended
        return response(200, final(), {"Preference-Applied": "wait=30"})

    api, session, _ = make_client(handler, clock=clock)
    result = api.wait_for_completion("j1")
    assert result.result is JobResult.COMPLETED
    assert len(session.calls) == 1 and clock.sleeps == []


def test_error_result_is_a_normal_return():
    """A job that ends in error is returned, not raised."""
    api, _, _ = make_client(lambda call: response(200, final("error", error="codec failed")))
    result = api.wait_for_completion("j1")
    assert result.result is JobResult.ERROR and result.error == "codec failed"


def test_plain_server_is_polled_with_backoff_until_done():
    """No hints, no long-poll: backoff delays, and the final status is returned."""
    answers = iter([pending(0.1), pending(0.5), pending(0.9), final()])
    api, session, clock = make_client(lambda call: response(200, next(answers)))
    result = api.wait_for_completion("j1")
    assert result.done and len(session.calls) == 4
    assert len(clock.sleeps) == 3
    assert 0.8 <= clock.sleeps[0] <= 1.0 and 1.04 <= clock.sleeps[1] <= 1.3


def test_on_update_fires_only_on_change():
    """on_update sees each change of result or progress once."""
    answers = iter([pending(0.1), pending(0.1), pending(0.5), final()])
    seen: list[tuple[str, float]] = []
    api, _, _ = make_client(lambda call: response(200, next(answers)))
    api.wait_for_completion("j1", on_update=lambda s: seen.append((str(s), s.progress)))
    assert seen == [("pending", 0.1), ("pending", 0.5), ("completed", 1.0)]


def test_deadline_cuts_the_last_sleep_and_raises_with_the_last_status():
    """Never sleeps past the deadline: the last sleep ends at it, one last ask, then timeout."""
    api, session, clock = make_client(lambda call: response(200, pending(0.3)),
                                      policy=PollingPolicy.fixed(4.0))
    start = clock.now
    with pytest.raises(WaitTimeout) as caught:
        api.wait_for_completion("j1", timeout=10.0)
    assert clock.sleeps == [4.0, 4.0, 2.0]
    assert clock.now - start == pytest.approx(10.0)
    assert len(session.calls) == 4
    error = caught.value
    assert isinstance(error, TimeoutError)
    assert error.last_status.progress == 0.3 and error.attempts == 4 and error.job_id == "j1"
    assert "within 10 s" in str(error)


def test_attempt_budget_raises_without_a_final_sleep():
    """max_attempts bounds the status requests; no sleep after the last one."""
    api, session, clock = make_client(lambda call: response(200, pending()),
                                      policy=PollingPolicy.fixed(1.0))
    with pytest.raises(WaitTimeout, match="3 status requests"):
        api.wait_for_completion("j1", max_attempts=3)
    assert len(session.calls) == 3 and clock.sleeps == [1.0, 1.0]


def test_the_default_deadline_is_finite():
    """Waiting forever must be asked for: the default deadline is an hour."""
    api, session, clock = make_client(lambda call: response(200, pending()),
                                      policy=PollingPolicy.fixed(600.0))
    with pytest.raises(WaitTimeout):
        api.wait_for_completion("j1")
    assert sum(clock.sleeps) == pytest.approx(client.DEFAULT_WAIT_TIMEOUT)


def test_long_poll_windows_shrink_to_the_time_left():
    """The hold asked for is bounded by the time left to the deadline."""
    clock = FakeClock()
    waits: list[int | None] = []

    def handler(call: Call):
        waits.append(call.kwargs["params"].get("wait"))
        clock.now += call.kwargs["params"].get("wait", 0)
        return response(200, pending(), {"Preference-Applied": "wait=30"})

    api, _, _ = make_client(handler, clock=clock)
    with pytest.raises(WaitTimeout):
        api.wait_for_completion("j1", timeout=65.5)
    assert waits == [30, 30, 5, None, None]  # under 1 s left: plain asks, the last at the deadline


@pytest.mark.parametrize("code,kind", [
    (401, AuthenticationError), (403, AuthenticationError), (404, JobNotFoundError),
    (400, InvalidRequestError), (422, InvalidRequestError)])
def test_client_errors_raise_at_once(code, kind):
    """4xx answers are not retried by the wait: the typed exception, after one request."""
    body = {"error": {"code": "x", "message": "the server's words"}}
    api, session, _ = make_client(lambda call: response(code, body))
    with pytest.raises(kind) as caught:
        api.wait_for_completion("j1")
    assert caught.value.status_code == code and "the server's words" in str(caught.value)
    assert len(session.calls) == 1


def test_a_job_lost_mid_wait_says_the_server_may_have_restarted():
    """Known, then 404: JobNotFoundError that names a restart as the likely cause."""
    answers = iter([response(200, pending()), response(404, {"error": {"message": "gone"}})])
    api, _, _ = make_client(lambda call: next(answers))
    with pytest.raises(JobNotFoundError, match="restarted"):
        api.wait_for_completion("j1")


def test_server_errors_are_waited_through_until_the_deadline():
    """5xx (after transport retries) counts as an unanswered poll; at the deadline, the cause."""
    api, session, clock = make_client(
        lambda call: response(500, {"error": {"message": "boom"}}),
        policy=PollingPolicy.fixed(1.0))
    with pytest.raises(WaitTimeout) as caught:
        api.wait_for_completion("j1", timeout=3.0)
    assert isinstance(caught.value.__cause__, ServerError)
    assert "boom" in str(caught.value) and len(session.calls) == 4


def test_unreachable_server_is_waited_through_and_recovery_is_seen():
    """Connection failures mid-wait do not end the wait; the answer after recovery does."""
    script = iter([requests.ConnectionError("refused"), requests.ConnectionError("refused"),
                   response(200, final())])

    def handler(call: Call):
        item = next(script)
        if isinstance(item, Exception):
            raise item
        return item

    api, session, _ = make_client(handler, policy=PollingPolicy.fixed(1.0))
    assert api.wait_for_completion("j1").done and len(session.calls) == 3


def test_garbage_is_tolerated_a_bounded_number_of_times_then_raised():
    """Unreadable answers never become a status; past the tolerance, ProtocolError names them."""
    api, session, _ = make_client(lambda call: response(200, text="<html>upstream</html>"),
                                  policy=PollingPolicy(max_protocol_errors=2, long_poll=False))
    with pytest.raises(ProtocolError, match="upstream") as caught:
        api.wait_for_completion("j1")
    assert "text/html" in str(caught.value) and len(session.calls) == 3


def test_garbage_then_a_real_answer_recovers():
    """One garbled answer in a wait is skipped, and the real status is returned."""
    script = iter([response(200, text="<oops>"), response(200, final())])
    api, _, _ = make_client(lambda call: next(script))
    assert api.wait_for_completion("j1").done


def test_unknown_status_word_is_not_an_endless_wait():
    """A status the client cannot read ends the wait with ProtocolError, not a loop."""
    api, session, _ = make_client(lambda call: response(200, {"status": "teleporting"}),
                                  policy=PollingPolicy(max_protocol_errors=0))
    with pytest.raises(ProtocolError, match="teleporting"):
        api.wait_for_completion("j1")
    assert len(session.calls) == 1


# -------------------------------------------------------------------------- start and URLs
def test_start_job_sends_a_fresh_idempotency_key_each_time():
    """Each start carries its own Idempotency-Key, and only the fields given."""
    api, session, _ = make_client(lambda call: response(201, pending()))
    assert api.start_job() == "j1"
    assert api.start_job(delay=2.5, outcome="error") == "j1"
    first, second = session.calls
    assert first.method == "POST" and first.url == BASE + "/start"
    assert first.kwargs["json"] is None and second.kwargs["json"] == {"delay": 2.5,
                                                                     "outcome": "error"}
    keys = {c.kwargs["headers"]["Idempotency-Key"] for c in session.calls}
    assert len(keys) == 2


def test_start_job_falls_back_to_the_location_header():
    """A plain server that answers with only a Location still yields the id."""
    api, _, _ = make_client(lambda call: response(202, {}, {"Location": "/jobs/abc42"}))
    assert api.start_job() == "abc42"


def test_start_job_without_any_id_is_a_protocol_error():
    """No id anywhere in the answer: ProtocolError naming what arrived."""
    api, _, _ = make_client(lambda call: response(201, {"ok": True}))
    with pytest.raises(ProtocolError, match="no job id"):
        api.start_job()


@pytest.mark.parametrize("template,job_id,url", [
    ("/status/{job_id}", "a b/c", BASE + "/status/a%20b%2Fc"),
    ("/status?job_id={job_id}", "j1", BASE + "/status?job_id=j1"),
    ("/jobs/{job_id}/status", "j1", BASE + "/jobs/j1/status"),
    ("/status/{job_id}", None, BASE + "/status"),
])
def test_status_url_templates(template, job_id, url):
    """The status URL is a template; no job id means the single-job GET /status."""
    api, session, _ = make_client(lambda call: response(200, final()), status_url=template)
    api.get_status(job_id)
    assert session.calls[0].url == url


@pytest.mark.parametrize("kwargs,named", [
    ({"base_url": "ftp://x"}, "base_url"), ({"base_url": "localhost:8000"}, "base_url"),
    ({"status_url": "/status"}, "status_url"), ({"wait_timeout": 0}, "wait_timeout")])
def test_bad_client_arguments_are_value_errors(kwargs, named):
    """Bad construction arguments fail at once, naming the argument."""
    with pytest.raises(ValueError, match=named):
        VideoTranslationClient(**kwargs)


def test_bad_wait_arguments_are_value_errors():
    """A non-positive timeout or attempt budget is refused before any request."""
    api, session, _ = make_client(lambda call: response(200, final()))
    with pytest.raises(ValueError, match="timeout"):
        api.wait_for_completion("j1", timeout=0)
    with pytest.raises(ValueError, match="max_attempts"):
        api.wait_for_completion("j1", max_attempts=0)
    assert session.calls == []


def test_credentials_come_from_the_environment_and_never_show(monkeypatch, caplog):
    """API_USERNAME / API_PASSWORD are used, and the password is in no repr or log."""
    monkeypatch.setenv("API_USERNAME", "alice")
    monkeypatch.setenv("API_PASSWORD", "s3cret-pw")
    caplog.set_level(logging.DEBUG)
    api = VideoTranslationClient(BASE)
    assert api.session.auth == ("alice", "s3cret-pw")
    assert "s3cret-pw" not in repr(api)
    assert "s3cret-pw" not in caplog.text
    api.close()


def test_auth_accepts_anything_requests_takes():
    """A bearer-token auth object is passed through to the session."""

    class Bearer(requests.auth.AuthBase):
        def __call__(self, request):
            request.headers["Authorization"] = "Bearer t0k"
            return request

    token = Bearer()
    with VideoTranslationClient(BASE, auth=token) as api:
        assert api.session.auth is token


def test_client_is_a_context_manager_that_closes_its_session():
    """Leaving the with-block closes the connections the client opened."""
    closed = []
    with VideoTranslationClient(BASE) as api:
        api.session.close = lambda: closed.append(True)  # type: ignore[method-assign]
    assert closed == [True]


def test_older_name_is_an_alias():
    """TranslationStatusClient, the name older tools used, is the same class."""
    assert vtwait.TranslationStatusClient is VideoTranslationClient


def test_every_attempt_is_logged_with_its_reason(caplog):
    """DEBUG per attempt with the next delay and why; INFO for the outcome."""
    answers = iter([pending(0.2), final()])
    api, _, _ = make_client(lambda call: response(200, next(answers)))
    caplog.set_level(logging.DEBUG, logger="vtwait")
    api.wait_for_completion("j1")
    debug = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    info = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert any("attempt 1" in m and "next in" in m and "backoff" in m for m in debug)
    assert any("completed after 2 status requests" in m for m in info)


# ------------------------------------------------------------------ transient retries (_send)
def retrying_client(answers, **kwargs):
    """A client that retries (it made its session), its HTTP answered from ``answers``."""
    clock = FakeClock()
    script = iter(answers)

    def handler(call: Call):
        item = next(script)
        if isinstance(item, Exception):
            raise item
        return item

    api = VideoTranslationClient(BASE, clock=clock, sleep=clock.sleep, rng=random.Random(7),
                                 **kwargs)
    api.session.close()
    api.session = FakeSession(handler)  # the wire only: pacing, retries and errors are the client's
    return api, api.session, clock


def test_transport_retry_uses_the_injected_sleep_and_honours_retry_after():
    """A 503 is retried after its Retry-After, through our sleep function; 0 means now."""
    api, session, clock = retrying_client([response(503, {}, {"Retry-After": "2"}),
                                           response(503, {}, {"Retry-After": "0"}),
                                           response(200, final())], respect_rate_limits=False)
    assert api.get_status("j1").done
    assert clock.sleeps == [2.0] and len(session.calls) == 3


def test_transport_retry_never_sleeps_past_the_deadline():
    """A retry whose wait would pass the wait's deadline is not made: no sleep past it."""
    api, _session, clock = retrying_client([response(503, {}, {"Retry-After": "5"})] * 10,
                                           policy=PollingPolicy.fixed(1.0))
    start = clock.now
    with pytest.raises(WaitTimeout) as caught:
        api.wait_for_completion("j1", timeout=1.5)
    assert 5.0 not in clock.sleeps and clock.now - start <= 1.5
    assert isinstance(caught.value.__cause__, ServerError)


def test_transport_retry_clamps_absurd_retry_after():
    """A huge Retry-After is cut to max_retry_after."""
    api, _session, clock = retrying_client([response(503, {}, {"Retry-After": "86400"}),
                                            response(200, final())],
                                           retry=RetryPolicy(max_retry_after=7.0),
                                           respect_rate_limits=False)
    api.get_status("j1")
    assert clock.sleeps == [7.0]


def test_a_429_without_retry_after_is_retried_at_its_quota_reset_once():
    """No Retry-After on a 429: the retry waits for the rate-limit reset, slept once (not by
    the retry and again by the pacer)."""
    limits = {"RateLimit-Policy": '"default";q=20;w=1', "RateLimit": '"default";r=0;t=4'}
    api, _session, clock = retrying_client([response(429, {}, limits), response(200, final())])
    api.get_status("j1")
    assert clock.sleeps == [4.0]


def test_no_answer_is_retried_on_urllib3s_schedule_then_unreachable():
    """Connection refused: retried at once, then after 0.4 s; past max_retries, unreachable."""
    api, session, clock = retrying_client(
        [requests.ConnectionError("refused")] * 3,
        retry=RetryPolicy(max_retries=2, backoff_jitter=0.0), respect_rate_limits=False)
    with pytest.raises(ServerUnreachableError, match="after 2 retries"):
        api.get_status("j1")
    assert clock.sleeps == [0.4] and len(session.calls) == 3


def test_an_answer_that_breaks_off_is_retried_like_no_answer():
    """A body cut short is a transient fault, retried at once (as the asyncio client does)."""
    api, session, clock = retrying_client(
        [requests.exceptions.ChunkedEncodingError("cut short"), response(200, final())],
        respect_rate_limits=False)
    assert api.get_status("j1").done
    assert clock.sleeps == [] and len(session.calls) == 2


def test_a_session_passed_in_keeps_its_own_retries():
    """The client adds no retries to a session it did not make: one request, then the error."""
    api, session, _ = make_client(lambda call: response(503, {"error": {"message": "busy"}}))
    with pytest.raises(ServerError, match="busy"):
        api.get_status("j1")
    assert len(session.calls) == 1
