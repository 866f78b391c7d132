"""Job deadlines asked by ``POST /start``: the ``Cancel-After`` header or the ``cancel_after`` key.

A deadline counts from the start request, queue time included; a job that has not ended by then
is cancelled by the store (``phase: "canceled"``, ``cancel_reason: "deadline"``), and its
waiters, event streams and webhooks learn of it as of any cancel. The header is for clients that
can set headers, the body key for those that cannot; with both, the earlier deadline wins::

    seconds = requested_cancel_after(request.headers.get("Cancel-After"), raw_body)

All durations are in seconds.
"""

from __future__ import annotations

import json
import re

from vtwait.server.errors import ApiError

__all__ = ["CANCEL_AFTER_KEY", "MAX_CANCEL_AFTER", "refuse_key", "requested_cancel_after"]

#: Longest deadline accepted: seven days (a job's own delay is at most one day).
MAX_CANCEL_AFTER = 7 * 86400.0
#: The start body's key for the deadline.
CANCEL_AFTER_KEY = "cancel_after"

# A JSON-style number: no sign, "_", "inf" or "nan" (float() takes them all); an exponent is
# allowed, as generic HTTP clients write small and large numbers that way (1e-05).
_SECONDS_RE = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]{1,4})?")


def requested_cancel_after(header: str | None, raw_body: bytes) -> float | None:
    """The deadline a start request asks for, in seconds from now; None for none.

    Args:
        header: the ``Cancel-After`` header's value, if sent.
        raw_body: the start request's body (JSON object or empty); its other keys are checked by
            the start route.

    Raises:
        ApiError: 400 naming ``Cancel-After`` or ``cancel_after``: not a positive finite number of
            seconds, or above :data:`MAX_CANCEL_AFTER`.
    """
    found = []
    if header is not None:
        text = header.strip()
        seconds = float(text) if _SECONDS_RE.fullmatch(text) else -1.0
        found.append(_checked(seconds, "Cancel-After"))
    if CANCEL_AFTER_KEY.encode() in raw_body:  # the body is parsed again only when it may say so
        value = _body_value(raw_body)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ApiError(400, "bad_request", f"{CANCEL_AFTER_KEY} must be a number")
            found.append(_checked(value, CANCEL_AFTER_KEY))
    return min(found, default=None)


def refuse_key(raw_body: bytes) -> None:
    """What a server without deadlines (``PLAIN``) does with the body key: refuses it, as an
    unknown key (the header it ignores, as any unknown header).

    Raises:
        ApiError: 400, the body has a ``cancel_after`` key.
    """
    if CANCEL_AFTER_KEY.encode() in raw_body and _body_value(raw_body, present=True) is not None:
        raise ApiError(400, "bad_request", f"unknown keys in body: {CANCEL_AFTER_KEY}")


def _body_value(raw_body: bytes, *, present: bool = False) -> object:
    """The body's ``cancel_after`` (None when absent or null); with ``present``, True when the
    key is there at all."""
    try:
        body = json.loads(raw_body)
    except (ValueError, RecursionError):
        return None  # the start route answers the malformed body
    if not isinstance(body, dict):
        return None
    if present:
        return True if CANCEL_AFTER_KEY in body else None
    return body.get(CANCEL_AFTER_KEY)


def _checked(seconds: float, where: str) -> float:
    # Comparisons, not math.isfinite(): exact for ints of any size, false for NaN and infinities.
    if not 0 < seconds <= MAX_CANCEL_AFTER:
        raise ApiError(400, "bad_request",
                       f"{where} must be a number of seconds in (0, {MAX_CANCEL_AFTER:g}]")
    return float(seconds)
