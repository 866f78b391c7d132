"""``LOG_FORMAT=json``: one JSON object per log line, with the trace and span ids when tracing is on.

A real ``python server.py`` (tracing on through ``OTEL_TRACES_EXPORTER``) for the lines and the ids;
the formatter in process for the fields; the command line for a bad value.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time

import pytest
import requests

from tests.helpers import ROOT
from vtwait.server.logformat import JsonFormatter, formatter_for
from vtwait.server.settings import ConfigError, Settings
from vtwait.testing import ServerProcess

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


def test_json_lines_carry_the_requests_trace_ids() -> None:
    pytest.importorskip("opentelemetry.sdk", reason="the otel extra is not installed")
    env = {"OTEL_TRACES_EXPORTER": "memory"}
    with ServerProcess.start("--log-format", "json", env=env) as server:
        assert requests.get(server.url + "/healthz", headers={"traceparent": TRACEPARENT},
                            timeout=10).status_code == 200
        deadline = time.monotonic() + 20
        while not any("GET /healthz" in line for line in server.output):
            assert time.monotonic() < deadline, server.output[-5:]
            time.sleep(0.02)
        lines = [json.loads(line) for line in server.output if line.startswith("{")]
    access = [line for line in lines if line["message"].startswith("GET /healthz 200")]
    assert len(access) == 1
    assert access[0]["trace_id"] == TRACE_ID and len(access[0]["span_id"]) == 16
    assert access[0]["logger"] == "vtwait.server.app" and access[0]["level"] == "INFO"
    assert access[0]["time"].endswith("Z")
    assert any(line["message"].startswith("job ") for line in lines)  # the default job, no span
    assert all("trace_id" not in line for line in lines if line["message"].startswith("job "))


def test_the_json_formatter_outside_a_span_and_with_a_traceback() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("vtwait.server.x", logging.ERROR, __file__, 1, "failed %s",
                                   ("here",), sys.exc_info())
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "failed here" and line["level"] == "ERROR"
    assert "trace_id" not in line and "ValueError: boom" in line["exception"]
    assert isinstance(formatter_for("json"), JsonFormatter)
    assert not isinstance(formatter_for("text"), JsonFormatter)


def test_a_bad_log_format_is_refused() -> None:
    with pytest.raises(ConfigError, match="LOG_FORMAT"):
        Settings(log_format="xml")
    done = subprocess.run([sys.executable, "-m", "vtwait.server", "--log-format", "xml"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert "LOG_FORMAT must be text or json" in done.stderr
