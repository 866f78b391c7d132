"""The client against server.py's real-backend behaviours, over real HTTP on 127.0.0.1: the queue,
cancel, webhooks verified with verify_webhook, and a rate limit shared by many waiting threads."""

from __future__ import annotations

import base64
import logging
import queue
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from flask import Flask, request

from tests.helpers import fast_settings, serve_wsgi
from vtwait import (
    JobNotFoundError,
    JobResult,
    JobStatus,
    VideoTranslationClient,
    WebhookVerificationError,
    verify_webhook,
)

SECRET = "whsec_" + base64.b64encode(b"client live test secret, 32 b!!!").decode()
_ANSWER_LINE = re.compile(r"^(GET|POST) \S+ (\d{3}) ")


def answered(records: list[logging.LogRecord], code: str) -> int:
    """How many requests the server logged with status ``code``."""
    return sum(1 for r in records if r.name == "vtwait.server.app"
               and (m := _ANSWER_LINE.match(r.getMessage())) and m.group(2) == code)


# ------------------------------------------------------------------------ queue and cancel
def test_a_queued_job_shows_its_place_and_cancelling_it_frees_nobody_else(make_server):
    """CONCURRENCY=1: the second job is queued at position 1; cancelled, it is a final error
    with phase canceled, and the running job runs on."""
    live = make_server(fast_settings(concurrency=1))
    with VideoTranslationClient(live.url) as api:
        api.wait_for_completion(timeout=10)  # the server's default job takes the slot first
        running = api.start_job(delay=30)
        queued = api.start_job(delay=30)
        first, second = api.get_status(running), api.get_status(queued)
        assert (first.phase, second.phase, second.queue_position) == ("running", "queued", 1)
        assert first.started_at is not None and second.started_at is None
        cancelled = api.cancel(queued)
        assert cancelled.done and cancelled.result is JobResult.ERROR
        assert cancelled.phase == "canceled" and cancelled.error
        assert api.get_status(running).phase == "running"
        api.cancel(running)


def test_cancelling_a_running_job_wakes_a_waiter_in_another_thread(make_server):
    """A long-poll held on a running job hears the cancel at once and returns it as final."""
    live = make_server()
    with VideoTranslationClient(live.url) as api:
        job_id = api.start_job(delay=60)
        seen: queue.Queue[JobStatus] = queue.Queue()
        waiter = threading.Thread(target=lambda: seen.put(api.wait_for_completion(
            job_id, timeout=30)))
        waiter.start()
        for _ in range(1000):  # until the long-poll is held (bounded: 10 s)
            if live.store.waiters >= 1:
                break
            time.sleep(0.01)
        assert live.store.waiters == 1
        cancelled = api.cancel(job_id)
        waiter.join(timeout=30)
    final = seen.get(timeout=1)
    assert cancelled.phase == final.phase == "canceled" and final.result is JobResult.ERROR


def test_cancelling_a_finished_job_returns_its_final_status(make_server):
    """409 from the server: the job's own final status comes back, no exception."""
    live = make_server()
    with VideoTranslationClient(live.url) as api:
        job_id = api.start_job(delay=0.05, outcome="completed")
        done = api.wait_for_completion(job_id, timeout=10)
        again = api.cancel(job_id)
    assert done.result is again.result is JobResult.COMPLETED
    assert again.phase == "completed" and again.finished_at == done.finished_at


def test_cancelling_an_unknown_job_raises_job_not_found(make_server):
    """404 from the cancel route: JobNotFoundError."""
    live = make_server()
    with VideoTranslationClient(live.url) as api, pytest.raises(JobNotFoundError):
        api.cancel("0" * 32)


# ------------------------------------------------------------------------------ webhooks
def test_a_webhook_from_the_server_verifies_and_a_tampered_copy_does_not(make_server):
    """The server signs the final status; verify_webhook in a loopback receiver reads it, and
    the same delivery with a changed body is refused as forged."""
    deliveries: queue.Queue[tuple[bytes, dict[str, str]]] = queue.Queue()
    receiver = Flask("receiver")

    @receiver.post("/hook")
    def hook():
        deliveries.put((request.get_data(), dict(request.headers)))
        return "", 204

    with serve_wsgi(receiver) as hook_url:
        live = make_server(fast_settings(webhook_secret=SECRET))
        with VideoTranslationClient(live.url) as api:
            job_id = api.start_job(delay=0.05, outcome="error", callback_url=hook_url + "/hook",
                                   callback_id="order-42")
            body, headers = deliveries.get(timeout=20)
    status = verify_webhook(body, headers, SECRET)
    assert (status.job_id, status.result, status.raw["callback_id"]) == \
        (job_id, JobResult.ERROR, "order-42")
    with pytest.raises(WebhookVerificationError) as caught:
        verify_webhook(body.replace(b'"error"', b'"ok!!"', 1), headers, SECRET)
    assert caught.value.reason == "forged"


# ----------------------------------------------------------------------------- rate limit
def test_many_waits_through_one_client_stay_inside_the_servers_rate_limit(make_server, caplog):
    """RATE_LIMIT=10 (burst 10): 16 threads start and wait for a job each through one client,
    more than the burst at once; the server refuses none of their requests."""
    caplog.set_level(logging.INFO, logger="vtwait.server")
    live = make_server(fast_settings(rate_limit=10, min_delay=0.3, max_delay=0.3))
    with VideoTranslationClient(live.url) as api:
        with ThreadPoolExecutor(16) as pool:
            results = list(pool.map(lambda _: api.wait_for_completion(api.start_job(),
                                                                      timeout=60), range(16)))
    assert all(status.done for status in results)
    assert answered(caplog.records, "429") == 0
    assert answered(caplog.records, "201") == 16
