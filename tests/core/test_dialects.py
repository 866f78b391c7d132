"""dialects: every documented status shape of each service read as one JobStatus, the status
monitor read from a start answer, and the escape hatch. Pure functions: no network."""

from __future__ import annotations

import pytest

from vtwait.core.dialects import (
    JobRef,
    StatusMapping,
    detect_dialect,
    read_job_status,
    start_answer_ref,
)
from vtwait.core.errors import ProtocolError
from vtwait.core.status import JobResult, JobStatus

P, C, E = JobResult.PENDING, JobResult.COMPLETED, JobResult.ERROR
OP = "https://api.example/v1/operations/7"

# (dialect, case, answer, url, result, phase, {attribute: expected})
SHAPES = [
    # native: this project's server, and plainer ones
    ("native", "pending", {"job_id": "j1", "result": "pending", "phase": "queued",
                           "queue_position": 2}, None, P, "queued", {"queue_position": 2}),
    ("native", "running", {"job_id": "j1", "result": "pending", "phase": "running",
                           "progress": 0.4}, None, P, "running", {"progress": 0.4}),
    ("native", "succeeded", {"job_id": "j1", "result": "completed", "phase": "completed",
                             "output": {"url": "/outputs/j1?sig=x"}},
     "http://h/status/j1", C, "completed", {"output_url": "http://h/outputs/j1?sig=x"}),
    ("native", "failed", {"job_id": "j1", "result": "error", "error": "boom"}, None, E, None,
     {"error": "boom"}),
    ("native", "cancelled", {"job_id": "j1", "result": "error", "phase": "canceled"}, None, E,
     "canceled", {}),
    # Azure: a status monitor
    ("azure", "pending", {"id": "op1", "status": "NotStarted"}, None, P, "queued",
     {"job_id": "op1"}),
    ("azure", "running", {"id": "op1", "status": "Running", "percentComplete": 40}, None, P,
     "running", {"progress": 0.4}),
    ("azure", "succeeded", {"id": "op1", "status": "Succeeded",
                            "result": {"id": "op1", "outputUrl": "/out/op1"}},
     "http://h/operations/op1", C, "completed", {"output_url": "http://h/out/op1"}),
    ("azure", "succeeded", {"id": "op1", "status": "Succeeded",
                            "resourceLocation": "https://h/translations/op1"}, None, C,
     "completed", {"output_url": "https://h/translations/op1"}),
    ("azure", "failed", {"id": "op1", "status": "Failed",
                         "error": {"code": "TranslationFailed", "message": "no audio"}},
     None, E, "error", {"error": "TranslationFailed: no audio"}),
    ("azure", "cancelled", {"id": "op1", "status": "Canceled"}, None, E, "canceled", {}),
    # Google AIP-151: an Operation ("done" may be left out while false)
    ("google", "pending", {"name": "operations/7"}, OP, P, "running",
     {"job_id": "7", "cancel_url": OP + ":cancel"}),
    ("google", "running", {"name": "operations/7", "done": False,
                           "metadata": {"progressPercent": 40}}, OP + "?wait=30", P, "running",
     {"progress": 0.4, "cancel_url": OP + ":cancel"}),
    ("google", "succeeded", {"name": "operations/7", "done": True,
                             "response": {"outputUri": "https://h/o/7"}}, OP, C, "completed",
     {"output_url": "https://h/o/7", "cancel_url": None}),
    ("google", "failed", {"name": "operations/7", "done": True,
                          "error": {"code": 2, "message": "no audio"}}, OP, E, "error",
     {"error": "no audio"}),
    ("google", "cancelled", {"name": "operations/7", "done": True,
                             "error": {"code": 1, "message": "cancelled"}}, OP, E, "canceled", {}),
    # Replicate: a prediction
    ("replicate", "pending", {"id": "p1", "status": "starting",
                              "urls": {"get": "/v1/predictions/p1",
                                       "cancel": "/v1/predictions/p1/cancel"}},
     "http://h/v1/predictions/p1", P, "queued",
     {"monitor_url": "http://h/v1/predictions/p1",
      "cancel_url": "http://h/v1/predictions/p1/cancel"}),
    ("replicate", "running", {"id": "p1", "status": "processing", "urls": {}}, None, P,
     "running", {}),
    ("replicate", "succeeded", {"id": "p1", "status": "succeeded", "urls": {},
                                "output": ["https://h/o/1.mp4", "https://h/o/2.mp4"]}, None, C,
     "completed", {"output_url": "https://h/o/1.mp4", "cancel_url": None}),
    ("replicate", "failed", {"id": "p1", "status": "failed", "urls": {}, "error": "OOM"}, None,
     E, "error", {"error": "OOM"}),
    ("replicate", "cancelled", {"id": "p1", "status": "canceled", "urls": {}}, None, E,
     "canceled", {}),
    # OpenAI: job objects (videos, batches)
    ("openai", "pending", {"id": "video_1", "object": "video", "status": "queued"}, None, P,
     "queued", {"job_id": "video_1"}),
    ("openai", "running", {"id": "video_1", "object": "video", "status": "in_progress",
                           "progress": 40}, None, P, "running", {"progress": 0.4}),
    ("openai", "running", {"id": "batch_1", "object": "batch", "status": "in_progress",
                           "request_counts": {"total": 10, "completed": 3, "failed": 1}},
     "https://h/v1/batches/batch_1", P, "running",
     {"progress": 0.4, "cancel_url": "https://h/v1/batches/batch_1/cancel"}),
    ("openai", "succeeded", {"id": "video_1", "object": "video", "status": "completed",
                             "progress": 100}, "https://h/v1/videos/video_1?wait=3", C,
     "completed", {"output_url": "https://h/v1/videos/video_1/content"}),
    ("openai", "succeeded", {"id": "batch_1", "object": "batch", "status": "completed",
                             "output_file_id": "file-9"}, "https://h/v1/batches/batch_1", C,
     "completed", {"output_url": "https://h/v1/files/file-9/content"}),
    ("openai", "failed", {"id": "video_1", "object": "video", "status": "failed",
                          "error": {"code": "video_generation_failed", "message": "no"}},
     None, E, "error", {"error": "video_generation_failed: no"}),
    ("openai", "failed", {"id": "batch_1", "object": "batch", "status": "expired"}, None, E,
     "error", {"error": "expired"}),
    ("openai", "cancelled", {"id": "batch_1", "object": "batch", "status": "cancelled"}, None,
     E, "canceled", {}),
    ("openai", "cancelled", {"id": "video_1", "object": "video", "status": "failed",
                             "error": {"code": "cancelled", "message": "by request"}}, None, E,
     "canceled", {}),
    # HeyGen: a data envelope
    ("heygen", "pending", {"code": 100, "data": {"id": "v1", "status": "pending"}}, None, P,
     "queued", {"job_id": "v1"}),
    ("heygen", "running", {"code": 100, "data": {"id": "v1", "status": "processing"}}, None, P,
     "running", {}),
    ("heygen", "succeeded", {"code": 100, "data": {"id": "v1", "status": "completed",
                                                   "video_url": "https://h/v1.mp4"}}, None, C,
     "completed", {"output_url": "https://h/v1.mp4"}),
    ("heygen", "failed", {"code": 100, "data": {"id": "v1", "status": "failed",
                                                "error": {"code": "x", "message": "bad"}}},
     None, E, "error", {"error": "x: bad"}),
    ("heygen", "cancelled", {"code": 100, "data": {"id": "v1", "status": "failed",
                                                   "error": {"code": "cancelled"}}}, None, E,
     "canceled", {}),
]


@pytest.mark.parametrize("dialect,case,answer,url,result,phase,extra", SHAPES,
                         ids=[f"{s[0]}-{s[1]}-{i}" for i, s in enumerate(SHAPES)])
def test_every_documented_shape_is_read(dialect, case, answer, url, result, phase, extra):
    """Each dialect's pending, running, succeeded, failed and cancelled answers: the shape is
    detected, the state and phase read, and the progress, error and links where it has them."""
    assert detect_dialect(answer) == dialect
    status = read_job_status(answer, job_id="asked", url=url)
    assert (status.result, status.phase) == (result, phase)
    assert status.done is (result is not P)
    for name, value in extra.items():
        assert getattr(status, name) == value, name


MALFORMED = [
    ("not an object", ["pending"], "expected a JSON object"),
    ("no state anywhere", {"progress": 0.5}, "has no job state; it has none of 'result'"),
    ("azure word in the wrong case", {"status": "NOTSTARTED"}, "unknown job status"),
    ("google done is a string", {"name": "operations/1", "done": "yes"}, "'done' is not true"),
    ("google done without outcome", {"name": "operations/1", "done": True},
     "neither 'response' nor 'error'"),
    ("replicate unknown word", {"status": "exploded", "urls": {}}, "Replicate's are"),
    ("openai unknown word", {"object": "video", "status": "melting"}, "OpenAI's are"),
    ("heygen unknown word", {"data": {"status": "weird"}}, "at 'data.status'"),
]


@pytest.mark.parametrize("case,answer,named", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_a_malformed_answer_is_a_protocol_error_naming_what_is_missing(case, answer, named):
    """No readable state: a ProtocolError in one sentence, its parts separated, naming what was
    looked for and quoting what came."""
    with pytest.raises(ProtocolError) as caught:
        read_job_status(answer, job_id="j1")
    message = str(caught.value)
    assert named in message
    assert "\n" not in message and caught.value.job_id == "j1"


def test_the_issue_s_google_answer_is_read_not_refused():
    """The operation that failed at once in the issue is a completed job now."""
    status = read_job_status({"done": True, "name": "operations/9", "response": {}}, job_id="9")
    assert status.result is C and status.job_id == "9"


# ------------------------------------------------------------------------- the start answer
START = [
    ("Operation-Location beats all", {"id": "t1", "status": "NotStarted"},
     {"Operation-Location": "/operations/t1?api-version=1", "Location": "/elsewhere"}, 202,
     "http://h/translations/t1", JobRef("t1", "http://h/operations/t1?api-version=1", None)),
    ("Location on a 201", {"job_id": "j1", "result": "pending"}, {"Location": "/status/j1"}, 201,
     "http://h/start", JobRef("j1", "http://h/status/j1", None)),
    ("Location on a 200 is not a monitor", {"job_id": "j1", "result": "pending"},
     {"Location": "/status/j1"}, 200, "http://h/start", JobRef("j1", None, None)),
    ("a body link: urls.get and urls.cancel",
     {"id": "p1", "status": "starting", "urls": {"get": "https://r/v1/predictions/p1",
                                                 "cancel": "https://r/v1/predictions/p1/cancel"}},
     {}, 201, "https://r/v1/predictions",
     JobRef("p1", "https://r/v1/predictions/p1", "https://r/v1/predictions/p1/cancel")),
    ("a body link: status_url", {"job_id": "j2", "status_url": "jobs/j2"}, {}, 200,
     "http://h/api/start", JobRef("j2", "http://h/api/jobs/j2", None)),
    ("a body link: _links", {"id": "j3", "_links": {"self": {"href": "/jobs/j3"},
                                                    "cancel": {"href": "/jobs/j3/stop"}}},
     {}, 200, "http://h/jobs", JobRef("j3", "http://h/jobs/j3", "http://h/jobs/j3/stop")),
    ("AIP-151: GET /v1/{name}", {"name": "operations/7", "done": False}, {}, 200,
     "http://h/v1/videos:translate",
     JobRef("7", "http://h/v1/operations/7", "http://h/v1/operations/7:cancel")),
    ("OpenAI: the collection and the id", {"id": "video_1", "object": "video",
                                           "status": "queued"}, {}, 200, "http://h/v1/videos",
     JobRef("video_1", "http://h/v1/videos/video_1", None)),
    ("HeyGen: video_status.get", {"error": None, "data": {"video_id": "v 1"}}, {}, 200,
     "http://h/v2/video/generate",
     JobRef("v 1", "http://h/v1/video_status.get?video_id=v%201", None)),
    ("only a monitor: the id is its last segment", None,
     {"Operation-Location": "http://h/operations/abc"}, 202, "http://h/translations",
     JobRef("abc", "http://h/operations/abc", None)),
]


@pytest.mark.parametrize("case,answer,headers,code,url,ref", START, ids=[s[0] for s in START])
def test_the_status_monitor_is_read_from_the_start_answer(case, answer, headers, code, url, ref):
    """Operation-Location > Location on 201/202 > body links > the dialect's convention;
    relative URLs resolved against the start request's URL."""
    assert start_answer_ref(answer, headers, status_code=code, url=url) == ref


def test_a_start_answer_naming_no_job_is_a_protocol_error():
    """No id and no monitor: a ProtocolError that says what it looked for."""
    with pytest.raises(ProtocolError, match="has no job id; it has no 'job_id', 'id'"):
        start_answer_ref({"result": "pending"}, {}, status_code=201, url="http://h/start")


def test_a_job_ref_round_trips_through_a_dict_and_refuses_garbage():
    """to_dict/from_dict: what another process saves and reads back."""
    ref = JobRef("j1", "http://h/operations/j1", None)
    assert JobRef.from_dict(ref.to_dict()) == ref
    with pytest.raises(ValueError, match="job_id"):
        JobRef.from_dict({"status_url": "http://h/x"})
    with pytest.raises(ValueError, match="strings or None"):
        JobRef.from_dict({"job_id": "j1", "status_url": 7})


# ------------------------------------------------------------------------------ the escape hatch
TASK = StatusMapping(state="task.phase", done={"DONE"}, failed={"BROKEN"}, cancelled={"DROPPED"},
                     pending={"WAITING", "RENDERING"}, job_id="task.ref", progress="task.pct",
                     error="task.why", output="files.0.href", next_url="links.poll",
                     cancel="links.stop")


@pytest.mark.parametrize("phase_word,result,phase", [
    ("WAITING", P, "running"), ("rendering", P, "running"), ("DONE", C, "completed"),
    ("BROKEN", E, "error"), ("DROPPED", E, "canceled"),
])
def test_a_status_mapping_reads_a_shape_no_dialect_has(phase_word, result, phase):
    """The mapping's words (any case) and paths (dotted, list indexes) give the JobStatus."""
    answer = {"task": {"phase": phase_word, "pct": 40, "ref": "t9", "why": "bad input"},
              "files": [{"href": "/f/t9.mp4"}], "links": {"poll": "/t/t9", "stop": "/t/t9/stop"}}
    assert detect_dialect(answer) is None
    status = read_job_status(answer, job_id="asked", url="http://h/t/t9", reader=TASK)
    assert (status.result, status.phase, status.job_id, status.progress) == \
        (result, phase, "t9", 0.4)
    assert status.monitor_url == "http://h/t/t9" and status.cancel_url == "http://h/t/t9/stop"
    assert status.output_url == "http://h/f/t9.mp4"
    assert status.error == ("bad input" if result is E else None)


def test_a_status_mapping_names_the_path_and_the_unknown_word():
    """A missing state or (with pending listed) an unknown word is a ProtocolError saying so;
    a bare string for a word list is refused at once."""
    with pytest.raises(ProtocolError, match="no job state at 'task.phase'"):
        read_job_status({"task": {}}, job_id="j", reader=TASK)
    with pytest.raises(ProtocolError, match="unknown job state 'MELTED' at 'task.phase'"):
        read_job_status({"task": {"phase": "MELTED"}}, job_id="j", reader=TASK)
    lenient = StatusMapping(state="s")
    assert read_job_status({"s": "whatever"}, job_id="j", reader=lenient).result is P
    with pytest.raises(ValueError, match="collection of words"):
        StatusMapping(state="s", done="DONE")
    with pytest.raises(ValueError, match="dotted path"):
        StatusMapping(state="")


def test_a_callable_reader_is_used_and_checked():
    """A callable reader's JobStatus is taken (the job asked about filled in); anything else
    it returns is a ProtocolError."""
    status = read_job_status({"ok": 1}, job_id="j7",
                             reader=lambda doc: JobStatus(None, C if doc["ok"] else P))
    assert (status.result, status.job_id) == (C, "j7")
    with pytest.raises(ProtocolError, match="returned dict, not a JobStatus"):
        read_job_status({}, job_id="j7", reader=lambda doc: doc)


def test_a_status_mapping_starts_a_job_from_its_own_paths():
    """The start answer's id and monitor come from the mapping's paths too."""
    ref = start_answer_ref({"task": {"ref": "t9"}, "links": {"poll": "/t/t9"}}, {},
                           status_code=200, url="http://h/tasks", reader=TASK)
    assert ref == JobRef("t9", "http://h/t/t9", None)
