"""verify_webhook: genuine deliveries give their JobStatus; forged, stale and malformed ones a typed
error. Deliveries are signed here with the standardwebhooks library, as the server signs them."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook

import vtwait.core as client
from vtwait import (
    DEFAULT_WEBHOOK_TOLERANCE,
    JobResult,
    VideoTranslationError,
    WebhookVerificationError,
    verify_webhook,
)

SECRET = "whsec_" + base64.b64encode(b"a test secret of 32 bytes, ok!!!").decode()
OTHER_SECRET = "whsec_" + base64.b64encode(b"another secret, equally long!!!!").decode()
NOW = 1_700_000_000
DOCUMENT = {"job_id": "abc123", "result": "completed", "phase": "completed", "progress": 1.0,
            "created_at": NOW - 9.0, "started_at": NOW - 8.0, "finished_at": NOW - 1.0,
            "callback_id": "order-7"}


def delivery(document=DOCUMENT, *, secret=SECRET, timestamp=NOW, msg_id="msg_1",
             body: bytes | None = None) -> tuple[bytes, dict[str, str]]:
    """A delivery as the server sends it: the body and its three signed headers."""
    body = json.dumps(document).encode() if body is None else body
    signature = Webhook(secret).sign(msg_id, datetime.fromtimestamp(timestamp, tz=UTC),
                                     body.decode())
    return body, {"webhook-id": msg_id, "webhook-timestamp": str(timestamp),
                  "webhook-signature": signature}


def test_a_genuine_delivery_gives_its_status():
    """Signed with the secret, on time: the JobStatus in the body, with its phase fields."""
    body, headers = delivery()
    status = verify_webhook(body, headers, SECRET, now=NOW + 2)
    assert (status.job_id, status.result, status.phase, status.started_at) == \
        ("abc123", JobResult.COMPLETED, "completed", NOW - 8.0)
    assert status.raw["callback_id"] == "order-7"


def test_header_names_in_any_case_text_bodies_and_rotated_secrets_are_accepted():
    """Header names in any case, a str body, and a signature list (secret rotation) all work."""
    body, headers = delivery()
    old = delivery(secret=OTHER_SECRET)[1]["webhook-signature"]
    shouty = {name.upper(): value for name, value in headers.items()}
    shouty["WEBHOOK-SIGNATURE"] = f"v2,whatever {old} {headers['webhook-signature']}"
    assert verify_webhook(body.decode(), shouty, SECRET, now=NOW).done


def test_a_cancelled_job_in_an_event_envelope_reads_as_a_final_error():
    """{"type": ..., "data": {document}} is unwrapped; phase canceled is a final error."""
    document = {"type": "job.canceled", "data": {"job_id": "j9", "result": "error",
                                                 "phase": "canceled", "error": "cancelled"}}
    body, headers = delivery(document)
    status = verify_webhook(body, headers, SECRET, now=NOW)
    assert status.result is JobResult.ERROR and status.phase == "canceled" and status.done


@pytest.mark.parametrize("tamper", [
    lambda body, headers: (body.replace(b"completed", b"error    "), headers),  # body changed
    lambda body, headers: (body, {**headers, "webhook-id": "msg_2"}),  # id changed
    lambda body, headers: (body, {**headers, "webhook-timestamp": str(NOW + 1)}),  # time changed
    lambda body, headers: delivery(secret=OTHER_SECRET),  # another secret
    lambda body, headers: (body, {**headers, "webhook-signature":
                                  "v1," + base64.b64encode(b"x" * 32).decode()}),
])
def test_a_forged_delivery_is_refused(tamper):
    """Any change to the body, id or timestamp, or another secret: reason 'forged'."""
    body, headers = tamper(*delivery())
    with pytest.raises(WebhookVerificationError) as caught:
        verify_webhook(body, headers, SECRET, now=NOW)
    assert caught.value.reason == "forged" and "no signature matches" in str(caught.value)


@pytest.mark.parametrize("age,tolerance,ok", [
    (299, None, True), (-299, None, True), (301, None, False), (-301, None, False),
    (600, 900.0, True), (31, 30.0, False), (0, 0.0, True),
])
def test_a_stale_delivery_is_refused_and_the_tolerance_is_settable(age, tolerance, ok):
    """The timestamp must be within the tolerance of our clock, either way (default 5 min)."""
    body, headers = delivery(timestamp=NOW - age)
    if ok:
        assert verify_webhook(body, headers, SECRET, tolerance=tolerance, now=NOW).done
        return
    with pytest.raises(WebhookVerificationError) as caught:
        verify_webhook(body, headers, SECRET, tolerance=tolerance, now=NOW)
    assert caught.value.reason == "stale" and "tolerance" in str(caught.value)
    assert DEFAULT_WEBHOOK_TOLERANCE == 300.0


@pytest.mark.parametrize("change,named", [
    (lambda h: {k: v for k, v in h.items() if k != "webhook-id"}, "missing header webhook-id"),
    (lambda h: {}, "webhook-timestamp, webhook-signature"),
    (lambda h: {**h, "webhook-timestamp": "yesterday"}, "not Unix seconds"),
    (lambda h: {**h, "webhook-timestamp": "1.7e9"}, "not Unix seconds"),
    (lambda h: {**h, "webhook-signature": "garbage"}, "no 'v1,<base64>' entry"),
    (lambda h: {**h, "webhook-signature": "v1,@@@not-base64@@@"}, "no 'v1,<base64>' entry"),
])
def test_malformed_headers_are_refused(change, named):
    """Missing or unreadable headers: reason 'malformed', naming what is wrong."""
    body, headers = delivery()
    with pytest.raises(WebhookVerificationError) as caught:
        verify_webhook(body, change(headers), SECRET, now=NOW)
    assert caught.value.reason == "malformed" and named in str(caught.value)


@pytest.mark.parametrize("body,named", [
    (b"not json", "not JSON"),
    (b'{"job_id": "j1"}', "has no job state"),
    (b"\xff\xfe", "not UTF-8"),
    (b"[" * 100_000, "not JSON"),
])
def test_a_genuinely_signed_body_without_a_status_is_malformed(body, named):
    """Signed but unreadable: reason 'malformed'; the body is only parsed once authenticated."""
    if body == b"\xff\xfe":
        headers = delivery()[1]  # the signature cannot even be computed over non-UTF-8
    else:
        body, headers = delivery(body=body)
    with pytest.raises(WebhookVerificationError) as caught:
        verify_webhook(body, headers, SECRET, now=NOW)
    assert caught.value.reason == "malformed" and named in str(caught.value)


def test_the_error_is_part_of_the_clients_one_tree():
    """WebhookVerificationError is a VideoTranslationError and a ValueError, re-exported."""
    assert issubclass(WebhookVerificationError, VideoTranslationError)
    assert issubclass(WebhookVerificationError, ValueError)
    assert client.verify_webhook is verify_webhook


@pytest.mark.parametrize("secret", ["", "whsec_", "whsec_***"])
def test_an_unusable_secret_is_a_plain_value_error(secret):
    """The secret is the receiver's configuration: a ValueError that says what form it takes."""
    body, headers = delivery()
    with pytest.raises(ValueError, match="whsec_") as caught:
        verify_webhook(body, headers, secret, now=NOW)
    assert not isinstance(caught.value, WebhookVerificationError)


def test_the_default_clock_is_the_wall_clock():
    """now=None checks against time.time(): a delivery signed now passes, an old one does not."""
    body, headers = delivery(timestamp=int(datetime.now(tz=UTC).timestamp()))
    assert verify_webhook(body, headers, SECRET).done
    body, headers = delivery(timestamp=NOW - 10_000)
    with pytest.raises(WebhookVerificationError, match="stale"):
        verify_webhook(body, headers, SECRET)
