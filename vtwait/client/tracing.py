"""OpenTelemetry spans of the clients (extra ``[otel]``), one implementation for the sync and the
asyncio client: a span per wait, per batch wait, per ``submit``/``run``/``download``, and an HTTP
``CLIENT`` span per request whose W3C ``traceparent`` goes with the request.

A client traces when it is given a tracer provider (``tracer_provider=``) or, by default, when the
process has a configured global one (``opentelemetry.trace.set_tracer_provider``, or
``opentelemetry-instrument``); the CLI configures one from the ``OTEL_*`` variables
(:func:`vtwait.observability.otel.provider_from_env`). Otherwise nothing here imports OpenTelemetry
and the clients run the code they ran before: :func:`tracing_for` returns None and every hook is
skipped by one ``is None`` test.

Spans (scope ``vtwait.client``):

* ``wait`` (``INTERNAL``): ``vtwait.job.id``, ``vtwait.wait.strategy`` (the planner's:
  ``long-poll``, ``hints``, ``learned``, ``backoff``, ``first request``), ``vtwait.wait.requests``,
  ``vtwait.wait.outcome`` (``completed``, ``error``, or the exception's name), and
  ``vtwait.wait.detection_delay_s`` (our wall clock at the answer minus the server's
  ``finished_at``, when the server says it);
* ``wait batch``: ``vtwait.batch.jobs``; an event ``job end`` per job (``vtwait.job.id``,
  ``vtwait.job.result``); its requests (event streams, polls) are its children;
* ``submit``, ``run``, ``download`` (``INTERNAL``): the lifecycle calls, parents of their requests
  and waits; ``vtwait.job.id`` once known;
* ``GET``/``POST`` (``CLIENT``), one per attempt: ``http.request.method``, ``url.full`` (without
  user info and without the query: an output URL's query is its signature), ``server.address``,
  ``server.port``, ``http.response.status_code``, ``error.type`` (the status code from 400, or the
  exception's name), ``http.request.resend_count`` on a retry. A streamed answer's span (the event
  stream, a download) ends when its headers have come.
"""

from __future__ import annotations

import contextlib
import time
import urllib.parse
from collections.abc import Iterator, MutableMapping
from typing import TYPE_CHECKING, Any

from vtwait.observability.otel import configured_global_provider

if TYPE_CHECKING:  # only types: OpenTelemetry is imported when tracing is on
    from opentelemetry.trace import Span, TracerProvider

    from vtwait.core.planner import JobWait
    from vtwait.core.status import JobStatus

__all__ = ["SCOPE", "ClientTracing", "tracing_for"]

#: The instrumentation scope of every client span.
SCOPE = "vtwait.client"


def tracing_for(provider: Any = None) -> ClientTracing | None:
    """A client's tracing: with ``provider``, else the process's configured global provider,
    else None (off: nothing imported, nothing done)."""
    provider = provider if provider is not None else configured_global_provider()
    return None if provider is None else ClientTracing(provider)


class ClientTracing:
    """The spans of one client (see the module's documentation)."""

    def __init__(self, provider: TracerProvider) -> None:
        from opentelemetry import context, propagate, trace

        self._trace, self._context, self._propagate = trace, context, propagate
        self.tracer = provider.get_tracer(SCOPE)
        self._urls: dict[str, dict[str, Any]] = {}  # url -> its attributes (few distinct urls)

    # ----------------------------------------------------------------- HTTP, one per attempt
    def start_request(self, method: str, url: str, headers: MutableMapping[str, str],
                      attempt: int) -> Span:
        """Opens the ``CLIENT`` span of one attempt (0: the first) and puts its ``traceparent``
        into ``headers``; end it with :meth:`end_request`."""
        attributes = dict(self._url_attributes(url))
        attributes["http.request.method"] = method
        if attempt:
            attributes["http.request.resend_count"] = attempt
        span = self.tracer.start_span(method, kind=self._trace.SpanKind.CLIENT,
                                      attributes=attributes)
        self._propagate.inject(headers, context=self._trace.set_span_in_context(span))
        return span

    def end_request(self, span: Span, status: int | None,
                    error: BaseException | None = None) -> None:
        """Ends an attempt's span with its answer's status, or the failure that left none."""
        if status is not None:
            span.set_attribute("http.response.status_code", status)
            if status >= 400:
                span.set_attribute("error.type", str(status))
                span.set_status(self._trace.Status(self._trace.StatusCode.ERROR))
        if error is not None:
            span.set_attribute("error.type", type(error).__qualname__)
            span.set_status(self._trace.Status(self._trace.StatusCode.ERROR))
        span.end()

    def _url_attributes(self, url: str) -> dict[str, Any]:
        found = self._urls.get(url)
        if found is None:
            parts = urllib.parse.urlsplit(url)
            # No user info, no query: an output URL's query is its signature.
            netloc = parts.hostname or ""
            if ":" in netloc:
                netloc = f"[{netloc}]"
            if parts.port is not None:
                netloc += f":{parts.port}"
            found = {"url.full": urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "",
                                                          "")),
                     "server.address": parts.hostname or ""}
            port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
            if port is not None:
                found["server.port"] = port
            if len(self._urls) < 1024 and not parts.query:  # status URLs repeat; signed ones not
                self._urls[url] = found
        return found

    # ----------------------------------------------------------- waits and lifecycle calls
    @contextlib.contextmanager
    def span(self, name: str, attributes: dict[str, Any] | None = None) -> Iterator[Span]:
        """An ``INTERNAL`` span, current for the block (its requests are its children); an
        exception leaving the block marks it (``error.type``, status ERROR)."""
        span = self.tracer.start_span(name, attributes=attributes)
        token = self._context.attach(self._trace.set_span_in_context(span))
        try:
            yield span
        except BaseException as exc:
            self._failed(span, exc)
            raise
        finally:
            self._context.detach(token)
            span.end()

    @contextlib.contextmanager
    def wait(self, job_id: str | None, wait: JobWait | None = None) -> Iterator[WaitSpan]:
        """The ``wait`` span of one job; the driver calls ``done(status)`` on the final status."""
        with self.span("wait", {"vtwait.job.id": job_id or ""}) as span:
            recorder = WaitSpan(span, wait)
            try:
                yield recorder
            except BaseException as exc:
                recorder.finish(type(exc).__name__)
                raise

    def start_batch(self, jobs: int) -> Span:
        """The ``wait batch`` span (not made current: the batch is a generator); the requests of
        its drivers are made its children by :meth:`activate`."""
        return self.tracer.start_span("wait batch", attributes={"vtwait.batch.jobs": jobs})

    @contextlib.contextmanager
    def activate(self, span: Span) -> Iterator[None]:
        """``span`` is the current span for the block (in this thread or task)."""
        token = self._context.attach(self._trace.set_span_in_context(span))
        try:
            yield
        finally:
            self._context.detach(token)

    def end_batch(self, span: Span, error: BaseException | None) -> None:
        if error is not None:
            self._failed(span, error)
        span.end()

    @staticmethod
    def job_ended(span: Span, status: JobStatus) -> None:
        """A batch's job ended: an event on the batch's span."""
        span.add_event("job end", {"vtwait.job.id": status.job_id or "",
                                   "vtwait.job.result": status.result.value})

    def _failed(self, span: Span, error: BaseException) -> None:
        span.set_attribute("error.type", type(error).__qualname__)
        span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, str(error)[:200]))


class WaitSpan:
    """A ``wait`` span's recorder: the wait's figures, set once at its end."""

    def __init__(self, span: Span, wait: JobWait | None) -> None:
        self.span, self.wait = span, wait
        self._finished = False

    def done(self, status: JobStatus) -> None:
        """The final status came (now)."""
        if status.finished_at is not None:  # the server's wall clock against ours
            self.span.set_attribute("vtwait.wait.detection_delay_s",
                                    max(time.time() - status.finished_at, 0.0))
        self.finish(status.result.value)

    def finish(self, outcome: str) -> None:
        if self._finished:
            return
        self._finished = True
        attributes: dict[str, Any] = {"vtwait.wait.outcome": outcome}
        if self.wait is not None:
            attributes["vtwait.wait.requests"] = self.wait.attempts
            attributes["vtwait.wait.strategy"] = self.wait.strategy
        self.span.set_attributes(attributes)
