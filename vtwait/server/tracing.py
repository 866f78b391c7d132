"""OpenTelemetry traces of the simulator (extra ``[otel]``): a server span per request, a span per
job's life, a client span per webhook attempt. Off, and free, unless configured.

Usage::

    pip install '.[server,otel]'
    OTEL_TRACES_EXPORTER=console python server.py        # print every span, for a quick look
    OTEL_TRACES_EXPORTER=otlp OTEL_SERVICE_NAME=sim python server.py   # needs an OTLP exporter

Configured the standard way, by the ``OTEL_*`` environment variables: ``OTEL_TRACES_EXPORTER``
(``console``, ``otlp``, ``none``, and ``memory``: this package's, which keeps the last
spans in memory, for benchmarks; comma-separated), ``OTEL_SERVICE_NAME`` (default
``vtwait-server``), ``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_SAMPLER``, ``OTEL_SDK_DISABLED``,
and the exporter's own (``OTEL_EXPORTER_OTLP_ENDPOINT``, ...). A process whose global tracer
provider was already set (``opentelemetry-instrument``, or your own code) is traced with it.
``create_app(tracer_provider=...)`` passes one explicitly (the tests' in-memory exporter).

What is traced:

* **each request**: a ``SERVER`` span named ``<METHOD> <route>`` (``POST /start``,
  ``GET /status/<job_id>``) that continues the caller's W3C ``traceparent``, with OpenTelemetry's
  HTTP attributes (``http.request.method``, ``http.route``, ``url.path``,
  ``http.response.status_code``, ...). A streamed answer's span (``GET /events``) ends when the
  stream's headers are out, not when the stream ends;
* **each job's life**: a span ``job`` (``vtwait.job.id``), child of the ``POST /start`` span that
  created it, with an event per phase (``queued``, ``running``, then ``completed``, ``error`` or
  ``canceled``), ended when the job ends (``vtwait.job.result``, ``vtwait.job.phase``);
* **each webhook attempt**: a ``CLIENT`` span ``POST``, child of the job's span, that sends its
  ``traceparent`` to the receiver (``http.request.resend_count`` on retries).

Without the extra, or without configuration, nothing here imports OpenTelemetry and no hook is
installed: a request costs what it did before. The job spans are kept by the process that started
the job: with the Redis store and several workers, a job that another worker finishes ends its
span there only when this process sees the end (the span is ended, marked unfinished, when
``MAX_JOBS`` of them are open).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import urllib.parse
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, g, request

from vtwait.server.stores.base import FINAL_EVENT_KINDS, JobEvent, JobStore

if TYPE_CHECKING:  # only types: OpenTelemetry is imported when tracing is configured
    from opentelemetry.trace import Span, TracerProvider

    from vtwait.server.webhooks import WebhookSender

__all__ = ["DEFAULT_SERVICE_NAME", "ServerTracing", "install", "provider_from_env"]

logger = logging.getLogger(__name__)

#: ``service.name`` when neither ``OTEL_SERVICE_NAME`` nor ``OTEL_RESOURCE_ATTRIBUTES`` names one.
DEFAULT_SERVICE_NAME = "vtwait-server"
#: The instrumentation scope of every span here.
SCOPE = "vtwait.server"
#: Spans kept by the ``memory`` exporter (``OTEL_TRACES_EXPORTER=memory``, for benchmarks).
LAST_SPANS = 10_000


def provider_from_env(environ: Mapping[str, str] | None = None) -> TracerProvider | None:
    """The tracer provider the ``OTEL_*`` variables ask for, or the process's global one if it was
    set; None when tracing is off (nothing configured, ``OTEL_SDK_DISABLED=true``, or no extra).
    """
    environ = os.environ if environ is None else environ
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    names = [n.strip().lower() for n in environ.get("OTEL_TRACES_EXPORTER", "").split(",")
             if n.strip()]
    if not names or names == ["none"]:
        if "opentelemetry.trace" not in sys.modules:  # nobody set a global provider: stay free
            return None
        from opentelemetry import trace

        provider = trace.get_tracer_provider()
        # The API's default is a proxy (or no-op) provider: not configured, so not traced.
        configured = type(provider).__name__ not in ("ProxyTracerProvider", "NoOpTracerProvider")
        return provider if configured else None
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
        from opentelemetry.sdk.trace.export import (
            BatchSpanProcessor,
            ConsoleSpanExporter,
            SimpleSpanProcessor,
        )
    except ImportError:
        logger.warning("OTEL_TRACES_EXPORTER is set but OpenTelemetry's SDK is not installed "
                       "(pip install 'video-translation-wait[otel]'): not tracing")
        return None
    attributes = {}
    if not environ.get("OTEL_SERVICE_NAME") and "service.name=" not in environ.get(
            "OTEL_RESOURCE_ATTRIBUTES", ""):
        attributes["service.name"] = DEFAULT_SERVICE_NAME
    sdk = SdkTracerProvider(resource=Resource.create(attributes))
    for name in dict.fromkeys(names):
        if name == "console":  # printed at each span's end: a quick look, not for production
            sdk.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
        elif name == "otlp":
            try:
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # type: ignore[import-not-found]
                    OTLPSpanExporter,
                )
            except ImportError:
                logger.warning("OTEL_TRACES_EXPORTER=otlp needs opentelemetry-exporter-otlp-proto-"
                               "http; spans are not exported there")
                continue
            sdk.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        elif name == "memory":  # not standard: this package's, for benchmarks (bench.py tracing)
            sdk.add_span_processor(BatchSpanProcessor(_LastSpans()))
        elif name != "none":
            logger.warning("OTEL_TRACES_EXPORTER: unknown exporter %r ignored "
                           "(known: console, otlp, memory, none)", name)
    return sdk


def install(app: Flask, store: JobStore, sender: WebhookSender, *, max_jobs: int,
            provider: TracerProvider | None) -> ServerTracing | None:
    """Traces ``app``'s requests, ``store``'s jobs and ``sender``'s webhooks with ``provider``;
    does nothing (and returns None) when ``provider`` is None."""
    if provider is None:
        return None
    tracing = ServerTracing(provider, max_jobs=max_jobs)
    app.before_request(tracing.before_request)
    app.after_request(tracing.after_request)
    app.teardown_request(tracing.teardown_request)
    store.add_listener(tracing.on_job_event)
    sender.tracing = tracing
    return tracing


class ServerTracing:
    """The spans of one app: requests (Flask hooks), jobs (a store listener), webhook attempts
    (the sender's hook).

    Args:
        provider: where the spans go.
        max_jobs: most job spans kept open at once (``MAX_JOBS``).
    """

    def __init__(self, provider: TracerProvider, *, max_jobs: int) -> None:
        from opentelemetry import context, propagate, trace

        self._trace, self._context, self._propagate = trace, context, propagate
        self.tracer = provider.get_tracer(SCOPE)
        self._max_jobs = max_jobs
        self._lock = threading.Lock()
        self._jobs: OrderedDict[str, Span] = OrderedDict()

    # requests

    def before_request(self) -> None:
        # Read from the WSGI environ: cheaper than werkzeug's parsed properties, on every request.
        trace, environ = self._trace, request.environ
        # Only a request that carries a traceparent has a parent to extract (baggage alone is
        # not read).
        parent = (self._propagate.extract(request.headers) if "HTTP_TRACEPARENT" in environ
                  else None)
        route = request.url_rule.rule if request.url_rule is not None else None
        method = environ.get("REQUEST_METHOD", "")
        attributes: dict[str, Any] = {
            "http.request.method": method,
            "url.path": environ.get("PATH_INFO", ""),
            "url.scheme": environ.get("wsgi.url_scheme", "http"),
            "server.address": environ.get("SERVER_NAME", ""),
            "network.protocol.version": environ.get("SERVER_PROTOCOL", "").rpartition("/")[2],
        }
        port = environ.get("SERVER_PORT", "")
        if port.isdigit():
            attributes["server.port"] = int(port)
        if route is not None:
            attributes["http.route"] = route
        if remote := environ.get("REMOTE_ADDR"):
            attributes["client.address"] = remote
        if agent := environ.get("HTTP_USER_AGENT"):
            attributes["user_agent.original"] = agent
        span = self.tracer.start_span(f"{method} {route}" if route else method,
                                      context=parent, kind=trace.SpanKind.SERVER,
                                      attributes=attributes)
        g.otel_span = span
        g.otel_token = self._context.attach(trace.set_span_in_context(span, parent))

    def after_request(self, response: Response) -> Response:
        span = g.get("otel_span")
        if span is not None:
            span.set_attribute("http.response.status_code", response.status_code)
            if response.status_code >= 500:
                span.set_status(self._trace.Status(self._trace.StatusCode.ERROR))
                span.set_attribute("error.type", str(response.status_code))
        return response

    def teardown_request(self, error: BaseException | None) -> None:
        span, token = g.pop("otel_span", None), g.pop("otel_token", None)
        if span is None:
            return
        if error is not None:
            span.record_exception(error)
            span.set_status(self._trace.Status(self._trace.StatusCode.ERROR))
            span.set_attribute("error.type", type(error).__qualname__)
        span.end()
        if token is not None:
            self._context.detach(token)

    # jobs

    def on_job_event(self, event: JobEvent) -> None:
        """Store listener: opens a job's span at its start (in the start request's context),
        adds an event per change, ends it at the job's end."""
        doc = event.doc
        if event.kind == "started":
            span = self.tracer.start_span("job", attributes={"vtwait.job.id": event.job_id})
            span.add_event(str(doc.get("phase", "started")))
            with self._lock:
                self._jobs[event.job_id] = span
                overflow = (len(self._jobs) > self._max_jobs) and self._jobs.popitem(last=False)
            if overflow:  # a job finished elsewhere (another worker): its span ends here, unfinished
                overflow[1].set_attribute("vtwait.job.unfinished_here", True)
                overflow[1].end()
            return
        with self._lock:
            found = self._jobs.get(event.job_id)
            if found is not None and event.kind in FINAL_EVENT_KINDS | {"evicted"}:
                del self._jobs[event.job_id]
        if found is None:
            return
        span = found
        span.add_event(event.kind)
        if event.kind in FINAL_EVENT_KINDS:
            span.set_attribute("vtwait.job.result", str(doc.get("result", "")))
            span.set_attribute("vtwait.job.phase", str(doc.get("phase", event.kind)))
            span.end()
        elif event.kind == "evicted":
            span.end()

    # webhooks (the sender's hook: parent_of at submit, attempt around each POST)

    def parent_of(self, job_id: str) -> Any:
        """The context a webhook of ``job_id`` continues: its job's span, if still open."""
        with self._lock:
            span = self._jobs.get(job_id)
        return None if span is None else self._trace.set_span_in_context(span)

    @contextlib.contextmanager
    def attempt(self, parent: Any, url: str, headers: dict[str, str],
                attempt: int) -> Iterator[Callable[[int | None, BaseException | None], None]]:
        """A ``CLIENT`` span around one webhook POST; puts its ``traceparent`` into ``headers``.
        Yields ``record(status, error)``, to call with the answer's status or the failure."""
        trace = self._trace
        parts = urllib.parse.urlsplit(url)
        attributes: dict[str, Any] = {
            "http.request.method": "POST",
            # Without the query: a callback URL's query may carry a token.
            "url.full": urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")),
            "server.address": parts.hostname or "",
        }
        if parts.port is not None:
            attributes["server.port"] = parts.port
        if attempt > 1:
            attributes["http.request.resend_count"] = attempt - 1
        span = self.tracer.start_span("POST", context=parent, kind=trace.SpanKind.CLIENT,
                                      attributes=attributes)
        self._propagate.inject(headers, context=trace.set_span_in_context(span))

        def record(status: int | None, error: BaseException | None) -> None:
            if status is not None:
                span.set_attribute("http.response.status_code", status)
                if status >= 400:
                    span.set_attribute("error.type", str(status))
                    span.set_status(trace.Status(trace.StatusCode.ERROR))
            if error is not None:
                span.set_attribute("error.type", type(error).__qualname__)
                span.set_status(trace.Status(trace.StatusCode.ERROR))

        try:
            yield record
        finally:
            span.end()


def _LastSpans() -> Any:  # noqa: N802 - a class made on first use: the SDK is imported lazily
    """An exporter that keeps the last ``LAST_SPANS`` spans in memory (``memory``): the cost of
    recording and exporting every span, without a collector to send them to."""
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    class LastSpans(SpanExporter):
        def __init__(self) -> None:
            self.spans: deque[Any] = deque(maxlen=LAST_SPANS)

        def export(self, spans: Any) -> SpanExportResult:
            self.spans.extend(spans)
            return SpanExportResult.SUCCESS

    return LastSpans()
