"""End-to-end demonstration: the real server in a subprocess, driven by the client library.

    python test_integration.py        # prints both logs as it goes, saves them under logs/
    python -m pytest test_integration.py

It starts ``server.py`` on a free loopback port with short job delays and Basic auth, waits for
``/healthz``, runs several jobs at once through ``VideoTranslationClient`` (some forced to end in
``error``, some left to chance, one on the single-job ``GET /status``) and one through
``python client.py``, checks every outcome and how soon each was known, stops the server, and exits
non-zero on any failure.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from vtwait import VideoTranslationClient
from vtwait.testing import ServerProcess

ROOT = Path(__file__).resolve().parent
LOGS = ROOT / "logs"
USERNAME, PASSWORD = "demo", "demo-password-never-logged"
#: Job delays of the demo server (seconds): short, so the demo takes seconds, not minutes.
MIN_DELAY, MAX_DELAY = 1.0, 3.0
#: How late the client may learn that a job ended (seconds); loopback long-poll takes a few ms.
MAX_DETECTION_DELAY = 0.5

log = logging.getLogger("integration")


@dataclass
class Outcome:
    """What one job did, and what was expected of it."""

    name: str
    expected: set[str]
    result: str = ""
    detection_delay: float | None = None
    status_requests: int = 0
    problem: str = ""

    @property
    def ok(self) -> bool:
        return not self.problem and self.result in self.expected


def wait_healthy(url: str, timeout: float = 15.0) -> None:
    """Block until ``/healthz`` answers, or raise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(url + "/healthz", timeout=1).ok:
                return
        except (requests.ConnectionError, requests.Timeout):  # not up yet, or still busy
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} never answered /healthz")


def _counting_session() -> tuple[requests.Session, list[int]]:
    """A session that counts the status requests it sends (one list entry per request)."""
    session = requests.Session()
    sent: list[int] = []
    session.hooks["response"].append(
        lambda response, *args, **kwargs: sent.append(1) if response.request.method == "GET"
        else None)
    return session, sent


def run_job(url: str, name: str, *, delay: float | None = None, outcome: str | None = None,
            expected: set[str], single_job: bool = False) -> Outcome:
    """Start (or pick the default) job, wait for it, and record how it went."""
    record = Outcome(name, expected)
    session, sent = _counting_session()
    try:
        with VideoTranslationClient(url, USERNAME, PASSWORD, session=session) as api:
            job_id = None if single_job else api.start_job(delay=delay, outcome=outcome)
            status = api.wait_for_completion(job_id, timeout=30)
            assert status.finished_at is not None  # a final status says when it finished
            record.detection_delay = time.time() - status.finished_at
        record.result = status.result.value
        record.status_requests = len(sent)
        if record.detection_delay > MAX_DETECTION_DELAY:
            record.problem = f"learned {record.detection_delay:.3f} s after the job ended"
    except Exception as exc:  # every failure is reported; none hides another
        record.problem = f"{type(exc).__name__}: {exc}"
    log.info("%s: %s (%d status requests, learned %s s after the end)%s", name, record.result,
             record.status_requests,
             "?" if record.detection_delay is None else f"{record.detection_delay:.3f}",
             f"; PROBLEM: {record.problem}" if record.problem else "")
    return record


def run_cli(url: str) -> Outcome:
    """Wait for a job through ``python client.py``, as a user would from the shell."""
    record = Outcome("command line", {"completed"})
    env = {**os.environ, "API_USERNAME": USERNAME, "API_PASSWORD": PASSWORD}
    done = subprocess.run(
        [sys.executable, str(ROOT / "client.py"), "--base-url", url, "--delay", "1.5",
         "--outcome", "completed", "--json", "--timeout", "30", "--log-file",
         str(LOGS / "client-cli.log"), "-v"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    for line in done.stderr.splitlines():
        print(f"[client.py] {line}", flush=True)
    try:
        document = json.loads(done.stdout)
        record.result = document["result"]
        record.detection_delay = time.time() - document["finished_at"]
    except (ValueError, KeyError) as exc:
        record.problem = f"unreadable output {done.stdout!r}: {exc}"
    if done.returncode != 0:
        record.problem = f"exit code {done.returncode}"
    log.info("command line: %s (exit code %d)", record.result or "?", done.returncode)
    return record


def main() -> int:
    """Run the demonstration; return 0 if every check passed."""
    LOGS.mkdir(exist_ok=True)
    client_log = logging.FileHandler(LOGS / "client.log", mode="w", encoding="utf-8")
    console = logging.StreamHandler(sys.stdout)
    for handler in (client_log, console):
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        for name in ("vtwait", "integration"):
            logging.getLogger(name).addHandler(handler)
    console.setLevel(logging.INFO)
    for name in ("vtwait", "integration"):
        logging.getLogger(name).setLevel(logging.DEBUG)
        logging.getLogger(name).propagate = False

    server_log = LOGS / "server.log"
    server_log.unlink(missing_ok=True)
    server = ServerProcess.start(
        "--min-delay", str(MIN_DELAY), "--max-delay", str(MAX_DELAY), "--error-probability",
        "0.3", "--log-file", str(server_log), echo=lambda line: print(f"[server] {line}", flush=True),
        env={"API_USERNAME": USERNAME, "API_PASSWORD": PASSWORD})
    try:
        wait_healthy(server.url)
        log.info("server ready at %s", server.url)
        jobs: list[dict[str, Any]] = [
            dict(name="forced completed (1.0 s)", delay=1.0, outcome="completed",
                 expected={"completed"}),
            dict(name="forced error (1.5 s)", delay=1.5, outcome="error", expected={"error"}),
            dict(name="forced completed (2.5 s)", delay=2.5, outcome="completed",
                 expected={"completed"}),
            dict(name="forced error (0.5 s)", delay=0.5, outcome="error", expected={"error"}),
            dict(name="random job A", expected={"completed", "error"}),
            dict(name="random job B", expected={"completed", "error"}),
            dict(name="single-job GET /status", single_job=True,
                 expected={"completed", "error"}),
        ]
        with concurrent.futures.ThreadPoolExecutor(len(jobs) + 1) as pool:
            cli = pool.submit(run_cli, server.url)
            futures = [pool.submit(run_job, server.url, **job) for job in jobs]
            outcomes = [f.result() for f in futures] + [cli.result()]
    finally:
        server.stop()
        client_log.close()

    print("\n=== outcomes ===")
    for o in outcomes:
        delay = "?" if o.detection_delay is None else f"{o.detection_delay * 1000:.1f} ms"
        print(f"{'PASS' if o.ok else 'FAIL'}  {o.name:28s} {o.result or '-':10s} "
              f"status requests: {o.status_requests or '-'}  learned after: {delay}"
              + (f"  ({o.problem})" if o.problem else "")
              + ("" if o.ok or o.problem else f"  (expected {sorted(o.expected)})"))
    secret_leaks = [p.name for p in LOGS.glob("*.log") if PASSWORD in p.read_text()]
    if secret_leaks:
        print(f"FAIL  the password appears in {secret_leaks}")
    print(f"\nLogs saved in {LOGS}/ (server.log, client.log, client-cli.log)")
    failed = [o for o in outcomes if not o.ok]
    print(f"{len(outcomes) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed or secret_leaks else 0


def test_end_to_end() -> None:
    """The demonstration passes: every job's outcome is right and known within moments."""
    assert main() == 0


if __name__ == "__main__":
    sys.exit(main())
