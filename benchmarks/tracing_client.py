"""The client's CPU per wait, in a process of its own, for ``bench.py tracing``:

    python -m benchmarks.tracing_client URL SETTING WAITS     # prints one JSON object

``SETTING``: ``off`` (OpenTelemetry cannot be imported: as without the ``otel`` extra),
``unconfigured`` (installed, no tracer provider: what a library user gets by default), or
``exporting`` (a provider from ``OTEL_TRACES_EXPORTER=memory``: the SDK's batch processor into an
exporter that keeps the last 10,000 spans). Each wait is ``wait_for_completion`` of a job that has
ended: one status request, one ``wait`` span and one HTTP ``CLIENT`` span when exporting. The
process's CPU seconds (every thread: the batch processor's too, flushed inside the window) over
``WAITS`` waits, after a warm-up, divided by the waits.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

WARM_UP = 50


def measure(url: str, setting: str, waits: int) -> dict[str, Any]:
    if setting == "off":
        sys.modules["opentelemetry"] = None  # type: ignore[assignment]  # as without the extra
    from vtwait import VideoTranslationClient
    from vtwait.observability.otel import provider_from_env

    provider: Any = None
    if setting == "exporting":
        provider = provider_from_env({"OTEL_TRACES_EXPORTER": "memory"},
                                     default_service_name="vtwait-bench-client")
    with VideoTranslationClient(url, tracer_provider=provider, sleep=lambda s: None) as client:
        job_id = client.start_job(delay=0)
        for _ in range(WARM_UP):
            client.wait_for_completion(job_id)
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(waits):
            client.wait_for_completion(job_id)
        if provider is not None:
            provider.force_flush()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    if provider is not None:
        provider.shutdown()
    loaded = any(name.startswith("opentelemetry") and module is not None
                 for name, module in sys.modules.items())
    return {"setting": setting, "waits": waits, "cpu_us_per_wait": cpu / waits * 1e6,
            "wall_us_per_wait": wall / waits * 1e6, "opentelemetry_loaded": loaded}


if __name__ == "__main__":
    print(json.dumps(measure(sys.argv[1], sys.argv[2], int(sys.argv[3]))))
