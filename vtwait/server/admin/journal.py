"""The request journal: the last ``JOURNAL_SIZE`` requests this process answered, secrets redacted.

Each entry is what a test asserts on ("at most 2 status requests per job, no 429"): method, path
(without the query string, which may carry an output URL's signature), route name, job id,
status (0 for a dropped connection), duration and the request headers. Headers that carry
credentials (``Authorization``, ``Proxy-Authorization``, ``X-Api-Key``, ``Cookie``, and any
name with token, secret, password, session, signature or key in it but ``Idempotency-Key``)
keep only their scheme word (``Basic [redacted]``); any header whose value contains one of the
server's own secrets is redacted whole, whatever its name. The journal lives in this process: with
several gunicorn workers each keeps its own (see docs/testing-your-client.md)::

    journal = Journal(1000, secrets=["s3cret"])
    journal.record(method="GET", path="/status/abc", route="status", job_id="abc", status=200,
                   duration_ms=1.2, headers=request.headers, at=time.time())
    journal.query(route="status", job_id="abc")   # oldest first
"""

from __future__ import annotations

import collections
import itertools
import re
import threading
from collections.abc import Iterable
from typing import Any

__all__ = ["MAX_HEADER_VALUE", "MAX_HEADERS", "REDACTED", "Journal", "redact_headers"]

#: What replaces a secret.
REDACTED = "[redacted]"
#: Most headers kept per entry, and longest value kept (hostile requests stay small entries).
MAX_HEADERS = 50
MAX_HEADER_VALUE = 512

_SECRET_NAME_RE = re.compile(
    r"authorization|cookie|token|secret|passw|session|signature|api[-_]?key|credential", re.I)
_NOT_SECRET = frozenset({"idempotency-key"})


def redact_headers(headers: Iterable[tuple[str, str]], secrets: Iterable[str]) -> dict[str, str]:
    """The headers as a dict, with every credential replaced (see the module's docstring)."""
    known = [secret for secret in secrets if secret]
    kept: dict[str, str] = {}
    for name, value in headers:
        if len(kept) >= MAX_HEADERS:
            break
        if name.lower() not in _NOT_SECRET and _SECRET_NAME_RE.search(name):
            scheme = value.strip().partition(" ")
            # "Basic xyz" keeps "Basic": which scheme a client sent is what a test checks.
            value = f"{scheme[0]} {REDACTED}" if scheme[1] and scheme[0].isalpha() else REDACTED
        elif any(secret in value for secret in known):
            value = REDACTED
        kept[name] = value[:MAX_HEADER_VALUE]
    return kept


class Journal:
    """A bounded ring of request entries, safe to share between request threads.

    Args:
        size: most entries kept; the oldest go first.
        secrets: values redacted wherever they appear in a header.
    """

    def __init__(self, size: int, secrets: Iterable[str] = ()) -> None:
        self._entries: collections.deque[dict[str, Any]] = collections.deque(maxlen=size)
        self._secrets = tuple(secret for secret in secrets if secret)
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def record(self, *, method: str, path: str, route: str | None, job_id: str | None,
               status: int, duration_ms: float, headers: Iterable[tuple[str, str]],
               at: float) -> None:
        entry = {"method": method, "path": path, "route": route, "job_id": job_id,
                 "status": status, "duration_ms": round(duration_ms, 3),
                 "headers": redact_headers(headers, self._secrets)}
        with self._lock:
            self._entries.append({"id": next(self._ids), "time": at, **entry})

    def query(self, *, route: str | None = None, method: str | None = None,
              job_id: str | None = None, status: int | None = None, since: float | None = None,
              limit: int | None = None) -> list[dict[str, Any]]:
        """The entries that match every filter given, oldest first; the last ``limit`` of them."""
        with self._lock:
            entries = list(self._entries)
        found = [entry for entry in entries
                 if (route is None or entry["route"] == route)
                 and (method is None or entry["method"] == method)
                 and (job_id is None or entry["job_id"] == job_id)
                 and (status is None or entry["status"] == status)
                 and (since is None or entry["time"] >= since)]
        return found if limit is None else found[-limit:]  # limit is at least 1

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
