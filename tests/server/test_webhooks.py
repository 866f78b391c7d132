"""Webhooks: signed deliveries to a real receiver on 127.0.0.1, retries, timeouts, refused hosts.

Each receiver is a real HTTP server (``helpers.serve_wsgi``) that records what arrives and answers
from a script; signatures are checked with the ``standardwebhooks`` library, as a receiver would.
Waits for a delivery are bounded loops, never timed assertions.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
import standardwebhooks
import urllib3
from hypothesis import example, given, settings
from hypothesis import strategies as st

import vtwait.server.app as server
import vtwait.server.cli as cli
import vtwait.server.webhooks as webhooks
from tests.helpers import fast_settings, serve_wsgi
from vtwait.server.state import app_state
from vtwait.testing import ServerProcess

SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # 24 bytes, base64


ALLOWED = frozenset({"127.0.0.1", "localhost", "::1"})


class Receiver:
    """A WSGI app that records each delivery and answers with the next scripted status.

    ``script`` lists statuses for the first deliveries (the last one repeats); ``None`` means
    "never answer" (hold until ``release``).
    """

    def __init__(self, *script: int | None) -> None:
        self.script = list(script) or [204]
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.released = threading.Event()
        self.location: str | None = None  # sent with every answer, for redirects
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> list[bytes]:
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        headers = {key[5:].replace("_", "-").lower(): value
                   for key, value in environ.items() if key.startswith("HTTP_")}
        headers["content-type"] = environ.get("CONTENT_TYPE", "")
        with self._lock:
            self.received.append((headers, body))
            status = self.script[min(len(self.received), len(self.script)) - 1]
        if status is None:
            self.released.wait(60)  # a receiver that never answers (within the sender's timeout)
            status = 204
        extra = [("Location", self.location)] if self.location else []
        start_response(f"{status} X", [("Content-Length", "0"), *extra])
        return [b""]

    def verified(self, index: int) -> dict[str, Any]:
        """The index-th delivery's document, after its signature is verified by the library."""
        headers, body = self.received[index]
        return standardwebhooks.Webhook(SECRET).verify(body, headers)


@pytest.fixture
def receiver_url() -> Iterator[Callable[[Receiver], str]]:
    """Factory: serves a Receiver on 127.0.0.1 and a free port; returns its /hook URL."""
    stack: list[Any] = []

    def factory(receiver: Receiver) -> str:
        context = serve_wsgi(receiver)
        stack.append((context, receiver))
        return context.__enter__() + "/hook?token=t0ken"

    yield factory
    for context, receiver in stack:
        receiver.released.set()
        context.__exit__(None, None, None)


def until(condition: Callable[[], bool], limit: float = 30.0) -> bool:
    """Polls ``condition`` every 10 ms until it holds or ``limit`` seconds pass (a bound, not a
    measurement: the test asserts the result)."""
    deadline = time.monotonic() + limit
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return condition()


def hook_settings(**overrides: Any) -> server.Settings:
    values = {"webhook_secret": SECRET, "webhook_retry_delay": 0.01, "webhook_timeout": 5.0}
    return fast_settings(**{**values, **overrides})


def test_a_finished_job_is_posted_to_its_callback_url_signed(make_server, receiver_url,
                                                              caplog) -> None:
    """The final document arrives once, as JSON, with a signature the library verifies."""
    receiver = Receiver(204)
    url = receiver_url(receiver)
    live = make_server(hook_settings())
    started = requests.post(f"{live.url}/start", json={
        "delay": 0.05, "outcome": "error", "callback_url": url, "callback_id": "order-42"},
        timeout=5).json()
    assert started["callback_id"] == "order-42" and started["callback_url"] == url
    sender = app_state(live.app).webhooks
    assert until(lambda: bool(receiver.received) and sender.pending == 0)
    headers, body = receiver.received[0]
    document = receiver.verified(0)
    assert document == requests.get(f"{live.url}/status/{started['job_id']}", timeout=5).json()
    assert document["phase"] == "error" and document["callback_id"] == "order-42"
    assert headers["content-type"] == "application/json" and headers["webhook-id"].startswith("msg_")
    assert headers["webhook-signature"].startswith("v1,")
    assert len(receiver.received) == 1
    ours = " ".join(r.getMessage() for r in caplog.records if r.name.startswith("vtwait.server"))
    assert "t0ken" not in ours and "delivered (204)" in ours  # the query is never logged
    forged = {**headers, "webhook-signature": "v1," + "A" * 44}
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        standardwebhooks.Webhook(SECRET).verify(body, forged)


def test_a_receiver_that_fails_twice_gets_the_same_message_a_third_time(make_server,
                                                                        receiver_url,
                                                                        caplog) -> None:
    """500, 503, then 200: three attempts of one message id, each signed, each logged."""
    receiver = Receiver(500, 503, 200)
    url = receiver_url(receiver)
    live = make_server(hook_settings(webhook_max_attempts=5))
    requests.post(f"{live.url}/start", json={"delay": 0, "callback_url": url}, timeout=5)
    sender = app_state(live.app).webhooks
    assert until(lambda: len(receiver.received) == 3 and sender.pending == 0)
    ids = {headers["webhook-id"] for headers, _ in receiver.received}
    assert len(ids) == 1
    assert [receiver.verified(i)["phase"] for i in range(3)] == ["completed"] * 3
    attempts = [r.getMessage() for r in caplog.records if r.name == "vtwait.server.webhooks"]
    assert [line.rsplit(": ", 1)[1] for line in attempts] == [
        "answered 500", "answered 503", "delivered (200)"]
    assert "attempt 3/5" in attempts[-1]


def test_a_receiver_that_never_answers_costs_bounded_attempts_and_blocks_nothing(
        make_server, receiver_url, caplog) -> None:
    """Each attempt times out; after WEBHOOK_MAX_ATTEMPTS the sender gives up; meanwhile the
    server answers requests and finishes other jobs."""
    receiver = Receiver(None)
    url = receiver_url(receiver)
    live = make_server(hook_settings(webhook_max_attempts=2, webhook_timeout=0.2))
    requests.post(f"{live.url}/start", json={"delay": 0, "callback_url": url}, timeout=5)
    assert until(lambda: len(receiver.received) >= 1)
    # While a delivery hangs, requests are answered and the timer finishes jobs.
    other = requests.post(f"{live.url}/start", json={"delay": 0.05}, timeout=5).json()["job_id"]
    finished = requests.get(f"{live.url}/status/{other}?wait=30", timeout=10).json()
    assert finished["result"] == "completed"
    sender = app_state(live.app).webhooks
    assert until(lambda: sender.pending == 0)
    assert len(receiver.received) == 2
    messages = [r.getMessage() for r in caplog.records if r.name == "vtwait.server.webhooks"]
    assert sum("failed (ReadTimeout)" in m for m in messages) == 2
    assert any("gave up after 2 attempts" in m for m in messages)


def test_a_cancelled_job_sends_its_webhook(make_server, receiver_url) -> None:
    """Cancel ends the job, so its webhook carries phase canceled."""
    receiver = Receiver(204)
    url = receiver_url(receiver)
    live = make_server(hook_settings())
    job_id = requests.post(f"{live.url}/start", json={"delay": 3600, "callback_url": url},
                           timeout=5).json()["job_id"]
    assert requests.post(f"{live.url}/status/{job_id}/cancel", timeout=5).status_code == 200
    assert until(lambda: len(receiver.received) == 1)
    assert receiver.verified(0)["phase"] == "canceled"


@pytest.mark.parametrize("url", [
    "http://example.com/hook",
    "https://10.0.0.1/hook",
    "http://127.0.0.2:8080/",
    "http://localhost.example.com/",
])
def test_a_host_outside_the_allowed_list_is_a_400_naming_the_setting(client, url: str) -> None:
    """Only WEBHOOK_ALLOWED_HOSTS may be called; another host is refused at start, before a job."""
    reply = client.post("/start", json={"callback_url": url})
    assert reply.status_code == 400
    assert "WEBHOOK_ALLOWED_HOSTS" in reply.get_json()["error"]["message"]
    assert len(app_state(client.application).store) == 1  # the default job only


@pytest.mark.parametrize(("url", "words"), [
    (42, "a string"),
    ("", "1 to 2048"),
    ("http://localhost/" + "a" * 2048, "1 to 2048"),
    ("ftp://localhost/", "http:// or https://"),
    ("localhost:8080/hook", "http:// or https://"),
    ("javascript:alert(1)", "http:// or https://"),
    ("http://user:pw@localhost/", "user info"),
    ("http://localhost@evil.example/", "user info"),
    ("http://localhost/#frag", "fragment"),
    ("http://localhost:0/", "port"),
    ("http://localhost:65536/", "port"),
    ("http://localhost:08080/", "port"),
    ("http://localhost:/", "port"),
    ("http://localhost:80a/", "malformed"),
    ("http:///hook", "malformed"),
    ("http://[::1/", "malformed"),
    ("http://local host/", "printable ASCII"),
    ("http://localhost/\u00e9", "printable ASCII"),
    ("http://localhost/\n", "printable ASCII"),
])
def test_malformed_callback_urls_are_a_400_saying_why(client, url: Any, words: str) -> None:
    """A callback_url is strictly checked: scheme, host, port, no user info, no fragment."""
    reply = client.post("/start", json={"callback_url": url})
    assert reply.status_code == 400 and words in reply.get_json()["error"]["message"]


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:9/hook", "https://LOCALHOST/x?a=b", "http://[::1]:65535/", "HTTP://localhost",
])
def test_loopback_callback_urls_are_accepted(make_app, url: str) -> None:
    """Loopback URLs (any case, IPv6 in brackets, any valid port) start a job that keeps them."""
    client = make_app(hook_settings(webhook_max_attempts=1)).test_client()
    reply = client.post("/start", json={"delay": 3600, "callback_url": url})
    assert reply.status_code == 201 and reply.get_json()["callback_url"] == url


@pytest.mark.parametrize("callback_id", ["", "x" * 256, "a\nb", "\x00", 7, ["a"]])
def test_a_bad_callback_id_is_a_400(client, callback_id: Any) -> None:
    """callback_id is 1 to 255 characters without control characters."""
    reply = client.post("/start", json={"callback_id": callback_id})
    assert reply.status_code == 400 and "callback_id" in reply.get_json()["error"]["message"]


def test_allowed_hosts_is_a_setting(make_app) -> None:
    """WEBHOOK_ALLOWED_HOSTS replaces the loopback default (names compared in lower case)."""
    client = make_app(hook_settings(webhook_allowed_hosts="Hooks.Internal, ::1")).test_client()
    assert client.post("/start", json={"callback_url": "http://hooks.internal/"}).status_code == 201
    refused = client.post("/start", json={"callback_url": "http://127.0.0.1/"})
    assert refused.status_code == 400 and "hooks.internal" in refused.get_json()["error"]["message"]


@pytest.mark.parametrize(("env", "words"), [
    ({"WEBHOOK_SECRET": "not-a-secret"}, "WEBHOOK_SECRET must be whsec_"),
    ({"WEBHOOK_SECRET": "whsec_c2hvcnQ="}, "at least 16 bytes"),
    ({"WEBHOOK_ALLOWED_HOSTS": "a,,b"}, "WEBHOOK_ALLOWED_HOSTS"),
    ({"WEBHOOK_MAX_ATTEMPTS": "0"}, "WEBHOOK_MAX_ATTEMPTS"),
    ({"WEBHOOK_TIMEOUT": "0"}, "WEBHOOK_TIMEOUT"),
])
def test_bad_webhook_settings_name_the_setting_and_never_echo_a_secret(env, words) -> None:
    """A bad webhook setting is a ConfigError naming it; a bad secret is never quoted."""
    with pytest.raises(server.ConfigError, match=words) as caught:
        server.Settings.from_env(env)
    assert "not-a-secret" not in str(caught.value) and "c2hvcnQ" not in str(caught.value)


def test_a_generated_secret_is_printed_once_and_signs_the_deliveries(receiver_url,
                                                                      tmp_path) -> None:
    """Without WEBHOOK_SECRET, server.py prints its generated secret once on stdout (never in
    the log), and that secret verifies what it sends."""
    receiver = Receiver(204)
    url = receiver_url(receiver)
    log_file = tmp_path / "server.log"
    with ServerProcess.start("--log-file", str(log_file), "--webhook-retry-delay", "0.01") as srv:
        requests.post(f"{srv.url}/start", json={"delay": 0, "outcome": "completed",
                                                "callback_url": url}, timeout=5)
        assert until(lambda: len(receiver.received) == 1)
        secret_lines = [line for line in srv.output if line.startswith(cli.WEBHOOK_SECRET_LINE)]
    assert len(secret_lines) == 1
    secret = secret_lines[0].removeprefix(cli.WEBHOOK_SECRET_LINE)
    headers, body = receiver.received[0]
    assert standardwebhooks.Webhook(secret).verify(body, headers)["result"] == "completed"
    log = log_file.read_text(encoding="utf-8")
    assert secret not in log and "WEBHOOK_SECRET is unset" in log
    assert sum(secret in line for line in srv.output) == 1


def test_a_configured_secret_never_shows_in_settings_or_logs(make_server, receiver_url,
                                                            caplog) -> None:
    """WEBHOOK_SECRET is left out of the settings' repr (logged at start) and of every log line."""
    receiver = Receiver(500, 204)
    live = make_server(hook_settings())
    requests.post(f"{live.url}/start", json={"delay": 0, "callback_url": receiver_url(receiver)},
                  timeout=5)
    assert until(lambda: len(receiver.received) == 2)
    body = SECRET.removeprefix("whsec_")
    assert body not in repr(app_state(live.app).store.settings)
    assert body not in caplog.text and "answered 500" in caplog.text


def test_the_sender_drops_past_its_bound_and_after_close() -> None:
    """The queue is bounded: past max_pending, or once closed, a webhook is dropped (False)."""
    # No workers: nothing is taken off the queue (and nothing is sent).
    sender = webhooks.WebhookSender(SECRET, max_attempts=1, timeout=1, retry_delay=1,
                                    max_pending=2, workers=0)
    doc = {"job_id": "j", "result": "completed"}
    assert [sender.submit("http://127.0.0.1:9/", doc) for _ in range(3)] == [True, True, False]
    assert sender.pending == 2
    sender.close()
    assert sender.submit("http://127.0.0.1:9/", doc) is False and sender.pending == 0


def test_the_body_is_the_status_document_as_compact_json(make_server, receiver_url) -> None:
    """The webhook body parses to the document and is compact (no spaces after separators)."""
    receiver = Receiver(204)
    url = receiver_url(receiver)
    live = make_server(hook_settings())
    requests.post(f"{live.url}/start", json={"delay": 0, "callback_url": url}, timeout=5)
    assert until(lambda: len(receiver.received) == 1)
    body = receiver.received[0][1]
    assert json.dumps(json.loads(body), separators=(",", ":")).encode() == body


def test_a_redirect_is_a_failed_attempt_and_is_never_followed(make_server, receiver_url) -> None:
    """A 307 to another URL counts as a failure; the other URL (on loopback here) never hears."""
    elsewhere = Receiver(204)
    redirecting = Receiver(307)
    redirecting.location = receiver_url(elsewhere)
    live = make_server(hook_settings(webhook_max_attempts=2))
    requests.post(f"{live.url}/start", json={"delay": 0, "callback_url":
                                             receiver_url(redirecting)}, timeout=5)
    sender = app_state(live.app).webhooks
    assert until(lambda: len(redirecting.received) == 2 and sender.pending == 0)
    assert elsewhere.received == []


SCHEMES = st.sampled_from(["http://", "https://", "HTTP://", "http:", "http:/\\", "//", ""])
HOSTS = st.sampled_from(["localhost", "127.0.0.1", "[::1]", "LocalHost", "evil.com", "::1", ""])
TAILS = st.text(alphabet="/?#@:\\%.evil-com19", max_size=15)
AFTER_HOST = st.sampled_from(["/", "/", ":8080/", ":1", "?", "", "@", "\\", "#", ":", "."])
URLS = st.builds(lambda *parts: "".join(parts), SCHEMES, HOSTS, AFTER_HOST, TAILS)


@settings(max_examples=1000, deadline=None)
@given(url=URLS | st.text(max_size=60))
@example(url="http://localhost\\@evil.com/")
@example(url="http://127.0.0.1#@evil.com/")
@example(url="http://evil.com?@localhost/")
@example(url="http://[::1]@evil.com/")
@example(url="http://localhost%2540evil.com/")
def test_an_accepted_callback_url_always_connects_to_an_allowed_host(url: str) -> None:
    """Whatever the text, validation raises only CallbackError, and a URL it accepts is one whose
    host, as urllib3 (what requests uses) reads it, is an allowed host: no parser trick smuggles
    another host past the check."""
    try:
        webhooks.validate_callback_url(url, ALLOWED)
    except webhooks.CallbackError:
        return
    host = urllib3.util.parse_url(url).host
    assert host is not None and host.lower().strip("[]") in ALLOWED
