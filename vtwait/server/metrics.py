"""Prometheus metrics of the simulator, served at ``GET /metrics`` (no authentication, like
``/healthz``), in the text format written by ``prometheus_client``.

Usage::

    app = Flask(__name__)
    measured = metrics.install(app, store)   # before the store starts jobs
    curl http://127.0.0.1:8000/metrics

What is measured (each process counts what it did; with several gunicorn workers,
``PROMETHEUS_MULTIPROC_DIR`` makes ``/metrics`` add up every worker's files):

* ``http_requests_total{route,method,status}`` and ``http_request_duration_seconds{route}``: every
  answer, by Flask route (``/status/<job_id>``, not the job id; ``unmatched`` for unknown paths);
* ``jobs_started_total``, ``jobs_finished_total{result}``: from the store's listeners;
* ``jobs_live{result}``: jobs not yet forgotten, by result (pending, completed, error);
* ``long_polls_held``: requests held by long-poll right now.

All durations are in seconds.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from typing import Any

from flask import Flask, Response, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)

from vtwait.server.stores.base import FINAL_EVENT_KINDS, JobEvent, JobStore

__all__ = ["Metrics", "install"]

#: Request-duration buckets: status answers take about a millisecond, long-polls up to MAX_WAIT.
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                    30.0, 60.0)


class Metrics:
    """The app's metric objects, in their own registry (several apps may live in one process)."""

    def __init__(self) -> None:
        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        if self.multiprocess:
            # The value class is chosen when prometheus_client is imported; the directory may
            # have been set later (by serving.py, before the workers were forked).
            values.ValueClass = values.get_value_class()
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self.requests = Counter("http_requests", "HTTP answers by route, method and status code",
                                ["route", "method", "status"], registry=registry)
        self.duration = Histogram("http_request_duration_seconds",
                                  "time from the request's arrival in the app to its answer",
                                  ["route"], buckets=DURATION_BUCKETS, registry=registry)
        self.started = Counter("jobs_started", "jobs started", registry=registry)
        self.finished = Counter("jobs_finished", "jobs that reached a final result",
                                ["result"], registry=registry)
        self.live = Gauge("jobs_live", "jobs not yet forgotten, by result", ["result"],
                          multiprocess_mode="livesum", registry=registry)
        self.held = Gauge("long_polls_held", "requests held by long-poll right now",
                          multiprocess_mode="livesum", registry=registry)
        # The labelled children, found once: a burst of 10,000 job events looks them up often.
        self._live_by = {result: self.live.labels(result)  # present at 0 from the start
                         for result in ("pending", "completed", "error")}
        self._finished_by: dict[str, Counter] = {}  # filled on first use: absent until then

    def on_job_event(self, event: JobEvent) -> None:
        """Store listener: counts starts and finishes, and keeps ``jobs_live`` in step."""
        if event.kind == "started":
            self.started.inc()
            self._live_by["pending"].inc()
        elif event.kind in FINAL_EVENT_KINDS:
            result = event.doc.get("result", event.kind)
            finished = self._finished_by.get(result)
            if finished is None:
                finished = self._finished_by[result] = self.finished.labels(result)
            finished.inc()
            self._live_by["pending"].dec()
            self._live(result).inc()
        elif event.kind == "evicted":
            self._live(event.doc.get("result", "completed")).dec()

    def _live(self, result: str) -> Gauge:
        child = self._live_by.get(result)
        return self.live.labels(result) if child is None else child

    @contextlib.contextmanager
    def holding(self) -> Iterator[None]:
        """Counts a long-poll in ``long_polls_held`` while it is held."""
        self.held.inc()
        try:
            yield
        finally:
            self.held.dec()

    def exposition(self) -> bytes:
        """The text format of every metric (of every worker, in multi-process mode)."""
        if self.multiprocess:
            merged = CollectorRegistry()
            multiprocess.MultiProcessCollector(merged)
            return generate_latest(merged)
        return generate_latest(self.registry)


def install(app: Flask, store: JobStore) -> Metrics:
    """Measures every request of ``app`` and every job change of ``store``; adds ``/metrics``.

    Returns:
        The metrics (``create_app`` keeps them in ``app_state(app).metrics``).
    """
    measured = Metrics()
    store.add_listener(measured.on_job_event)

    @app.before_request
    def _metrics_start() -> None:
        g.metrics_started = time.perf_counter()

    # The labelled children by (route, method, status) and by route, found once each: labels()
    # builds and checks its key on every call, a few percent of a status request (issue 19).
    counted: dict[tuple[str, str, int], Any] = {}
    timed: dict[str, Any] = {}

    @app.after_request
    def _metrics_count(response: Response) -> Response:
        route = request.url_rule.rule if request.url_rule is not None else "unmatched"
        key = (route, request.method, response.status_code)
        counter = counted.get(key)
        if counter is None:
            counter = counted[key] = measured.requests.labels(route, key[1], str(key[2]))
        counter.inc()
        began = g.get("metrics_started")
        if began is not None:
            histogram = timed.get(route)
            if histogram is None:
                histogram = timed[route] = measured.duration.labels(route)
            histogram.observe(time.perf_counter() - began)
        return response

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(measured.exposition(), 200, content_type=CONTENT_TYPE_LATEST)

    return measured
