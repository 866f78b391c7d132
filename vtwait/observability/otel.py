"""The OpenTelemetry tracer provider a process asks for by the standard ``OTEL_*`` variables,
shared by the server (``vtwait/server/tracing.py``) and the client (``vtwait/client/tracing.py``).

Nothing here imports OpenTelemetry unless ``OTEL_TRACES_EXPORTER`` names an exporter, or the
process imported it already (a global provider set by ``opentelemetry-instrument`` or its own code).
"""

from __future__ import annotations

import logging
import os
import sys
from collections import deque
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # only types: OpenTelemetry is imported when tracing is configured
    from opentelemetry.trace import TracerProvider

__all__ = ["LAST_SPANS", "configured_global_provider", "provider_from_env"]

logger = logging.getLogger(__name__)

#: Spans kept by the ``memory`` exporter (``OTEL_TRACES_EXPORTER=memory``, for benchmarks).
LAST_SPANS = 10_000


def configured_global_provider() -> TracerProvider | None:
    """The process's global tracer provider if someone set one; None (at no cost: nothing is
    imported) when OpenTelemetry was never imported or the global one is the API's default."""
    if "opentelemetry.trace" not in sys.modules:  # nobody set a global provider: stay free
        return None
    from opentelemetry import trace

    provider = trace.get_tracer_provider()
    # The API's default is a proxy (or no-op) provider: not configured, so not traced.
    configured = type(provider).__name__ not in ("ProxyTracerProvider", "NoOpTracerProvider")
    return provider if configured else None


def provider_from_env(environ: Mapping[str, str] | None = None, *,
                      default_service_name: str) -> TracerProvider | None:
    """The tracer provider the ``OTEL_*`` variables ask for, or the process's global one if it was
    set; None when tracing is off (nothing configured, ``OTEL_SDK_DISABLED=true``, or no extra).

    ``default_service_name``: ``service.name`` when neither ``OTEL_SERVICE_NAME`` nor
    ``OTEL_RESOURCE_ATTRIBUTES`` names one.
    """
    environ = os.environ if environ is None else environ
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    names = [n.strip().lower() for n in environ.get("OTEL_TRACES_EXPORTER", "").split(",")
             if n.strip()]
    if not names or names == ["none"]:
        return configured_global_provider()
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
        attributes["service.name"] = default_service_name
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
