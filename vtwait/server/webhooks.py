"""Webhooks: the final status document POSTed to a job's ``callback_url``, signed.

Usage::

    sender = WebhookSender(secret, max_attempts=5, timeout=5.0, retry_delay=1.0)
    store.add_listener(sender.on_event)   # a job with a callback_url that ends is delivered
    sender.close()                        # at shutdown; undelivered webhooks are logged

A delivery is signed the Standard Webhooks way (https://www.standardwebhooks.com), with the
``standardwebhooks`` library: ``webhook-id`` (``msg_<hex>``, the same on every attempt, so a
receiver can drop duplicates), ``webhook-timestamp`` (Unix seconds of the attempt) and
``webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">``, keyed by
``WEBHOOK_SECRET`` (``whsec_<base64>``). The body is the document as ``GET /status/<id>`` gives
it, compact JSON. A non-2xx answer, a redirect or a failure to answer within ``timeout`` is
retried after ``retry_delay``, then twice that each time, up to ``max_attempts`` attempts in all;
every attempt is logged.

Delivery never blocks a request or the job timer: ``on_event`` only queues (a bounded queue; a
full one drops the webhook with a warning), and a few daemon threads (greenlets under gevent) do
the HTTP. Only hosts in ``WEBHOOK_ALLOWED_HOSTS`` are ever called: ``validate_callback_url``
refuses the others when the job starts. All durations are in seconds.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime
import heapq
import itertools
import json
import logging
import os
import re
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Collection, Mapping
from typing import Any

import requests
import standardwebhooks

from vtwait.server.clock import Clock, SystemClock
from vtwait.server.stores.base import JobEvent

__all__ = [
    "CallbackError",
    "WebhookSender",
    "generate_secret",
    "validate_callback_id",
    "validate_callback_url",
]

logger = logging.getLogger(__name__)

#: Event kinds that end a job, hence trigger its webhook.
FINAL_KINDS = frozenset({"completed", "error", "canceled"})
#: Longest accepted ``callback_url`` and ``callback_id``.
MAX_CALLBACK_URL = 2048
MAX_CALLBACK_ID = 255
#: Most webhooks waiting (for an attempt or a retry) at once; past it new ones are dropped.
DEFAULT_MAX_PENDING = 10_000
#: Deliveries in flight at once: a receiver that never answers holds one for ``timeout``.
DEFAULT_WORKERS = 4
#: Longest wait between two attempts, however many there are.
MAX_RETRY_DELAY = 300.0


@dataclasses.dataclass(frozen=True, slots=True)
class _Delivery:
    """One webhook: where, what, its message id, and which attempt comes next."""

    url: str
    body: str
    msg_id: str
    job_id: str
    attempt: int = 1
    trace_parent: Any = None  # the tracing context this webhook continues (tracing.py), if any


_AUTHORITY_RE = re.compile(r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::(?P<port>[0-9]*))?")
_PORT_RE = re.compile(r"[1-9][0-9]{0,4}")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class CallbackError(ValueError):
    """A ``callback_url`` or ``callback_id`` the server refuses; the message says why."""


def generate_secret() -> str:
    """A fresh ``whsec_`` secret: 32 random bytes, base64."""
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


def validate_callback_url(url: Any, allowed_hosts: Collection[str]) -> str:
    """Checks a ``callback_url``: absolute ``http``/``https``, a host in ``allowed_hosts``.

    Refused: anything but a string of printable ASCII without spaces, up to MAX_CALLBACK_URL
    characters; another scheme; user info (``user@``); a fragment; a host that is not a name, an
    IPv4 address or a bracketed IPv6 address; a port that is not 1-65535 without leading zeros; a
    host not in ``allowed_hosts`` (compared in lower case, IPv6 without brackets).

    Returns:
        The URL, unchanged.

    Raises:
        CallbackError: naming what is wrong (and the ``WEBHOOK_ALLOWED_HOSTS`` setting for a host).
    """
    if not isinstance(url, str):
        raise CallbackError("callback_url must be a string")
    if not 0 < len(url) <= MAX_CALLBACK_URL:
        raise CallbackError(f"callback_url must be 1 to {MAX_CALLBACK_URL} characters")
    if not url.isascii() or not url.isprintable() or " " in url:
        raise CallbackError("callback_url must be printable ASCII without spaces "
                            "(percent-encode the rest)")
    scheme, _, rest = url.partition("://")
    if scheme.lower() not in ("http", "https"):
        raise CallbackError("callback_url must start with http:// or https://")
    if "#" in url:
        raise CallbackError("callback_url must not have a fragment (#...)")
    authority = re.split(r"[/?]", rest, maxsplit=1)[0]
    if "@" in authority:
        raise CallbackError("callback_url must not carry user info (user@host)")
    found = _AUTHORITY_RE.fullmatch(authority)
    if found is None:
        raise CallbackError("callback_url has a malformed host or port")
    port = found.group("port")
    if port is not None and not (_PORT_RE.fullmatch(port) and int(port) <= 65535):
        raise CallbackError("callback_url's port must be 1 to 65535")
    host = found.group("host").lower().removeprefix("[").removesuffix("]")
    if host not in allowed_hosts:
        raise CallbackError(
            f"callback_url host {host!r} is not allowed; this server only calls the hosts in "
            f"WEBHOOK_ALLOWED_HOSTS ({', '.join(sorted(allowed_hosts))})")
    return url


def validate_callback_id(value: Any) -> str:
    """Checks a ``callback_id``: a string of 1 to MAX_CALLBACK_ID characters, no control ones.

    Raises:
        CallbackError: it is not one.
    """
    if not isinstance(value, str) or not 0 < len(value) <= MAX_CALLBACK_ID \
            or _CONTROL_RE.search(value):
        raise CallbackError(f"callback_id must be 1 to {MAX_CALLBACK_ID} characters, "
                            "none of them control characters")
    return value


class WebhookSender:
    """Delivers final status documents to their ``callback_url`` in the background.

    Args:
        secret: the ``whsec_`` signing key.
        max_attempts: attempts per webhook, the first included (at least 1).
        timeout: each attempt's connect and read time limit.
        retry_delay: the wait before the first retry; each later one doubles, up to
            MAX_RETRY_DELAY.
        max_pending: most webhooks waiting at once.
        workers: most attempts in flight at once (0 queues without ever sending).
        clock: monotonic seconds, for scheduling retries.
        timebase: what the workers wait on between retries (real time by default). A virtual
            one waits for attempts due or in flight before it moves on, so each retry counts
            from its attempt's virtual time.

    Raises:
        ValueError: the secret is not a usable key.
    """

    def __init__(
        self,
        secret: str,
        *,
        max_attempts: int,
        timeout: float,
        retry_delay: float,
        max_pending: int = DEFAULT_MAX_PENDING,
        workers: int = DEFAULT_WORKERS,
        clock: Callable[[], float] = time.monotonic,
        timebase: Clock | None = None,
    ) -> None:
        try:
            self._signer = standardwebhooks.Webhook(secret)
        except Exception as exc:  # the library raises a few kinds; never echo the secret
            raise ValueError("the webhook secret is not whsec_<base64>") from exc
        self.max_attempts = max_attempts
        self.timeout = timeout
        self.retry_delay = retry_delay
        self._max_pending = max_pending
        self._workers = workers
        self._clock = clock
        self._cond = threading.Condition(threading.Lock())
        self._due: list[tuple[float, int, _Delivery]] = []  # heap by next attempt time
        self._seq = itertools.count()
        self._in_flight = 0
        self._threads: list[threading.Thread] = []
        self._closed = False
        self._timebase = SystemClock() if timebase is None else timebase
        self._timebase.add_busy(self._busy)
        #: Traces each attempt when set (``tracing.ServerTracing``: ``parent_of``, ``attempt``).
        self.tracing: Any = None

    def on_event(self, event: JobEvent) -> None:
        """Store listener: queues the webhook of a job that ended with a ``callback_url``."""
        url = event.doc.get("callback_url")
        if event.kind in FINAL_KINDS and isinstance(url, str):
            self.submit(url, event.doc)

    def submit(self, url: str, doc: Mapping[str, Any]) -> bool:
        """Queues ``doc`` for delivery to ``url``; returns ``False`` if it was dropped."""
        job_id = str(doc.get("job_id"))
        tracing = self.tracing
        delivery = _Delivery(url, json.dumps(doc, separators=(",", ":")),
                             f"msg_{uuid.uuid4().hex}", job_id,
                             trace_parent=None if tracing is None else tracing.parent_of(job_id))
        with self._cond:
            if self._closed or len(self._due) + self._in_flight >= self._max_pending:
                logger.warning("webhook %s for job %s dropped: %s", delivery.msg_id,
                               delivery.job_id, "sender closed" if self._closed
                               else f"{self._max_pending} webhooks pending already")
                return False
            heapq.heappush(self._due, (self._clock(), next(self._seq), delivery))
            if not self._threads:  # started on first use: most servers never send one
                for n in range(self._workers):
                    thread = threading.Thread(target=self._run, name=f"webhook-{n}", daemon=True)
                    self._threads.append(thread)
                    thread.start()
            self._cond.notify()
        return True

    @property
    def pending(self) -> int:
        """Webhooks not yet delivered or given up: waiting, or in an attempt right now."""
        with self._cond:
            return len(self._due) + self._in_flight

    def close(self, timeout: float = 5.0) -> None:
        """Stops the workers (an attempt in flight may finish); logs what is left undelivered."""
        with self._cond:
            self._closed = True
            left = len(self._due)
            self._due.clear()
            self._cond.notify_all()
            threads, self._threads = self._threads, []
        if left:
            logger.warning("%d webhooks left undelivered at shutdown", left)
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(timeout)

    # internals

    def _run(self) -> None:
        session = requests.Session()
        session.trust_env = False  # no proxy from the environment: only the allowed host is called
        try:
            while (delivery := self._next()) is not None:
                delivered = False
                try:
                    delivered = self._attempt(session, delivery)
                finally:
                    self._done(delivery, delivered)
        finally:
            session.close()

    def _next(self) -> _Delivery | None:
        with self._cond:
            while not self._closed:
                now = self._clock()
                if self._due and self._due[0][0] <= now:
                    self._in_flight += 1
                    return heapq.heappop(self._due)[2]
                self._timebase.wait_for(self._cond, self._due[0][0] - now if self._due else None)
            return None

    def _busy(self) -> bool:
        """Whether an attempt is due now or in flight (a virtual clock waits for those)."""
        with self._cond:
            return not self._closed and (
                self._in_flight > 0 or bool(self._due) and self._due[0][0] <= self._clock())

    def _done(self, delivery: _Delivery, delivered: bool) -> None:
        with self._cond:
            self._in_flight -= 1
            if delivered or self._closed:
                return
            if delivery.attempt >= self.max_attempts:
                logger.warning("webhook %s for job %s to %s: gave up after %d attempts",
                               delivery.msg_id, delivery.job_id, _shown(delivery.url),
                               delivery.attempt)
                return
            delay = min(self.retry_delay * 2 ** (delivery.attempt - 1), MAX_RETRY_DELAY)
            retry = dataclasses.replace(delivery, attempt=delivery.attempt + 1)
            heapq.heappush(self._due, (self._clock() + delay, next(self._seq), retry))
            self._cond.notify()

    def _attempt(self, session: requests.Session, delivery: _Delivery) -> bool:
        timestamp = datetime.datetime.now(datetime.UTC)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "video-translation-simulator-webhooks",
            "webhook-id": delivery.msg_id,
            "webhook-timestamp": str(int(timestamp.timestamp())),
            "webhook-signature": self._signer.sign(delivery.msg_id, timestamp, delivery.body),
        }
        where = (f"webhook {delivery.msg_id} for job {delivery.job_id} to "
                 f"{_shown(delivery.url)}, attempt {delivery.attempt}/{self.max_attempts}")
        tracing = self.tracing
        with (contextlib.nullcontext(None) if tracing is None else
              tracing.attempt(delivery.trace_parent, delivery.url, headers, delivery.attempt)) as record:
            try:
                answer = session.post(delivery.url, data=delivery.body.encode(), headers=headers,
                                      timeout=self.timeout, allow_redirects=False)
            except requests.RequestException as exc:
                logger.warning("%s: failed (%s)", where, type(exc).__name__)
                if record is not None:
                    record(None, exc)
                return False
            answer.close()
            if record is not None:
                record(answer.status_code, None)
        if 200 <= answer.status_code < 300:
            logger.info("%s: delivered (%d)", where, answer.status_code)
            return True
        logger.warning("%s: answered %d", where, answer.status_code)
        return False


def _shown(url: str) -> str:
    """The URL as logged: without its query, which may carry a token."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
