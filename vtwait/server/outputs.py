"""Job outputs: each completed job's artifact, behind a signed, expiring URL (``GET /outputs``).

A completed job's status document carries ``output``: ``{"url", "expires_at", "content_type",
"size", "sha256"}``. The URL is ``/outputs/<job_id>?expires=<unix s>&signature=<hex>``, the
signature an HMAC-SHA256 over ``<job_id>.<expires>`` with the server's key (``OUTPUT_SECRET``, or
else a random key the job store shares between every process: see
:meth:`~vtwait.server.stores.base.JobStore.shared_secret`), so it needs no API credentials, like a
presigned object-store URL; each status read gives a fresh one, valid ``OUTPUT_TTL`` seconds::

    outputs = Outputs(settings, secret, wall_clock=time.time)
    outputs.attach(doc, "http://127.0.0.1:8000/")   # adds doc["output"] to a completed job's doc
    app.register_blueprint(outputs_api)             # GET|HEAD /outputs/<job_id>

The artifact is ``OUTPUT_SIZE`` bytes, served as ``application/octet-stream`` (it is not a real
video) in 64 KiB chunks generated as they are sent, never held whole: a body of blocks that
depends only on the size (each 64 KiB block is a fixed random pattern stamped with its index, so
a byte served at the wrong offset changes the checksum), then a 64-byte tail derived from the job
id. The SHA-256 of the body is computed once per process and size (when the app is built, up
to :data:`EAGER_HASH_LIMIT`); each job's digest is that state copied and fed its tail: O(1) per
status read however large the output, and nothing to store with the job.

Downloads support ``HEAD``, one ``Range`` (206, or 416 with ``Content-Range: bytes */size``),
a strong ``ETag`` (the digest) and ``If-Range``. Faults: ``FAULT_OUTPUT_LATE`` hides the output
for that many seconds after ``finished_at`` (the race real services have); ``FAULT_OUTPUT_DROP``
drops the connection after that many bytes of a download, once per job and process. All
durations are in seconds.
"""

from __future__ import annotations

import collections
import functools
import hashlib
import hmac
import logging
import math
import random
import re
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

from flask import Blueprint, Response, g, request

from vtwait.server.errors import ApiError
from vtwait.server.settings import Settings
from vtwait.server.state import current_state
from vtwait.server.stores.base import JOB_ID_RE

__all__ = ["BLOCK", "CONTENT_TYPE", "EAGER_HASH_LIMIT", "TAIL", "Outputs", "artifact_chunks",
           "outputs_api"]

logger = logging.getLogger(__name__)

#: The artifact's media type: bytes, honestly labelled.
CONTENT_TYPE = "application/octet-stream"
#: Size of a body block, and of the chunks a download is sent in.
BLOCK = 64 * 1024
#: Bytes of the job-specific tail (the whole artifact when it is shorter).
TAIL = 64
#: Largest body hashed when the app is built; a larger one is hashed at the first status read
#: of a completed job (once per process), so a server of a 16 GiB OUTPUT_SIZE starts at once.
EAGER_HASH_LIMIT = 256 * 1024 * 1024
#: Jobs remembered as already dropped by FAULT_OUTPUT_DROP (oldest forgotten first).
_DROPPED_MEMORY = 100_000

_BASE_BLOCK = random.Random("vtwait-output-block").randbytes(BLOCK)
_EXPIRES_RE = re.compile(r"[0-9]{1,12}")
_SIGNATURE_RE = re.compile(r"[0-9a-f]{64}")
# At most 19 digits a bound (int() refuses over 4,300, and no artifact is 10**19 bytes): a
# longer one makes the header malformed, and a malformed Range is ignored.
_RANGE_RE = re.compile(r"bytes=([0-9]{0,19})-([0-9]{0,19})")

outputs_api = Blueprint("outputs", __name__)


def _tail(job_id: str, size: int) -> bytes:
    digest = hashlib.sha256(b"vtwait-output:" + job_id.encode()).digest()
    return (digest * 2)[:min(TAIL, size)]


def _body_block(index: int) -> bytes:
    return index.to_bytes(8, "big") + _BASE_BLOCK[8:]


def artifact_chunks(job_id: str, size: int, start: int = 0, end: int | None = None
                    ) -> Iterator[bytes]:
    """Bytes ``[start, end)`` of the job's artifact of ``size`` bytes, at most BLOCK at a time."""
    end = size if end is None else end
    body = size - min(TAIL, size)
    position = start
    while position < min(end, body):
        index, offset = divmod(position, BLOCK)
        chunk = _body_block(index)[offset:min(BLOCK, end - index * BLOCK, body - index * BLOCK)]
        yield chunk
        position += len(chunk)
    if position < end:
        yield _tail(job_id, size)[position - body:end - body]


@functools.lru_cache(maxsize=4)
def _body_hash(body: int) -> Any:
    """SHA-256 state after the body of ``body`` bytes (the same for every job): computed once."""
    digest = hashlib.sha256()
    full, rest = divmod(body, BLOCK)
    for index in range(full):
        digest.update(_body_block(index))
    if rest:
        digest.update(_body_block(full)[:rest])
    return digest


class Outputs:
    """Describes, signs and checks job outputs for one app.

    Args:
        settings: ``OUTPUT_TTL``, ``OUTPUT_SIZE`` and the output faults.
        secret: the signing key.
        wall_clock: Unix seconds (expiry, and the late-output fault).
    """

    def __init__(self, settings: Settings, secret: bytes, *,
                 wall_clock: Callable[[], float]) -> None:
        self.settings = settings
        self._secret = secret
        self._wall_clock = wall_clock
        self._lock = threading.Lock()
        self._hash_lock = threading.Lock()
        self._dropped: collections.OrderedDict[str, None] = collections.OrderedDict()
        body = settings.output_size - min(TAIL, settings.output_size)
        if body <= EAGER_HASH_LIMIT:
            # Now, at start, not in the first status read after a completion: under gevent a
            # 64 MiB hash (~0.2-0.5 s) would stall every request of the worker.
            _body_hash(body)

    def sha256(self, job_id: str) -> str:
        """The artifact's hex digest: the shared body state copied, fed the job's tail."""
        size = self.settings.output_size
        with self._hash_lock:  # one computation of a big body, not one per waiting request
            digest = _body_hash(size - min(TAIL, size)).copy()
        digest.update(_tail(job_id, size))
        return digest.hexdigest()

    def signature(self, job_id: str, expires: int) -> str:
        """HMAC-SHA256 of ``<job_id>.<expires>`` with the server's key, in hex."""
        return hmac.new(self._secret, f"{job_id}.{expires}".encode(), hashlib.sha256).hexdigest()

    def ready(self, doc: dict[str, Any]) -> bool:
        """Whether the job has an output now: completed, and past the late-output fault."""
        if doc.get("phase") != "completed":
            return False
        late = self.settings.fault_output_late
        return not late or self._wall_clock() >= float(doc["finished_at"]) + late

    def attach(self, doc: dict[str, Any], base_url: str) -> dict[str, Any]:
        """Adds ``output`` to a completed job's document (when the output exists); returns it."""
        if self.ready(doc):
            job_id = doc["job_id"]
            expires = math.ceil(self._wall_clock() + self.settings.output_ttl)
            doc["output"] = {
                "url": f"{base_url.rstrip('/')}/outputs/{job_id}?expires={expires}"
                       f"&signature={self.signature(job_id, expires)}",
                "expires_at": expires,
                "content_type": CONTENT_TYPE,
                "size": self.settings.output_size,
                "sha256": self.sha256(job_id),
            }
        return doc

    def check(self, job_id: str, expires: str | None, signature: str | None) -> None:
        """Checks a download's signature, then its expiry.

        Raises:
            ApiError: 403 ``signature_invalid`` (missing, malformed or wrong) or ``url_expired``.
        """
        if expires is None or signature is None:
            raise ApiError(403, "signature_invalid",
                           "an output URL needs its expires and signature parameters")
        if not _EXPIRES_RE.fullmatch(expires) or not _SIGNATURE_RE.fullmatch(signature):
            raise ApiError(403, "signature_invalid", "malformed expires or signature")
        if not hmac.compare_digest(signature, self.signature(job_id, int(expires))):
            raise ApiError(403, "signature_invalid", "the signature does not match this URL")
        if int(expires) < self._wall_clock():
            raise ApiError(403, "url_expired",
                           "this output URL has expired; read the job's status for a fresh one")

    def take_drop(self, job_id: str) -> bool:
        """Whether this download of the job is the one FAULT_OUTPUT_DROP cuts (once per job)."""
        with self._lock:
            if job_id in self._dropped:
                return False
            self._dropped[job_id] = None
            if len(self._dropped) > _DROPPED_MEMORY:
                self._dropped.popitem(last=False)
            return True


@outputs_api.get("/outputs/<job_id>")
def download(job_id: str) -> Response:
    state = current_state()
    outputs = state.outputs
    if outputs is None:  # PLAIN: the server as it was before outputs
        raise ApiError(404, "not_found", "no such route")
    outputs.check(job_id, request.args.get("expires"), request.args.get("signature"))
    doc = state.store.status(job_id) if JOB_ID_RE.fullmatch(job_id) else None
    if doc is None or not outputs.ready(doc):
        raise ApiError(404, "not_found", f"no output for job {job_id}"[:200])
    size = outputs.settings.output_size
    etag = f'"{outputs.sha256(job_id)}"'
    headers = {"Accept-Ranges": "bytes", "ETag": etag, "Cache-Control": "private, no-transform",
               "Content-Disposition": f'attachment; filename="{job_id}.bin"'}
    start, end, status = 0, size, 200
    wanted = request.headers.get("Range")
    if_range = request.headers.get("If-Range")
    if wanted is not None and (if_range is None or if_range.strip() == etag):
        span = _parse_range(wanted, size)
        if isinstance(span, str):  # unsatisfiable
            raise ApiError(416, "range_not_satisfiable",
                           f"the range is outside the output's {size} bytes",
                           headers={**headers, "Content-Range": f"bytes */{size}"})
        if span is not None:
            start, end = span
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    drop_after = outputs.settings.fault_output_drop
    cut = (request.method == "GET" and drop_after and end - start > drop_after
           and outputs.take_drop(job_id))
    body: Iterator[bytes] = artifact_chunks(job_id, size, start, end)
    if cut:
        logger.warning("fault: dropping the output download of job %s after %d bytes", job_id,
                       drop_after)
        g.dropped = True
        body = _dropped_after(body, drop_after, request.environ)
    response = Response(body, status, mimetype=CONTENT_TYPE, headers=headers)
    response.content_length = end - start
    return response


def _parse_range(header: str, size: int) -> tuple[int, int] | str | None:
    """One ``bytes=`` range as ``[start, end)``; ``"unsatisfiable"``; None to ignore it (RFC 9110:
    a malformed header, or several ranges, is answered with the whole artifact)."""
    match = _RANGE_RE.fullmatch(header.strip())
    if match is None or match.group(1) == match.group(2) == "":
        return None
    first, last = match.group(1), match.group(2)
    if first == "":  # the last N bytes
        length = int(last)
        if length == 0 or size == 0:
            return "unsatisfiable"
        return max(size - length, 0), size
    start = int(first)
    if last != "" and int(last) < start:
        return None
    if start >= size:
        return "unsatisfiable"
    return start, size if last == "" else min(int(last) + 1, size)


def _dropped_after(body: Iterator[bytes], limit: int, environ: dict[str, Any]) -> Iterator[bytes]:
    """The first ``limit`` bytes of ``body``, then the connection is shut (FAULT_OUTPUT_DROP)."""
    sent = 0
    for chunk in body:
        chunk = chunk[:limit - sent]
        yield chunk
        sent += len(chunk)
        if sent >= limit:
            break
    sock = environ.get("gunicorn.socket") or environ.get("werkzeug.socket")
    if sock is not None:  # not served over a socket (the test client): the body is just short
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
