"""Replicate: the HTTP API's predictions.

``POST /v1/predictions`` answers ``201`` (``Location``: the prediction's URL) with a prediction
``{"id", "status", "urls": {"get", "cancel"}, "input", "output", "error", "logs", "metrics",
"created_at", "started_at", "completed_at"}``; ``status`` is ``starting | processing |
succeeded | failed | canceled``. With ``Prefer: wait`` (or ``wait=N``, 1 to 60 s; capped by
MAX_WAIT) the create request is held until the prediction ends or the time passes (Replicate's
sync mode): the one long-poll this dialect has.
``GET /v1/predictions/<id>`` answers the prediction; ``POST /v1/predictions/<id>/cancel`` cancels
it (``200`` with the prediction, whatever its state). Errors are problem details ``{"title",
"detail", "status"}``. Credentials: ``Authorization: Bearer``.

The native start keys (``delay``, ``outcome``, ``callback_url``...) are read from ``input`` (or the
top level); ``version``, ``model``, ``webhook`` and the other documented create keys are accepted
and ignored.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, Response, request, url_for

import vtwait.server.routes as native
from vtwait.server.dialects.base import (
    Dialect,
    JobDocument,
    call_native,
    hold,
    iso_time,
    job_document,
    json_answer,
    output_url,
    read_object,
)
from vtwait.server.errors import ApiError
from vtwait.server.stores.base import JobPhase

__all__ = ["MAX_PREFER_WAIT", "STATUS_WORDS", "ReplicateDialect", "blueprint"]

blueprint = Blueprint("replicate", __name__)

STATUS_WORDS = {
    JobPhase.QUEUED: "starting",
    JobPhase.RUNNING: "processing",
    JobPhase.COMPLETED: "succeeded",
    JobPhase.ERROR: "failed",
    JobPhase.CANCELED: "canceled",
}
#: Longest ``Prefer: wait`` (and the wait of a bare ``Prefer: wait``), as Replicate documents.
MAX_PREFER_WAIT = 60
#: Create keys of Replicate's own, accepted and not used by the simulator.
CREATE_KEYS = frozenset({"version", "model", "input", "webhook", "webhook_events_filter", "stream"})
MODEL = "vtwait/video-translation"
_PREFER_WAIT_RE = re.compile(r"(?:^|[,\s])wait(?:=([0-9]+))?(?:$|[,;\s])", re.IGNORECASE)


class ReplicateDialect(Dialect):
    name = "replicate"
    blueprint = blueprint
    route_names = {"create_prediction": "start", "get_prediction": "status", "cancel_prediction": "cancel"}
    challenge = 'Bearer realm="video-translation"'
    error_mimetype = "application/problem+json"

    def error_body(self, status: int, code: str, message: str) -> Any:
        return {"title": code.replace("_", " ").capitalize(), "detail": message, "status": status}


def prediction(doc: JobDocument, input_: dict[str, Any] | None = None) -> dict[str, Any]:
    """The prediction of a native job document."""
    phase = JobPhase(doc["phase"])
    job_id = doc["job_id"]
    started, finished = doc.get("started_at"), doc.get("finished_at")
    metrics = {}
    if started is not None and finished is not None:
        metrics["predict_time"] = round(finished - started, 6)
    return {
        "id": job_id,
        "model": MODEL,
        "version": "native",
        "input": input_ or {},
        "logs": "",
        "output": output_url(doc) if phase is JobPhase.COMPLETED else None,
        "data_removed": False,
        "error": doc.get("error") if phase is JobPhase.ERROR else None,
        "status": STATUS_WORDS[phase],
        "created_at": iso_time(doc["created_at"]),
        "started_at": iso_time(started),
        "completed_at": iso_time(finished),
        "urls": {
            "get": url_for("replicate.get_prediction", job_id=job_id, _external=True),
            "cancel": url_for("replicate.cancel_prediction", job_id=job_id, _external=True),
        },
        "metrics": metrics,
    }


def _prefer_wait() -> float | None:
    """Seconds asked by ``Prefer: wait`` / ``wait=N`` (a bare ``wait`` is the most), or None."""
    for header in request.headers.getlist("Prefer"):
        match = _PREFER_WAIT_RE.search(header)
        if match:
            seconds = int(match.group(1)) if match.group(1) else MAX_PREFER_WAIT
            if not 1 <= seconds <= MAX_PREFER_WAIT:
                raise ApiError(400, "bad_request",
                               f"Prefer: wait must be between 1 and {MAX_PREFER_WAIT} seconds")
            return float(seconds)
    return None


@blueprint.post("/v1/predictions")
def create_prediction() -> Response:
    wait = _prefer_wait()  # read before call_native removes the header
    body = read_object()
    input_ = body.get("input")
    if input_ is not None and not isinstance(input_, dict):
        raise ApiError(400, "bad_request", "input must be a JSON object")
    native_body = {**{k: v for k, v in body.items() if k not in CREATE_KEYS}, **(input_ or {})}
    answer = call_native(native.start, body=native_body)
    doc = job_document(answer)
    if doc is None:
        return answer
    if wait is not None:
        doc = hold(doc, wait)
    body = prediction(doc, input_)
    # The docs name both: "the URL provided in the Location header, or the urls.get field".
    return json_answer(body, 201, {"Location": body["urls"]["get"]})


def _answer(native_answer: Response) -> Response:
    doc = job_document(native_answer)
    if doc is None:
        return native_answer
    return json_answer(prediction(doc), 200)


@blueprint.get("/v1/predictions/<job_id>")
def get_prediction(job_id: str) -> Response:
    return _answer(call_native(native._status, job_id))


@blueprint.post("/v1/predictions/<job_id>/cancel")
def cancel_prediction(job_id: str) -> Response:
    return _answer(call_native(native.cancel_job, job_id))
