"""Secrets: passwords never show in logs, tracebacks or error messages; credentials are compared
in constant time; the server listens on 127.0.0.1 unless told otherwise."""

from __future__ import annotations

import base64
import hmac
import logging
import os
import socket
import subprocess
import sys
import traceback

import psutil
import pytest
import requests

import vtwait.core as client
import vtwait.server.app as server
import vtwait.server.cli as cli
from tests.helpers import ROOT, fast_settings
from vtwait import (
    AuthenticationError,
    JobNotFoundError,
    PollingPolicy,
    ProtocolError,
    RetryPolicy,
    ServerUnreachableError,
    VideoTranslationClient,
    WaitTimeout,
)
from vtwait.testing import ServerProcess

USER = "alice"
SECRET = "Zq8-the-real-secret"  # the server's password
WRONG = "Kx2-a-wrong-secret"  # what a confused client tries
QUICK_RETRY = RetryPolicy(max_retries=1, backoff_factor=0.01, backoff_max=0.02)


def forms(*passwords: str) -> list[str]:
    """Each password as typed, and inside a Basic header (base64 of "user:password")."""
    found = []
    for password in passwords:
        found += [password, base64.b64encode(f"{USER}:{password}".encode()).decode()]
    return found


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def everything_said_about(error: BaseException) -> str:
    """The message, the repr and the whole traceback (causes included) of an error."""
    return "\n".join([str(error), repr(error), *traceback.format_exception(error)])


def test_passwords_never_appear_in_logs_tracebacks_or_error_messages(make_server, tmp_path,
                                                                     caplog) -> None:
    """Right and wrong passwords, in arguments, in the URL and in the environment, through every
    failure the client knows: none of them in any log, message or traceback."""
    caplog.set_level(logging.DEBUG)
    live = make_server(fast_settings(api_username=USER, api_password=SECRET))
    garbage = make_server(fast_settings(api_username=USER, api_password=SECRET,
                                        fault_garbage=1.0))
    dead = f"http://127.0.0.1:{unused_port()}"
    said: list[str] = []

    def expect(kind: type[Exception], action) -> None:
        with pytest.raises(kind) as caught:
            action()
        said.append(everything_said_about(caught.value))

    with VideoTranslationClient(live.url, USER, SECRET) as api:
        assert api.wait_for_completion(api.start_job(), timeout=5).done
        expect(JobNotFoundError, lambda: api.wait_for_completion("0" * 32, timeout=5))
        said.append(repr(api))
    with VideoTranslationClient(live.url, USER, WRONG) as api:
        expect(AuthenticationError, api.start_job)
    for url in (live.url.replace("//", f"//{USER}:{WRONG}@"),
                dead.replace("//", f"//{USER}:{SECRET}@")):
        with VideoTranslationClient(url, retry=QUICK_RETRY) as api:
            said.append(repr(api) + api.base_url)
            expect(AuthenticationError if WRONG in url else ServerUnreachableError,
                   lambda: api.get_status("j"))
    with VideoTranslationClient(dead, USER, SECRET, retry=QUICK_RETRY,
                                policy=PollingPolicy.fixed(0.1)) as api:
        expect(WaitTimeout, lambda: api.wait_for_completion("j", timeout=0.5))
    with VideoTranslationClient(garbage.url, USER, SECRET, policy=PollingPolicy.fixed(0.01)) as api:
        expect(ProtocolError, lambda: api.wait_for_completion("j", timeout=5))
    requests.get(f"{live.url}/status", auth=(USER, WRONG), timeout=5)
    requests.get(f"{live.url}/status", headers={"Authorization": f"Basic {WRONG}"}, timeout=5)

    # The same through the processes a user runs: server.py with a log file, client.py too.
    server_log, client_log = tmp_path / "server.log", tmp_path / "client.log"
    srv = ServerProcess.start("--log-file", str(server_log),
                       env={"API_USERNAME": USER, "API_PASSWORD": SECRET})
    cli_output = []
    try:
        for password, args in ((SECRET, ["--delay", "0.1", "--outcome", "completed"]), (WRONG, []),
                               (SECRET, ["--job-id", "0" * 32]), (SECRET, ["--password", WRONG])):
            env = {k: v for k, v in os.environ.items() if not k.startswith("API_")}
            env.update(API_USERNAME=USER, API_PASSWORD=password)
            done = subprocess.run(
                [sys.executable, str(ROOT / "client.py"), "--base-url", srv.url, "-v",
                 "--log-file", str(client_log), *args],
                cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
            cli_output += [done.stdout, done.stderr]
        assert "completed" in cli_output[0] and "refused the credentials" in cli_output[3]
    finally:
        srv.stop()

    logs = {
        "caplog": caplog.text,  # every logger, DEBUG and up, tracebacks included
        "errors raised": "\n".join(said),
        "server.py output": "\n".join(srv.output),
        "server LOG_FILE": server_log.read_text(encoding="utf-8"),
        "client.py output": "\n".join(cli_output),
        "client --log-file": client_log.read_text(encoding="utf-8"),
    }
    assert "authentication failed" in logs["caplog"] + logs["server LOG_FILE"]
    for where, text in logs.items():
        assert text, f"{where} is empty: the test did not exercise it"
        for secret in forms(SECRET, WRONG):
            assert secret not in text, f"{secret!r} appears in {where}"


def test_no_log_under_logs_holds_the_demo_password() -> None:
    """logs/ (written by test_integration.py and the demo) never holds the demo's password."""
    import test_integration

    for path in sorted((ROOT / "logs").glob("*.log")):
        text = path.read_text(encoding="utf-8", errors="replace")
        assert test_integration.PASSWORD not in text, path


@pytest.mark.parametrize(("user", "password", "ok"), [
    (USER, SECRET, True),
    ("mallory", SECRET, False),
    (USER, WRONG, False),
    ("mallory", WRONG, False),
    (USER, SECRET[:-1], False),
    (USER, SECRET + "x" * 100, False),
    ("", "", False),
])
def test_credentials_are_compared_in_constant_time(monkeypatch, user: str, password: str,
                                                   ok: bool) -> None:
    """User and password both go through hmac.compare_digest, always both: no early exit that
    would tell an attacker the user name was wrong, and no == on a secret."""
    settings = fast_settings(api_username=USER, api_password=SECRET)
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def recording(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(server.hmac, "compare_digest", recording)
    header = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    assert server.credentials_ok(header, settings) is ok
    assert compared == [(user.encode(), USER.encode()), (password.encode(), SECRET.encode())]


def test_server_binds_to_loopback_unless_told_otherwise(tmp_path) -> None:
    """No --host: the listening socket is on 127.0.0.1 only (psutil), as --help says; the
    client's default URL is loopback too."""
    assert cli.build_parser().parse_args([]).host == "127.0.0.1"
    assert "default 127.0.0.1" in cli.build_parser().format_help()
    assert client.DEFAULT_BASE_URL.startswith("http://127.0.0.1:")
    srv = ServerProcess.start(host=None)
    try:
        listening = [c.laddr for c in psutil.Process(srv.pid).net_connections(kind="inet")
                     if c.status == psutil.CONN_LISTEN]
    finally:
        srv.stop()
    assert [(address.ip, address.port) for address in listening] == [("127.0.0.1", srv.port)]


def test_credentials_in_the_url_become_auth_and_leave_the_url(make_server) -> None:
    """http://user:pw@host: the client authenticates with them but never shows them."""
    live = make_server(fast_settings(api_username=USER, api_password=SECRET))
    url = live.url.replace("http://", f"http://{USER}:{SECRET}@")
    with VideoTranslationClient(url) as api:
        assert api.base_url == live.url and SECRET not in repr(api)
        assert api.wait_for_completion(api.start_job(), timeout=5).done
    with VideoTranslationClient(url, password=WRONG) as api:  # an explicit argument wins
        with pytest.raises(AuthenticationError):
            api.start_job()


def test_the_start_banner_masks_the_store_password_and_names_only_changed_settings() -> None:
    """The banner under the listening line: auth with its user (never the password), the store
    with its password masked, and only the settings that differ from their defaults."""
    settings = server.Settings(api_username=USER, api_password=SECRET, min_delay=1.0,
                               job_store="redis://:hunter2@127.0.0.1:6379/0")
    banner = cli.start_banner(settings, workers=2)
    assert SECRET not in banner and "hunter2" not in banner
    assert banner.splitlines() == [
        f"Server: gunicorn + gevent, 2 workers; auth on (user {USER!r}); "
        "store redis://:***@127.0.0.1:6379/0",
        "Settings: MIN_DELAY=1 (--help lists them)",
    ]


@pytest.mark.parametrize(("argv0", "prog"), [("server.py", "server.py"),
                                             ("/src/server.py", "server.py"),
                                             ("/venv/bin/vtwait-server", "vtwait-server"),
                                             ("/src/vtwait/server/__main__.py", "vtwait-server")])
def test_error_lines_name_the_program_that_was_run(argv0: str, prog: str) -> None:
    """server.py when run as server.py; the console script's name otherwise."""
    assert cli.program_name(argv0) == prog
