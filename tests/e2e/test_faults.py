"""The client gets the right answer from a server that misbehaves on purpose, or says why not.

Injected 503/429/drops at 30 %, garbage bodies, and a server that is killed mid-wait (and
restarted, or not). Each server is ``python server.py`` as shipped, in a subprocess, and
seeded: their fault dice fall in the same
sequence on every run (which request meets which die still depends on thread timing), so the
number of faults barely varies from run to run. No test really sleeps for a Retry-After: the
clients' sleep function records the delays instead.
"""

from __future__ import annotations

import collections
import random
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.helpers import fast_settings, start_server_process
from vtwait import (
    JobNotFoundError,
    JobResult,
    JobStatus,
    PollingPolicy,
    ProtocolError,
    RetryPolicy,
    ServerUnreachableError,
    VideoTranslationClient,
    WaitTimeout,
)
from vtwait.testing import ServerProcess

#: Status requests the wait may make per job (``max_attempts``), and urllib3 retries per request.
MAX_POLLS = 3
RETRY = RetryPolicy(max_retries=5, backoff_factor=0.01, backoff_max=0.05, backoff_jitter=0.0)
#: Backoff between failed polls: 0.05 s doubling to 0.4 s; never 1.0, so a 1.0 s sleep can only
#: come from a Retry-After.
POLICY = PollingPolicy(initial_delay=0.05, multiplier=2.0, max_delay=0.4, jitter=None)
#: The hard bound on HTTP status requests per job: each poll is one request plus its retries.
MAX_REQUESTS_PER_JOB = MAX_POLLS * (1 + RETRY.max_retries)
#: 10 % of status requests each dropped, answered 503 and answered 429: the server rolls the
#: dice in that order, each only if the previous one did not fire, so 0.1, 0.1/0.9 and 0.1/0.8.
THIRTY_PERCENT = {"fault_drop": 0.1, "fault_503": 0.1 / 0.9, "fault_429": 0.1 / 0.8}
#: The injected Retry-After of FAULT_503 and FAULT_429 answers.
FAULT_RETRY_AFTER = 1.0

# One line per status request in the server's log: "... server: GET /status/<id>?wait=N 503 0.4ms".
_STATUS_LINE = re.compile(r" vtwait\.server[\w.]*: GET /status/([0-9a-f]{32})\S* (\d{3}|dropped) ")


def status_requests_by_job(lines: list[str]) -> dict[str, collections.Counter]:
    """From the server's log lines: per job id, how many status requests ended in each status."""
    seen: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for line in lines:
        match = _STATUS_LINE.search(line)
        if match:
            seen[match.group(1)][match.group(2)] += 1
    return seen


@pytest.fixture
def serve():
    """Factory: serve(**settings) starts ``python server.py`` with fast_settings(**settings);
    every server is stopped at teardown."""
    servers: list[ServerProcess] = []

    def factory(**overrides) -> ServerProcess:
        servers.append(start_server_process(fast_settings(**overrides)))
        return servers[-1]

    yield factory
    for srv in servers:
        srv.stop()


# ------------------------------------------------------------------ 30 % faults, 50 jobs
def test_thirty_percent_faults_fifty_concurrent_jobs_all_get_their_final_status(
    serve, caplog
) -> None:
    """Drops, 503s and 429s on 10 % of status requests each: every job's wait returns its
    forced outcome, in at most MAX_POLLS x (1 + max_retries) = 18 requests, and each 503/429 is
    retried after its Retry-After (a 429 that ends a poll holds the next one back as long)."""
    live = serve(**THIRTY_PERCENT, seed=1)
    rng = random.Random(1)
    forced = [rng.choice(["completed", "error"]) for _ in range(50)]
    with VideoTranslationClient(live.url) as starter:  # faults hit status requests only
        job_ids = [starter.start_job(delay=rng.uniform(0.2, 0.8), outcome=fate)
                   for fate in forced]
    start_together = threading.Barrier(len(job_ids))

    def wait(job_id: str) -> tuple[JobStatus, list[float]]:
        slept: list[float] = []  # urllib3's retry sleeps and the wait's own, all via sleep=
        with VideoTranslationClient(live.url, policy=POLICY, retry=RETRY,
                                    sleep=slept.append) as api:
            start_together.wait(timeout=10)
            return api.wait_for_completion(job_id, timeout=30, max_attempts=MAX_POLLS), slept

    with ThreadPoolExecutor(len(job_ids)) as pool:
        results = list(pool.map(wait, job_ids))

    assert [status.result.value for status, _ in results] == forced
    assert [status.job_id for status, _ in results] == job_ids
    live.stop()  # every log line written
    seen = status_requests_by_job(live.output)
    failed_polls = collections.Counter(
        r.args[0] for r in caplog.records
        if r.name.startswith("vtwait") and r.msg.startswith("job %s: attempt %d failed"))
    for job_id, (_, slept) in zip(job_ids, results, strict=True):
        statuses = seen[job_id]
        assert statuses["200"] == 1, statuses  # one answer per job: the long-poll that saw it end
        assert sum(statuses.values()) <= MAX_REQUESTS_PER_JOB, statuses
        told_to_wait = statuses["503"] + statuses["429"]
        honoured = slept.count(FAULT_RETRY_AFTER)
        # Each 503/429 is retried after exactly its Retry-After, unless it was the last
        # attempt of a poll (retries spent): then the poll fails and the wait's backoff follows.
        assert told_to_wait - failed_polls[job_id] <= honoured <= told_to_wait, (statuses, slept)
        # A poll that failed on a 429 (its retries spent) holds the next request back until
        # that Retry-After: the wait's backoff, then what is left of the hold; nothing longer.
        assert all(s <= FAULT_RETRY_AFTER for s in slept), slept
        held_back = sum(POLICY.max_delay < s < FAULT_RETRY_AFTER for s in slept)
        assert held_back <= failed_polls[job_id], (statuses, slept)
    totals = sum(seen.values(), collections.Counter())
    assert set(totals) <= {"200", "503", "429", "dropped"}
    faults = totals["503"] + totals["429"] + totals["dropped"]
    assert faults >= 5  # the faults really fired (28 of 78 requests with this seed)
    assert sum(totals.values()) <= 2 * len(job_ids)  # ~1 / 0.73 requests per job expected


# ------------------------------------------------------------------------- garbage bodies
def test_garbage_body_raises_protocol_error_naming_what_arrived(serve) -> None:
    """FAULT_GARBAGE on every answer: ProtocolError quoting the body, after the tolerated
    max_protocol_errors retries; one status request each, never a status."""
    live = serve(fault_garbage=1.0)
    slept: list[float] = []
    with VideoTranslationClient(live.url, policy=POLICY, sleep=slept.append) as api:
        job_id = api.start_job(delay=0.2)
        with pytest.raises(ProtocolError) as caught:
            api.get_status(job_id)
        assert "<html>upstream garbage</html>" in str(caught.value)
        assert "not JSON" in str(caught.value) and "text/html" in str(caught.value)
        assert caught.value.status_code == 200 and caught.value.job_id == job_id

        with pytest.raises(ProtocolError, match="upstream garbage"):
            api.wait_for_completion(job_id, timeout=10)
    assert len(slept) == POLICY.max_protocol_errors  # retried that often, then gave up


def test_garbage_is_not_retried_when_the_policy_says_so(serve) -> None:
    """max_protocol_errors=0: the first unreadable answer ends the wait."""
    live = serve(fault_garbage=1.0)
    policy = PollingPolicy(max_protocol_errors=0)
    with VideoTranslationClient(live.url, policy=policy, sleep=lambda s: None) as api:
        job_id = api.start_job(delay=0.2)
        with pytest.raises(ProtocolError, match="upstream garbage"):
            api.wait_for_completion(job_id, timeout=10)
    live.stop()
    assert sum(status_requests_by_job(live.output)[job_id].values()) == 1


def test_intermittent_garbage_is_retried_and_never_becomes_a_wrong_status(serve) -> None:
    """Garbage on 30 % of answers, retried by policy: 20 jobs, each ends in its forced outcome."""
    live = serve(fault_garbage=0.3, seed=5)
    policy = PollingPolicy(initial_delay=0.01, max_delay=0.05, jitter=None,
                           max_protocol_errors=20)
    forced = ["completed", "error"] * 10
    with VideoTranslationClient(live.url, policy=policy, sleep=lambda s: None) as api:
        job_ids = [api.start_job(delay=0.1, outcome=fate) for fate in forced]
        with ThreadPoolExecutor(10) as pool:
            results = list(pool.map(lambda j: api.wait_for_completion(j, timeout=20), job_ids))
    assert [status.result.value for status in results] == forced


# ---------------------------------------------------------------- the server goes away
def _wait_in_thread(api: VideoTranslationClient, job_id: str, timeout: float):
    """Runs wait_for_completion in a thread; returns (thread, first-answer event, outcome box)."""
    answered = threading.Event()
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["status"] = api.wait_for_completion(
                job_id, timeout=timeout, on_update=lambda status: answered.set())
        except Exception as exc:  # handed to the test thread
            outcome["error"] = exc
        outcome["elapsed"] = time.monotonic() - began

    began = time.monotonic()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, answered, outcome


# Short long-poll windows, so that the client is between polls (and has seen the job) often;
# small retry backoff, so that a dead server is noticed in well under a second.
QUICK_POLICY = PollingPolicy(max_long_poll=1.0, initial_delay=0.1, max_delay=0.2, jitter=None)
QUICK_RETRY = RetryPolicy(max_retries=1, backoff_factor=0.05, backoff_max=0.1, backoff_jitter=0.0)


def test_server_killed_and_restarted_mid_wait_raises_job_not_found_naming_the_restart(
    tmp_path, caplog
) -> None:
    """Killed mid-wait: the client keeps retrying; restarted without the job: JobNotFoundError
    that says the server may have restarted, long before the deadline."""
    first = ServerProcess.start()
    second = None
    try:
        with VideoTranslationClient(first.url, policy=QUICK_POLICY, retry=QUICK_RETRY) as api:
            job_id = api.start_job(delay=60)
            thread, answered, outcome = _wait_in_thread(api, job_id, timeout=30)
            assert answered.wait(10), "the client never saw the job"
            first.kill()
            time.sleep(1.0)  # down for a while: the client must keep trying, not give up
            assert thread.is_alive(), outcome
            second = ServerProcess.start(port=first.port)
            thread.join(timeout=20)
    finally:
        first.kill()
        if second is not None:
            second.stop()
    assert not thread.is_alive()
    error = outcome.get("error")
    assert isinstance(error, JobNotFoundError), outcome
    assert "server may have restarted" in str(error) and job_id in str(error)
    assert error.job_id == job_id and error.status_code == 404
    assert outcome["elapsed"] < 15  # not the 30 s deadline: the 404 ends the wait at once
    failures = [r for r in caplog.records
                if r.name.startswith("vtwait") and r.msg.startswith("job %s: attempt %d failed")]
    assert len(failures) >= 2  # it kept polling while the server was down


def test_server_killed_and_not_back_before_the_deadline_raises_wait_timeout_with_the_cause(
    tmp_path,
) -> None:
    """Killed mid-wait and never restarted: WaitTimeout at the deadline, caused by the
    connection failure, carrying the last status seen."""
    srv = ServerProcess.start()
    try:
        with VideoTranslationClient(srv.url, policy=QUICK_POLICY, retry=QUICK_RETRY) as api:
            job_id = api.start_job(delay=60)
            thread, answered, outcome = _wait_in_thread(api, job_id, timeout=3.0)
            assert answered.wait(10), "the client never saw the job"
            srv.kill()
            thread.join(timeout=15)
    finally:
        srv.kill()
    error = outcome.get("error")
    assert isinstance(error, WaitTimeout), outcome
    assert isinstance(error.__cause__, ServerUnreachableError)
    assert "no final status within 3 s" in str(error) and "no answer from the server" in str(error)
    assert error.last_status is not None and error.last_status.result is JobResult.PENDING
    assert error.attempts >= 3
    assert 2.9 <= outcome["elapsed"] < 6.0
