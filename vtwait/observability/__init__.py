"""What the client and the server share to be observed: the OpenTelemetry configuration from the
``OTEL_*`` variables (``otel.py``) and the JSON log lines carrying trace and span ids
(``logformat.py``). Neither imports OpenTelemetry unless tracing is configured."""
