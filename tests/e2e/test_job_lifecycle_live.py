"""A job from start to delivered file, both clients against the simulator on 127.0.0.1: the held
start, deadlines, outputs (resume after a drop, refreshed URL, checksum, late output), listing,
and a batch resumed by a new process after the first was killed."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.helpers import fast_settings
from vtwait import AsyncVideoTranslationClient, BatchState, JobResult, VideoTranslationClient
from vtwait.client.job import Job
from vtwait.core.errors import ChecksumMismatchError, NoOutputError
from vtwait.core.lifecycle import output_of

ROOT = Path(__file__).resolve().parents[2]
SIZE = 300_000


def counting_session() -> tuple[requests.Session, list[str]]:
    session = requests.Session()
    seen: list[str] = []
    session.hooks["response"].append(
        lambda r, *a, **k: seen.append(f"{r.request.method} {r.request.path_url}"))
    return session, seen


# --------------------------------------------------------------------- run and deadlines
def test_run_is_one_request_when_the_job_ends_within_the_hold(make_server):
    """run(): the start is held (Prefer: wait) and answers the final status: one request in
    all; a job that outlives the hold goes on with long-polls."""
    live = make_server(fast_settings(min_delay=0.2, max_delay=0.2, max_wait=1))
    session, seen = counting_session()
    with VideoTranslationClient(live.url, session=session) as api:
        status = api.run(timeout=30)
        assert status.result is JobResult.COMPLETED and status.done
        assert len(seen) == 1 and seen[0].startswith("POST /start")
        longer = api.run(delay=1.5, timeout=30)
    assert longer.result is JobResult.COMPLETED
    assert seen[1].startswith("POST /start") and len(seen) == 3  # held 1 s, then one long-poll


def test_a_deadline_cancels_the_job_and_says_so(make_server):
    """deadline= sends Cancel-After: a job still running then is cancelled by the server, with
    cancel_reason "deadline"; both clients."""
    live = make_server(fast_settings(min_delay=5, max_delay=5))
    with VideoTranslationClient(live.url) as api:
        status = api.submit(deadline=0.3).result(timeout=10)
    assert status.phase == "canceled" and status.raw["cancel_reason"] == "deadline"

    async def main():
        async with AsyncVideoTranslationClient(live.url) as api:
            return await api.run(deadline=0.3, timeout=10)

    status = asyncio.run(main())
    assert status.phase == "canceled" and status.raw["cancel_reason"] == "deadline"


# ----------------------------------------------------------------------------- outputs
@pytest.mark.parametrize("store_kind", ["memory", "redis"])
def test_download_resumes_after_a_drop_and_verifies(make_server, tmp_path, store_kind):
    """The connection drops mid-way (FAULT_OUTPUT_DROP): the download resumes with Range, reads
    almost nothing twice, and the file is the announced size and SHA-256; both stores."""
    live = make_server(fast_settings(min_delay=0.05, max_delay=0.05, output_size=SIZE,
                                     fault_output_drop=SIZE // 3))
    progress = []
    with VideoTranslationClient(live.url) as api:
        job = api.submit()
        path = job.download(tmp_path / "out.bin", on_progress=progress.append)
        output = job.output or output_of(api.get_status(job.id))
    data = path.read_bytes()
    assert len(data) == SIZE and hashlib.sha256(data).hexdigest() == output.sha256
    assert progress[-1].resumes >= 1 and progress[-1].received <= SIZE * 1.05
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]  # no partial file left


def test_async_download_resumes_after_a_drop(make_server, tmp_path):
    """The asyncio client's download: the same resume and verification."""
    live = make_server(fast_settings(min_delay=0.05, max_delay=0.05, output_size=SIZE,
                                     fault_output_drop=SIZE // 2))

    async def main():
        async with AsyncVideoTranslationClient(live.url) as api:
            job = await api.submit()
            await job
            progress = []
            path = await job.download(tmp_path / "a.bin", on_progress=progress.append)
            return path, progress, output_of(job.last_status)

    path, progress, output = asyncio.run(main())
    assert hashlib.sha256(path.read_bytes()).hexdigest() == output.sha256
    assert progress[-1].resumes >= 1 and progress[-1].received <= SIZE * 1.05


def test_a_refused_url_is_refreshed_and_a_wrong_checksum_raises(make_server, tmp_path):
    """A tampered URL (403 signature_invalid) is replaced by the status's fresh one; bytes that
    do not match the announced SHA-256 raise ChecksumMismatchError and leave no file."""
    live = make_server(fast_settings(min_delay=0.05, max_delay=0.05, output_size=SIZE))
    with VideoTranslationClient(live.url) as api:
        final = api.submit().result(timeout=10)
        raw = dict(final.raw)
        raw["output"] = {**raw["output"], "url": raw["output"]["url"].replace("signature=",
                                                                               "signature=00")}
        forged = Job(api, final.job_id, dataclasses.replace(final, raw=raw))
        assert forged.download(tmp_path / "ok.bin").stat().st_size == SIZE
        raw["output"] = {**final.raw["output"], "sha256": "0" * 64}
        wrong = Job(api, final.job_id, dataclasses.replace(final, raw=raw))
        with pytest.raises(ChecksumMismatchError):
            wrong.download(tmp_path / "bad.bin")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.bin"]


def test_an_expired_url_is_replaced_by_a_fresh_one(make_server, tmp_path):
    """A URL past its expiry (OUTPUT_TTL=1) is refused by the server (403 url_expired); the
    download reads the status for a fresh URL and completes."""
    live = make_server(fast_settings(min_delay=0.05, max_delay=0.05, output_size=2000,
                                     output_ttl=1))
    progress = []
    with VideoTranslationClient(live.url) as api:
        final = api.submit().result(timeout=10)
        stale = final.raw["output"]
        deadline = time.monotonic() + 5
        while requests.get(stale["url"], timeout=5).status_code != 403:  # until it expires
            assert time.monotonic() < deadline
            time.sleep(0.1)
        # The local clock would renew it before sending: say it is still good, so it is sent.
        raw = {**final.raw, "output": {**stale, "expires_at": stale["expires_at"] + 3600}}
        job = Job(api, final.job_id, dataclasses.replace(final, raw=raw))
        path = job.download(tmp_path / "fresh.bin", on_progress=progress.append)
    assert path.stat().st_size == 2000 and progress[-1].resumes == 1


def test_download_waits_out_a_late_output_and_refuses_a_failed_job(make_server, tmp_path):
    """A completed job whose output appears later (FAULT_OUTPUT_LATE) is waited for; a job
    that ended in error has no output (NoOutputError)."""
    live = make_server(fast_settings(min_delay=0.05, max_delay=0.05, output_size=1000,
                                     fault_output_late=0.5))
    with VideoTranslationClient(live.url) as api:
        job = api.submit()
        assert job.result(timeout=10).result is JobResult.COMPLETED
        assert job.download(tmp_path / "late.bin").stat().st_size == 1000
        with pytest.raises(NoOutputError):
            api.download(api.submit(outcome="error"), tmp_path / "none.bin")


# ----------------------------------------------------------------------------- listing
def test_jobs_follows_the_cursor_without_losing_or_repeating(make_server):
    """jobs() pages through GET /jobs; a job started between two pages is neither repeated nor
    makes one of the others lost; the result filter is the server's."""
    live = make_server(fast_settings(min_delay=30, max_delay=30))
    with VideoTranslationClient(live.url) as api:
        before = [s.job_id for s in api.jobs()]  # the server's default job, if it has one
        ids = api.start_jobs(5)
        seen, newer = [], []
        for status in api.jobs(page_size=2):
            seen.append(status.job_id)
            if len(seen) == 2:
                newer.append(api.start_job())  # newer than the cursor: not in the pages to come
        assert seen == ids[::-1] + before
        assert newer[0] not in seen
        assert [s.job_id for s in api.jobs(result="completed")] == []

    async def main():
        async with AsyncVideoTranslationClient(live.url) as api:
            return [s.job_id async for s in api.jobs(result="pending", page_size=3)]

    assert set(ids) <= set(asyncio.run(main()))


# --------------------------------------------------------------------- batch resume (CLI)
def cli(url: str, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("API_USERNAME", None)
    env.pop("API_PASSWORD", None)
    return subprocess.Popen([sys.executable, str(ROOT / "client.py"), "--base-url", url, *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            cwd=ROOT)


def test_a_killed_batch_is_finished_by_a_new_process(make_server, tmp_path, caplog):
    """client.py --count N --state F, killed (SIGKILL) while its jobs run, then run again with
    the same --state: the second process starts no job and learns every end, including those
    that happened while no process watched, from the event stream (no status request per job)."""
    live = make_server(fast_settings(min_delay=1.0, max_delay=1.5))
    state_path = tmp_path / "batch.json"
    with VideoTranslationClient(live.url) as api:
        before = {s.job_id for s in api.jobs()}  # the server's default job, if it has one
    first = cli(live.url, "--count", "12", "--state", str(state_path))
    deadline = time.monotonic() + 20
    while not state_path.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert state_path.exists(), first.communicate(timeout=10)
    first.kill()
    first.wait(timeout=10)
    saved = json.loads(state_path.read_text())
    assert len(saved["job_ids"]) == 12 and saved["pending"], saved
    time.sleep(1.6)  # every job ends while no process watches

    caplog.set_level(logging.INFO, logger="vtwait.server.app")
    caplog.clear()
    second = cli(live.url, "--count", "12", "--state", str(state_path), "--json")
    out, err = second.communicate(timeout=30)
    served = [r.getMessage() for r in caplog.records if r.name == "vtwait.server.app"]
    assert not [m for m in served if m.startswith(("GET /status", "POST /start"))], served
    assert [m for m in served if m.startswith("GET /events")]  # the ends came from the stream
    assert second.returncode == 0, err
    assert sorted(json.loads(out)) == sorted(saved["job_ids"])
    final = json.loads(state_path.read_text())
    assert final["pending"] == [] and final["job_ids"] == saved["job_ids"]
    listed = {s.job_id for s in VideoTranslationClient(live.url).jobs()}
    assert listed - before == set(saved["job_ids"])  # the second process started none


def test_cli_download(make_server, tmp_path):
    """client.py --download PATH: waits, downloads, verifies; the file is there."""
    live = make_server(fast_settings(min_delay=0.05, max_delay=0.05, output_size=5000))
    target = tmp_path / "video.bin"
    run = cli(live.url, "--download", str(target))
    out, err = run.communicate(timeout=30)
    assert run.returncode == 0, err
    assert target.stat().st_size == 5000 and "output saved" in err


def test_the_async_client_resumes_a_saved_batch(make_server):
    """watch_batch on asyncio: a state saved mid-batch and loaded again (as another process
    would) learns the remaining ends, including those that happened meanwhile."""
    live = make_server(fast_settings(min_delay=0.2, max_delay=0.6))

    async def main():
        async with AsyncVideoTranslationClient(live.url) as api:
            state = BatchState.new(await api.start_jobs(6))
            first = []
            async for status in api.watch_batch(state, timeout=10):
                first.append(status.job_id)
                break  # "killed" after the first end
            saved = state.to_json()
        await asyncio.sleep(0.7)  # the others end while nobody watches
        resumed = BatchState.from_json(saved)
        async with AsyncVideoTranslationClient(live.url) as api:
            rest = [s.job_id async for s in api.watch_batch(resumed, timeout=10)]
        return state, first, rest, resumed

    state, first, rest, resumed = asyncio.run(main())
    assert sorted(first + rest) == sorted(state.job_ids) and resumed.pending == []
    assert set(resumed.finished) == set(state.job_ids)
