"""The pytest plugin (``vtwait.testing.plugin``) in a real pytest run: a suite written to a temporary
folder, run by ``python -m pytest -p vtwait.testing.plugin`` in a subprocess (the checkout is not
installed here; tests/e2e/test_install.py runs it from an installed wheel through the entry
point). Virtual time over the control API (``POST /_admin/clock``) on the real server (gunicorn +
gevent) too: a long-poll hold.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.helpers import ROOT
from vtwait.server.settings import OPTIONS

SUITE = '''
import asyncio
import sys
import threading
import time

import pytest
import requests

seen = {}


def test_one_server_with_the_default_settings(vt_server):
    seen["url"] = vt_server.base_url
    with vt_server.client() as client:
        seen["job"] = client.start_job(delay=0, outcome="completed")
    vt_server.faults.add("status", "status", status=503, times=1)
    assert [r["route"] for r in vt_server.requests()] == ["start"]
    assert vt_server.credentials == (vt_server.username, vt_server.password)


def test_the_next_test_gets_it_again_fresh(vt_server):
    assert vt_server.base_url == seen["url"]
    assert vt_server.requests() == [] and vt_server.faults.list() == []
    answer = requests.get(f"{vt_server.base_url}/status/{seen['job']}",
                          auth=vt_server.credentials, timeout=10)
    assert answer.status_code == 404
    with pytest.raises(requests.HTTPError, match="409"):
        vt_server.clock.advance(1)  # not a virtual clock


@pytest.mark.vt_server(CLOCK="virtual", MIN_DELAY=3600, MAX_DELAY=3600)
def test_the_marker_sets_a_virtual_clock(vt_server):
    assert vt_server.base_url != seen["url"]
    with vt_server.client() as client:
        job_id = client.start_job(outcome="completed")
        before = vt_server.clock.now()
        assert vt_server.clock.advance(3600) == before + 3600
        status = client.get_status(job_id)
    assert status.result.value == "completed"
    assert status.raw["finished_at"] - status.raw["created_at"] == 3600


def test_the_factory_reuses_a_server_with_the_same_settings(vt_server_factory):
    server = vt_server_factory(CLOCK="virtual", MIN_DELAY=3600, MAX_DELAY=3600)
    assert server.base_url != seen["url"] and server.clock.read()["virtual"]
    assert server.requests() == []


@pytest.mark.vt_server(CLOCK="virtual", MIN_DELAY=3600, MAX_DELAY=3600)
def test_a_long_poll_hold_ends_when_the_clock_passes_its_wait(vt_server):
    auth = vt_server.credentials
    job = requests.post(f"{vt_server.base_url}/start", auth=auth, timeout=10).json()
    answers = []
    held = threading.Thread(target=lambda: answers.append(requests.get(
        f"{vt_server.base_url}/status/{job['job_id']}?wait=30", auth=auth, timeout=30)))
    held.start()
    deadline = time.monotonic() + 10
    while "long_polls_held 1.0" not in requests.get(f"{vt_server.base_url}/metrics",
                                                    timeout=10).text:
        assert time.monotonic() < deadline, "the hold never began"
        time.sleep(0.01)
    vt_server.clock.advance(29)
    held.join(0.3)
    assert held.is_alive()
    vt_server.clock.advance(1)
    held.join(10)
    assert not held.is_alive() and answers[0].json()["progress"] == pytest.approx(30 / 3600, abs=0.001)
    (entry,) = vt_server.requests(route="status")  # the journal's times are virtual too
    assert entry["status"] == 200 and entry["time"] > job["created_at"] + 29


def test_the_async_client(vt_server):
    async def wait():
        async with vt_server.async_client() as client:
            job_id = await client.start_job(delay=0, outcome="error")
            return await client.wait_for_completion(job_id, timeout=10)

    assert asyncio.run(wait()).result.value == "error"


def test_nothing_of_the_server_was_imported_here():
    assert not {"flask", "gevent", "werkzeug"} & set(sys.modules)
'''


def test_the_plugin_in_a_pytest_run(tmp_path: Path) -> None:
    """Fixtures, marker and factory; a fresh state per test from one reused server per set of
    settings; the journal, fault rules and clock; the plugin loads nothing of the server."""
    (tmp_path / "test_suite.py").write_text(textwrap.dedent(SUITE))
    names = {option.env for option in OPTIONS}
    env = {k: v for k, v in os.environ.items() if k not in names}
    env["PYTHONPATH"] = str(ROOT)
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"  # only ours: the others' imports cost seconds
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "vtwait.testing.plugin", "-p", "no:cacheprovider",
         "-q", "-p", "no:randomly", str(tmp_path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "7 passed" in done.stdout, done.stdout[-2000:]
