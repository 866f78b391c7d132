"""Unknown keys in a start body: ignored and logged once per key, or a 400 with ``STRICT_BODY``.

Clients written for other services send keys this API does not know (``processing_duration``,
``job_id``, ``role``...). By default they are ignored, and the first request that sends a given key
logs one warning with its request id, so the server log says what was dropped without repeating
itself. ``STRICT_BODY=1`` answers 400 instead, for clients that want their typos caught. Known
keys are validated strictly either way (``routes.py``)::

    check_unknown_keys(body, KNOWN_KEYS)   # in a view, on the parsed JSON object
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

from flask import current_app

from vtwait.server.errors import ApiError
from vtwait.server.request_ids import request_id
from vtwait.server.state import current_state

__all__ = ["MAX_LOGGED_KEYS", "UnknownKeys", "check_unknown_keys"]

logger = logging.getLogger(__name__)

#: Most distinct unknown keys remembered (and logged) per app: a client sending a new key with
#: every request must not grow the set, or the log, without end.
MAX_LOGGED_KEYS = 1000
# Longest key quoted in a log line.
_MAX_KEY_SHOWN = 100
_EXTENSION_KEY = "vtwait.unknown_keys"


class UnknownKeys:
    """The unknown keys one app has logged already."""

    def __init__(self, strict: bool) -> None:
        self.strict = strict
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def check(self, keys: Iterable[str], known: Iterable[str]) -> list[str]:
        """Refuses (strict) or logs the first time each of ``keys`` not in ``known``.

        Returns:
            The unknown keys, sorted (ignored by the caller).

        Raises:
            ApiError: 400 ``bad_request`` naming them, when strict.
        """
        unknown = sorted(set(keys) - set(known))
        if not unknown:
            return unknown
        if self.strict:
            raise ApiError(400, "bad_request", f"unknown keys in body: {', '.join(unknown)}"[:500])
        with self._lock:
            new = [key for key in unknown if key not in self._seen]
            new = new[:max(0, MAX_LOGGED_KEYS - len(self._seen))]
            self._seen.update(new)
        for key in new:
            logger.warning("request %s: ignoring unknown key %r in a start body (logged once per "
                           "key; STRICT_BODY=1 refuses it)", request_id(), key[:_MAX_KEY_SHOWN])
        return unknown


def check_unknown_keys(keys: Iterable[str], known: Iterable[str]) -> list[str]:
    """:meth:`UnknownKeys.check` with the current app's record (made on first use)."""
    record = current_app.extensions.get(_EXTENSION_KEY)
    if record is None:  # dict.setdefault is atomic: two first requests share one record
        record = current_app.extensions.setdefault(
            _EXTENSION_KEY, UnknownKeys(current_state().settings.strict_body))
    return record.check(keys, known)
