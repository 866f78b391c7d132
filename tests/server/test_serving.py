"""How ``python server.py`` serves: gunicorn + gevent as shipped, the gunicorn command, the checks
at start, the graceful stop, 2,000 held long-polls, and ``/metrics``.

Every server here is a real subprocess on 127.0.0.1 and an OS-chosen port.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import resource
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

import vtwait.testing as testing
from tests.helpers import FakeClock, fast_settings, serving_process, settings_env, start_server_process
from vtwait.server.settings import OPTIONS
from vtwait.server.state import app_state

ROOT = Path(__file__).resolve().parents[2]


def metric_samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``/metrics`` text parsed by prometheus_client's own parser: {(name, labels): value}."""
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def live_metrics(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    reply = requests.get(f"{url}/metrics", timeout=10)
    assert reply.status_code == 200 and reply.headers["Content-Type"].startswith("text/plain")
    return metric_samples(reply.text)


def wait_until(condition, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def run_server(*args: str, env: dict[str, str] | None = None, limit: tuple[int, int] | None = None,
               command: list[str] | None = None) -> subprocess.Popen:
    """Starts ``python server.py ARGS`` (or ``command``) with only ``env`` for settings and,
    if given, an open-file limit; its stdout and stderr merged into one text pipe."""
    names = {option.env for option in OPTIONS}
    environment = {k: v for k, v in os.environ.items() if k not in names}
    environment.update(env or {}, PYTHONUNBUFFERED="1")
    command = command or [sys.executable, str(ROOT / "server.py"), "--port", "0", "--env-file",
                          os.devnull, *args]
    return subprocess.Popen(
        command, env=environment, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
        preexec_fn=(lambda: resource.setrlimit(resource.RLIMIT_NOFILE, limit)) if limit else None)


def read_until(process: subprocess.Popen, pattern: str, timeout: float = 20.0) -> list[str]:
    """The process's output lines up to the first that matches ``pattern`` (a regex)."""
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if re.search(pattern, line):
            return lines
    process.kill()
    raise AssertionError(f"{pattern!r} never appeared: {lines[-20:]}")


def stop(process: subprocess.Popen) -> None:
    testing.stop_process(process, timeout=15)


# -------------------------------------------------------------------------- checks at start
@pytest.mark.parametrize("extra", [(), ("--dev-server",)], ids=["gunicorn", "dev-server"])
def test_two_workers_with_the_memory_store_are_refused_in_one_line(extra) -> None:
    """--workers 2 with the in-memory store: exit 2 and one line naming the flag and the store."""
    done = subprocess.run([sys.executable, str(ROOT / "server.py"), "--port", "0", "--env-file",
                           os.devnull, "--workers", "2", *extra], capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("server.py: error: --")
    assert "--workers" in lines[0] or "--dev-server" in lines[0]
    assert done.stdout == ""


def test_gunicorn_command_with_two_workers_is_refused_too() -> None:
    """gunicorn -c gunicorn.conf.py -w 2: the same check, exit 2 before any worker starts."""
    process = run_server(command=[sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py",
                                  "-b", "127.0.0.1:0", "-w", "2", "server:create_app()"])
    out, _ = process.communicate(timeout=30)
    assert process.returncode == 2
    assert "server.py: error: --workers 2 needs a shared job store" in out
    assert "Booting worker" not in out


@pytest.mark.parametrize(("module", "absent"), [
    # The command line loads nothing that imports ssl before gevent patches (a clean start).
    ("vtwait.server.cli", ("vtwait.server.app", "requests", "redis", "flask", "gevent")),
    # The gunicorn side is handed the app factory: it never imports the app itself.
    ("vtwait.server.serving", ("vtwait.server.app", "vtwait.server.routes", "requests", "redis")),
    # The store interface is a leaf: no store, no HTTP.
    ("vtwait.server.stores.base", ("vtwait.server.stores.memory", "vtwait.server.stores.redis_store",
                                   "flask", "redis")),
])
def test_server_modules_import_only_what_they_need(module: str, absent: tuple[str, ...]) -> None:
    """Importing one server module (in a fresh interpreter) leaves the named modules unloaded."""
    code = (f"import sys, {module}; "
            f"print(sorted(m for m in {list(absent)!r} if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, check=True)
    assert done.stdout.strip() == "[]"


def test_a_default_start_prints_no_warning_and_a_short_banner() -> None:
    """python server.py with every setting at its default: no warning on stdout or stderr (gevent
    patched before anything imported ssl), the listening line, then a short banner (server, auth,
    store, "all defaults") instead of the settings' repr; the worker boots and serves."""
    process = run_server()
    try:
        lines = read_until(process, r"Listening on http://")
        lines += read_until(process, r"job \w+ started")  # the worker built the app
    finally:
        stop(process)
    assert process.stdout is not None
    lines += process.stdout.read().splitlines()
    output = "\n".join(lines)
    assert "Warning" not in output and "WARNING" not in output, output
    assert "Settings(" not in output
    listening = next(i for i, line in enumerate(lines) if line.startswith("Listening on http://"))
    assert lines[listening + 1] == "Server: gunicorn + gevent, 1 worker; auth off; store memory"
    assert lines[listening + 2] == "Settings: all defaults (--help lists them)"


@pytest.mark.parametrize(
    ("limit", "waiters", "expected"),
    [
        ((256, 256), 10000, r"ulimit -n is 256 \(hard 256\): at most 192 long-polls can be held, "
                            r"below MAX_WAITERS=10000"),
        ((256, 8192), 1000, r"raised the open-file limit from 256 to 2088 for MAX_WAITERS=1000"),
    ],
    ids=["capped", "raised"],
)
def test_the_open_file_limit_is_raised_or_reported_at_start(limit, waiters, expected) -> None:
    """A soft RLIMIT_NOFILE below what MAX_WAITERS needs is raised toward the hard limit; when
    the hard limit is too low, one log line says how many waiters fit."""
    process = run_server(env={"MAX_WAITERS": str(waiters)}, limit=limit)
    try:
        lines = read_until(process, r"Listening on http://")
        lines += read_until(process, r"job \w+ started")  # the worker is up: a quick stop
    finally:
        stop(process)
    assert len([line for line in lines if re.search(expected, line)]) == 1, lines


# ------------------------------------------------------------------- the gunicorn command
def test_the_documented_gunicorn_command_serves_the_same_server() -> None:
    """gunicorn -c gunicorn.conf.py 'server:create_app()': the app with its JSON errors for
    malformed HTTP, one log line per request, and a graceful stop with exit 0."""
    process = run_server(command=[sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py",
                                  "-b", "127.0.0.1:0", "server:create_app()"],
                         env=settings_env(fast_settings()))
    try:
        lines = read_until(process, r"Listening at: http://")
        found = re.search(r"(http://127\.0\.0\.1:\d+)", lines[-1])
        assert found is not None
        url = found.group(1)
        lines += read_until(process, r"job \w+ started")  # the worker built the app
        assert requests.get(f"{url}/status", timeout=10).json()["result"] in {"pending",
                                                                             "completed"}
        answer = raw_exchange(url, b"NOT HTTP AT ALL\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 400 ") and b'"code":"bad_request"' in answer
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=30)
    finally:
        stop(process)
    assert process.returncode == 0
    assert len(re.findall(r" vtwait\.server[\w.]*: GET /status 200 ", out)) == 1, out  # no second access log


# ------------------------------------------------------------------------ request lines
@pytest.mark.parametrize("flags", [(), ("--dev-server",)], ids=["gunicorn", "dev-server"])
def test_request_lines_up_to_64_kib_are_accepted(flags) -> None:
    """A 65,000-byte request line (1,000 job ids take ~40 KB) reaches the app in every mode."""
    with start_server_process(fast_settings(), *flags) as srv:
        query = "job_id=" + "a" * (65_000 - len("GET /status? HTTP/1.1"))
        reply = requests.get(f"{srv.url}/status?{query}", timeout=10)
    assert reply.status_code == 404 and reply.json()["error"]["code"] == "not_found"


def raw_exchange(url: str, data: bytes) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


# ------------------------------------------------------------------------ graceful stop
def read_answer(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Reads one HTTP answer to the end of its body (Content-Length) or of the connection."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)  # a reset raises ConnectionResetError: the test fails
        assert chunk, f"connection closed without an answer: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    while len(body) < int(headers.get("content-length", "0")):
        chunk = sock.recv(65536)
        assert chunk, "connection closed mid-body"
        body += chunk
    return int(status_line.split()[1]), headers, body


@pytest.mark.parametrize("how", ["SIGTERM", "Ctrl+C"])
def test_stop_answers_every_held_long_poll_and_exits_0(how: str) -> None:
    """SIGTERM, or SIGINT to master and worker as a terminal's Ctrl+C sends it: each of 50 held
    long-polls gets 200 with its job's current (pending) status and Connection: close, an idle
    keep-alive connection is closed, nothing is reset, and the server exits 0."""
    srv = start_server_process(fast_settings())
    worker = serving_process(srv)
    try:
        with requests.Session() as session:
            job_ids = [session.post(f"{srv.url}/start", json={"delay": 3600}, timeout=10)
                       .json()["job_id"] for _ in range(50)]
        host, port = srv.url.removeprefix("http://").split(":")
        held = []
        for job_id in job_ids:
            sock = socket.create_connection((host, int(port)), timeout=30)
            sock.sendall(f"GET /status/{job_id}?wait=30 HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            held.append(sock)
        idle = socket.create_connection((host, int(port)), timeout=30)
        idle.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_answer(idle)[0] == 200
        assert wait_until(lambda: live_metrics(srv.url)[("long_polls_held", ())] == 50)
        if how == "SIGTERM":
            srv.process.send_signal(signal.SIGTERM)
        else:
            srv.process.send_signal(signal.SIGINT)
            worker.send_signal(signal.SIGINT)
        for job_id, sock in zip(job_ids, held, strict=True):
            status, headers, body = read_answer(sock)
            assert status == 200 and headers["connection"] == "close"
            document = json.loads(body)
            assert document["job_id"] == job_id and document["result"] == "pending"
            assert sock.recv(1024) == b""  # then closed, cleanly
            sock.close()
        assert idle.recv(1024) == b""
        idle.close()
        assert srv.process.wait(timeout=30) == 0
    finally:
        srv.stop()
    assert any("answering 50 held long-polls" in line for line in srv.output), srv.output[-20:]


def test_stop_ends_a_streaming_answer_cleanly() -> None:
    """A long-lived streaming answer (as an event stream is) is told to end at a stop: its last
    event and the chunked terminator arrive, no reset, exit 0."""
    process = run_server(command=[sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py",
                                  "-b", "127.0.0.1:0", "--pythonpath", "tests", "stream_app:app"])
    try:
        lines = read_until(process, r"Listening at: http://")
        found = re.search(r"http://127\.0\.0\.1:(\d+)", lines[-1])
        assert found is not None
        with socket.create_connection(("127.0.0.1", int(found.group(1))), timeout=30) as sock:
            sock.sendall(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
            data = b""
            while b": open" not in data:
                chunk = sock.recv(65536)
                assert chunk, data
                data += chunk
            process.send_signal(signal.SIGTERM)
            while chunk := sock.recv(65536):  # a reset raises here
                data += chunk
        out, _ = process.communicate(timeout=30)
    finally:
        stop(process)
    assert data.startswith(b"HTTP/1.1 200 ") and b"Transfer-Encoding: chunked" in data
    assert b"event: bye" in data and data.endswith(b"0\r\n\r\n")  # the last chunk, then the end
    assert process.returncode == 0, out


def test_stop_ends_the_event_stream_cleanly() -> None:
    """GET /events on python server.py: at SIGTERM the stream ends with the chunked terminator
    (no reset), and the server exits 0."""
    srv = start_server_process(fast_settings())
    try:
        host, port = srv.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=30) as sock:
            sock.sendall(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
            data = b""
            while b"retry:" not in data:
                chunk = sock.recv(65536)
                assert chunk, data
                data += chunk
            srv.process.send_signal(signal.SIGTERM)
            while chunk := sock.recv(65536):  # a reset raises here
                data += chunk
        assert srv.process.wait(timeout=30) == 0
    finally:
        srv.stop()
    assert data.startswith(b"HTTP/1.1 200 ") and b"text/event-stream" in data
    assert data.endswith(b"0\r\n\r\n")  # the last chunk: the stream ended, not cut
    assert any("event stream closed" in line and "server stopping" in line
               for line in srv.output), srv.output[-10:]


# ------------------------------------------------------------------- 2,000 held long-polls
HELD = 2000


async def hold_long_polls(url: str, rng: random.Random) -> list[tuple[str, str, dict, str]]:
    """Starts HELD jobs (8-10 s, forced outcomes), then long-polls all of them at once from
    one asyncio client; returns (job id, forced outcome, final document, Preference-Applied)."""
    connector = aiohttp.TCPConnector(limit=0)  # one connection per held request
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        starts = asyncio.Semaphore(50)

        async def start(outcome: str) -> str:
            async with starts, session.post(f"{url}/start", json={
                    "delay": rng.uniform(8, 10), "outcome": outcome}) as reply:
                assert reply.status == 201
                return (await reply.json())["job_id"]

        forced = [rng.choice(["completed", "error"]) for _ in range(HELD)]
        job_ids = await asyncio.gather(*(start(outcome) for outcome in forced))

        async def wait(job_id: str) -> tuple[dict, str]:
            async with session.get(f"{url}/status/{job_id}?wait=30") as reply:
                assert reply.status == 200
                return await reply.json(), reply.headers.get("Preference-Applied", "")

        answers = await asyncio.gather(*(wait(job_id) for job_id in job_ids))
    return [(j, f, doc, applied) for j, f, (doc, applied) in zip(job_ids, forced, answers, strict=True)]


def test_two_thousand_long_polls_from_one_asyncio_client_each_get_their_final_result(
        tmp_path) -> None:
    """2,000 concurrent long-polls on one gunicorn worker: all held at once, each answered when
    its job ends with its forced result; /metrics (multi-process mode, as with several workers)
    counts them; no thread per held request."""
    env = {**settings_env(fast_settings()), "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    with testing.ServerProcess.start(env=env) as srv:
        worker = serving_process(srv)
        threads_before = worker.num_threads()
        peak = {"held": 0.0, "threads": 0}

        async def run() -> list:
            polls = asyncio.create_task(hold_long_polls(srv.url, random.Random(8)))
            while not polls.done():
                samples = await asyncio.to_thread(live_metrics, srv.url)
                peak["held"] = max(peak["held"], samples[("long_polls_held", ())])
                peak["threads"] = max(peak["threads"], worker.num_threads())
                await asyncio.sleep(0.5)
            return await polls

        results = asyncio.run(run())
        samples = live_metrics(srv.url)
    assert len(results) == HELD and len({job_id for job_id, *_ in results}) == HELD
    for job_id, forced, document, applied in results:
        assert document["job_id"] == job_id and document["result"] == forced
        assert applied == "wait=30"  # held, not answered at once
    assert peak["held"] == HELD, peak
    assert peak["threads"] <= threads_before + 2, peak  # greenlets, not threads
    finished = {result: samples[("jobs_finished_total", (("result", result),))]
                for result in ("completed", "error")}
    assert finished["error"] == sum(forced == "error" for _, forced, _, _ in results)
    assert samples[("jobs_started_total", ())] == HELD + 1  # and the default job
    assert samples[("http_requests_total", (("method", "GET"), ("route", "/status/<job_id>"),
                                            ("status", "200")))] == HELD
    assert samples[("long_polls_held", ())] == 0
    assert list(tmp_path.glob("*.db"))  # the multi-process files were really used


# ------------------------------------------------------------------------------ /metrics
def test_metrics_count_requests_jobs_and_durations(make_app, fake_clock: FakeClock) -> None:
    """/metrics, without credentials, parsed by prometheus_client: requests by route, method
    and status; duration histogram; jobs started, finished and live by result."""
    app = make_app(fast_settings(api_username="u", api_password="p"), clock=fake_clock.monotonic,
                   wall_clock=fake_clock.wall, start_worker=False)
    client = app.test_client()
    auth = {"Authorization": "Basic dTpw"}
    job_id = client.post("/start", json={"delay": 0, "outcome": "error"},
                         headers=auth).get_json()["job_id"]
    assert client.get(f"/status/{job_id}", headers=auth).status_code == 200
    assert client.get("/nope", headers=auth).status_code == 404
    assert client.get("/status").status_code == 401
    reply = client.get("/metrics")  # no credentials needed
    assert reply.status_code == 200 and reply.mimetype == "text/plain"
    samples = metric_samples(reply.get_data(as_text=True))

    def requests_total(route: str, method: str, status: str) -> float:
        labels = (("method", method), ("route", route), ("status", status))
        return samples.get(("http_requests_total", labels), 0.0)

    assert requests_total("/start", "POST", "201") == 1
    assert requests_total("/status/<job_id>", "GET", "200") == 1
    assert requests_total("unmatched", "GET", "404") == 1
    assert requests_total("/status", "GET", "401") == 1
    duration = ("http_request_duration_seconds_count", (("route", "/status/<job_id>"),))
    assert samples[duration] == 1
    assert samples[("jobs_started_total", ())] == 2  # the default job and this one
    assert samples[("jobs_finished_total", (("result", "error"),))] == 1
    live = {result: samples[("jobs_live", (("result", result),))]
            for result in ("pending", "completed", "error")}
    assert live == {"pending": 1, "completed": 0, "error": 1}  # the default job is pending
    assert samples[("long_polls_held", ())] == 0


def test_metrics_follow_jobs_to_their_end_and_eviction(make_app, fake_clock: FakeClock) -> None:
    """jobs_live moves from pending to the result, then to nothing once the job is forgotten."""
    app = make_app(fast_settings(job_ttl=10), clock=fake_clock.monotonic,
                   wall_clock=fake_clock.wall, start_worker=False)
    client = app.test_client()
    client.post("/start", json={"delay": 1, "outcome": "completed"})
    store = app_state(app).store

    def live() -> dict[str, float]:
        samples = metric_samples(client.get("/metrics").get_data(as_text=True))
        return {result: samples[("jobs_live", (("result", result),))]
                for result in ("pending", "completed", "error")}

    assert live() == {"pending": 2, "completed": 0, "error": 0}
    fake_clock.advance(2)
    store.process_due()
    assert live() == {"pending": 0, "completed": 2, "error": 0}
    fake_clock.advance(20)
    store.process_due()
    assert live() == {"pending": 0, "completed": 1, "error": 0}  # the default job stays
