"""The Redis store beyond the shared suite: settings, exactly-once finishing with racing workers,
cross-process wake, Redis lost and back, and kill -9 of everything with AOF on.

Every test runs a real ``redis-server`` (``redis_fixture``); the shared behaviour of both stores is
specified in ``test_server.py``, which runs on each.
"""

from __future__ import annotations

import collections
import itertools
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest
import requests

import vtwait.server.app as server
import vtwait.server.stores.redis_store as redis_store
from tests.helpers import ROOT, FakeClock, fast_settings
from vtwait.server.state import app_state
from vtwait.server.stores.base import JobEvent
from vtwait.server.stores.redis_store import LATE_FINISH, RedisJobStore
from vtwait.testing import RedisServer, ServerProcess, _free_port


def settle(predicate, timeout: float = 20.0) -> bool:
    """Polls ``predicate`` every 10 ms until it holds or ``timeout`` passes; returns the last value."""
    deadline = time.monotonic() + timeout
    while not (ok := predicate()) and time.monotonic() < deadline:
        time.sleep(0.01)
    return ok


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test alone, with AOF on (fsync always), so it can be killed."""
    redis = RedisServer.start(tmp_path / "redis", appendonly=True)
    yield redis
    redis.kill()


@pytest.fixture
def stores():
    """Factory: a RedisJobStore on settings; all shut down at teardown."""
    made: list[RedisJobStore] = []

    def factory(settings: server.Settings, **kwargs) -> RedisJobStore:
        store = RedisJobStore(settings, **kwargs)
        made.append(store)
        return store

    yield factory
    for store in made:
        store.shutdown()


def start_server(url: str, *flags: str) -> ServerProcess:
    """``python server.py`` on JOB_STORE ``url``: 3 s jobs that complete, exact estimates."""
    return ServerProcess.start(
        "--min-delay", "3", "--max-delay", "3", "--error-probability", "0", "--eta-noise", "0",
        *flags,
        env={"JOB_STORE": url})  # fmt: skip




# --- settings and start-up --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("http://127.0.0.1:6379/0", "'http://127.0.0.1:6379/0'"),
        ("redis://:hunter2@127.0.0.1:99999/0", "'redis://:***@127.0.0.1:99999/0'"),
        ("redis://user:hunter2@127.0.0.1/db", "'redis://user:***@127.0.0.1/db'"),
        ("memroy", "'memroy'"),
    ],
)
def test_job_store_setting_rejects_bad_values_masking_the_password(value: str, shown: str) -> None:
    """A JOB_STORE that is neither memory nor a Redis URL is a ConfigError naming it, password masked."""
    with pytest.raises(server.ConfigError, match="^JOB_STORE ") as info:
        server.Settings.from_env({"JOB_STORE": value})
    assert shown in str(info.value) and "hunter2" not in str(info.value)


def test_settings_repr_never_shows_the_store_url() -> None:
    """repr(settings), which the server logs, leaves the store URL (and its password) out."""
    settings = server.Settings(job_store="rediss://:hunter2@example.invalid:6380/1")
    assert "hunter2" not in repr(settings) and settings.job_store.startswith("rediss://")


def test_unreachable_redis_at_start_is_one_line_and_exit_2(tmp_path) -> None:
    """Redis not answering at start: one stderr line naming JOB_STORE (password masked), exit 2."""
    url = f"redis://:hunter2@127.0.0.1:{_free_port()}/0"
    empty = tmp_path / "empty.env"
    empty.write_text("")
    done = subprocess.run(
        [sys.executable, "server.py", "--env-file", str(empty), "--port", "0"],
        cwd=ROOT, env={**os.environ, "JOB_STORE": url}, capture_output=True, text=True,
        timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("server.py: error: JOB_STORE redis://:***@127.0.0.1:")
    assert "unreachable" in lines[0] and "hunter2" not in done.stderr + done.stdout


@pytest.mark.parametrize("store_kind", ["redis"])
def test_the_redis_parameter_really_builds_a_redis_store(make_app) -> None:
    """The shared suite's "redis" runs use RedisJobStore, each app on its own empty database."""
    first, second = make_app(), make_app()
    for app in (first, second):
        assert isinstance(app_state(app).store, RedisJobStore)
    assert app_state(first).store.default_job_id != app_state(second).store.default_job_id


# --- finishing: exactly once, on time, late -----------------------------------------------------


def test_two_stores_racing_finish_each_of_1000_jobs_once(redis_server, stores,
                                                        monkeypatch) -> None:
    """Two stores (own connections) run the timer step at once on 1,000 jobs due at the same
    instant, in batches of 10 so that their calls interleave: every job changes once, and
    exactly one store reports it."""
    monkeypatch.setattr(redis_store, "BATCH", 10)
    clock = FakeClock()
    settings = fast_settings(job_store=redis_server.fresh_url(), job_ttl=60)
    first = stores(settings, wall_clock=clock.wall)
    second = stores(settings, wall_clock=clock.wall)
    heard: list[tuple[str, JobEvent]] = []
    first.add_listener(lambda event: heard.append(("first", event)))
    second.add_listener(lambda event: heard.append(("second", event)))
    ids = [first.start(delay=5)[0]["job_id"] for _ in range(1000)]
    clock.advance(5)
    barrier = threading.Barrier(2)

    def race(store: RedisJobStore) -> int:
        barrier.wait()
        return store.process_due()

    with ThreadPoolExecutor(2) as pool:
        counts = list(pool.map(race, (first, second)))
    finished = collections.Counter(e.job_id for _, e in heard if e.kind == "completed")
    assert sum(counts) == 1000
    assert all(finished[job_id] == 1 for job_id in ids) and len(finished) == 1000
    assert all(first.status(job_id)["finished_at"] == clock.wall() for job_id in ids)
    print(f"finished by the first store: {counts[0]}, by the second: {counts[1]}")


def test_two_server_processes_finish_each_of_1000_jobs_once(redis_server, stores) -> None:
    """Two `python server.py` processes on one Redis, both running the timer: 1,000 jobs due at
    the same instant are each finished, and logged, exactly once across both."""
    url = redis_server.fresh_url()
    servers = [start_server(url), start_server(url)]
    try:
        due = time.time() + 3
        creator = stores(fast_settings(job_store=url), wall_clock=lambda: due - 2)
        ids = [creator.start(delay=2)[0]["job_id"] for _ in range(1000)]

        def completed() -> collections.Counter:
            lines = [line for s in servers for line in s.output]
            return collections.Counter(
                line.split("job ", 1)[1].split()[0] for line in lines
                if " job " in line and line.endswith(" completed"))  # fmt: skip

        assert settle(lambda: sum(completed()[i] for i in ids) >= 1000)
        time.sleep(0.3)  # a second report of any job would show by now
        counts = completed()
        assert all(counts[job_id] == 1 for job_id in ids)
        docs = [requests.get(f"{servers[1].url}/status/{i}", timeout=10).json() for i in ids[:50]]
        assert {doc["result"] for doc in docs} == {"completed"}
        assert all(doc["finished_at"] - due < 5 for doc in docs)  # by a running timer, on time
    finally:
        for process in servers:
            process.stop()


def test_a_job_finished_late_reports_its_due_time(redis_server, stores) -> None:
    """Finished on time, finished_at is the finishing moment; finished more than LATE_FINISH late
    (no timer ran, e.g. across a restart), it is the due time, not the moment it was noticed."""
    clock = FakeClock()
    store = stores(fast_settings(job_store=redis_server.fresh_url()), wall_clock=clock.wall)
    on_time = store.start(delay=2)[0]
    late = store.start(delay=2)[0]
    clock.advance(2 + LATE_FINISH / 2)
    assert store.status(on_time["job_id"])["finished_at"] == clock.wall()
    clock.advance(30)
    assert store.status(late["job_id"])["finished_at"] == late["created_at"] + 2


# --- several workers ----------------------------------------------------------------------------


def test_two_workers_on_redis_serve_one_service(redis_server) -> None:
    """`python server.py --workers 2` on Redis runs two worker processes behind one port; 40
    concurrent long-polls all end completed, and each job is finished (logged) exactly once."""
    with start_server(redis_server.fresh_url(), "--workers", "2") as srv:
        assert settle(lambda: len(psutil.Process(srv.pid).children()) == 2)
        ids = [requests.post(f"{srv.url}/start", json={"delay": 1}, timeout=5).json()["job_id"]
               for _ in range(40)]  # fmt: skip
        with ThreadPoolExecutor(40) as pool:
            answers = list(pool.map(
                lambda i: requests.get(f"{srv.url}/status/{i}?wait=20", timeout=30), ids))
        assert {a.json()["result"] for a in answers} == {"completed"}
        assert all(a.headers.get("Preference-Applied") == "wait=20" for a in answers)
        assert settle(lambda: all(any(line.endswith(f"job {i} completed") for line in srv.output)
                                  for i in ids))  # fmt: skip
        assert all(sum(line.endswith(f"job {i} completed") for line in srv.output) == 1
                   for i in ids)  # fmt: skip


def test_workers_stay_refused_with_the_memory_store(tmp_path) -> None:
    """--workers 2 without a shared store: one line saying why, exit 2."""
    empty = tmp_path / "empty.env"
    empty.write_text("")
    done = subprocess.run([sys.executable, "server.py", "--env-file", str(empty), "--workers", "2"],
                          cwd=ROOT, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "--workers 2 needs a shared job store" in lines[0]


# --- waking waiters across processes ------------------------------------------------------------


def test_a_long_poll_on_one_server_wakes_when_another_finishes_the_job(make_server, redis_server):
    """Server A (no timer of its own) holds wait=20 on a job that server B's timer finishes: A
    answers at once, through its one pub/sub connection, not at the end of the 20 s."""
    settings = fast_settings(job_store=redis_server.fresh_url())
    holder = make_server(settings, start_worker=False)
    finisher = make_server(settings)
    job_id = requests.post(f"{finisher.url}/start", json={"delay": 0.3}, timeout=5).json()["job_id"]
    began = time.monotonic()
    response = requests.get(f"{holder.url}/status/{job_id}?wait=20", timeout=30)
    held = time.monotonic() - began
    doc = response.json()
    assert doc["result"] == "completed" and response.headers["Preference-Applied"] == "wait=20"
    assert held < 10  # the hold ended by the wake; without it, 20 s
    print(f"cross-server wake: {(time.time() - doc['finished_at']) * 1000:.1f} ms after finishing")


def test_an_event_stream_on_one_server_carries_changes_made_on_another(make_server, redis_server):
    """GET /events on server A reports a job started and finished on server B, with ids of the
    one shared log; a resume on B from A's id replays exactly the changes after it."""
    settings = fast_settings(job_store=redis_server.fresh_url(), event_heartbeat=0.2)
    first, second = make_server(settings), make_server(settings)
    with requests.get(f"{first.url}/events", stream=True, timeout=30) as stream:
        lines = stream.iter_lines(decode_unicode=True)
        assert next(lines).startswith("retry:")
        job_id = requests.post(f"{second.url}/start", json={"delay": 0.3},
                               timeout=5).json()["job_id"]
        changes: list[tuple[int, dict]] = []
        event_id = None
        for line in lines:
            if line.startswith("id: "):
                event_id = int(line[4:])
            elif line.startswith("data: ") and json.loads(line[6:])["job_id"] == job_id:
                changes.append((event_id, json.loads(line[6:])))
                if changes[-1][1]["result"] != "pending":
                    break
    assert [(doc["job_id"], doc["result"]) for _, doc in changes] == [
        (job_id, "pending"), (job_id, "completed")]
    assert changes[0][0] < changes[1][0]
    status = requests.get(f"{second.url}/status/{job_id}", timeout=5).json()
    status.pop("output")  # the signed URL is made per answer, for its host: not in events
    assert changes[1][1] == status
    with requests.get(f"{second.url}/events?job_id={job_id}", stream=True, timeout=30,
                      headers={"Last-Event-ID": str(changes[0][0])}) as resumed:
        lines = resumed.iter_lines(decode_unicode=True)
        replay = list(itertools.islice(
            (line for line in lines if line.startswith(("id: ", "data: "))), 3))
    final = "data: " + json.dumps(changes[1][1], separators=(",", ":"))
    assert replay == [final, f"id: {changes[1][0]}", final]  # the snapshot, then the change


# --- Redis lost, and back -----------------------------------------------------------------------


def test_redis_lost_answers_503_and_the_server_recovers_by_itself(own_redis, make_server) -> None:
    """Redis killed: a held long-poll, a status read and a start each answer a JSON 503 with
    Retry-After (no 500, no hang); Redis back: the same job answers again, and long-polls wake."""
    live = make_server(fast_settings(job_store=own_redis.url()))
    job = requests.post(f"{live.url}/start", json={"delay": 60}, timeout=5).json()
    with ThreadPoolExecutor(1) as pool:
        held = pool.submit(requests.get, f"{live.url}/status/{job['job_id']}?wait=25", timeout=40)
        assert settle(lambda: live.store.waiters == 1)
        own_redis.kill()
        answers = [held.result(),
                   requests.get(f"{live.url}/status/{job['job_id']}", timeout=20),
                   requests.post(f"{live.url}/start", timeout=20)]  # fmt: skip
    for answer in answers:
        assert answer.status_code == 503, answer.text
        assert answer.json()["error"]["code"] == "service_unavailable"
        assert int(answer.headers["Retry-After"]) >= 1
    own_redis.restart()
    assert settle(lambda: requests.get(f"{live.url}/status/{job['job_id']}", timeout=10)
                  .status_code == 200)  # fmt: skip
    doc = requests.get(f"{live.url}/status/{job['job_id']}", timeout=10).json()
    assert doc["result"] == "pending" and doc["created_at"] == job["created_at"]
    quick = requests.post(f"{live.url}/start", json={"delay": 0.3}, timeout=5).json()["job_id"]
    response = requests.get(f"{live.url}/status/{quick}?wait=20", timeout=30)
    assert response.json()["result"] == "completed"


# --- restart ------------------------------------------------------------------------------------


def test_kill_9_of_everything_with_aof_loses_nothing(own_redis) -> None:
    """kill -9 of both servers and of Redis (AOF on), then start again: every job keeps its id,
    state, due time and idempotency key; jobs due while down are finished at their due time."""
    url = own_redis.url()
    first, second = start_server(url), start_server(url)
    try:
        default = requests.get(f"{first.url}/status", timeout=5).json()
        done = requests.post(f"{first.url}/start", json={"delay": 0}, timeout=5).json()
        keyed = requests.post(f"{first.url}/start", json={"delay": 1},
                              headers={"Idempotency-Key": "order-1"}, timeout=5).json()
        failing = requests.post(f"{second.url}/start", json={"delay": 1, "outcome": "error"},
                                timeout=5).json()
        waiting = requests.post(f"{second.url}/start", json={"delay": 600}, timeout=5).json()
    finally:
        for process in (first, second):
            process.kill()  # SIGKILL to the server and every worker, like a crash
    own_redis.kill()
    # Down long enough that the 1 s jobs are more than LATE_FINISH late at restart.
    time.sleep(max(0.0, keyed["created_at"] + 1 + LATE_FINISH + 0.5 - time.time()))
    own_redis.restart()
    with start_server(url) as again:
        def get(job_id: str) -> dict:
            return requests.get(f"{again.url}/status/{job_id}", timeout=5).json()

        assert requests.get(f"{again.url}/status", timeout=5).json()["job_id"] == default["job_id"]
        output = done.pop("output")  # a fresh signed URL each read; the same bytes
        assert get(done["job_id"]).pop("output")["sha256"] == output["sha256"]
        assert {k: v for k, v in get(done["job_id"]).items() if k != "output"} == done
        for job, result in ((keyed, "completed"), (failing, "error")):
            doc = get(job["job_id"])
            assert doc["result"] == result and doc["created_at"] == job["created_at"]
            assert doc["finished_at"] == job["created_at"] + 1  # its due time
        pending = get(waiting["job_id"])
        assert pending["result"] == "pending" and pending["created_at"] == waiting["created_at"]
        assert 590 < pending["eta_seconds"] <= 600
        replay = requests.post(f"{again.url}/start", headers={"Idempotency-Key": "order-1"},
                               timeout=5)
        assert replay.status_code == 200 and replay.json()["job_id"] == keyed["job_id"]
