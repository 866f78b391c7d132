"""OpenAI: the Videos API's video job object.

``POST /v1/videos`` answers ``200`` with a video object ``{"id": "video_<id>", "object": "video",
"model", "status", "progress", "created_at", "completed_at", "expires_at", "error", ...}``;
``status`` is ``queued | in_progress | completed | failed`` and ``progress`` a whole percentage;
``GET /v1/videos/<id>`` answers it, and ``GET /v1/videos/<id>/content`` redirects to the output
once it exists. The Videos API has no cancel route and no ``cancelled`` status: a job cancelled
another way (a deadline, the native cancel) reads ``failed`` with ``error.code`` ``cancelled``.
Errors: ``{"error": {"message", "type", "param", "code"}}``. Credentials: ``Authorization:
Bearer``. No ``Retry-After``, no long-poll.
"""

from __future__ import annotations

from typing import Any, cast

from flask import Blueprint, Response, redirect

import vtwait.server.routes as native
from vtwait.server.dialects.base import (
    Dialect,
    JobDocument,
    call_native,
    job_document,
    json_answer,
    output_url,
    percent,
    read_object,
)
from vtwait.server.errors import ApiError
from vtwait.server.stores.base import JobPhase

__all__ = ["ID_PREFIX", "STATUS_WORDS", "OpenAIDialect", "blueprint"]

blueprint = Blueprint("openai", __name__)

STATUS_WORDS = {
    JobPhase.QUEUED: "queued",
    JobPhase.RUNNING: "in_progress",
    JobPhase.COMPLETED: "completed",
    JobPhase.ERROR: "failed",
    JobPhase.CANCELED: "failed",
}
#: Video ids are ``video_`` and the native job id.
ID_PREFIX = "video_"
#: Create keys of the Videos API's own, accepted and not used by the simulator.
CREATE_KEYS = frozenset({"model", "prompt", "size", "seconds", "input_reference"})
MODEL = "sora-2"


class OpenAIDialect(Dialect):
    name = "openai"
    blueprint = blueprint
    route_names = {"create_video": "start", "retrieve_video": "status", "video_content": "outputs"}
    challenge = 'Bearer realm="video-translation"'

    def error_body(self, status: int, code: str, message: str) -> Any:
        kind = ("server_error" if status >= 500 else "rate_limit_error" if status == 429
                else "authentication_error" if status == 401 else "invalid_request_error")
        return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def video(doc: JobDocument) -> dict[str, Any]:
    """The video object of a native job document."""
    phase = JobPhase(doc["phase"])
    error = None
    if phase in (JobPhase.ERROR, JobPhase.CANCELED):
        error = {"code": "cancelled" if phase is JobPhase.CANCELED else "video_generation_failed",
                 "message": doc.get("error") or ""}
    output = doc.get("output")
    expires_at = output.get("expires_at") if isinstance(output, dict) else None
    finished = doc.get("finished_at")
    return {
        "id": ID_PREFIX + doc["job_id"],
        "object": "video",
        "model": MODEL,
        "status": STATUS_WORDS[phase],
        "progress": percent(doc),
        "created_at": int(doc["created_at"]),
        "completed_at": None if finished is None else int(finished),
        "expires_at": expires_at,
        "prompt": None,
        "size": "1280x720",
        "seconds": "4",
        "remixed_from_video_id": None,
        "error": error,
    }


def _job_id(video_id: str) -> str:
    # An id without the prefix is unknown, like any malformed id.
    return video_id[len(ID_PREFIX):] if video_id.startswith(ID_PREFIX) else "-"


def _answer(native_answer: Response) -> Response:
    doc = job_document(native_answer)
    if doc is None:
        return native_answer
    return json_answer(video(doc), 200)


@blueprint.post("/v1/videos")
def create_video() -> Response:
    body = read_object()
    return _answer(call_native(native.start,
                               body={k: v for k, v in body.items() if k not in CREATE_KEYS}))


@blueprint.get("/v1/videos/<video_id>")
def retrieve_video(video_id: str) -> Response:
    return _answer(call_native(native._status, _job_id(video_id)))


@blueprint.get("/v1/videos/<video_id>/content")
def video_content(video_id: str) -> Response:
    answer = call_native(native._status, _job_id(video_id))
    doc = job_document(answer)
    if doc is None:
        return answer
    url = output_url(doc)
    if url is None:
        raise ApiError(404, "not_found", f"video {video_id} has no content yet"[:200])
    return cast(Response, redirect(url, 302))
