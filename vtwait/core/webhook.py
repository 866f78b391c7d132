"""Check a webhook delivery signed the Standard Webhooks way, and read the job status in it.

    from vtwait.client.sync import WebhookVerificationError, verify_webhook
    try:
        status = verify_webhook(request.get_data(), request.headers, os.environ["WEBHOOK_SECRET"])
    except WebhookVerificationError as exc:       # exc.reason: forged, stale or malformed
        return {"error": str(exc)}, 400

A genuine delivery carries ``webhook-id``, ``webhook-timestamp`` (Unix seconds) and
``webhook-signature`` (``v1,<base64 HMAC-SHA256 of "id.timestamp.body">``, several separated by
spaces while a secret rotates), made with the secret the server was given (``whsec_<base64>``).
The signature is computed by the ``standardwebhooks`` library and compared in constant time; the
timestamp is checked here, so that the tolerance can be set and the clock injected (the library
fixes both). The body is parsed only once it is known to be genuine.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime

from standardwebhooks.webhooks import EmptyWebhookSecretError, Webhook

from vtwait.core.errors import ProtocolError, WebhookVerificationError
from vtwait.core.status import JobStatus, parse_status_document

__all__ = ["DEFAULT_WEBHOOK_TOLERANCE", "WebhookVerificationError", "verify_webhook"]

#: How far a delivery's timestamp may be from our clock, either way (seconds): 5 minutes, as the
#: Standard Webhooks libraries use; it bounds how long a captured delivery can be replayed.
DEFAULT_WEBHOOK_TOLERANCE = 300.0

_TIMESTAMP = re.compile(r"\d{1,12}")


def verify_webhook(body: bytes | str, headers: Mapping[str, str], secret: str | bytes, *,
                   tolerance: float | None = None, now: float | None = None) -> JobStatus:
    """The job status in a genuine webhook delivery; a typed error for any other.

    Args:
        body: The request body exactly as received (bytes, or text decoded as UTF-8).
        headers: The delivery's header fields; names in any case.
        secret: The shared secret, ``whsec_<base64>`` (or the raw key bytes).
        tolerance: Largest distance, in seconds, between the delivery's timestamp and ``now``
            (default ``DEFAULT_WEBHOOK_TOLERANCE``).
        now: Unix time to check the timestamp against (default: the time now).

    Returns:
        The :class:`JobStatus` the body carries (usually final).

    Raises:
        WebhookVerificationError: ``reason`` ``malformed`` (headers missing or unreadable, body
            not a status), ``stale`` (timestamp outside the tolerance) or ``forged`` (no
            signature matches).
        ValueError: the secret itself is unusable (empty, or not base64).
    """
    signer = _signer(secret)
    tolerance = DEFAULT_WEBHOOK_TOLERANCE if tolerance is None else tolerance
    if not tolerance >= 0:
        raise ValueError(f"tolerance must be >= 0 seconds, got {tolerance!r}")
    fields = {str(name).lower(): str(value) for name, value in headers.items()}
    message_id, stamp, signatures = (fields.get(f"webhook-{name}", "").strip()
                                     for name in ("id", "timestamp", "signature"))
    missing = [f"webhook-{name}" for name, value in
               (("id", message_id), ("timestamp", stamp), ("signature", signatures)) if not value]
    if missing:
        raise _error("malformed", f"missing header {', '.join(missing)}")
    if not _TIMESTAMP.fullmatch(stamp):
        raise _error("malformed", f"webhook-timestamp is not Unix seconds: {stamp[:40]!r}")
    skew = int(stamp) - (time.time() if now is None else now)
    if abs(skew) > tolerance:
        raise _error("stale", f"timestamp {'behind' if skew < 0 else 'ahead of'} our clock by "
                              f"{abs(skew):.0f} s (tolerance {tolerance:g} s); a replay, or a "
                              "clock off")
    try:
        text = body if isinstance(body, str) else bytes(body).decode("utf-8")
    except UnicodeDecodeError:
        raise _error("malformed", "body is not UTF-8") from None

    expected = base64.b64decode(signer.sign(
        msg_id=message_id, timestamp=datetime.fromtimestamp(int(stamp), tz=UTC),
        data=text).partition(",")[2])
    offered = [_signature_bytes(entry) for entry in signatures.split()]
    if not any(sig is not None for sig in offered):
        raise _error("malformed", "webhook-signature has no 'v1,<base64>' entry")
    # Every entry is compared (no early exit), each in constant time.
    if not sum(hmac.compare_digest(expected, sig) for sig in offered if sig is not None):
        raise _error("forged", "no signature matches the body and the secret")

    try:
        document = json.loads(text)
        if isinstance(document, Mapping) and isinstance(document.get("data"), Mapping) \
                and not any(k in document for k in ("result", "status", "state")):
            document = document["data"]  # an event envelope: {"type": ..., "data": {...}}
        return parse_status_document(document)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, ProtocolError
        detail = exc if isinstance(exc, ProtocolError) else "body is not JSON"
        raise _error("malformed", f"signed, but no job status in it: {detail}") from exc


def _signer(secret: str | bytes) -> Webhook:
    try:
        return Webhook(secret)
    except (EmptyWebhookSecretError, binascii.Error, ValueError, TypeError) as exc:
        raise ValueError("the webhook secret must be 'whsec_<base64>' (as WEBHOOK_SECRET on the "
                         f"server) or the key bytes: {type(exc).__name__}") from None


def _signature_bytes(entry: str) -> bytes | None:
    version, _, encoded = entry.partition(",")
    if version != "v1" or not encoded:
        return None
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return None


def _error(reason: str, message: str) -> WebhookVerificationError:
    return WebhookVerificationError(f"webhook delivery rejected ({reason}): {message}",
                                    reason=reason)
