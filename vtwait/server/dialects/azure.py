"""Azure: the long-running operation of the Azure REST API guidelines (status monitor pattern).

``POST /translations`` answers ``202 Accepted`` with ``Operation-Location`` (the absolute URL of the
status monitor) and ``Retry-After``; ``GET /operations/<id>`` answers the status monitor
``{"id", "status", "createdDateTime", "lastActionDateTime", "error"?, "result"?}`` with ``status``
``NotStarted | Running | Succeeded | Failed | Canceled`` and ``Retry-After`` while it runs. Errors are
``{"error": {"code": "NotFound", "message"}}`` with ``x-ms-error-code``. The key travels in
``Ocp-Apim-Subscription-Key`` (Azure AI services). No cancel route and no long-poll: the
guidelines define neither for a status monitor.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, url_for

import vtwait.server.routes as native
from vtwait.server.dialects.base import (
    Dialect,
    JobDocument,
    call_native,
    iso_time,
    job_document,
    json_answer,
    output_url,
    read_object,
)
from vtwait.server.stores.base import JobPhase

__all__ = ["STATUS_WORDS", "AzureDialect", "blueprint"]

blueprint = Blueprint("azure", __name__)

#: The status monitor's word for each native phase.
STATUS_WORDS = {
    JobPhase.QUEUED: "NotStarted",
    JobPhase.RUNNING: "Running",
    JobPhase.COMPLETED: "Succeeded",
    JobPhase.ERROR: "Failed",
    JobPhase.CANCELED: "Canceled",
}
# Native error codes in Azure's PascalCase.
_ERROR_CODES = {"bad_request": "InvalidRequest", "unauthorized": "Unauthorized",
                "not_found": "NotFound", "too_many_jobs": "TooManyRequests",
                "too_many_requests": "TooManyRequests", "internal_error": "InternalServerError",
                "service_unavailable": "ServiceUnavailable"}


class AzureDialect(Dialect):
    name = "azure"
    blueprint = blueprint
    route_names = {"start": "start", "operation": "status"}
    api_key_headers = ("Ocp-Apim-Subscription-Key",)

    def error_body(self, status: int, code: str, message: str) -> Any:
        return {"error": {"code": azure_code(code), "message": message}}

    def error_headers(self, status: int, code: str) -> dict[str, str]:
        return {"x-ms-error-code": azure_code(code)}


def azure_code(code: str) -> str:
    return _ERROR_CODES.get(code) or "".join(part.title() for part in code.split("_"))


def status_monitor(doc: JobDocument) -> dict[str, Any]:
    """The status monitor of a native job document."""
    phase = JobPhase(doc["phase"])
    last = doc.get("finished_at") or doc.get("started_at") or doc["created_at"]
    monitor: dict[str, Any] = {"id": doc["job_id"], "status": STATUS_WORDS[phase],
                               "createdDateTime": iso_time(doc["created_at"]),
                               "lastActionDateTime": iso_time(last)}
    if phase in (JobPhase.ERROR, JobPhase.CANCELED):
        code = "Canceled" if phase is JobPhase.CANCELED else "TranslationFailed"
        monitor["error"] = {"code": code, "message": doc.get("error") or ""}
    elif phase is JobPhase.COMPLETED:
        monitor["result"] = {"id": doc["job_id"], "outputUrl": output_url(doc)}
    return monitor


def _answer(native_answer: Response, status: int, headers: dict[str, str] | None = None
            ) -> Response:
    doc = job_document(native_answer)
    if doc is None:
        return native_answer  # a fault's garbage or dropped connection, as it is
    return json_answer(status_monitor(doc), status, headers, native=native_answer, hints=True)


@blueprint.post("/translations")
def start() -> Response:
    answer = call_native(native.start, body=read_object())
    doc = job_document(answer)
    if doc is None:
        return answer
    location = url_for("azure.operation", job_id=doc["job_id"], _external=True)
    return _answer(answer, 202, {"Operation-Location": location})


@blueprint.get("/operations/<job_id>")
def operation(job_id: str) -> Response:
    return _answer(call_native(native._status, job_id), 200)
