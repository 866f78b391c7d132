"""Every common long-running-operation dialect read as one :class:`JobStatus`, with no I/O.

    status = read_job_status({"done": True, "name": "operations/7", "response": {...}},
                             job_id="7", url="https://api.example/v1/operations/7")
    status.result, status.output_url, status.cancel_url     # completed, ..., ...:cancel
    ref = start_answer_ref(document, headers, status_code=202, url=start_url)  # the status monitor

Six shapes are read without configuration, each as its service documents it (the pages are
cited in ``docs/dialects.md``): ``native`` (this project's server and plainer ones:
:func:`~vtwait.core.status.parse_status_document`), ``azure`` (a status monitor with
``NotStarted``/``Running``/``Succeeded``/``Failed``/``Canceled``), ``google`` (AIP-151
operations: ``name``, ``done``, ``response`` or ``error``), ``replicate`` (predictions:
``status``, ``urls.get``, ``urls.cancel``, ``output``), ``openai`` (job objects with ``object``
and ``queued``/``in_progress``/``completed``/``failed``/``cancelled``/``expired``) and ``heygen``
(``data.status``, ``data.video_url``). :func:`detect_dialect` says which shape an answer has;
each reader also yields the output's location (``output_url``), the cancel link
(``cancel_url``) and the next poll URL (``monitor_url``) where the dialect has them, relative
links resolved against the URL the answer came from.

For any other API, :class:`StatusMapping` says where the state word is and which words mean
done, failed or cancelled (or pass a callable that returns a :class:`JobStatus`).

Where to ask about a job is a :class:`JobRef` (id, status monitor, cancel link), read from the
start answer by :func:`start_answer_ref`: ``Operation-Location``, then ``Location`` on a 201 or
202, then a link in the body (``urls.get``, ``status_url``, ``_links``), then the dialect's own
convention (AIP-151's ``GET /v1/{name}``, OpenAI's ``GET <collection>/{id}``, HeyGen's
``/v1/video_status.get?video_id=``). A JobRef is plain data: save it and resume the wait from
another process.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TypeAlias
from urllib.parse import quote, urljoin, urlsplit, urlunsplit

from vtwait.core.errors import ProtocolError
from vtwait.core.status import JobResult, JobStatus, describe, parse_status_document

__all__ = [
    "DIALECTS",
    "JobRef",
    "StatusMapping",
    "StatusReader",
    "detect_dialect",
    "read_job_status",
    "start_answer_ref",
]

#: The shapes read without configuration, in the order :func:`detect_dialect` tries them last
#: to first (``native`` is the fallback).
DIALECTS = ("native", "azure", "google", "replicate", "openai", "heygen")

_PENDING, _COMPLETED, _ERROR = JobResult.PENDING, JobResult.COMPLETED, JobResult.ERROR

# Each dialect's status words: (result, phase). Compared exactly (Azure's are CamelCase).
_AZURE_WORDS = {
    "NotStarted": (_PENDING, "queued"), "Running": (_PENDING, "running"),
    "Succeeded": (_COMPLETED, "completed"), "Failed": (_ERROR, "error"),
    "Canceled": (_ERROR, "canceled"),
}
_REPLICATE_WORDS = {
    "starting": (_PENDING, "queued"), "processing": (_PENDING, "running"),
    "succeeded": (_COMPLETED, "completed"), "failed": (_ERROR, "error"),
    "canceled": (_ERROR, "canceled"), "aborted": (_ERROR, "canceled"),
}
_OPENAI_WORDS = {
    "queued": (_PENDING, "queued"), "validating": (_PENDING, "queued"),
    "in_progress": (_PENDING, "running"), "finalizing": (_PENDING, "running"),
    "cancelling": (_PENDING, "running"), "completed": (_COMPLETED, "completed"),
    "failed": (_ERROR, "error"), "expired": (_ERROR, "error"),
    "cancelled": (_ERROR, "canceled"),
}
_HEYGEN_WORDS = {
    "pending": (_PENDING, "queued"), "waiting": (_PENDING, "queued"),
    "processing": (_PENDING, "running"), "completed": (_COMPLETED, "completed"),
    "failed": (_ERROR, "error"),
}
# google.rpc.Code CANCELLED: an operation ended by a cancel (AIP-151, CancelOperation).
_GOOGLE_CANCELLED = 1
_STATE_KEYS = ("result", "status", "state")
# Keys that hold the output's location, in order of preference, wherever a dialect keeps it.
_OUTPUT_KEYS = ("url", "uri", "video_url", "output_url", "outputUrl", "outputUri", "output_uri",
                "download_url", "resourceLocation")
# Error codes that say a failed job was cancelled, in the dialects without a cancelled status
# (OpenAI's Videos API, HeyGen).
_CANCELLED_CODES = frozenset({"cancelled", "canceled"})


@dataclass(frozen=True)
class JobRef:
    """Where to ask about a job: its id, its status monitor and its cancel link (None: the
    client's templates). Plain data (:meth:`to_dict`, :meth:`from_dict`): save it, and resume the
    wait in another process with ``client.wait_for_completion(ref)``."""

    job_id: str
    status_url: str | None = None  #: absolute URL of the job's status monitor
    cancel_url: str | None = None  #: absolute URL that cancels it (POST)

    def to_dict(self) -> dict[str, str | None]:
        return {"job_id": self.job_id, "status_url": self.status_url,
                "cancel_url": self.cancel_url}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JobRef:
        """A JobRef from :meth:`to_dict`'s dictionary.

        Raises:
            ValueError: no ``job_id``, or a URL that is not a string.
        """
        job_id = data.get("job_id")
        if not isinstance(job_id, str) or not job_id:
            raise ValueError(f"a JobRef needs a job_id string, got {data!r}")
        urls = [data.get("status_url"), data.get("cancel_url")]
        if any(url is not None and not isinstance(url, str) for url in urls):
            raise ValueError(f"a JobRef's status_url and cancel_url are strings or None, "
                             f"got {data!r}")
        return cls(job_id, urls[0], urls[1])


@dataclass(frozen=True)
class StatusMapping:
    """Where an API that no built-in dialect reads keeps a job's state: the escape hatch.

    Paths are dotted keys into the JSON answer (``"job.state"``; a number picks a list item:
    ``"outputs.0.url"``). Words are compared case-insensitively. A word in none of the lists is
    pending, unless ``pending`` lists the pending words: then it is a ProtocolError.

    Example, for ``{"task": {"phase": "RENDERING", "pct": 40}, "links": {"poll": "/t/9"}}``::

        StatusMapping(state="task.phase", done={"DONE"}, failed={"BROKEN"},
                      progress="task.pct", next_url="links.poll")
    """

    state: str  #: path to the state word
    done: Collection[str] = ("done", "completed", "complete", "succeeded", "success")
    failed: Collection[str] = ("failed", "error", "errored")
    cancelled: Collection[str] = ("cancelled", "canceled")
    pending: Collection[str] | None = None  #: None: any other word is pending
    job_id: str | None = None  #: path to the job's id
    progress: str | None = None  #: path to the progress (a fraction, or a percentage above 1)
    error: str | None = None  #: path to the failure's message (a string or ``{"message"}``)
    output: str | None = None  #: path to the output's URL
    next_url: str | None = None  #: path to the URL to poll next (the status monitor)
    cancel: str | None = None  #: path to the URL that cancels the job
    _words: Mapping[str, tuple[JobResult, str]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.state, str) or not self.state.strip():
            raise ValueError(f"StatusMapping.state must be a dotted path, got {self.state!r}")
        for name in ("done", "failed", "cancelled", "pending"):
            group = getattr(self, name)
            if isinstance(group, str):  # a bare string would be read letter by letter
                raise ValueError(f"StatusMapping.{name} must be a collection of words, "
                                 f"got the string {group!r}")
        words: dict[str, tuple[JobResult, str]] = {}
        for group, meaning in ((self.pending or (), (_PENDING, "running")),
                               (self.cancelled, (_ERROR, "canceled")),
                               (self.failed, (_ERROR, "error")),
                               (self.done, (_COMPLETED, "completed"))):
            words.update({str(word).strip().lower(): meaning for word in group})
        object.__setattr__(self, "_words", words)

    def read(self, document: Any, *, job_id: str | None, url: str | None = None) -> JobStatus:
        """The answer as a :class:`JobStatus` (links resolved against ``url``).

        Raises:
            ProtocolError: no state word at ``state``, or an unknown one when ``pending`` is set.
        """
        word = lookup(document, self.state)
        if not isinstance(word, str):
            raise ProtocolError(f"the answer has no job state at {self.state!r} (the "
                                f"StatusMapping's state path); got {describe(document)}",
                                job_id=job_id)
        meaning = self._words.get(word.strip().lower())
        if meaning is None:
            if self.pending is not None:
                raise ProtocolError(f"unknown job state {word!r} at {self.state!r}; the "
                                    "StatusMapping lists it under none of pending, done, failed "
                                    f"or cancelled; got {describe(document)}", job_id=job_id)
            meaning = (_PENDING, "running")
        result, phase = meaning
        found_id = lookup(document, self.job_id) if self.job_id else None
        return JobStatus(
            job_id=str(found_id) if isinstance(found_id, str | int) else job_id,
            result=result, phase=phase,
            progress=_fraction(lookup(document, self.progress) if self.progress else None),
            error=_message(lookup(document, self.error)) if self.error and result is _ERROR
            else None,
            output_url=_link(lookup(document, self.output) if self.output else None, url),
            cancel_url=_link(lookup(document, self.cancel) if self.cancel else None, url),
            monitor_url=_link(lookup(document, self.next_url) if self.next_url else None, url),
            raw=dict(document) if isinstance(document, Mapping) else {"value": document},
        )


#: What a client's ``status_reader=`` may be: a mapping, or a callable from the decoded answer
#: to a :class:`JobStatus` (its ``job_id`` may be None: the job asked about is filled in).
StatusReader: TypeAlias = StatusMapping | Callable[[Any], JobStatus]


def lookup(document: Any, path: str | None) -> Any:
    """The value at a dotted path (``"data.status"``, ``"outputs.0"``), or None."""
    if not path:
        return None
    value = document
    for part in path.split("."):
        if isinstance(value, Mapping):
            value = value.get(part)
        elif isinstance(value, list) and part.lstrip("-").isdigit():
            index = int(part)
            value = value[index] if -len(value) <= index < len(value) else None
        else:
            return None
    return value


# ------------------------------------------------------------------------------ the detection
def detect_dialect(document: Any) -> str | None:
    """The dialect whose shape the answer has (one of :data:`DIALECTS`), or None for no shape
    this module reads (not a JSON object, or no state anywhere)."""
    if not isinstance(document, Mapping):
        return None
    status = document.get("status")
    data = document.get("data")
    if isinstance(data, Mapping) and ("status" in data or "video_id" in data):
        return "heygen"
    if isinstance(document.get("done"), bool) or (
            isinstance(document.get("name"), str)
            and not any(key in document for key in _STATE_KEYS)):
        return "google"  # proto3 JSON leaves out "done": false
    if isinstance(status, str) and status in _AZURE_WORDS:
        return "azure"
    if isinstance(document.get("urls"), Mapping) or status == "starting":
        return "replicate"
    if isinstance(document.get("object"), str) and isinstance(status, str):
        return "openai"
    if any(key in document for key in _STATE_KEYS):
        return "native"
    return None


def read_job_status(document: Any, *, job_id: str | None, url: str | None = None,
                    reader: StatusReader | None = None
                    ) -> JobStatus:
    """A status answer of any dialect (or read by ``reader``) as one :class:`JobStatus`.

    Args:
        document: The decoded JSON body.
        job_id: The job asked about, used when the answer names none.
        url: The URL the answer came from: relative links are resolved against it, and the
            dialects that derive a link from it (OpenAI's output, AIP-151's cancel) do so.
        reader: A :class:`StatusMapping` or callable to read the answer instead of the dialects.

    Raises:
        ProtocolError: the answer has no state this reader knows, naming what was looked for.
    """
    if isinstance(reader, StatusMapping):
        return reader.read(document, job_id=job_id, url=url)
    if reader is not None:
        status = reader(document)
        if not isinstance(status, JobStatus):
            raise ProtocolError(f"the status_reader returned {type(status).__name__}, not a "
                                "JobStatus", job_id=job_id)
        return status if status.job_id is not None else replace(status, job_id=job_id)
    dialect = detect_dialect(document)
    if dialect is None:
        if not isinstance(document, Mapping):
            raise ProtocolError(f"expected a JSON object with a job status, got "
                                f"{describe(document)}", job_id=job_id)
        raise ProtocolError("the answer has no job state; it has none of 'result', 'status', "
                            "'state', 'done' or 'data.status' (pass status_reader= for this "
                            f"API); got {describe(document)}", job_id=job_id)
    return _READERS[dialect](document, job_id, url)


# --------------------------------------------------------------------------------- the readers
def _native(document: Mapping[str, Any], job_id: str | None, url: str | None) -> JobStatus:
    status = parse_status_document(document, job_id=job_id)
    output = document.get("output")
    links = document.get("_links")
    return replace(status,
                   output_url=_link(output.get("url") if isinstance(output, Mapping) else None,
                                    url) if status.result is _COMPLETED else None,
                   monitor_url=_link(document.get("status_url") or _href(links, "status", "self"),
                                     url),
                   cancel_url=_link(document.get("cancel_url") or _href(links, "cancel"), url))


def _azure(document: Mapping[str, Any], job_id: str | None, url: str | None) -> JobStatus:
    result, phase = _AZURE_WORDS[document["status"]]
    output = None
    if result is _COMPLETED:
        found = document.get("resourceLocation") or document.get("result")
        output = _output(found)
    return _status(document, job_id, result, phase,
                   progress=_fraction(document.get("percentComplete")),
                   error=_message(document.get("error")) if result is _ERROR else None,
                   output_url=_link(output, url))


def _google(document: Mapping[str, Any], job_id: str | None, url: str | None) -> JobStatus:
    done = document.get("done", False)
    if not isinstance(done, bool):
        raise ProtocolError(f"the operation's 'done' is not true or false; got "
                            f"{describe(document)}", job_id=job_id)
    metadata = document.get("metadata")
    metadata = metadata if isinstance(metadata, Mapping) else {}
    progress = _fraction(next((metadata[key] for key in (
        "progressPercent", "progress_percent", "progressPercentage", "progress")
        if key in metadata), None))
    name = document.get("name")
    # POST /v1/{name}:cancel, on the URL the answer came from (without our ?wait=).
    cancel = url.split("?", 1)[0] + ":cancel" if url and not done else None
    found_id = name.rsplit("/", 1)[-1] if isinstance(name, str) and name else job_id
    if not done:
        state = metadata.get("state")
        phase = "queued" if isinstance(state, str) and state.upper() in (
            "PENDING", "QUEUED", "NOT_STARTED") else "running"
        return _status(document, found_id, _PENDING, phase, progress=progress, cancel_url=cancel)
    error = document.get("error")
    if isinstance(error, Mapping):
        cancelled = error.get("code") == _GOOGLE_CANCELLED
        return _status(document, found_id, _ERROR, "canceled" if cancelled else "error",
                       progress=progress, error=_message(error))
    response = document.get("response")
    if "response" not in document:
        raise ProtocolError("the operation is done but has neither 'response' nor 'error' "
                            f"(AIP-151 sets one of them); got {describe(document)}",
                            job_id=job_id)
    return _status(document, found_id, _COMPLETED, "completed", progress=progress,
                   output_url=_link(_output(response), url))


def _replicate(document: Mapping[str, Any], job_id: str | None, url: str | None) -> JobStatus:
    word = document.get("status")
    if word not in _REPLICATE_WORDS:
        raise ProtocolError(f"unknown prediction status {word!r} (Replicate's are "
                            f"{', '.join(_REPLICATE_WORDS)}); got {describe(document)}",
                            job_id=job_id)
    result, phase = _REPLICATE_WORDS[word]
    urls = document.get("urls")
    urls = urls if isinstance(urls, Mapping) else {}
    return _status(document, job_id, result, phase,
                   error=_message(document.get("error")) if result is _ERROR else None,
                   output_url=_link(_output(document.get("output")), url)
                   if result is _COMPLETED else None,
                   monitor_url=_link(urls.get("get"), url),
                   cancel_url=_link(urls.get("cancel"), url) if result is _PENDING else None)


def _openai(document: Mapping[str, Any], job_id: str | None, url: str | None) -> JobStatus:
    word = document["status"]
    if word not in _OPENAI_WORDS:
        raise ProtocolError(f"unknown job status {word!r} (OpenAI's are "
                            f"{', '.join(_OPENAI_WORDS)}); got {describe(document)}",
                            job_id=job_id)
    result, phase = _OPENAI_WORDS[word]
    kind = document.get("object")
    progress = _fraction(document.get("progress"))
    counts = document.get("request_counts")  # a batch's progress
    if progress is None and isinstance(counts, Mapping):
        total, done = _number(counts.get("total")), _number(counts.get("completed"))
        failed = _number(counts.get("failed")) or 0.0
        if total and done is not None:
            progress = min(max((done + failed) / total, 0.0), 1.0)
    error = None
    if result is _ERROR:
        errors = document.get("errors")  # a batch keeps a list: {"data": [{"message"}, ...]}
        first = errors.get("data") if isinstance(errors, Mapping) else None
        error = _message(document.get("error") or (first[0] if isinstance(first, list) and first
                                                   else None)) or (word if word == "expired"
                                                                   else None)
    if result is _ERROR and _cancelled_error(document.get("error")):
        phase = "canceled"
    output = None
    if result is _COMPLETED and url:
        file_id = document.get("output_file_id")
        if isinstance(file_id, str) and file_id:  # GET /v1/files/{id}/content
            output = urljoin(_api_root(url) + "/", f"files/{quote(file_id, safe='')}/content")
        elif kind == "video":  # GET /v1/videos/{id}/content
            output = url.split("?", 1)[0].rstrip("/") + "/content"
    cancel = None
    if result is _PENDING and url and kind in ("batch", "fine_tuning.job"):
        cancel = url.split("?", 1)[0].rstrip("/") + "/cancel"  # POST .../{id}/cancel
    return _status(document, job_id, result, phase, progress=progress, error=error,
                   output_url=output, cancel_url=cancel)


def _heygen(document: Mapping[str, Any], job_id: str | None, url: str | None) -> JobStatus:
    data = document["data"]
    word = data.get("status")
    if word not in _HEYGEN_WORDS:
        raise ProtocolError(f"unknown video status {word!r} at 'data.status' (HeyGen's are "
                            f"{', '.join(_HEYGEN_WORDS)}); got {describe(document)}",
                            job_id=job_id)
    result, phase = _HEYGEN_WORDS[word]
    if result is _ERROR and _cancelled_error(data.get("error")):
        phase = "canceled"
    found = data.get("id", data.get("video_id"))
    return _status(data, str(found) if isinstance(found, str | int) and found else job_id,
                   result, phase,
                   error=_message(data.get("error")) if result is _ERROR else None,
                   output_url=_link(data.get("video_url"), url) if result is _COMPLETED else None,
                   raw=document)


_READERS: dict[str, Callable[[Mapping[str, Any], str | None, str | None], JobStatus]] = {
    "native": _native, "azure": _azure, "google": _google, "replicate": _replicate,
    "openai": _openai, "heygen": _heygen,
}


# ---------------------------------------------------------------------------- the start answer
def start_answer_ref(document: Any, headers: Mapping[str, str], *, status_code: int, url: str,
                     reader: StatusReader | None = None) -> JobRef:
    """Where to ask about the job a start answer made: its id, status monitor and cancel link.

    The status monitor, in this order of preference: the ``Operation-Location`` header;
    ``Location`` on a 201 or 202; a link in the body (``urls.get``, ``status_url``,
    ``_links.status`` or ``_links.self``, or the mapping's ``next_url``); the dialect's own
    convention (AIP-151: ``GET /v1/{name}``; OpenAI: ``GET <collection>/{id}``; HeyGen:
    ``GET /v1/video_status.get?video_id={id}``). None when the answer names none: the client's
    template then. Relative URLs are resolved against ``url``, the start request's URL.

    Raises:
        ProtocolError: the answer names no job (no id in the body, no monitor URL to take one from).
    """
    lower = {str(k).lower(): v for k, v in headers.items()}
    body: Mapping[str, Any] = document if isinstance(document, Mapping) else {}
    monitor = _link(lower.get("operation-location"), url)
    if monitor is None and status_code in (201, 202):
        monitor = _link(lower.get("location"), url)
    urls = body.get("urls")
    if monitor is None:
        link = (lookup(body, reader.next_url) if isinstance(reader, StatusMapping)
                and reader.next_url else None)
        link = link or (urls.get("get") if isinstance(urls, Mapping) else None)
        monitor = _link(link or body.get("status_url")
                        or _href(body.get("_links"), "status", "self"), url)
    cancel = _link(urls.get("cancel") if isinstance(urls, Mapping) else None, url) \
        or _link(body.get("cancel_url") or _href(body.get("_links"), "cancel"), url)
    if isinstance(reader, StatusMapping) and reader.cancel:
        cancel = _link(lookup(body, reader.cancel), url) or cancel
    job_id = _start_job_id(body, reader)
    dialect = detect_dialect(body) if reader is None else None
    if monitor is None and job_id is not None:
        monitor = _conventional_monitor(dialect, body, job_id, url)
    if job_id is None and monitor is not None:  # the monitor's last segment names the job
        job_id = urlsplit(monitor).path.rstrip("/").rsplit("/", 1)[-1] or None
    if not job_id:
        raise ProtocolError(f"the start answer has no job id; it has no 'job_id', 'id', 'name' "
                            f"or 'data.video_id' and no status monitor URL; got "
                            f"{describe(document)}")
    if cancel is None and monitor is not None and dialect == "openai" \
            and body.get("object") in ("batch", "fine_tuning.job"):
        cancel = monitor.split("?", 1)[0].rstrip("/") + "/cancel"
    if cancel is None and monitor is not None and dialect == "google":
        cancel = monitor.split("?", 1)[0] + ":cancel"
    return JobRef(job_id, monitor, cancel)


def _start_job_id(body: Mapping[str, Any],
                  reader: StatusReader | None) -> str | None:
    candidates = []
    if isinstance(reader, StatusMapping) and reader.job_id:
        candidates.append(lookup(body, reader.job_id))
    data = body.get("data")
    candidates += [body.get("job_id"), body.get("id"),
                   data.get("video_id", data.get("id")) if isinstance(data, Mapping) else None]
    name = body.get("name")
    if isinstance(name, str) and name:
        candidates.append(name.rsplit("/", 1)[-1])
    for value in candidates:
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
            return str(value)
    return None


def _conventional_monitor(dialect: str | None, body: Mapping[str, Any], job_id: str,
                          url: str) -> str | None:
    """The status URL a dialect's documentation fixes when its start answer names none."""
    if dialect == "google":
        name = body.get("name")
        if isinstance(name, str) and name:
            path = name if "/" in name else f"operations/{name}"
            return urljoin(_api_root(url) + "/", path)
    if dialect == "openai":  # POST /v1/batches -> GET /v1/batches/{id}
        return url.split("?", 1)[0].rstrip("/") + "/" + quote(job_id, safe="")
    if dialect == "heygen":
        parts = urlsplit(url)
        return urlunsplit((parts.scheme, parts.netloc, "/v1/video_status.get",
                           f"video_id={quote(job_id, safe='')}", ""))
    return None


def _api_root(url: str) -> str:
    """The URL up to its version segment (``https://h/v1`` of ``https://h/v1/batches``), else its
    origin: where AIP-151's ``{name}`` and OpenAI's ``files/`` hang."""
    parts = urlsplit(url)
    segments = parts.path.split("/")
    for index, segment in enumerate(segments):
        if len(segment) > 1 and segment[0] == "v" and segment[1].isdigit():
            return urlunsplit((parts.scheme, parts.netloc, "/".join(segments[:index + 1]), "", ""))
    return urlunsplit((parts.scheme, parts.netloc, "", "", ""))


# ------------------------------------------------------------------------------------ helpers
def _status(body: Mapping[str, Any], job_id: str | None, result: JobResult, phase: str, *,
            progress: float | None = None, error: str | None = None,
            output_url: str | None = None, cancel_url: str | None = None,
            monitor_url: str | None = None, raw: Mapping[str, Any] | None = None) -> JobStatus:
    found = body.get("id")
    return JobStatus(job_id=str(found) if isinstance(found, str) and found else job_id,
                     result=result, phase=phase, progress=progress, error=error,
                     output_url=output_url, cancel_url=cancel_url, monitor_url=monitor_url,
                     raw=dict(raw if raw is not None else body))


def _href(links: Any, *names: str) -> str | None:
    """A HAL-style ``_links`` entry: ``{"status": {"href": ...}}`` or ``{"status": "..."}``."""
    if not isinstance(links, Mapping):
        return None
    for name in names:
        link = links.get(name)
        if isinstance(link, Mapping):
            link = link.get("href")
        if isinstance(link, str) and link:
            return link
    return None


def _link(value: Any, base: str | None) -> str | None:
    """An http(s) URL (relative ones resolved against ``base``), else None."""
    if not isinstance(value, str) or not value.strip():
        return None
    value = value.strip()
    absolute = urljoin(base, value) if base else value
    return absolute if urlsplit(absolute).scheme in ("http", "https") else None


def _output(value: Any) -> str | None:
    """The output's location in a dialect's result: a URL string, the first of a list, or the
    first of the usual keys of an object."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return next((_output(item) for item in value if _output(item)), None)
    if isinstance(value, Mapping):
        return next((value[key] for key in _OUTPUT_KEYS if isinstance(value.get(key), str)),
                    None)
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _fraction(value: Any) -> float | None:
    """A progress as 0.0 to 1.0 (a value above 1 is a percentage)."""
    number = _number(value)
    if number is None:
        return None
    return min(max(number / 100 if number > 1 else number, 0.0), 1.0)


def _cancelled_error(error: Any) -> bool:
    """True for an error object whose code says the job was cancelled."""
    code = error.get("code") if isinstance(error, Mapping) else None
    return isinstance(code, str) and code.lower() in _CANCELLED_CODES


def _message(error: Any) -> str | None:
    """A failure's words: a string, or an error object's ``message`` (with its ``code``)."""
    if isinstance(error, str):
        return error or None
    if isinstance(error, Mapping):
        message, code = error.get("message"), error.get("code")
        if isinstance(message, str) and message:
            return f"{code}: {message}" if isinstance(code, str) and code else message
        return str(code) if code is not None else None
    return None
