"""The clients' OpenTelemetry spans (``vtwait/client/tracing.py``): one trace from a client call
through the simulator to a webhook receiver, HTTP client spans per attempt, the asyncio client,
batch waits, and a client without the extra.

Real parts: the simulator on a live server (real HTTP on 127.0.0.1) traced with the same SDK
provider as the client, a real webhook receiver, the SDK's in-memory exporter; a subprocess where
OpenTelemetry cannot be imported for the no-extra case.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk", reason="the otel extra is not installed")

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (  # noqa: E402
    InMemorySpanExporter,
)
from opentelemetry.trace import SpanKind  # noqa: E402

from tests.helpers import ROOT, LiveServer, fast_settings, serve_wsgi, start_live_server  # noqa: E402
from vtwait import AsyncVideoTranslationClient, VideoTranslationClient  # noqa: E402

PATIENCE = 20.0


@pytest.fixture(scope="module")
def traced() -> Iterator[tuple[TracerProvider, InMemorySpanExporter, LiveServer]]:
    """One simulator for the module, traced into the same exporter as the clients."""
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    live = start_live_server(fast_settings(), tracer_provider=provider)
    yield provider, memory, live
    live.stop()
    provider.shutdown()


@pytest.fixture
def setup(traced) -> tuple[TracerProvider, InMemorySpanExporter, LiveServer]:
    traced[1].clear()
    return traced


class Receiver:
    """A webhook receiver: keeps each delivery's headers."""

    def __init__(self) -> None:
        self.headers: list[dict[str, str]] = []
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        with self.lock:
            self.headers.append({k[5:].replace("_", "-").lower(): v for k, v in environ.items()
                                 if k.startswith("HTTP_")})
        start_response("204 No Content", [])
        return [b""]


def until(condition: Any, what: str) -> None:
    deadline = time.monotonic() + PATIENCE
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def children(spans: list[ReadableSpan], parent: ReadableSpan, **match: Any) -> list[ReadableSpan]:
    return [s for s in spans if s.parent is not None and s.parent.span_id == parent.context.span_id
            and all(getattr(s, k) == v for k, v in match.items())]


def one(spans: list[ReadableSpan], **match: Any) -> ReadableSpan:
    found = [s for s in spans if all(getattr(s, k) == v for k, v in match.items())]
    assert len(found) == 1, (match, [s.name for s in spans])
    return found[0]


def test_one_trace_from_run_through_the_server_and_the_job_to_the_webhook_receiver(setup):
    provider, memory, live = setup
    receiver = Receiver()
    with serve_wsgi(receiver) as hook_url, \
            VideoTranslationClient(live.url, tracer_provider=provider) as client:
        status = client.run(delay=0.05, outcome="completed", callback_url=hook_url + "/hook")
        until(lambda: receiver.headers, "the webhook")
        until(lambda: any(s.name == "POST" and s.kind == SpanKind.CLIENT
                          and s.instrumentation_scope.name == "vtwait.server"
                          for s in memory.get_finished_spans()), "the webhook's span")
    assert status.result.value == "completed"
    spans = list(memory.get_finished_spans())
    run = one(spans, name="run")
    assert run.parent is None and run.instrumentation_scope.name == "vtwait.client"
    assert attrs(run)["vtwait.job.id"] == status.job_id
    assert attrs(run)["vtwait.job.result"] == "completed"
    assert all(s.context.trace_id == run.context.trace_id for s in spans), "one trace"
    (post,) = children(spans, run, kind=SpanKind.CLIENT)
    assert post.name == "POST"
    assert attrs(post)["http.request.method"] == "POST"
    assert attrs(post)["url.full"] == live.url + "/start"
    assert attrs(post)["server.address"] == "127.0.0.1"
    assert attrs(post)["server.port"] == int(live.url.rsplit(":", 1)[1])
    assert attrs(post)["http.response.status_code"] in (200, 201, 202)
    assert "http.request.resend_count" not in attrs(post)
    (start,) = children(spans, post, kind=SpanKind.SERVER)  # the client's traceparent, continued
    assert start.name == "POST /start"
    (job,) = children(spans, start, name="job")
    (hook,) = children(spans, job, kind=SpanKind.CLIENT)
    assert receiver.headers[0]["traceparent"].split("-")[1] == format(run.context.trace_id, "032x")
    assert attrs(hook)["url.full"] == hook_url + "/hook"


def test_a_wait_span_parents_its_status_requests_and_carries_the_waits_figures(setup):
    provider, memory, live = setup
    with VideoTranslationClient(live.url, tracer_provider=provider) as client:
        job = client.submit(delay=0.3)
        status = client.wait_for_completion(job.id)
    spans = list(memory.get_finished_spans())
    submit = one(spans, name="submit")
    assert attrs(submit)["vtwait.job.id"] == job.id
    assert [s.name for s in children(spans, submit)] == ["POST"]
    wait = one(spans, name="wait")
    assert wait.parent is None
    figures = attrs(wait)
    assert figures["vtwait.job.id"] == job.id
    assert figures["vtwait.wait.outcome"] == status.result.value == "completed"
    assert figures["vtwait.wait.strategy"] == "long-poll"  # the server holds the request
    gets = children(spans, wait, kind=SpanKind.CLIENT)
    assert figures["vtwait.wait.requests"] == len(gets) >= 1
    assert figures["vtwait.wait.detection_delay_s"] >= 0
    assert all(s.name == "GET" and attrs(s)["url.full"] == f"{live.url}/status/{job.id}"
               for s in gets)  # no query (?wait=N) in url.full
    for get in gets:
        assert [s.name for s in children(spans, get)] == ["GET /status/<job_id>"]


def test_retries_carry_resend_count_and_each_attempt_is_a_span():
    """A server that answers 503 twice, then the status: three GET spans, 1 and 2 resent."""
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    answers = iter([503, 503])
    traceparents: list[str] = []

    def flaky(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        traceparents.append(environ.get("HTTP_TRACEPARENT", ""))
        code = next(answers, 200)
        if code != 200:
            start_response(f"{code} Unavailable", [("Content-Type", "application/json")])
            return [b'{"error": "busy"}']
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps({"job_id": "j1", "result": "completed"}).encode()]

    with serve_wsgi(flaky) as url, VideoTranslationClient(
            url, tracer_provider=provider, sleep=lambda s: None) as client:
        assert client.get_status("j1").result.value == "completed"
    gets = sorted(memory.get_finished_spans(), key=lambda s: s.start_time or 0)
    assert [attrs(s).get("http.request.resend_count") for s in gets] == [None, 1, 2]
    assert [attrs(s)["http.response.status_code"] for s in gets] == [503, 503, 200]
    assert [attrs(s).get("error.type") for s in gets] == ["503", "503", None]
    assert [tp.split("-")[2] for tp in traceparents] == [
        format(s.context.span_id, "016x") for s in gets]
    provider.shutdown()


def test_the_asyncio_client_traces_its_run_wait_and_requests(setup):
    provider, memory, live = setup

    async def main() -> tuple[str, str]:
        async with AsyncVideoTranslationClient(live.url, tracer_provider=provider) as client:
            job = await client.submit(delay=0.2)
            status = await client.wait_for_completion(job.id)
            return job.id, status.result.value

    job_id, result = asyncio.run(main())
    spans = list(memory.get_finished_spans())
    wait = one(spans, name="wait")
    assert attrs(wait)["vtwait.job.id"] == job_id
    assert attrs(wait)["vtwait.wait.outcome"] == result == "completed"
    gets = children(spans, wait, kind=SpanKind.CLIENT)
    assert gets and attrs(wait)["vtwait.wait.requests"] == len(gets)
    assert all(children(spans, get, kind=SpanKind.SERVER) for get in gets)
    assert children(spans, one(spans, name="submit"), kind=SpanKind.CLIENT)


@pytest.mark.parametrize("flavour", ["sync", "asyncio"])
def test_a_batch_wait_is_one_span_with_an_event_per_job_end(setup, flavour):
    provider, memory, live = setup
    with VideoTranslationClient(live.url, tracer_provider=provider) as starter:
        ids = starter.start_jobs(3, delay=0.1)
    memory.clear()
    if flavour == "sync":
        with VideoTranslationClient(live.url, tracer_provider=provider) as client:
            ended = client.wait_many(ids)
    else:
        async def main() -> dict[str, Any]:
            async with AsyncVideoTranslationClient(live.url, tracer_provider=provider) as client:
                return await client.wait_many(ids)
        ended = asyncio.run(main())
    assert set(ended) == set(ids)
    spans = list(memory.get_finished_spans())
    batch = one(spans, name="wait batch")
    assert attrs(batch)["vtwait.batch.jobs"] == 3
    assert sorted(dict(e.attributes or {})["vtwait.job.id"] for e in batch.events) == sorted(ids)
    assert {e.name for e in batch.events} == {"job end"}
    streams = children(spans, batch, kind=SpanKind.CLIENT)
    assert streams and all(attrs(s)["url.full"] == live.url + "/events" for s in streams)
    # The event stream's request carried the traceparent too: the server continued it.
    assert any(children(spans, s, kind=SpanKind.SERVER) for s in streams)


def test_without_the_extra_the_client_imports_and_runs_untraced():
    """OpenTelemetry not importable: the client imports and runs; and when it is installed but
    nothing configured it, the client imports none of it."""
    script = """
import sys
if len(sys.argv) > 1:
    sys.modules["opentelemetry"] = None   # as if the otel extra were not installed
from tests.helpers import fast_settings, start_live_server
from vtwait import VideoTranslationClient
live = start_live_server(fast_settings())
with VideoTranslationClient(live.url) as client:
    print("result:", client.run(delay=0.01).result.value)
    print("batch:", len(client.wait_many(client.start_jobs(2, delay=0.01))))
live.stop()
print("loaded:", sorted(m for m in sys.modules if m.startswith("opentelemetry") and sys.modules[m]))
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["PYTHONPATH"] = str(ROOT)
    for args in ([], ["missing"]):
        done = subprocess.run([sys.executable, "-c", script, *args], capture_output=True,
                              text=True, env=env, cwd=ROOT, timeout=60)
        assert done.returncode == 0, done.stderr
        assert "result: completed" in done.stdout and "batch: 2" in done.stdout
        assert "loaded: []" in done.stdout, done.stdout


def test_the_cli_traces_from_the_otel_variables_and_logs_json_lines_with_the_trace_ids(setup):
    _, _, live = setup
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(PYTHONPATH=str(ROOT), OTEL_TRACES_EXPORTER="console")
    done = subprocess.run([sys.executable, "-m", "vtwait.client", "--base-url", live.url,
                           "--delay", "0.1", "--log-format", "json", "-v"], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert len(lines) >= 3, done.stderr
    ended = [x for x in lines if x["logger"] == "vtwait.core.planner" and "completed after"
             in x["message"]]
    assert ended and len(ended[0]["trace_id"]) == 32 and len(ended[0]["span_id"]) == 16
    assert '"name": "wait"' in done.stdout and '"service.name": "vtwait-client"' in done.stdout
    assert f'"trace_id": "0x{ended[0]["trace_id"]}"' in done.stdout


@pytest.mark.parametrize("flavour", ["sync", "asyncio"])
def test_a_download_is_a_span_whose_output_request_carries_traceparent_without_its_query(
        setup, flavour, tmp_path):
    provider, memory, live = setup
    target = tmp_path / "out.bin"
    if flavour == "sync":
        with VideoTranslationClient(live.url, tracer_provider=provider) as client:
            status = client.run(delay=0.05)
            memory.clear()
            client.download(str(status.job_id), target)
    else:
        async def main() -> Any:
            async with AsyncVideoTranslationClient(live.url, tracer_provider=provider) as client:
                status = await client.run(delay=0.05)
                memory.clear()
                await client.download(str(status.job_id), target)
                return status
        status = asyncio.run(main())
    assert target.stat().st_size > 0
    spans = list(memory.get_finished_spans())
    download = one(spans, name="download")
    assert attrs(download)["vtwait.job.id"] == status.job_id
    fetches = [s for s in children(spans, download, kind=SpanKind.CLIENT)
               if "/status/" not in attrs(s)["url.full"]]
    assert fetches, [attrs(s)["url.full"] for s in children(spans, download)]
    for fetch in fetches:
        assert "?" not in attrs(fetch)["url.full"]  # the output URL's signature stays out
        assert attrs(fetch)["http.response.status_code"] in (200, 206)
        assert children(spans, fetch, kind=SpanKind.SERVER)  # its traceparent was continued


def test_a_client_made_after_the_global_provider_was_set_traces_with_it():
    """The documented way: ``trace.set_tracer_provider(...)`` first, then the client (a global
    provider can be set once per process: a subprocess)."""
    script = """
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from tests.helpers import fast_settings, start_live_server
from vtwait import VideoTranslationClient
live = start_live_server(fast_settings())
with VideoTranslationClient(live.url) as before:   # made before: stays untraced
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    trace.set_tracer_provider(provider)
    before.run(delay=0.01)
    with VideoTranslationClient(live.url) as client:
        client.run(delay=0.01)
live.stop()
print("spans:", sorted(s.name for s in memory.get_finished_spans()))
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "spans: ['POST', 'run']" in done.stdout, done.stdout
