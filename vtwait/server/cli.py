"""The server's command line: ``python server.py``, ``python -m vtwait.server``, ``vtwait-server``.

Usage::

    python server.py --port 8000 --min-delay 1 --max-delay 2   # gunicorn + gevent, one worker
    python server.py --help                                    # every setting, with its default

Settings come from the flags, then the environment, then a ``.env`` file in the working
directory, then defaults (``settings.py``). A bad setting is one ``<prog>: error: ...`` line on
stderr and exit status 2. Once the server listens, stdout gets :data:`LISTENING_LINE` and a short
banner (authentication, store, the settings that differ from their defaults); the full settings
are logged at DEBUG level.

gevent patches the standard library here, before anything imports ``ssl`` (requests, redis), so
that the gunicorn worker's own patch finds nothing to warn about; ``--dev-server`` (threads, no
gevent) patches nothing. This module imports the rest of the server only once that is done.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vtwait.server.logformat import TEXT_FORMAT, formatter_for
from vtwait.server.settings import DEFAULT_ENV_FILE, OPTIONS, ConfigError, Settings, mask_url

__all__ = [
    "LISTENING_LINE",
    "WEBHOOK_SECRET_LINE",
    "build_parser",
    "configure_logging",
    "main",
    "program_name",
    "start_banner",
]

logger = logging.getLogger(__name__)

#: What the server prints once it listens (``vtwait.testing.ServerProcess`` reads it back).
LISTENING_LINE = "Listening on {url} (Ctrl+C to stop)"
#: What the server prints once, after it listens, when WEBHOOK_SECRET is unset.
WEBHOOK_SECRET_LINE = "Webhook signing secret for this run (set WEBHOOK_SECRET to fix it): "
#: The program named in error lines, unless it runs as ``server.py`` (the console script).
CONSOLE_SCRIPT = "vtwait-server"
# Settings the banner never lists: credentials (auth and store have their own words).
_NOT_IN_BANNER = frozenset({"api_username", "api_password", "webhook_secret", "job_store",
                            "admin_token", "api_key"})


def program_name(argv0: str | None = None) -> str:
    """``server.py`` when run as ``python server.py``, else the console script's name."""
    name = Path(sys.argv[0] if argv0 is None else argv0).name
    return "server.py" if name == "server.py" else CONSOLE_SCRIPT


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The command line: ``--host``, ``--port``, ``--env-file``, ``--workers``, ``--dev-server``,
    and a flag for each setting that has one (``OPTIONS``)."""
    parser = argparse.ArgumentParser(
        prog=program_name() if prog is None else prog,
        description="Mock video-translation server: POST /start, GET /status[/<id>], GET /healthz.",
        epilog=(
            "Each setting is also read from the environment and from a .env file in the working "
            "directory (the environment wins; flags win over both). Credentials come only from "
            "the environment or .env, never from flags (they would show in `ps`): "
            "API_USERNAME, API_PASSWORD, API_KEY, and JOB_STORE (memory, or a redis:// URL that "
            "may carry a password). A bad setting exits with status 2."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="TCP port, 0 for any (default 8000)")
    parser.add_argument("--env-file",
                        help="read settings from this file (default: .env in the working directory)")
    parser.add_argument("--workers", type=int, default=1, metavar="N",
                        help="worker processes (default 1; more needs a shared job store)")
    parser.add_argument("--dev-server", action="store_true",
                        help="serve with werkzeug's threaded development server instead of "
                             "gunicorn + gevent (a thread per connection; for comparison)")
    defaults = _defaults()
    for option in OPTIONS:
        if not option.flag:
            continue
        flag = "--" + option.env.lower().replace("_", "-")
        default = defaults[option.env.lower()]
        shown = "unset" if default is None else ("off" if default is False else (
            default if isinstance(default, str) else f"{default:g}"))
        help_text = f"{option.help} (env {option.env}; default {shown})"
        kind: dict[str, Any]
        if option.kind == "bool":
            kind = {"action": argparse.BooleanOptionalAction}
        else:
            text = "PATH" if option.env.endswith("_FILE") else "TEXT"
            kind = {"metavar": {"float": "NUMBER", "int": "INT", "str": text}[option.kind]}
        parser.add_argument(flag, dest=option.env, default=None, help=help_text, **kind)
    return parser


def configure_logging(log_file: str | None, log_format: str = "text") -> None:
    """Sends the ``vtwait.server`` logs (INFO and up) to stderr and, if given, to ``log_file``,
    as text or as one JSON object a line (``LOG_FORMAT``, ``logformat.py``)."""
    formatter = (formatter_for(log_format) if log_format != "text"
                 else _SecondCachingFormatter(TEXT_FORMAT))
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
    package_logger = logging.getLogger("vtwait.server")
    for handler in handlers:
        handler.setFormatter(formatter)
        package_logger.addHandler(handler)
    package_logger.setLevel(logging.INFO)
    package_logger.propagate = False
    # We log every request ourselves; werkzeug's own lines would double them.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)


class _SecondCachingFormatter(logging.Formatter):
    """A Formatter that formats each second's timestamp once (one request line each, thousands a
    second: ``formatTime``'s localtime and strftime were 2% of a status request)."""

    _cached: tuple[int, str] = (-1, "")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        if datefmt is not None:
            return super().formatTime(record, datefmt)
        second = int(record.created)
        if second != self._cached[0]:
            self._cached = (second, time.strftime(self.default_time_format,
                                                  self.converter(record.created)))
        return "%s,%03d" % (self._cached[1], record.msecs)  # logging's default_msec_format


def start_banner(settings: Settings, *, workers: int = 1, dev_server: bool = False) -> str:
    """The lines printed under the listening line: server, auth, store, changed settings."""
    served = ("werkzeug dev server (threads)" if dev_server
              else f"gunicorn + gevent, {workers} worker{'s' if workers != 1 else ''}")
    auth = f"on (user {settings.api_username!r})" if settings.auth_enabled else "off"
    if settings.api_key is not None:  # the key itself is never shown
        auth = ("on (" + (f"user {settings.api_username!r}, " if settings.auth_enabled else "")
                + "API_KEY)")
    defaults = _defaults()
    changed = [f"{name.upper()}={_shown(value)}" for name, value in dataclasses.asdict(settings).items()
               if name not in _NOT_IN_BANNER and value != defaults[name]]
    return (f"Server: {served}; auth {auth}; store {mask_url(settings.job_store)}\n"
            f"Settings: {', '.join(changed) if changed else 'all defaults'} (--help lists them)")


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the server until Ctrl+C or SIGTERM; returns the exit status."""
    prog = program_name()
    args = build_parser(prog).parse_args(argv)
    if not args.dev_server:
        _patch_for_gevent()
    # Imported only now, once gevent patched the standard library (see the module docstring).
    import vtwait.server.serving as serving
    from vtwait.server.stores import check_store
    from vtwait.server.stores.base import StoreUnavailableError

    environ = dict(os.environ)
    for option in OPTIONS:
        value = getattr(args, option.env, None)
        if value is not None:
            environ[option.env] = ("1" if value else "0") if option.kind == "bool" else value
    try:
        env_file = DEFAULT_ENV_FILE if args.env_file is None else Path(args.env_file)
        if args.env_file is not None and not env_file.exists():
            raise ConfigError(f"--env-file: no such file {args.env_file!r}")
        settings = Settings.from_env(environ, env_file=env_file)
        if args.dev_server and args.workers != 1:
            raise ConfigError("--dev-server serves from one process; drop --workers")
        serving.check_workers(settings, args.workers)
        check_store(settings)  # Redis answers, before any worker starts
        configure_logging(settings.log_file, settings.log_format)
    except (ConfigError, StoreUnavailableError, OSError) as exc:  # messages mask passwords
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    settings, secret_line = _with_run_secret(settings)
    logger.debug("settings: %r; store %s", settings, mask_url(settings.job_store))
    banner = start_banner(settings, workers=args.workers, dev_server=args.dev_server)
    from vtwait.server.app import create_app

    if not args.dev_server:
        listening = (LISTENING_LINE + "\n" + _braces(banner) + _braces(secret_line))
        return serving.serve(settings, args.host, args.port, app_factory=create_app,
                             workers=args.workers, listening_line=listening, prog=prog)
    from vtwait.server.devserver import serve_dev

    serving.check_fd_limit(settings.max_waiters)

    def ready(url: str) -> None:
        print(LISTENING_LINE.format(url=url) + "\n" + banner + secret_line, flush=True)

    return serve_dev(settings, args.host, args.port, app_factory=create_app, ready=ready)


def _patch_for_gevent() -> None:
    """gevent's patch of the standard library, before the modules that import ``ssl`` load."""
    from gevent import monkey

    if not monkey.is_module_patched("socket"):
        monkey.patch_all()


def _with_run_secret(settings: Settings) -> tuple[Settings, str]:
    """The settings with a WEBHOOK_SECRET for this run, and what to print after the listening line.

    Unset, a secret is generated here, before the app (or any worker) exists, so that all sign
    alike; like `stripe listen`, it is shown once to the operator on stdout, never through the log
    (whose lines may be shipped elsewhere). Set, nothing is printed.
    """
    import vtwait.server.webhooks as webhooks

    if settings.webhook_secret is not None:
        return settings, ""
    settings = dataclasses.replace(settings, webhook_secret=webhooks.generate_secret())
    logger.info("WEBHOOK_SECRET is unset: webhooks are signed with a secret generated for this "
                "run, printed once on stdout; set WEBHOOK_SECRET to keep one")
    return settings, f"\n{WEBHOOK_SECRET_LINE}{settings.webhook_secret}"


def _defaults() -> dict[str, Any]:
    return {f.name: f.default for f in dataclasses.fields(Settings)}


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _braces(text: str) -> str:
    """``text`` as a literal inside a ``str.format`` template."""
    return text.replace("{", "{{").replace("}", "}}")
