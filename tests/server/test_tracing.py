"""The simulator's OpenTelemetry traces (``vtwait/server/tracing.py``): server spans continuing the
caller's ``traceparent``, a span per job's life, webhook client spans that propagate it.

Real parts: the app on a live server (real HTTP on 127.0.0.1), a real webhook receiver, and the
OpenTelemetry SDK with its in-memory exporter; ``python server.py`` in a subprocess for the
``OTEL_*`` configuration; a subprocess where OpenTelemetry cannot be imported for the no-extra case.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

pytest.importorskip("opentelemetry.sdk", reason="the otel extra is not installed")

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (  # noqa: E402
    InMemorySpanExporter,
)
from opentelemetry.trace import SpanKind  # noqa: E402

import vtwait.server.tracing as tracing  # noqa: E402
from tests.helpers import ROOT, fast_settings, serve_wsgi, start_live_server  # noqa: E402
from vtwait.testing import ServerProcess  # noqa: E402

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
CALLER_SPAN = "b7ad6b7169203331"
TRACEPARENT = f"00-{TRACE_ID}-{CALLER_SPAN}-01"
PATIENCE = 20.0


@pytest.fixture
def exporter() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    yield provider, memory
    provider.shutdown()


class Receiver:
    """A webhook receiver: keeps each delivery's headers and body."""

    def __init__(self) -> None:
        self.deliveries: list[tuple[dict[str, str], dict[str, Any]]] = []
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items()
                   if k.startswith("HTTP_")}
        with self.lock:
            self.deliveries.append((headers, json.loads(body)))
        start_response("204 No Content", [])
        return [b""]


def until(condition: Any, what: str) -> None:
    deadline = time.monotonic() + PATIENCE
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def one(spans: list[ReadableSpan], **match: Any) -> ReadableSpan:
    found = [s for s in spans if all(getattr(s, k) == v for k, v in match.items())]
    assert len(found) == 1, (match, [s.name for s in spans])
    return found[0]


def test_one_trace_from_the_caller_through_the_job_to_the_webhook_receiver(exporter) -> None:
    provider, memory = exporter
    receiver = Receiver()
    live = start_live_server(fast_settings(), tracer_provider=provider)
    try:
        with serve_wsgi(receiver) as hook_url:
            started = requests.post(
                live.url + "/start", headers={"traceparent": TRACEPARENT}, timeout=10,
                json={"delay": 0.05, "outcome": "completed", "callback_url": hook_url + "/hook"})
            assert started.status_code == 201
            job_id = started.json()["job_id"]
            until(lambda: receiver.deliveries, "the webhook")
            until(lambda: any(s.kind == SpanKind.CLIENT for s in memory.get_finished_spans()),
                  "the webhook's span")
    finally:
        live.stop()
    spans = list(memory.get_finished_spans())
    start = one(spans, name="POST /start")
    assert start.kind == SpanKind.SERVER
    assert format(start.context.trace_id, "032x") == TRACE_ID
    assert start.parent is not None and format(start.parent.span_id, "016x") == CALLER_SPAN
    assert attrs(start)["http.request.method"] == "POST"
    assert attrs(start)["http.route"] == "/start"
    assert attrs(start)["http.response.status_code"] == 201
    assert attrs(start)["server.address"] == "127.0.0.1"
    job = one([s for s in spans if s.name == "job" and attrs(s)["vtwait.job.id"] == job_id])
    assert job.parent is not None and job.parent.span_id == start.context.span_id
    assert job.context.trace_id == start.context.trace_id
    assert [e.name for e in job.events] == ["running", "completed"]
    assert attrs(job)["vtwait.job.result"] == "completed"
    assert job.kind == SpanKind.INTERNAL
    hook = one(spans, kind=SpanKind.CLIENT)
    assert hook.name == "POST"
    assert hook.parent is not None and hook.parent.span_id == job.context.span_id
    assert attrs(hook)["http.response.status_code"] == 204
    assert attrs(hook)["url.full"] == hook_url + "/hook"
    assert "http.request.resend_count" not in attrs(hook)  # the first attempt
    headers, body = receiver.deliveries[0]
    assert body["job_id"] == job_id
    assert headers["traceparent"] == f"00-{TRACE_ID}-{format(hook.context.span_id, '016x')}-01"


def test_a_request_without_traceparent_starts_a_trace_and_a_401_is_traced_too(exporter) -> None:
    provider, memory = exporter
    live = start_live_server(fast_settings(api_username="u", api_password="p"),
                             tracer_provider=provider)
    try:
        assert requests.get(live.url + "/status", timeout=10).status_code == 401
        assert requests.get(live.url + "/status", auth=("u", "p"), timeout=10).status_code == 200
        assert requests.get(live.url + "/nope", auth=("u", "p"), timeout=10).status_code == 404
    finally:
        live.stop()
    spans = [s for s in memory.get_finished_spans() if s.kind == SpanKind.SERVER]
    assert [(s.name, attrs(s)["http.response.status_code"]) for s in spans] == [
        ("GET /status", 401), ("GET /status", 200), ("GET", 404)]
    assert all(s.parent is None for s in spans)
    assert len({s.context.trace_id for s in spans}) == 3


def test_configuration_from_the_otel_environment_variables() -> None:
    assert tracing.provider_from_env({}) is None or "opentelemetry.trace" in sys.modules
    for off in ({"OTEL_TRACES_EXPORTER": "none"},
                {"OTEL_TRACES_EXPORTER": "console", "OTEL_SDK_DISABLED": "true"}):
        assert tracing.provider_from_env(off) is None, off
    console = tracing.provider_from_env({"OTEL_TRACES_EXPORTER": "console"})
    assert isinstance(console, TracerProvider)
    assert console.resource.attributes["service.name"] == tracing.DEFAULT_SERVICE_NAME
    console.shutdown()


def test_console_exporter_prints_the_servers_spans() -> None:
    """``OTEL_TRACES_EXPORTER=console python server.py``: each request's span on the output."""
    env = {"OTEL_TRACES_EXPORTER": "console", "OTEL_SERVICE_NAME": "sim-under-test"}
    with ServerProcess.start(env=env) as server:
        assert requests.get(server.url + "/healthz", timeout=10,
                            headers={"traceparent": TRACEPARENT}).status_code == 200
        until(lambda: any('"name": "GET /healthz"' in line for line in server.output),
              "the span on the output")
        text = "\n".join(server.output)
    assert f'"trace_id": "0x{TRACE_ID}"' in text
    assert '"service.name": "sim-under-test"' in text


def test_without_opentelemetry_the_server_runs_and_imports_none_of_it() -> None:
    """No extra (the import fails) even with OTEL_TRACES_EXPORTER set: a warning, no tracing;
    and without configuration, nothing imports OpenTelemetry at all."""
    script = """
import logging, os, sys
logging.basicConfig(level=logging.WARNING)
unconfigured = len(sys.argv) > 1
if not unconfigured:
    sys.modules["opentelemetry"] = None   # as if the otel extra were not installed
    os.environ["OTEL_TRACES_EXPORTER"] = "console"
import vtwait
from vtwait.server import create_app
from vtwait.server.state import app_state
app = create_app()
assert app.test_client().post("/start", json={"delay": 0}).status_code == 201
app_state(app).store.shutdown()
app_state(app).webhooks.close()
loaded = sorted(m for m in sys.modules if m.startswith("opentelemetry") and sys.modules[m])
print("loaded:", loaded)
"""
    env_clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env_clean["PYTHONPATH"] = str(ROOT)
    missing = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                             env=env_clean, cwd=ROOT, timeout=60)
    assert missing.returncode == 0, missing.stderr
    assert "loaded: []" in missing.stdout
    assert "OpenTelemetry's SDK is not installed" in missing.stderr
    plain = subprocess.run([sys.executable, "-c", script, "unconfigured"], capture_output=True,
                           text=True, env=env_clean, cwd=ROOT, timeout=60)
    assert plain.returncode == 0, plain.stderr
    assert "loaded: []" in plain.stdout
