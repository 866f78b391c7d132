"""The server's log lines as text (the default) or as one JSON object per line (``LOG_FORMAT``).

    LOG_FORMAT=json python server.py
    {"time": "2026-12-03T19:53:00.841Z", "level": "INFO", "logger": "vtwait.server.app",
     "message": "GET /status/4f... 200 0.4ms", "trace_id": "0af7...", "span_id": "b7ad..."}

A JSON line carries ``trace_id`` and ``span_id`` (hex, as in ``traceparent``) when tracing is on
(``tracing.py``) and the line is written inside a span (a request, or a job's change made by a
request); ``exception`` holds a traceback, if any.
"""

from __future__ import annotations

import datetime
import json
import logging
import sys
from typing import Any

__all__ = ["LOG_FORMATS", "TEXT_FORMAT", "JsonFormatter", "formatter_for"]

#: The values of ``LOG_FORMAT``.
LOG_FORMATS = ("text", "json")
#: The text format's layout.
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, ISO 8601), level, logger, message, and the trace
    and span ids of the current span when tracing is on."""

    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.datetime.fromtimestamp(record.created, datetime.UTC)
        line: dict[str, Any] = {
            "time": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(_trace_ids())
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def formatter_for(log_format: str) -> logging.Formatter:
    """The formatter of a ``LOG_FORMAT`` value (``text`` or ``json``)."""
    return JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)


def _trace_ids() -> dict[str, str]:
    # Only where tracing imported OpenTelemetry already: a plain server never imports it here.
    trace = sys.modules.get("opentelemetry.trace")
    if trace is None:
        return {}
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return {}
    return {"trace_id": format(context.trace_id, "032x"), "span_id": format(context.span_id, "016x")}
