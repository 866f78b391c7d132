"""How ``python server.py`` serves: gunicorn with its gevent worker, started from the script itself.

Usage::

    python server.py                                   # gunicorn + gevent, 1 worker, 127.0.0.1:8000
    gunicorn -c gunicorn.conf.py 'server:create_app()'  # the same, for people who run gunicorn
    python server.py --dev-server                      # werkzeug's threaded server (comparison)

gunicorn's gevent worker serves every connection in a greenlet, so a held long-poll or an idle
keep-alive connection costs a few kilobytes, not a thread; the job timer thread becomes a greenlet
too (gevent patches ``threading`` before the app is built in the worker). What the project adds on
top of gunicorn, all in :class:`JsonErrorWorker`:

* malformed HTTP (a request line that is not HTTP, one over :data:`MAX_REQUEST_LINE` bytes, too many
  or too long header fields, HTTP/2, a bad body framing) is answered with the API's JSON error body,
  not gunicorn's HTML page;
* SIGTERM or Ctrl+C stops gracefully: the store releases every held long-poll with the job's current
  status and ends the event streams (``GET /events``), idle keep-alive connections are closed,
  answers in flight end with ``Connection: close``, any other streaming answer can watch
  ``environ[STOPPING_ENVIRON_KEY]`` (an Event set at the stop), and the process exits 0 within a
  couple of seconds (:data:`GRACEFUL_TIMEOUT` at most).

The app is built in each worker by the factory passed in (:class:`ServerApplication`, :func:`serve`);
this module never imports the app. Error answers come from ``errors.py``.

At start the soft ``RLIMIT_NOFILE`` is raised toward the hard limit when the waiters need it, and
one log line says so when ``ulimit -n`` caps the waiters below ``MAX_WAITERS``. All durations are in
seconds.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import re
import resource
import shutil
import signal
import socket
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from typing import Any

import gevent
from gunicorn import util
from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter
from gunicorn.http import errors as http_errors
from gunicorn.http.message import Request
from gunicorn.http.parser import RequestParser
from gunicorn.workers.ggevent import GeventWorker

from vtwait.server.errors import error_bytes, raw_error
from vtwait.server.settings import ConfigError, Settings
from vtwait.server.state import state_of
from vtwait.server.stores import store_kind, supports_workers

__all__ = [
    "FdLimit",
    "GRACEFUL_TIMEOUT",
    "JsonErrorWorker",
    "MAX_REQUEST_LINE",
    "STOPPING_ENVIRON_KEY",
    "ServerApplication",
    "check_fd_limit",
    "check_workers",
    "gunicorn_settings",
    "serve",
]

logger = logging.getLogger(__name__)

#: Longest accepted request line, in bytes (1,000 job ids of 32 hex characters take ~40 KB of
#: query); longer is a 414 JSON error. gunicorn's own setting stops at 8190, hence _LongLineRequest.
MAX_REQUEST_LINE = 65536
#: Longest accepted header field, in bytes, and most header fields; past either, a 431.
MAX_HEADER_FIELD = 65536
MAX_HEADER_FIELDS = 100
#: Longest a stopping worker waits for answers in flight before it closes what is left.
GRACEFUL_TIMEOUT = 5
#: Connections a worker accepts beyond MAX_WAITERS (status requests, streams, idle keep-alive).
SPARE_CONNECTIONS = 1024
#: File descriptors a process needs besides its connections (listener, logs, pipes, libraries).
SPARE_FDS = 64
#: How much of a refused body is read, and for how long, before its connection is closed.
LINGER_BYTES = 16 * 1024 * 1024
LINGER_SECONDS = 2.0
#: WSGI environ key of an Event set when the worker starts to stop. A streaming answer (a
#: long-lived response body) that does not end with the store (``GET /events`` does) should
#: return once it is set, so that it ends cleanly (its last chunk sent) before the worker closes
#: what is left after GRACEFUL_TIMEOUT.
STOPPING_ENVIRON_KEY = "serving.stopping"
#: The program named in error lines when none is given (the console script).
DEFAULT_PROG = "vtwait-server"


# --- checks run at start --------------------------------------------------------------------


def check_workers(settings: Settings, workers: int) -> None:
    """Refuses a worker count the job store cannot serve.

    Raises:
        ConfigError: ``workers`` is below 1, or above 1 with a store that lives in one process.
    """
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    if workers > 1 and not supports_workers(settings):
        raise ConfigError(
            f"--workers {workers} needs a shared job store: with the {store_kind(settings)} store "
            "each worker would hold its own jobs; use --workers 1"
        )


@dataclasses.dataclass(frozen=True)
class FdLimit:
    """The open-file limit after :func:`check_fd_limit`, and what it allows."""

    soft: int
    hard: int
    raised_from: int | None  #: the soft limit before it was raised, or None if left alone
    waiters: int  #: long-polls the limit leaves room for (at most MAX_WAITERS)


def check_fd_limit(max_waiters: int, *, wanted_extra: int = SPARE_CONNECTIONS) -> FdLimit:
    """Raises the soft ``RLIMIT_NOFILE`` toward the hard one when the waiters need more.

    Each held long-poll is one open socket. Logs one INFO line when the limit was raised and one
    WARNING line when ``ulimit -n`` still leaves room for fewer than ``max_waiters``.

    Args:
        max_waiters: the ``MAX_WAITERS`` setting.
        wanted_extra: descriptors wanted beyond the waiters (other connections).

    Returns:
        The limit now in force and the number of waiters it leaves room for.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = max_waiters + wanted_extra + SPARE_FDS
    raised_from = None
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        if target > soft:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
                raised_from, soft = soft, target
                logger.info("raised the open-file limit from %d to %d for MAX_WAITERS=%d",
                            raised_from, soft, max_waiters)
            except (ValueError, OSError) as exc:  # some containers refuse even within the hard cap
                logger.warning("could not raise the open-file limit from %d: %s", soft, exc)
    room = max_waiters if soft == resource.RLIM_INFINITY else max(0, soft - SPARE_FDS)
    waiters = min(max_waiters, room)
    if waiters < max_waiters:
        logger.warning(
            "ulimit -n is %d (hard %s): at most %d long-polls can be held, below MAX_WAITERS=%d; "
            "raise it (ulimit -n %d) or lower MAX_WAITERS",
            soft, "unlimited" if hard == resource.RLIM_INFINITY else hard, waiters, max_waiters,
            wanted)
    return FdLimit(soft=soft, hard=hard, raised_from=raised_from, waiters=waiters)


# --- the worker ---------------------------------------------------------------------------


class _LongLineRequest(Request):
    """gunicorn's request parser with a MAX_REQUEST_LINE limit (its own setting stops at 8190,
    or is unlimited at 0), and a head cut short by the client answered as malformed."""

    def read_line(self, unreader: Any, buf: bytearray, limit: int = 0) -> Any:
        return super().read_line(unreader, buf, limit or MAX_REQUEST_LINE)

    def read_into(self, unreader: Any, buf: bytearray, stop: bool = False) -> None:
        try:
            super().read_into(unreader, buf, stop)
        except http_errors.NoMoreData:
            # The client closed its side mid-head: answer 400 like werkzeug did, not silence.
            raise http_errors.InvalidRequestLine("request cut short") from None


class _LongLineRequestParser(RequestParser):
    mesg_class = _LongLineRequest


# gunicorn's exceptions for malformed HTTP, and the status each gets; anything else is a 400.
_PARSE_STATUS: tuple[tuple[type[BaseException], int], ...] = (
    (http_errors.LimitRequestLine, 414),
    (http_errors.LimitRequestHeaders, 431),
    (http_errors.InvalidHTTPVersion, 505),
    (http_errors.InvalidH2CPreface, 505),
    (http_errors.ExpectationFailed, 417),
)

# A request line naming an HTTP major version other than 1 (gunicorn calls it just invalid).
_OTHER_HTTP_VERSION_RE = re.compile(r" HTTP/(?!1\.)[0-9]+\.[0-9]+'?$")


class JsonErrorWorker(GeventWorker):
    """gunicorn's gevent worker with JSON errors for malformed HTTP and a graceful stop.

    The stop (SIGTERM, or SIGINT as Ctrl+C sends it) releases the store's held long-polls at once
    (``JobStore.shutdown``), answers them with ``Connection: close``, and closes idle keep-alive
    connections; gunicorn then ends the worker when no connection is left.
    """

    wsgi: Any  # the WSGI callable gunicorn serves, set by load_wsgi
    #: Longest wait for the next request on a connection (IDLE_TIMEOUT), set by the ``post_fork``
    #: hook of :func:`gunicorn_settings`; None uses gunicorn's whole-second ``keepalive``.
    idle_timeout: float | None = None

    def init_process(self) -> None:
        # gunicorn's parser takes its message class from this attribute; this process is ours.
        import gunicorn.http

        gunicorn.http.RequestParser = _LongLineRequestParser  # type: ignore[misc]
        self._idle: dict[Any, gevent.Timeout] = {}
        self._linger: set[Any] = set()
        self._stopping = False
        self._stop_event = threading.Event()  # gevent's, once init_process patched threading
        super().init_process()

    def init_signals(self) -> None:
        super().init_signals()
        signal.signal(signal.SIGINT, self.handle_exit)  # Ctrl+C stops gracefully, like SIGTERM

    def load_wsgi(self) -> None:
        super().load_wsgi()
        self._application: Any = self.wsgi
        self.wsgi = self._serve

    def _serve(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        """The app, with ``Connection: close`` on answers that start after the stop began, and on
        a 4xx to a request with a body: the body may be unread or misframed, and gunicorn would
        otherwise read all of it to reach the next request. Such a connection is closed with a
        linger (see handle_request), so that the client reads the answer, not a reset."""
        response = getattr(start_response, "__self__", None)  # gunicorn's Response
        has_body = bool(environ.get("wsgi.input_terminated")) or environ.get(
            "CONTENT_LENGTH", "0") not in ("", "0")

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            if response is not None:
                refused_body = has_body and status[:1] == "4"
                if refused_body:
                    self._linger.add(gevent.getcurrent())
                if refused_body or not self.alive:
                    response.force_close()
            return start_response(status, headers, exc_info)

        environ[STOPPING_ENVIRON_KEY] = self._stop_event
        return self._application(environ, start)

    def handle_request(self, listener_name: Any, req: Any, sock: Any, addr: Any) -> Any:
        try:
            return super().handle_request(listener_name, req, sock, addr)
        finally:
            if gevent.getcurrent() in self._linger:
                self._linger.discard(gevent.getcurrent())
                _linger(sock)

    @contextlib.contextmanager
    def timeout_ctx(self) -> Iterator[None]:
        """Waits for the next request on a connection at most ``keepalive`` seconds (the idle
        timeout); the wait is registered so that a stop can end it at once."""
        idle = self.cfg.keepalive if self.idle_timeout is None else self.idle_timeout
        seconds = idle if self.alive else min(idle, 1.0)
        timeout = gevent.Timeout(seconds, False)
        current = gevent.getcurrent()
        self._idle[current] = timeout
        try:
            with timeout:
                yield
        finally:
            self._idle.pop(current, None)

    def handle_exit(self, sig: int, frame: Any) -> None:
        super().handle_exit(sig, frame)
        if not self._stopping:
            self._stopping = True
            gevent.spawn(self._stop_gracefully)  # out of the signal handler, so it may block

    def _stop_gracefully(self) -> None:
        state = state_of(self._application)  # None: a WSGI app not built by create_app
        waiters = 0 if state is None else state.store.waiters
        logger.info("stopping: answering %d held long-polls and closing idle connections", waiters)
        self._stop_event.set()  # streaming answers end at their next check (STOPPING_ENVIRON_KEY)
        if state is not None:
            state.store.shutdown()  # every held request returns the job's current status now
        for greenlet, timeout in list(self._idle.items()):
            # Thrown into the wait, the Timeout ends it as if keepalive ran out: no answer is
            # cut, the connection was between requests.
            greenlet.kill(timeout, block=False)
        if state is not None:
            state.webhooks.close()  # deliveries in flight may finish; the rest are logged as left

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        """Answers what gunicorn could not parse with the API's JSON error, then closes."""
        if isinstance(exc, http_errors.ParseException):
            status = next((s for kind, s in _PARSE_STATUS if isinstance(exc, kind)), 400)
            if _OTHER_HTTP_VERSION_RE.search(str(exc)):  # "PRI * HTTP/2.0", the HTTP/2 preface
                status = 505
            logger.warning("malformed request from %s: %d %.200s", (addr or ("",))[0], status,
                           str(exc))
        else:
            status = 500
            logger.error("error handling a request", exc_info=exc)
        code, message = raw_error(status)
        if status == 500:
            code, message = "internal_error", "internal server error"
        elif status == 417:
            message = "unsupported Expect header"
        body = error_bytes(code, message)
        reason = {400: "Bad Request", 414: "URI Too Long", 417: "Expectation Failed",
                  431: "Request Header Fields Too Large", 500: "Internal Server Error",
                  505: "HTTP Version Not Supported"}.get(status, "Error")
        head = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode("latin-1")
        with contextlib.suppress(OSError):
            util.write(client, head + body)


def _linger(sock: Any) -> None:
    """Half-closes and reads what the client still sends (at most LINGER_BYTES, LINGER_SECONDS):
    closing with unread bytes would make the kernel reset the connection, and the client could
    lose the answer it was sent."""
    with contextlib.suppress(OSError), gevent.Timeout(LINGER_SECONDS, False):
        sock.shutdown(socket.SHUT_WR)
        left = LINGER_BYTES
        while left > 0 and (chunk := sock.recv(min(left, 65536))):
            left -= len(chunk)


# --- gunicorn settings and the application ------------------------------------------------


def gunicorn_settings(
    settings: Settings | None = None, *, workers: int = 1, on_ready: Callable[[str], None] | None
    = None, prog: str = DEFAULT_PROG,
) -> dict[str, Any]:
    """gunicorn's settings for this app: the worker, limits, timeouts, hooks.

    Args:
        settings: the server's settings (``None`` reads them like ``create_app`` does).
        workers: worker processes.
        on_ready: called in the master with the listening URL once it is bound.
        prog: the program named in error lines and in the process title.

    Returns:
        A mapping of gunicorn setting names to values (also usable as a gunicorn config module).
    """
    settings = Settings.from_env() if settings is None else settings

    def on_starting(arbiter: Any) -> None:
        try:
            check_workers(settings, arbiter.cfg.workers)
        except ConfigError as exc:
            print(f"{prog}: error: {exc}", file=sys.stderr, flush=True)
            sys.exit(2)
        check_fd_limit(settings.max_waiters)
        _prepare_metrics_dir(arbiter.cfg.workers)
        worker = arbiter.cfg.worker_class
        if not (isinstance(worker, type) and issubclass(worker, JsonErrorWorker)):
            # e.g. `gunicorn -k gevent ...` beside this file: its settings, but a stock worker,
            # which would not limit the request line that this configuration leaves to ours.
            arbiter.cfg.set("limit_request_line", 8190)
            logger.warning(
                "worker %s is not serving.JsonErrorWorker: gunicorn's HTML error pages, request "
                "lines up to 8190 bytes, and held long-polls cut at a stop", worker.__name__)

    def when_ready(arbiter: Any) -> None:
        host, port = arbiter.LISTENERS[0].sock.getsockname()[:2]
        url = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
        if on_ready is not None:
            on_ready(url)

    def post_fork(arbiter: Any, worker: Any) -> None:
        if isinstance(worker, JsonErrorWorker):
            worker.idle_timeout = settings.idle_timeout

    def child_exit(arbiter: Any, worker: Any) -> None:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(worker.pid)

    def on_exit(arbiter: Any) -> None:
        _remove_metrics_dir()

    return {
        "worker_class": "vtwait.server.serving.JsonErrorWorker",
        "workers": workers,
        "worker_connections": settings.max_waiters + SPARE_CONNECTIONS,
        # Whole seconds for gunicorn (which only needs it non-zero: keep-alive on); the worker's
        # timeout_ctx applies the exact IDLE_TIMEOUT.
        "keepalive": max(1, math.ceil(settings.idle_timeout)),
        "graceful_timeout": math.ceil(GRACEFUL_TIMEOUT),
        "limit_request_line": 0,  # unlimited for gunicorn; _LongLineRequest applies the limit
        "limit_request_fields": MAX_HEADER_FIELDS,
        "limit_request_field_size": MAX_HEADER_FIELD,
        "http_parser": "python",  # the parser _LongLineRequest extends
        "control_socket_disable": True,  # no ~/.gunicorn/gunicorn.ctl shared by every server
        "proc_name": prog,
        "on_starting": on_starting,
        "when_ready": when_ready,
        "post_fork": post_fork,
        "child_exit": child_exit,
        "on_exit": on_exit,
    }


class _GracefulArbiter(Arbiter):
    """gunicorn's master, with Ctrl+C as graceful as SIGTERM (a second Ctrl+C is still quick)."""

    def handle_int(self) -> None:
        raise StopIteration


class ServerApplication(BaseApplication):
    """gunicorn run from ``python server.py`` (gunicorn's custom-application pattern).

    The app is built in each worker by ``factory(settings)``, after gevent patched the standard
    library, so that the store's timer thread and locks are cooperative.
    """

    def __init__(self, factory: Callable[[Settings], Any], settings: Settings,
                 options: dict[str, Any], *, prog: str = DEFAULT_PROG) -> None:
        self.factory = factory
        self.settings = settings
        self.options = options
        self.prog = prog
        super().__init__()

    def load_config(self) -> None:
        assert self.cfg is not None
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        return self.factory(self.settings)

    def run(self) -> None:
        try:
            _GracefulArbiter(self).run()
        except RuntimeError as exc:
            print(f"{self.prog}: error: {exc}", file=sys.stderr, flush=True)
            sys.exit(1)


def serve(settings: Settings, host: str, port: int, *, app_factory: Callable[[Settings], Any],
          workers: int = 1, listening_line: str = "Listening on {url}",
          prog: str = DEFAULT_PROG) -> int:
    """Serves ``app_factory(settings)`` (``create_app``) with gunicorn until SIGTERM or Ctrl+C.

    ``listening_line`` is printed on stdout once the server listens (``{url}``: its base URL);
    ``prog`` names the program in error lines.

    Returns:
        The exit status: 0 after a graceful stop (gunicorn exits the process itself on errors).
    """
    bind = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    options = gunicorn_settings(
        settings, workers=workers, prog=prog,
        on_ready=lambda url: print(listening_line.format(url=url), flush=True))
    options["bind"] = [bind]
    options["loglevel"] = "warning"  # the caller prints the banner; gunicorn's INFO lines repeat it
    try:
        ServerApplication(app_factory, settings, options, prog=prog).run()
    except SystemExit as exc:  # gunicorn's arbiter ends with sys.exit
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


# --- metrics across workers ------------------------------------------------------------------

_metrics_dir: str | None = None


def _prepare_metrics_dir(workers: int) -> None:
    """With several workers, points prometheus_client's multi-process mode at a fresh directory
    (unless the operator chose one), before the workers start."""
    global _metrics_dir
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        _metrics_dir = tempfile.mkdtemp(prefix="server-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = _metrics_dir


def _remove_metrics_dir() -> None:
    if _metrics_dir is not None:
        shutil.rmtree(_metrics_dir, ignore_errors=True)
