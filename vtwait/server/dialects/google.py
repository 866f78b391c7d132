"""Google: long-running operations as AIP-151 defines them (``google.longrunning.Operation``).

``POST /v1/videos:translate`` answers ``200`` with an Operation ``{"name": "operations/<id>",
"metadata": {...}, "done": false}``; ``GET /v1/operations/<id>`` answers the Operation, which ends
``done: true`` with ``response`` (success) or ``error`` (a ``google.rpc.Status``: ``{"code",
"message"}``); ``POST /v1/operations/<id>:cancel`` answers ``{}``, and a cancelled operation ends
with ``error.code`` 1 (``CANCELLED``), as ``Operations.CancelOperation`` says. Progress is in
``metadata.progressPercent``. Errors follow AIP-193: ``{"error": {"code": 404, "message",
"status": "NOT_FOUND"}}``. Credentials: a bearer token, or an API key in ``x-goog-api-key``. No
``Retry-After`` and no long-poll (``Operations.WaitOperation`` is not served over HTTP here).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response

import vtwait.server.routes as native
from vtwait.server.dialects.base import (
    Dialect,
    JobDocument,
    call_native,
    iso_time,
    job_document,
    json_answer,
    output_url,
    percent,
    read_object,
)
from vtwait.server.stores.base import JobPhase

__all__ = ["GoogleDialect", "RPC_CANCELLED", "RPC_UNKNOWN", "blueprint"]

blueprint = Blueprint("google", __name__)

#: ``google.rpc.Code`` of a cancelled operation, and of a job that failed.
RPC_CANCELLED = 1
RPC_UNKNOWN = 2
_TYPE_PREFIX = "type.googleapis.com/vtwait.v1."
# The canonical status name of an HTTP status (AIP-193, google.rpc.Code's HTTP mapping).
_STATUS_NAMES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
                 404: "NOT_FOUND", 409: "ABORTED", 429: "RESOURCE_EXHAUSTED", 499: "CANCELLED",
                 500: "INTERNAL", 501: "UNIMPLEMENTED", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}


class GoogleDialect(Dialect):
    name = "google"
    blueprint = blueprint
    route_names = {"start": "start", "operation": "status", "cancel": "cancel"}
    api_key_headers = ("x-goog-api-key",)
    challenge = 'Bearer realm="video-translation"'

    def error_body(self, status: int, code: str, message: str) -> Any:
        return {"error": {"code": status, "message": message,
                          "status": _STATUS_NAMES.get(status, "UNKNOWN")}}


def operation_of(doc: JobDocument) -> dict[str, Any]:
    """The Operation of a native job document."""
    phase = JobPhase(doc["phase"])
    metadata = {"@type": _TYPE_PREFIX + "TranslateVideoMetadata",
                "createTime": iso_time(doc["created_at"]),
                "startTime": iso_time(doc.get("started_at")),
                "endTime": iso_time(doc.get("finished_at")),
                "progressPercent": percent(doc)}
    operation: dict[str, Any] = {
        "name": f"operations/{doc['job_id']}",
        "metadata": {key: value for key, value in metadata.items() if value is not None},
        "done": doc["result"] != "pending",
    }
    if phase is JobPhase.COMPLETED:
        response = {"@type": _TYPE_PREFIX + "TranslateVideoResponse",
                    "name": f"videos/{doc['job_id']}", "outputUri": output_url(doc)}
        operation["response"] = {k: v for k, v in response.items() if v is not None}
    elif phase in (JobPhase.ERROR, JobPhase.CANCELED):
        operation["error"] = {"code": RPC_CANCELLED if phase is JobPhase.CANCELED else RPC_UNKNOWN,
                              "message": doc.get("error") or ""}
    return operation


def _answer(native_answer: Response) -> Response:
    doc = job_document(native_answer)
    if doc is None:
        return native_answer
    return json_answer(operation_of(doc), 200)


@blueprint.post("/v1/videos:translate")
def start() -> Response:
    return _answer(call_native(native.start, body=read_object()))


@blueprint.get("/v1/operations/<job_id>")
def operation(job_id: str) -> Response:
    return _answer(call_native(native._status, job_id))


@blueprint.post("/v1/operations/<job_id>:cancel")
def cancel(job_id: str) -> Response:
    answer = call_native(native.cancel_job, job_id)
    doc = job_document(answer)
    if doc is not None and doc["phase"] != JobPhase.CANCELED:
        # A done operation cannot be cancelled (the native 409).
        return json_answer({"error": {"code": 400, "message": "the operation is already done",
                                      "status": "FAILED_PRECONDITION"}}, 400)
    return json_answer({}, 200)
