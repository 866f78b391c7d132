"""The server's log lines as text (the default) or as one JSON object per line (``LOG_FORMAT``):
the formatter shared with the client's ``--log-format json``, :mod:`vtwait.observability.logformat`.
"""

from vtwait.observability.logformat import LOG_FORMATS, TEXT_FORMAT, JsonFormatter, formatter_for

__all__ = ["LOG_FORMATS", "TEXT_FORMAT", "JsonFormatter", "formatter_for"]
