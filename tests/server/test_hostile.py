"""Hostile input: the server always gives the documented answer and keeps serving; the client's
parsers never fail with anything but their own exceptions.

Requests go over real HTTP to ``python server.py`` (as shipped: gunicorn + gevent) with Basic
auth on: a table of bad bodies, numbers,
waits, job ids, Authorization headers and methods, then raw bytes on a socket that are not HTTP at
all. After each, the server must still answer ``/healthz``. The client side is a Hypothesis
property test over the status-document and header parsers and the whole answer path.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import vtwait.core as client
import vtwait.core.status as client_core
import vtwait.testing as testing
from tests.fakes import FakeSession
from tests.fakes import response as fake_response
from tests.helpers import fast_settings, start_server_process
from vtwait import JobResult, JobStatus, VideoTranslationClient, VideoTranslationError

USERNAME, PASSWORD = "hostile", "hostile-pw"
MAX_WAIT = 0.1
MEGABYTE = 1024 * 1024
#: FAULT_OUTPUT_DROP of the module's server: each job's first download is cut after this.
DROP_AFTER = 100_000


def basic(raw: bytes) -> str:
    return "Basic " + base64.b64encode(raw).decode()


GOOD_AUTH = basic(f"{USERNAME}:{PASSWORD}".encode())
ADMIN_TOKEN = "hostile-admin-token"
ADMIN_AUTH = f"Bearer {ADMIN_TOKEN}"


@pytest.fixture(scope="module")
def live() -> Iterator[testing.ServerProcess]:
    """One ``python server.py`` for the module: auth on, long-poll cut to MAX_WAIT."""
    with start_server_process(fast_settings(api_username=USERNAME, api_password=PASSWORD,
                                            max_wait=MAX_WAIT, admin_token=ADMIN_TOKEN,
                                            fault_output_drop=DROP_AFTER)) as srv:
        yield srv


@pytest.fixture(scope="module")
def pending(live: testing.ServerProcess) -> str:
    """A job that stays pending for the whole module."""
    reply = requests.post(f"{live.url}/start", json={"delay": 3600},
                          headers={"Authorization": GOOD_AUTH}, timeout=5)
    return reply.json()["job_id"]


def assert_still_serving(url: str) -> None:
    assert requests.get(f"{url}/healthz", timeout=5).json() == {"status": "ok"}


# ---------------------------------------------------------------------- the request table
# (method, path, extra headers, body, expected status, expected error code or None for success).
# "{job}" in a path is the pending job. Every request carries valid credentials unless its
# headers set Authorization (None: no header at all).
LONG_ID = "x" * 10_000
CASES: list[tuple[str, str, dict[str, Any], bytes | None, int, str | None]] = [
    # bodies that are not JSON, or JSON that is not an object
    ("POST", "/start", {}, b"not json", 400, "bad_request"),
    ("POST", "/start", {}, b"\xff\xfe\x00{", 400, "bad_request"),
    ("POST", "/start", {}, b"[1, 2]", 400, "bad_request"),
    ("POST", "/start", {}, b'"start"', 400, "bad_request"),
    ("POST", "/start", {}, b"null", 400, "bad_request"),
    ("POST", "/start", {}, b"42", 400, "bad_request"),
    ("POST", "/start", {}, b"[" * 50_000, 400, "bad_request"),  # deeper than json parses
    ("POST", "/start", {}, b'{"delay": 1}{"delay": 2}', 400, "bad_request"),
    # numbers: huge, NaN, infinity, negative, wrong type
    ("POST", "/start", {}, b'{"delay": 1' + b"0" * 400 + b"}", 400, "bad_request"),
    ("POST", "/start", {}, b'{"delay": ' + b"9" * 5000 + b"}", 400, "bad_request"),
    ("POST", "/start", {}, b'{"delay": 1e999}', 400, "bad_request"),
    ("POST", "/start", {}, b'{"delay": 1e300}', 400, "bad_request"),
    ("POST", "/start", {}, b'{"delay": NaN}', 400, "bad_request"),
    ("POST", "/start", {}, b'{"delay": Infinity}', 400, "bad_request"),
    ("POST", "/start", {}, b'{"delay": -Infinity}', 400, "bad_request"),
    ("POST", "/start", {}, b'{"delay": -1}', 400, "bad_request"),
    ("POST", "/start", {}, b'{"delay": 86400.001}', 400, "bad_request"),
    ("POST", "/start", {}, b'{"delay": "5"}', 400, "bad_request"),
    ("POST", "/start", {}, b'{"delay": true}', 400, "bad_request"),
    ("POST", "/start", {}, b'{"delay": 86400, "outcome": "error"}', 201, None),  # the clamp's edge
    ("POST", "/start", {}, b'{"outcome": ["error"]}', 400, "bad_request"),
    ("POST", "/start", {}, b'{"outcome": "done"}', 400, "bad_request"),
    ("POST", "/start", {}, b'{"delai": 1}', 201, None),  # unknown keys: ignored (STRICT_BODY off)
    # 1 MB bodies: too large where a body is read, ignored where none is expected
    ("POST", "/start", {}, b"x" * MEGABYTE, 413, "payload_too_large"),
    ("POST", "/start", {}, json.dumps({"delay": "x" * MEGABYTE}).encode(), 413,
     "payload_too_large"),
    ("GET", "/status/{job}", {}, b"x" * MEGABYTE, 200, None),
    # idempotency keys
    ("POST", "/start", {"Idempotency-Key": "ключ".encode()}, None, 400, "bad_request"),
    ("POST", "/start", {"Idempotency-Key": "k" * 256}, None, 400, "bad_request"),
    ("POST", "/start", {"Idempotency-Key": ""}, None, 400, "bad_request"),
    # waits: negative, enormous, NaN, infinity, exponent, not ASCII digits
    ("GET", "/status/{job}?wait=-1", {}, None, 400, "bad_request"),
    ("GET", "/status/{job}?wait=1e9", {}, None, 400, "bad_request"),
    ("GET", "/status/{job}?wait=nan", {}, None, 400, "bad_request"),
    ("GET", "/status/{job}?wait=inf", {}, None, 400, "bad_request"),
    ("GET", "/status/{job}?wait=" + "9" * 400, {}, None, 400, "bad_request"),
    ("GET", "/status/{job}?wait=%EF%BC%91", {}, None, 400, "bad_request"),  # fullwidth "1"
    ("GET", "/status/{job}?wait=", {}, None, 400, "bad_request"),
    ("GET", "/status/{job}", {"Prefer": "wait=-5"}, None, 400, "bad_request"),
    ("GET", "/status/{job}", {"Prefer": "wait=NaN"}, None, 400, "bad_request"),
    ("GET", "/status", {"Prefer": "wait=" + "9" * 400}, None, 400, "bad_request"),
    # ...and the clamp: an enormous but finite wait is cut to MAX_WAIT
    ("GET", "/status/{job}?wait=99999999999", {}, None, 200, None),
    ("GET", "/status/{job}", {"Prefer": "wait=1000000"}, None, 200, None),
    # job ids: non-ASCII, control characters, very long, path tricks
    ("GET", "/status/%C3%B1and%C3%BA", {}, None, 404, "not_found"),
    ("GET", "/status/%F0%9F%8E%AC", {}, None, 404, "not_found"),
    ("GET", "/status/%00%01", {}, None, 404, "not_found"),
    ("GET", "/status/%FF%FE", {}, None, 404, "not_found"),
    ("GET", f"/status/{LONG_ID}", {}, None, 404, "not_found"),
    ("GET", f"/status?job_id={LONG_ID}", {}, None, 404, "not_found"),
    ("GET", "/status?job_id=%C3%B1", {}, None, 404, "not_found"),
    ("GET", "/status/..%2F..%2Fetc%2Fpasswd", {}, None, 404, "not_found"),
    ("GET", "/status/a/b", {}, None, 404, "not_found"),
    ("GET", "/nope", {}, None, 404, "not_found"),
    # broken Basic headers
    ("GET", "/status/{job}", {"Authorization": None}, None, 401, "unauthorized"),
    ("GET", "/status/{job}", {"Authorization": "Basic"}, None, 401, "unauthorized"),
    ("GET", "/status/{job}", {"Authorization": "Basic !!!"}, None, 401, "unauthorized"),
    ("GET", "/status/{job}", {"Authorization": basic(b"\xff\xfe:\xff")}, None, 401,
     "unauthorized"),
    ("GET", "/status/{job}", {"Authorization": basic(b"no-colon")}, None, 401, "unauthorized"),
    ("GET", "/status/{job}", {"Authorization": basic(b"hostile:wrong")}, None, 401,
     "unauthorized"),
    ("GET", "/status/{job}", {"Authorization": basic(b":")}, None, 401, "unauthorized"),
    ("GET", "/status/{job}", {"Authorization": "Basic " + "A" * 60_000}, None, 401,
     "unauthorized"),
    ("GET", "/status/{job}", {"Authorization": "Basic \xe9".encode("latin-1")}, None, 401,
     "unauthorized"),
    ("GET", "/status/{job}", {"Authorization": "Bearer hostile-pw"}, None, 401, "unauthorized"),
    ("POST", "/start", {"Authorization": None}, b"x" * MEGABYTE, 401, "unauthorized"),
    ("GET", "/status/{job}", {"Authorization": "basic   " + GOOD_AUTH[6:]}, None, 200, None),
    # wrong methods (credentials are checked first: see test_wrong_method_without_credentials)
    ("PUT", "/start", {}, None, 405, "method_not_allowed"),
    ("GET", "/start", {}, None, 405, "method_not_allowed"),
    ("DELETE", "/status/{job}", {}, None, 405, "method_not_allowed"),
    ("PATCH", "/status", {}, None, 405, "method_not_allowed"),
    ("POST", "/healthz", {}, b"{}", 405, "method_not_allowed"),
    ("POST", "/openapi.json", {}, None, 405, "method_not_allowed"),
    ("TRACE", "/start", {}, None, 405, "method_not_allowed"),
    ("BREW", "/start", {}, None, 405, "method_not_allowed"),
    # callbacks: hosts outside WEBHOOK_ALLOWED_HOSTS, other schemes, smuggled hosts, bad types
    ("POST", "/start", {}, b'{"callback_url": "http://169.254.169.254/latest"}', 400,
     "bad_request"),
    ("POST", "/start", {}, b'{"callback_url": "http://127.0.0.1.nip.io/"}', 400, "bad_request"),
    ("POST", "/start", {}, b'{"callback_url": "http://localhost@evil.example/"}', 400,
     "bad_request"),
    ("POST", "/start", {}, b'{"callback_url": "http://localhost\\\\@evil.example/"}', 400,
     "bad_request"),
    ("POST", "/start", {}, b'{"callback_url": "http://[::ffff:10.0.0.1]/"}', 400, "bad_request"),
    ("POST", "/start", {}, b'{"callback_url": "http://2130706433/"}', 400, "bad_request"),
    ("POST", "/start", {}, b'{"callback_url": "file:///etc/passwd"}', 400, "bad_request"),
    ("POST", "/start", {}, b'{"callback_url": "gopher://localhost:6379/_FLUSHALL"}', 400,
     "bad_request"),
    ("POST", "/start", {}, b'{"callback_url": "http://localhost/\\r\\nX-Evil: 1"}', 400,
     "bad_request"),
    ("POST", "/start", {}, b'{"callback_url": "http://localhost:99999999999999999999/"}', 400,
     "bad_request"),
    ("POST", "/start", {}, b'{"callback_url": {"host": "localhost"}}', 400, "bad_request"),
    ("POST", "/start", {}, b'{"callback_url": ["http://localhost/"]}', 400, "bad_request"),
    ("POST", "/start", {}, json.dumps({"callback_url": "http://localhost/" + "a" * 60_000})
     .encode(), 400, "bad_request"),
    ("POST", "/start", {}, b'{"callback_id": "' + b"i" * 300 + b'"}', 400, "bad_request"),
    ("POST", "/start", {}, b'{"callback_id": "\\u0000"}', 400, "bad_request"),
    ("POST", "/start", {}, b'{"callback_id": 1e999}', 400, "bad_request"),
    # cancel: unknown and malformed ids, wrong methods (never the module's pending job)
    ("POST", "/status/%00%01/cancel", {}, None, 404, "not_found"),
    ("POST", f"/status/{LONG_ID}/cancel", {}, None, 404, "not_found"),
    ("POST", "/status/..%2F..%2Fstart/cancel", {}, None, 404, "not_found"),
    ("POST", "/status/" + "0" * 32 + "/cancel", {}, b"x" * MEGABYTE, 404, "not_found"),
    ("POST", "/status/{job}/cancel/now", {}, None, 404, "not_found"),
    ("GET", "/status/{job}/cancel", {}, None, 405, "method_not_allowed"),
    ("PUT", "/status/{job}/cancel", {}, None, 405, "method_not_allowed"),
    ("POST", "/status/{job}/cancel", {"Authorization": None}, None, 401, "unauthorized"),
    # the control API: its own bearer token (the API's Basic credentials are not it), bad bodies
    # and queries named by field, unknown routes and methods only for a caller who may call
    ("GET", "/_admin/faults", {"Authorization": None}, None, 401, "unauthorized"),
    ("GET", "/_admin/faults", {}, None, 401, "unauthorized"),
    ("GET", "/_admin/faults", {"Authorization": "Bearer " + "t" * 60_000}, None, 401,
     "unauthorized"),
    ("GET", "/_admin/faults", {"Authorization": "Bearer \xe9".encode("latin-1")}, None, 401,
     "unauthorized"),
    ("PUT", "/_admin/faults", {"Authorization": None}, None, 401, "unauthorized"),
    ("GET", "/_admin/nope", {"Authorization": None}, None, 401, "unauthorized"),
    ("PUT", "/_admin/faults", {"Authorization": ADMIN_AUTH}, None, 405, "method_not_allowed"),
    ("GET", "/_admin/nope", {"Authorization": ADMIN_AUTH}, None, 404, "not_found"),
    ("POST", "/_admin/faults", {"Authorization": ADMIN_AUTH}, None, 400, "bad_request"),
    ("POST", "/_admin/faults", {"Authorization": ADMIN_AUTH}, b"not json", 400, "bad_request"),
    ("POST", "/_admin/faults", {"Authorization": ADMIN_AUTH}, b"[" * 50_000, 400, "bad_request"),
    ("POST", "/_admin/faults", {"Authorization": ADMIN_AUTH}, b"x" * MEGABYTE, 413,
     "payload_too_large"),
    ("POST", "/_admin/faults", {"Authorization": ADMIN_AUTH},
     b'{"action": "drop", "probability": 1e999}', 400, "bad_request"),
    ("POST", "/_admin/faults", {"Authorization": ADMIN_AUTH},
     b'{"action": "drop", "probability": NaN}', 400, "bad_request"),
    ("POST", "/_admin/faults", {"Authorization": ADMIN_AUTH},
     b'{"action": "status", "status": ' + b"9" * 5000 + b"}", 400, "bad_request"),
    ("POST", "/_admin/faults", {"Authorization": ADMIN_AUTH},
     b'{"action": "latency", "latency": 1e300}', 400, "bad_request"),
    ("POST", "/_admin/faults", {"Authorization": ADMIN_AUTH},
     b'{"action": "drop", "route": "nowhere"}', 400, "bad_request"),
    ("POST", "/_admin/faults", {"Authorization": ADMIN_AUTH},
     b'{"action": "drop", "times": -1}', 400, "bad_request"),
    ("DELETE", f"/_admin/faults/{LONG_ID}", {"Authorization": ADMIN_AUTH}, None, 404,
     "not_found"),
    ("GET", "/_admin/requests?limit=99999999999", {"Authorization": ADMIN_AUTH}, None, 400,
     "bad_request"),
    ("GET", "/_admin/requests?status=-1", {"Authorization": ADMIN_AUTH}, None, 400,
     "bad_request"),
    ("GET", "/_admin/requests?since=inf", {"Authorization": ADMIN_AUTH}, None, 400,
     "bad_request"),
    ("GET", "/_admin/requests?route=%00", {"Authorization": ADMIN_AUTH}, None, 400,
     "bad_request"),
    ("GET", f"/_admin/requests?job_id={LONG_ID}", {"Authorization": ADMIN_AUTH}, None, 400,
     "bad_request"),
    ("POST", "/_admin/scripts", {"Authorization": ADMIN_AUTH},
     b'{"timeline": [{"at": 2, "progress": 0.5}, {"at": 1, "progress": 0.6}]}', 400,
     "bad_request"),
    ("POST", "/_admin/scripts", {"Authorization": ADMIN_AUTH},
     b'{"timeline": [{"at": 1e999, "result": "error"}]}', 400, "bad_request"),
    ("POST", "/_admin/scripts", {"Authorization": ADMIN_AUTH},
     json.dumps({"timeline": [{"at": n, "progress": 0} for n in range(1000)]}).encode(), 400,
     "bad_request"),
    ("POST", "/_admin/clock", {"Authorization": ADMIN_AUTH}, b'{"advance": -1}', 400,
     "bad_request"),
    ("POST", "/_admin/clock", {"Authorization": ADMIN_AUTH}, b'{"advance": 1e309}', 400,
     "bad_request"),
    ("POST", "/_admin/clock", {"Authorization": ADMIN_AUTH}, b'{"advance": 1}', 409, "conflict"),
    ("POST", "/start", {}, b'{"script": {"timeline": "soon"}}', 400, "bad_request"),
    ("POST", "/start", {}, b'{"script": {"timeline": [{"at": 5, "result": "maybe"}]}}', 400,
     "bad_request"),
    # issue 16: Prefer on start, deadlines, listing, DELETE, outputs
    ("POST", "/start", {"Prefer": "wait=-1"}, None, 400, "bad_request"),
    ("POST", "/start", {"Prefer": "wait=" + "9" * 400}, None, 400, "bad_request"),
    ("POST", "/start", {"Prefer": "wait=nan, respond-async"}, None, 400, "bad_request"),
    ("POST", "/start", {"Prefer": "wait=99999999999"}, b'{"delay": 0}', 200, None),  # capped
    ("POST", "/start", {"Prefer": "respond-async"}, b'{"delay": 0}', 201, None),
    ("POST", "/start", {"Cancel-After": "0"}, None, 400, "bad_request"),
    ("POST", "/start", {"Cancel-After": "-5"}, None, 400, "bad_request"),
    ("POST", "/start", {"Cancel-After": "1e999"}, None, 400, "bad_request"),
    ("POST", "/start", {"Cancel-After": "NaN"}, None, 400, "bad_request"),
    ("POST", "/start", {"Cancel-After": "9" * 5000}, None, 400, "bad_request"),
    ("POST", "/start", {"Cancel-After": "604801"}, None, 400, "bad_request"),
    ("POST", "/start", {}, b'{"cancel_after": 1e999}', 400, "bad_request"),
    ("POST", "/start", {}, b'{"cancel_after": "5"}', 400, "bad_request"),
    ("POST", "/start", {}, b'{"cancel_after": 0}', 400, "bad_request"),
    ("POST", "/start", {}, b'{"cancel_after": 1' + b"0" * 400 + b"}", 400, "bad_request"),
    ("GET", "/jobs?limit=0", {}, None, 400, "bad_request"),
    ("GET", "/jobs?limit=1001", {}, None, 400, "bad_request"),
    ("GET", "/jobs?limit=" + "9" * 400, {}, None, 400, "bad_request"),
    ("GET", "/jobs?limit=1e3", {}, None, 400, "bad_request"),
    ("GET", "/jobs?limit=-1", {}, None, 400, "bad_request"),
    ("GET", "/jobs?cursor=" + "A" * 10_000, {}, None, 400, "bad_request"),
    ("GET", "/jobs?cursor=%00%FF", {}, None, 400, "bad_request"),
    ("GET", "/jobs?cursor=MDAwMDAwMDAwMDAwMDAwMDow", {}, None, 400, "bad_request"),  # unsigned
    ("GET", "/jobs?result=%C3%B1", {}, None, 400, "bad_request"),
    ("GET", "/jobs?phase=" + "x" * 5000, {}, None, 400, "bad_request"),
    ("GET", "/jobs", {"Authorization": None}, None, 401, "unauthorized"),
    ("DELETE", "/jobs/{job}", {}, None, 409, None),  # pending: its document
    ("DELETE", f"/jobs/{LONG_ID}", {}, None, 404, "not_found"),
    ("DELETE", "/jobs/%00%01", {}, None, 404, "not_found"),
    ("DELETE", "/jobs", {}, None, 405, "method_not_allowed"),
    ("POST", "/jobs", {}, None, 405, "method_not_allowed"),
    ("DELETE", "/jobs/{job}", {"Authorization": None}, None, 401, "unauthorized"),
    ("GET", "/outputs/{job}", {"Authorization": None}, None, 403, "signature_invalid"),
    ("GET", "/outputs/{job}?expires=99999999999&signature=" + "0" * 64, {}, None, 403,
     "signature_invalid"),
    ("GET", "/outputs/{job}?expires=" + "9" * 400 + "&signature=" + "0" * 64, {}, None, 403,
     "signature_invalid"),
    ("GET", "/outputs/{job}?expires=-1&signature=" + "0" * 64, {}, None, 403,
     "signature_invalid"),
    ("GET", "/outputs/{job}?expires=1&signature=%00", {}, None, 403, "signature_invalid"),
    ("GET", f"/outputs/{LONG_ID}?expires=1&signature=" + "0" * 64, {}, None, 403,
     "signature_invalid"),
    ("GET", "/outputs/%00?expires=1&signature=" + "0" * 64, {"Range": "bytes=0-" + "9" * 400},
     None, 403, "signature_invalid"),
    ("POST", "/outputs/{job}", {}, None, 405, "method_not_allowed"),
]


def _case_id(case: tuple) -> str:
    method, path, headers, body, status, _ = case
    label = f"{method} {path[:40]}"
    if headers:
        label += " " + ",".join(f"{k}={str(v)[:16]}" for k, v in headers.items())
    if body is not None:
        label += f" body={body[:16]!r}" + ("..." if len(body) > 16 else "")
    return f"{label} -> {status}"


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_every_route_answers_hostile_input_as_documented(live: testing.ServerProcess, pending: str,
                                                          case: tuple) -> None:
    """Each hostile request gets its documented answer: a 4xx JSON error (or the clamp), never
    a 5xx, an HTML page or a hang; the server keeps serving."""
    method, path, extra, body, status, code = case
    headers = {"Authorization": GOOD_AUTH, **extra}
    headers = {k: v for k, v in headers.items() if v is not None}
    began = time.monotonic()
    reply = requests.request(method, live.url + path.format(job=pending), headers=headers,
                             data=body, timeout=10)
    assert time.monotonic() - began < 5
    assert reply.status_code == status, reply.text[:200]
    assert reply.headers["Content-Type"] == "application/json"  # never an HTML page
    document = reply.json()
    if code is not None:
        assert document["error"]["code"] == code and document["error"]["message"]
        assert set(document) == {"error"}
    if status == 401:
        realm = 'Bearer realm="vtwait-admin"' if path.startswith("/_admin/") \
            else 'Basic realm="video-translation"'
        assert reply.headers["WWW-Authenticate"] == realm
    if status == 405:
        assert reply.headers["Allow"]
    if status == 200 and ("wait=" in path or "Prefer" in extra):  # held, and cut to MAX_WAIT
        assert reply.headers["Preference-Applied"] == f"wait={MAX_WAIT}"
    assert_still_serving(live.url)


def test_a_download_cut_by_the_server_resumes_with_range(live: testing.ServerProcess) -> None:
    """gunicorn + gevent, as shipped: FAULT_OUTPUT_DROP shuts the socket mid-body (the client
    sees fewer bytes than Content-Length), the server keeps serving, and a Range resume with the
    ETag gives exactly the rest."""
    output = requests.post(f"{live.url}/start", json={"delay": 0},
                           headers={"Authorization": GOOD_AUTH, "Prefer": "wait=1"},
                           timeout=10).json()["output"]
    received = bytearray()
    with pytest.raises(requests.exceptions.RequestException), \
            requests.get(output["url"], stream=True, timeout=10) as first:
        for chunk in first.iter_content(1000):  # small reads: a short one loses its data
            received += chunk
    assert len(received) == DROP_AFTER
    assert_still_serving(live.url)
    rest = requests.get(output["url"], timeout=10, headers={
        "Range": f"bytes={len(received)}-", "If-Range": f'"{output["sha256"]}"'})
    assert rest.status_code == 206
    assert hashlib.sha256(bytes(received) + rest.content).hexdigest() == output["sha256"]


def test_wrong_method_without_credentials_is_a_401_not_a_405(live: testing.ServerProcess) -> None:
    """With auth on, credentials are checked before routing: nothing is revealed to strangers."""
    reply = requests.delete(f"{live.url}/start", timeout=5)
    assert reply.status_code == 401 and reply.json()["error"]["code"] == "unauthorized"
    assert requests.get(f"{live.url}/healthz", timeout=5).status_code == 200  # open route


# ----------------------------------------------------------------- bytes that are not HTTP
def raw_exchange(url: str, data: bytes, *, timeout: float = 5.0) -> bytes:
    """Sends ``data`` on a fresh connection, closes our side, and reads until the server does."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def parse_raw(answer: bytes) -> tuple[int, dict[str, str], bytes]:
    """Status code, headers (lower-cased names) and body of a raw HTTP/1.x answer."""
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    assert status_line.startswith("HTTP/1."), answer[:200]
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, body


CHUNKED_MEGABYTE = b"".join(b"10000\r\n" + b"y" * 65536 + b"\r\n" for _ in range(16)) + b"0\r\n\r\n"
RAW_CASES = [
    ("binary garbage", b"\x00\xff\xfe\x01garbage\r\n\r\n", 400, "bad_request"),
    ("TLS ClientHello", bytes.fromhex("16030100a5010000a10303") + bytes(range(256)), 400,
     "bad_request"),
    ("truncated request line", b"GET /status/abc HTT", 400, "bad_request"),
    ("no HTTP version (HTTP/0.9)", b"GET /healthz\r\n", 400, "bad_request"),
    ("request line over 64 KiB", b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n", 414,
     "uri_too_long"),
    ("header over 64 KiB", b"GET /healthz HTTP/1.1\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n", 431,
     "request_header_fields_too_large"),
    ("120 headers", b"GET /healthz HTTP/1.1\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(120))
     + b"\r\n", 431, "request_header_fields_too_large"),
    ("HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505, "http_version_not_supported"),
    ("Content-Length not a number",
     b"POST /start HTTP/1.1\r\nContent-Length: abc\r\n\r\n{}", 400, "bad_request"),
    ("two Content-Lengths",
     b"POST /start HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}", 400,
     "bad_request"),
    ("Transfer-Encoding not chunked",
     b"POST /start HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n{}", 400, "bad_request"),
    ("1 MB body",
     b"POST /start HTTP/1.1\r\nAuthorization: " + GOOD_AUTH.encode() + b"\r\nContent-Length: "
     + str(MEGABYTE).encode() + b"\r\n\r\n" + b"z" * MEGABYTE, 413, "payload_too_large"),
    ("1 MB chunked body",
     b"POST /start HTTP/1.1\r\nAuthorization: " + GOOD_AUTH.encode()
     + b"\r\nTransfer-Encoding: chunked\r\n\r\n" + CHUNKED_MEGABYTE, 413, "payload_too_large"),
    ("broken chunking",
     b"POST /start HTTP/1.1\r\nAuthorization: " + GOOD_AUTH.encode()
     + b"\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", 400, "bad_request"),
]


@pytest.mark.parametrize(("data", "status", "code"), [c[1:] for c in RAW_CASES],
                         ids=[c[0] for c in RAW_CASES])
def test_raw_bytes_that_are_not_http_get_a_json_error(live: testing.ServerProcess, data: bytes,
                                                      status: int, code: str) -> None:
    """Garbage on the socket: a status line, a JSON error body, the connection closed, and the
    server still serving."""
    got, headers, body = parse_raw(raw_exchange(live.url, data))
    assert got == status
    assert headers["content-type"] == "application/json" and headers["connection"] == "close"
    assert json.loads(body)["error"]["code"] == code
    assert_still_serving(live.url)


@pytest.mark.parametrize("flags", [(), ("--dev-server",)], ids=["gunicorn", "dev-server"])
def test_empty_and_silent_connections_are_closed_and_harmless(flags: tuple[str, ...]) -> None:
    """A connection that sends nothing and closes gets nothing; one that stays silent, or goes
    silent after a keep-alive answer, is closed by the server after IDLE_TIMEOUT (shortened
    here), not held forever."""
    with start_server_process(fast_settings(idle_timeout=0.3), *flags) as live:
        assert raw_exchange(live.url, b"") == b""
        host, port = live.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            assert sock.recv(1024) == b""  # closed by the server, with no answer
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = b""
            while b"ok" not in answer:
                answer += sock.recv(65536)
            assert answer.startswith(b"HTTP/1.1 200")
            assert sock.recv(1024) == b""  # then closed once silent
        assert_still_serving(live.url)


# ------------------------------------------------------------ the client's parsers, fuzzed
json_scalars = (st.none() | st.booleans() | st.integers() | st.floats()
                | st.text(max_size=20))
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
status_words = st.sampled_from(sorted(client_core._RESULT_WORDS) + ["", "Done", "IN-PROGRESS",
                                                               "unknown", " failed "])
_KEYS = ["result", "status", "state", "progress", "eta_seconds", "eta", "job_id", "id", "error",
         "finished_at"]
# Documents that look like status documents (the interesting ones), with hostile values.
status_like = st.dictionaries(
    st.sampled_from(_KEYS),
    status_words | json_values | st.dictionaries(st.sampled_from(_KEYS), status_words
                                                 | json_values, max_size=4),
    max_size=8,
)


def nested(depth: int) -> list:
    """[[[...]]] ``depth`` deep: deeper than json.dumps (or repr) can recurse."""
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


def _words_in(document: Any) -> set[str]:
    """Every string at the top level of a mapping or one level down, normalised like the client."""
    found = set()
    if isinstance(document, dict):
        for value in document.values():
            inner = value.values() if isinstance(value, dict) else [value]
            for item in inner:
                if isinstance(item, str):
                    found.add(item.strip().lower().replace("-", "_").replace(" ", "_"))
    return found


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document=status_like | json_values)
@example(document=nested(2000))
@example(document={"result": nested(2000), "status": "done"})
@example(document={"result": nested(2000)})
@example(document={"status": {"status": "running", "progress": 1e308, "eta": -math.inf}})
def test_parse_status_document_returns_a_valid_status_or_raises_protocol_error(document) -> None:
    """Any JSON value: a JobStatus whose fields are in range and whose result was really in
    the document, or ProtocolError; never another exception, never an invented status."""
    try:
        status = client.parse_status_document(document, job_id="j")
    except client.ProtocolError as exc:
        assert exc.job_id == "j" and str(exc)
        return
    assert isinstance(status, JobStatus) and isinstance(status.result, JobResult)
    assert any(client_core._RESULT_WORDS.get(word) is status.result for word in _words_in(document))
    assert status.progress is None or 0.0 <= status.progress <= 1.0
    assert status.eta_seconds is None or 0.0 <= status.eta_seconds < math.inf
    assert status.finished_at is None or math.isfinite(status.finished_at)
    assert status.error is None or isinstance(status.error, str)


header_values = (
    st.text(max_size=40)
    | st.from_regex(r"\A-?[0-9]{1,400}(\.[0-9]{0,5})?\Z")
    | st.sampled_from(["0", "1", "-1", "1e309", "nan", "inf", "-inf", "  7  ", "1_000",
                       "Wed, 21 Oct 2015 07:28:00 GMT", "Wed, 21 Oct 2015 07:28:00",
                       "Fri, 31 Dec 9999 23:59:59 GMT", "Mon, 01 Jan 0001 00:00:00 +2400",
                       "Mon, 99 Foo 2015 99:99:99 GMT"])
    | st.datetimes().map(lambda d: d.strftime("%a, %d %b %Y %H:%M:%S GMT"))
)


@settings(max_examples=400, deadline=None)
@given(value=st.none() | header_values, maximum=st.floats(min_value=0, max_value=1e6),
       now=st.none() | st.floats(min_value=-1e12, max_value=1e12))
def test_parse_retry_after_never_fails_and_stays_in_range(value, maximum, now) -> None:
    """Any Retry-After value: None or seconds in [0, maximum]; never an exception."""
    seconds = client.parse_retry_after(value, now=now, maximum=maximum)
    assert seconds is None or 0.0 <= seconds <= maximum


@settings(max_examples=300, deadline=None)
@given(value=st.none() | header_values
       | st.builds("{}={}".format, st.sampled_from(["wait", "WAIT", " wait", "respond-async"]),
                   header_values))
def test_parse_preference_applied_never_fails_and_stays_in_range(value) -> None:
    """Any Preference-Applied value: None or a finite wait >= 0; never an exception."""
    wait = client.parse_preference_applied(value)
    assert wait is None or 0.0 <= wait < math.inf


bodies = (st.binary(max_size=200)
          | json_values.map(lambda v: json.dumps(v).encode())
          | status_like.map(lambda v: json.dumps(v).encode())
          | st.sampled_from([b"[" * 100_000, b'{"result": ' + b"[" * 100_000, b"\xff\xfe"]))
latin1 = st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=30)


@settings(max_examples=300, deadline=None)
@given(status=st.sampled_from([200, 200, 200, 202, 301, 400, 401, 403, 404, 409, 429, 500,
                               502, 503]),
       body=bodies,
       content_type=st.sampled_from(["application/json", "text/html", "", "application/x-junk"]),
       retry_after=st.none() | latin1, applied=st.none() | latin1)
def test_an_answer_of_any_shape_becomes_a_status_or_a_client_error(status, body, content_type,
                                                                   retry_after, applied) -> None:
    """get_status over whatever comes back (status, bytes, hint headers): a JobStatus or a
    VideoTranslationError, never another exception."""
    headers = {"Content-Type": content_type}
    if retry_after is not None:
        headers["Retry-After"] = retry_after
    if applied is not None:
        headers["Preference-Applied"] = applied

    def answer(call) -> requests.Response:
        reply = fake_response(status, text="", headers=headers)
        reply._content = body
        return reply

    api = VideoTranslationClient("http://127.0.0.1:9",
                                 session=FakeSession(answer))  # type: ignore[arg-type]
    try:
        result = api.get_status("job")
    except VideoTranslationError as exc:
        assert str(exc)
        return
    assert status < 400 and isinstance(result, JobStatus)
    assert result.retry_after is None or 0 <= result.retry_after <= api.policy.max_hint_delay
    assert result.wait_applied is None or 0 <= result.wait_applied < math.inf
