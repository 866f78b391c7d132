"""Both clients against small in-test backends of each shape, over loopback HTTP.

The status monitor is found from the start answer with no template given (Operation-Location,
Location, body links, each dialect's convention); an explicit template still wins; the escape
hatch reads a shape none of the dialects has; cancel links are followed; a saved JobRef resumes a
wait; each credential scheme is sent right (and refused wrong), to base_url's origin only, and
never logged. Clocks are fake (no test waits for a decision); the HTTP is real.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask, request

from tests.helpers import FakeClock, serve_wsgi
from vtwait import (
    AsyncVideoTranslationClient,
    AuthenticationError,
    JobRef,
    JobResult,
    PollingPolicy,
    RetryPolicy,
    StatusMapping,
    VideoTranslationClient,
)

POLICY = PollingPolicy(jitter=None, long_poll=False, learn=False)
QUICK_RETRY = RetryPolicy(max_retries=1, backoff_jitter=0.0)
#: Status answers a job stays pending for before it ends.
PENDING_POLLS = 2
SECRET = "s3cr3t-token-4711"
BASIC = "YWw6czNjcjN0LXRva2VuLTQ3MTE="  # base64 of "al:" + SECRET


class Backend:
    """Jobs that end after PENDING_POLLS status answers, answered in each shape; every request
    is recorded (method, path with query, headers)."""

    def __init__(self) -> None:
        self.ids = itertools.count(1)
        self.polls: dict[str, int] = {}
        self.fate: dict[str, str] = {}
        self.cancelled: set[str] = set()
        self.seen: list[tuple[str, str, dict[str, str]]] = []
        self.lock = threading.Lock()
        self.required: tuple[str, str] | None = None  # (header, value) the server demands

    def new(self) -> str:
        body = request.get_json(silent=True) or {}
        job_id = f"j{next(self.ids)}"
        self.polls[job_id] = 0
        self.fate[job_id] = body.get("outcome") or "completed"
        return job_id

    def poll(self, job_id: str) -> str:
        """One status answer's state: pending, completed, error or canceled."""
        with self.lock:
            self.polls[job_id] += 1
            if job_id in self.cancelled:
                return "canceled"
            return "pending" if self.polls[job_id] <= PENDING_POLLS else self.fate[job_id]


def build_app(backend: Backend) -> Flask:
    app = Flask("dialects")

    @app.before_request
    def record() -> Any:
        backend.seen.append((request.method, request.full_path.rstrip("?"),
                             dict(request.headers)))
        if backend.required is not None:
            name, value = backend.required
            if request.headers.get(name) != value:
                return {"error": {"code": "unauthorized", "message": "bad credentials"}}, 401
        return None

    # native: 201 + Location
    @app.post("/native/start")
    def native_start() -> Any:
        job_id = backend.new()
        return {"job_id": job_id, "result": "pending"}, 201, {"Location": f"/native/s/{job_id}"}

    @app.get("/native/s/<job_id>")
    def native_status(job_id: str) -> Any:
        state = backend.poll(job_id)
        result = {"pending": "pending", "completed": "completed"}.get(state, "error")
        return {"job_id": job_id, "result": result, "phase": state,
                "output": {"url": f"/native/out/{job_id}"}}

    # Azure: 202 + Operation-Location (with a query of its own)
    @app.post("/azure/translations")
    def azure_start() -> Any:
        job_id = backend.new()
        return {"id": job_id, "status": "NotStarted"}, 202, {
            "Operation-Location": f"{request.host_url}azure/operations/{job_id}?api-version=1"}

    @app.get("/azure/operations/<job_id>")
    def azure_status(job_id: str) -> Any:
        assert request.args.get("api-version") == "1"
        words = {"pending": "Running", "completed": "Succeeded", "error": "Failed",
                 "canceled": "Canceled"}
        state = backend.poll(job_id)
        body: dict[str, Any] = {"id": job_id, "status": words[state]}
        if state == "completed":
            body["result"] = {"outputUrl": f"/azure/out/{job_id}"}
        return body

    # Google AIP-151: an Operation; GET /v1/{name}; POST /v1/{name}:cancel answers {}
    @app.post("/google/v1/videos:translate")
    def google_start() -> Any:
        return {"name": f"operations/{backend.new()}", "done": False}

    @app.get("/google/v1/operations/<job_id>")
    def google_status(job_id: str) -> Any:
        state = backend.poll(job_id)
        body: dict[str, Any] = {"name": f"operations/{job_id}", "done": state != "pending",
                                "metadata": {"progressPercent": 50}}
        if state == "completed":
            body["response"] = {"outputUri": f"/google/out/{job_id}"}
        elif state != "pending":
            body["error"] = {"code": 1 if state == "canceled" else 2, "message": state}
        return body

    @app.post("/google/v1/operations/<job_id>:cancel")
    def google_cancel(job_id: str) -> Any:
        backend.cancelled.add(job_id)
        return {}

    # Replicate: 201, links in the body (no Location)
    def prediction(job_id: str, state: str) -> dict[str, Any]:
        words = {"pending": "processing", "completed": "succeeded", "error": "failed",
                 "canceled": "canceled"}
        base = f"{request.host_url}replicate/v1/predictions/{job_id}"
        return {"id": job_id, "status": words[state], "urls": {"get": base,
                                                               "cancel": base + "/cancel"},
                "output": [f"/replicate/out/{job_id}.mp4"] if state == "completed" else None}

    @app.post("/replicate/v1/predictions")
    def replicate_start() -> Any:
        return prediction(backend.new(), "pending") | {"status": "starting"}, 201

    @app.get("/replicate/v1/predictions/<job_id>")
    def replicate_status(job_id: str) -> Any:
        return prediction(job_id, backend.poll(job_id))

    @app.post("/replicate/v1/predictions/<job_id>/cancel")
    def replicate_cancel(job_id: str) -> Any:
        backend.cancelled.add(job_id)
        return prediction(job_id, "canceled")

    # OpenAI: a job object; GET <collection>/{id}
    @app.post("/openai/v1/videos")
    def openai_start() -> Any:
        return {"id": backend.new(), "object": "video", "status": "queued"}

    @app.get("/openai/v1/videos/<job_id>")
    def openai_status(job_id: str) -> Any:
        words = {"pending": "in_progress", "completed": "completed", "error": "failed"}
        return {"id": job_id, "object": "video", "status": words[backend.poll(job_id)],
                "progress": 50}

    # HeyGen: a data envelope; GET /v1/video_status.get?video_id=
    @app.post("/heygen/v2/video/generate")
    def heygen_start() -> Any:
        return {"error": None, "data": {"video_id": backend.new()}}

    @app.get("/v1/video_status.get")
    def heygen_status() -> Any:
        job_id = request.args["video_id"]
        state = backend.poll(job_id)
        return {"code": 100, "data": {"id": job_id, "status": {"pending": "processing"}.get(
            state, "completed" if state == "completed" else "failed"),
            "video_url": f"/heygen/out/{job_id}.mp4" if state == "completed" else None}}

    # A shape none of the dialects has (the escape hatch)
    @app.post("/custom/tasks")
    def custom_start() -> Any:
        job_id = backend.new()
        return {"task": {"ref": job_id, "phase": "WAITING"}, "links": {"poll": f"t/{job_id}"}}

    @app.get("/custom/t/<job_id>")
    def custom_status(job_id: str) -> Any:
        state = backend.poll(job_id)
        phase = {"pending": "RENDERING", "completed": "DONE"}.get(state, "BROKEN")
        return {"task": {"ref": job_id, "phase": phase, "pct": 40, "why": "melted"},
                "files": [{"href": f"/custom/out/{job_id}"}]}

    # A start answer whose monitor is on another origin (localhost, not 127.0.0.1)
    @app.post("/elsewhere/start")
    def elsewhere_start() -> Any:
        job_id = backend.new()
        port = request.host.rsplit(":", 1)[1]
        return {"job_id": job_id, "result": "pending"}, 202, {
            "Location": f"http://localhost:{port}/native/s/{job_id}"}

    # A monitor that redirects to another origin (localhost, not 127.0.0.1)
    @app.post("/redir/start")
    def redir_start() -> Any:
        job_id = backend.new()
        return {"job_id": job_id, "result": "pending"}, 201, {"Location": f"/redir/s/{job_id}"}

    @app.get("/redir/s/<job_id>")
    def redir_status(job_id: str) -> Any:
        port = request.host.rsplit(":", 1)[1]
        return "", 302, {"Location": f"http://localhost:{port}/native/s/{job_id}"}

    return app


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[str, Backend]]:
    backend = Backend()
    with serve_wsgi(build_app(backend)) as url:
        yield url, backend


@pytest.fixture
def server(served) -> Iterator[tuple[str, Backend]]:
    url, backend = served
    backend.seen.clear()
    backend.required = None
    yield url, backend
    backend.required = None


def call_sync(url: str, action: Callable[[Any], Any], **kwargs: Any) -> Any:
    clock = FakeClock()
    kwargs = {"policy": POLICY, **kwargs}
    with VideoTranslationClient(url, clock=clock, sleep=clock.sleep, retry=QUICK_RETRY,
                                **kwargs) as api:
        return action(api)


def call_async(url: str, action: Callable[[Any], Any], **kwargs: Any) -> Any:
    clock = FakeClock()

    async def sleep(seconds: float) -> None:
        clock.sleep(seconds)

    kwargs = {"policy": POLICY, **kwargs}

    async def run() -> Any:
        async with AsyncVideoTranslationClient(url, clock=clock, sleep=sleep, retry=QUICK_RETRY,
                                               **kwargs) as api:
            return await action(api)

    return asyncio.run(run())


@pytest.fixture(params=["sync", "async"])
def call(request) -> Callable[..., Any]:
    """``call(url, action, **client_kwargs)``: ``action(api)`` with either client (awaited)."""
    return call_sync if request.param == "sync" else call_async


async def _maybe(value: Any) -> Any:
    return await value if asyncio.iscoroutine(value) else value


def start_and_wait(**start: Any) -> Callable[[Any], Any]:
    """An action: start a job, wait for it; (job id, final status, its JobRef)."""
    async def run_async(api: Any) -> Any:
        job_id = await api.start_job(**start)
        return job_id, await api.wait_for_completion(job_id), api.job_ref(job_id)

    def action(api: Any) -> Any:
        if isinstance(api, AsyncVideoTranslationClient):
            return run_async(api)
        job_id = api.start_job(**start)
        return job_id, api.wait_for_completion(job_id), api.job_ref(job_id)
    return action


# (shape, start_url, the status path polled, the output URL's path)
SHAPES = [
    ("native", "/native/start", "/native/s/{id}", "/native/out/{id}"),
    ("azure", "/azure/translations", "/azure/operations/{id}?api-version=1", "/azure/out/{id}"),
    ("google", "/google/v1/videos:translate", "/google/v1/operations/{id}", "/google/out/{id}"),
    ("replicate", "/replicate/v1/predictions", "/replicate/v1/predictions/{id}",
     "/replicate/out/{id}.mp4"),
    ("openai", "/openai/v1/videos", "/openai/v1/videos/{id}", None),
    ("heygen", "/heygen/v2/video/generate", "/v1/video_status.get?video_id={id}",
     "/heygen/out/{id}.mp4"),
]


@pytest.mark.parametrize("shape,start_url,status_path,output_path", SHAPES,
                         ids=[s[0] for s in SHAPES])
def test_the_status_monitor_is_discovered_with_no_template(call, server, shape, start_url,
                                                           status_path, output_path):
    """Start, then wait with no status template: every status request goes to the monitor the
    start answer named (or the dialect's convention), the final status carries the output."""
    url, backend = server
    job_id, status, ref = call(url, start_and_wait(), start_url=start_url)
    assert status.result is JobResult.COMPLETED and status.done
    polled = [path for method, path, _ in backend.seen if method == "GET"]
    want = status_path.format(id=job_id)
    assert len(polled) == PENDING_POLLS + 1
    assert all(path.startswith(want.split("?")[0]) for path in polled), polled
    assert ref.status_url is not None and ref.status_url.endswith(want)
    if output_path:
        assert status.output_url == url + output_path.format(id=job_id)


def test_a_long_poll_keeps_the_monitor_s_own_query(call, server):
    """The long-poll's ?wait= is added to Operation-Location's ?api-version=, not put in its
    place."""
    url, backend = server
    job_id, status, _ = call(url, start_and_wait(), start_url="/azure/translations",
                             policy=PollingPolicy(jitter=None, learn=False, max_long_poll=5))
    assert status.done
    polled = {path for method, path, _ in backend.seen if method == "GET"}
    assert polled == {f"/azure/operations/{job_id}?api-version=1&wait=5"}


def test_an_explicit_template_beats_the_monitor(call, server):
    """status_url given: it is asked, whatever Operation-Location says."""
    url, backend = server
    job_id, status, _ = call(url, start_and_wait(), start_url="/azure/translations",
                             status_url="/native/s/{job_id}")
    assert status.done
    polled = {path for method, path, _ in backend.seen if method == "GET"}
    assert polled == {f"/native/s/{job_id}"}


def test_the_escape_hatch_reads_a_shape_no_dialect_has(call, server):
    """A StatusMapping: the id, the relative next-poll link, the words, progress, output."""
    url, backend = server
    mapping = StatusMapping(state="task.phase", done={"DONE"}, failed={"BROKEN"},
                            pending={"WAITING", "RENDERING"}, job_id="task.ref",
                            progress="task.pct", error="task.why", output="files.0.href",
                            next_url="links.poll")
    job_id, status, ref = call(url, start_and_wait(outcome="error"), start_url="/custom/tasks",
                               status_reader=mapping)
    assert (status.result, status.phase, status.error) == (JobResult.ERROR, "error", "melted")
    assert ref.status_url == f"{url}/custom/t/{job_id}"
    assert {path for method, path, _ in backend.seen if method == "GET"} == {f"/custom/t/{job_id}"}


def test_without_the_escape_hatch_an_unknown_shape_is_a_protocol_error(call, server):
    """The same backend with no mapping: the start answer names no job, and the error says what
    was missing instead of waiting forever."""
    from vtwait import ProtocolError

    url, _ = server
    with pytest.raises(ProtocolError, match="no job id"):
        call(url, start_and_wait(), start_url="/custom/tasks")


@pytest.mark.parametrize("shape,start_url,cancel_path", [
    ("replicate", "/replicate/v1/predictions", "/replicate/v1/predictions/{id}/cancel"),
    ("google", "/google/v1/videos:translate", "/google/v1/operations/{id}:cancel"),
])
def test_cancel_follows_the_dialect_s_cancel_link(call, server, shape, start_url, cancel_path):
    """cancel() posts to the link the dialect gives; an AIP-151 cancel answers {} and the
    client waits for the operation to end cancelled."""
    url, backend = server

    async def run_async(api: Any) -> Any:
        job_id = await api.start_job()
        return job_id, await api.cancel(job_id)

    def action(api: Any) -> Any:
        if isinstance(api, AsyncVideoTranslationClient):
            return run_async(api)
        job_id = api.start_job()
        return job_id, api.cancel(job_id)

    job_id, status = call(url, action, start_url=start_url)
    assert (status.result, status.phase) == (JobResult.ERROR, "canceled")
    assert ("POST", cancel_path.format(id=job_id)) in [(m, p) for m, p, _ in backend.seen]


def test_a_saved_job_ref_resumes_the_wait_in_another_client(call, server):
    """One client starts and saves the JobRef; a new client waits on it at the same monitor."""
    url, backend = server
    saved = call_sync(url, lambda api: api.job_ref(api.start_job()).to_dict(),
                      start_url="/azure/translations")
    ref = JobRef.from_dict(saved)
    backend.seen.clear()
    status = call(url, lambda api: api.wait_for_completion(ref))
    assert status.done and status.job_id == ref.job_id
    assert {p for m, p, _ in backend.seen} == {f"/azure/operations/{ref.job_id}?api-version=1"}


@pytest.mark.parametrize("start_url,status_path,stream", [
    ("/replicate/v1/predictions", "/replicate/v1/predictions/{id}", False),
    ("/native/start", "/native/s/{id}", True),
])
def test_batch_waits_follow_each_job_s_monitor(call, server, start_url, status_path, stream):
    """wait_many on jobs with discovered monitors: each job asked at its own; the event stream
    (this API's own) is tried only when the monitors are the template's URLs, here the native
    Location (this backend has none: 404, then per-job waits)."""
    url, backend = server

    async def run_async(api: Any) -> Any:
        ids = [await api.start_job() for _ in range(3)]
        return ids, await api.wait_many(ids, timeout=60)

    def action(api: Any) -> Any:
        if isinstance(api, AsyncVideoTranslationClient):
            return run_async(api)
        ids = [api.start_job() for _ in range(3)]
        return ids, api.wait_many(ids, timeout=60)

    ids, ended = call(url, action, start_url=start_url,
                      status_url="/native/s/{job_id}" if stream else None)
    assert list(ended) == ids and all(s.result is JobResult.COMPLETED for s in ended.values())
    polled = {p for m, p, _ in backend.seen if m == "GET" and not p.startswith("/events")}
    assert polled == {status_path.format(id=job_id) for job_id in ids}
    assert any(p.startswith("/events") for m, p, _ in backend.seen) is stream


# ------------------------------------------------------------------------------------ auth
SCHEMES = [
    ("bearer", {"bearer_token": SECRET}, ("Authorization", f"Bearer {SECRET}")),
    ("api key", {"api_key": SECRET}, ("X-Api-Key", SECRET)),
    ("api key, own header", {"api_key": SECRET, "api_key_header": "Ocp-Apim-Subscription-Key"},
     ("Ocp-Apim-Subscription-Key", SECRET)),
    ("basic", {"username": "al", "password": SECRET}, ("Authorization", f"Basic {BASIC}")),
]


@pytest.mark.parametrize("name,kwargs,required", SCHEMES, ids=[s[0] for s in SCHEMES])
def test_each_auth_scheme_is_accepted_right_and_refused_wrong(call, server, caplog, monkeypatch,
                                                             name, kwargs, required):
    """The scheme's header is sent on every request; a wrong secret is an AuthenticationError;
    the secret is in no log line (DEBUG, every logger) and no repr."""
    for variable in ("API_USERNAME", "API_PASSWORD", "API_KEY", "API_BEARER_TOKEN",
                     "API_KEY_HEADER"):
        monkeypatch.delenv(variable, raising=False)
    url, backend = server
    backend.required = required
    caplog.set_level(logging.DEBUG)
    _, status, _ = call(url, start_and_wait(), start_url="/native/start", **kwargs)
    assert status.done
    wrong = {k: ("wrong" if v == SECRET else v) for k, v in kwargs.items()}
    with pytest.raises(AuthenticationError) as caught:
        call(url, start_and_wait(), start_url="/native/start", **wrong)
    assert caught.value.status_code == 401
    assert SECRET not in caplog.text and BASIC not in caplog.text
    shown = call_sync(url, lambda api: repr(api) + repr(api.session.auth) + repr(api._credentials),
                      **kwargs)
    # requests keeps a Basic pair as the tuple it is (session.auth == (user, password)).
    assert SECRET not in (shown if name != "basic" else shown.replace(repr(("al", SECRET)), ""))


@pytest.mark.parametrize("variables,required", [
    ({"API_BEARER_TOKEN": SECRET}, ("Authorization", f"Bearer {SECRET}")),
    ({"API_KEY": SECRET}, ("X-Api-Key", SECRET)),
    ({"API_KEY": SECRET, "API_KEY_HEADER": "x-goog-api-key"}, ("x-goog-api-key", SECRET)),
])
def test_credentials_come_from_the_environment(call, server, monkeypatch, variables, required):
    """No credential argument: the environment's bearer token or API key (and header)."""
    for variable in ("API_USERNAME", "API_PASSWORD", "API_KEY", "API_BEARER_TOKEN",
                     "API_KEY_HEADER"):
        monkeypatch.delenv(variable, raising=False)
    for variable, value in variables.items():
        monkeypatch.setenv(variable, value)
    url, backend = server
    backend.required = required
    assert call(url, start_and_wait(), start_url="/native/start")[1].done


def test_a_token_never_goes_to_a_monitor_on_another_origin(call, server, monkeypatch):
    """A start answer pointing at another origin gets no credentials there (127.0.0.1 vs
    localhost), while base_url's origin does."""
    monkeypatch.delenv("API_KEY", raising=False)
    url, backend = server
    call(url, start_and_wait(), start_url="/elsewhere/start", api_key=SECRET)
    sent = {(method, path): headers.get("X-Api-Key") for method, path, headers in backend.seen}
    assert sent[("POST", "/elsewhere/start")] == SECRET
    assert [key for (method, _), key in sent.items() if method == "GET"] == [None]


def test_a_redirect_to_another_origin_drops_the_key(call, server, monkeypatch):
    """The monitor answers 302 to another origin: the key went to the monitor, not on to the
    redirect's target (the HTTP libraries strip only Authorization on a change of host)."""
    monkeypatch.delenv("API_KEY", raising=False)
    url, backend = server
    job_id, status, _ = call(url, start_and_wait(), start_url="/redir/start", api_key=SECRET)
    assert status.done
    keys = {path.split("/")[1]: headers.get("X-Api-Key")
            for method, path, headers in backend.seen if method == "GET"}
    assert keys == {"redir": SECRET, "native": None}


def test_two_credential_schemes_at_once_are_refused():
    """One scheme per client: a ValueError naming both."""
    with pytest.raises(ValueError, match="bearer_token and api_key"):
        VideoTranslationClient("http://127.0.0.1:1", bearer_token="a", api_key="b")
    with pytest.raises(ValueError, match="header name"):
        VideoTranslationClient("http://127.0.0.1:1", api_key="b", api_key_header="bad header")
    with pytest.raises(ValueError, match="line breaks"):
        VideoTranslationClient("http://127.0.0.1:1", bearer_token="a\r\nX-Evil: 1")


@pytest.mark.parametrize("start_url", ["/heygen/v2/video/generate", "/google/v1/videos:translate"])
def test_a_start_answer_without_a_state_counts_as_a_silent_pending_start(server, start_url):
    """HeyGen's start answer names the video but not its state: like AIP-151's pending
    operation, a just-created job with no hint, so the learned schedule sleeps before the
    first ask instead of spending it at once."""
    from vtwait.core.planner import Sleep

    url, _ = server
    clock = FakeClock()
    with VideoTranslationClient(url, clock=clock, sleep=clock.sleep, start_url=start_url,
                                policy=PollingPolicy(jitter=None)) as api:
        job_id = api.start_job()
        wait = api._new_wait(job_id, started=clock(), timeout=60)
        assert isinstance(wait.next(clock()), Sleep)
