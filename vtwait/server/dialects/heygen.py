"""HeyGen: video generation and its status endpoint.

``POST /v2/video/generate`` answers ``200`` with ``{"error": null, "data": {"video_id"}}``;
``GET /v1/video_status.get?video_id=<id>`` answers ``{"code": 100, "message": "Success", "data":
{"id", "status", "video_url", "thumbnail_url", "duration", "error", "callback_id",
"created_at"}}`` with ``status`` ``pending | processing | completed | failed``; ``video_url`` is set
once the output exists. HeyGen has no cancel route for a video: a job cancelled another way reads
``failed`` with ``error.code`` ``cancelled``. Errors: ``{"error": {"code", "message"}, "data":
null}``. Credentials: ``X-Api-Key``. No ``Retry-After``, no long-poll.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request

import vtwait.server.routes as native
from vtwait.server.dialects.base import (
    Dialect,
    JobDocument,
    call_native,
    job_document,
    json_answer,
    output_url,
    read_object,
)
from vtwait.server.errors import ApiError
from vtwait.server.stores.base import JobPhase

__all__ = ["STATUS_WORDS", "SUCCESS_CODE", "HeyGenDialect", "blueprint"]

blueprint = Blueprint("heygen", __name__)

STATUS_WORDS = {
    JobPhase.QUEUED: "pending",
    JobPhase.RUNNING: "processing",
    JobPhase.COMPLETED: "completed",
    JobPhase.ERROR: "failed",
    JobPhase.CANCELED: "failed",
}
#: The ``code`` of a successful status answer.
SUCCESS_CODE = 100
#: Create keys of HeyGen's own, accepted and not used by the simulator.
CREATE_KEYS = frozenset({"video_inputs", "dimension", "title", "test", "caption", "folder_id"})


class HeyGenDialect(Dialect):
    name = "heygen"
    blueprint = blueprint
    route_names = {"generate": "start", "status": "status"}
    challenge = 'ApiKey header="X-Api-Key"'

    def error_body(self, status: int, code: str, message: str) -> Any:
        return {"error": {"code": code, "message": message}, "data": None}


def video_status(doc: JobDocument) -> dict[str, Any]:
    """The ``data`` of a status answer for a native job document."""
    phase = JobPhase(doc["phase"])
    error = None
    if phase in (JobPhase.ERROR, JobPhase.CANCELED):
        error = {"code": "cancelled" if phase is JobPhase.CANCELED else "render_failed",
                 "message": doc.get("error") or "", "detail": doc.get("error") or ""}
    started, finished = doc.get("started_at"), doc.get("finished_at")
    done = phase is JobPhase.COMPLETED
    return {
        "id": doc["job_id"],
        "status": STATUS_WORDS[phase],
        "video_url": output_url(doc) if done else None,
        "thumbnail_url": None,
        "gif_url": None,
        "caption_url": None,
        "video_url_caption": None,
        "duration": round(finished - started, 3) if done and started and finished else None,
        "error": error,
        "callback_id": doc.get("callback_id"),
        "created_at": int(doc["created_at"]),
    }


@blueprint.post("/v2/video/generate")
def generate() -> Response:
    body = read_object()
    answer = call_native(native.start,
                         body={k: v for k, v in body.items() if k not in CREATE_KEYS})
    doc = job_document(answer)
    if doc is None:
        return answer
    return json_answer({"error": None, "data": {"video_id": doc["job_id"]}}, 200)


@blueprint.get("/v1/video_status.get")
def status() -> Response:
    video_id = request.args.get("video_id")
    if not video_id:
        raise ApiError(400, "bad_request", "video_id is required")
    answer = call_native(native._status, video_id)
    doc = job_document(answer)
    if doc is None:
        return answer
    return json_answer({"code": SUCCESS_CODE, "message": "Success", "data": video_status(doc)})
