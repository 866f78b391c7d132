"""The simulator's settings: one table read from flags, the environment and a ``.env`` file.

Every setting is a field of :class:`Settings` named after its environment variable in lower case
(``MIN_DELAY`` is ``min_delay``). ``Settings.from_env`` reads the environment over a ``.env`` file
over the defaults; ``server.py`` adds a flag for each (``OPTIONS`` drives all three). A bad value
raises :class:`ConfigError` naming the variable. All durations are in seconds.
"""

from __future__ import annotations

import base64
import dataclasses
import math
import os
import urllib.parse
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from dotenv import dotenv_values

__all__ = ["OPTIONS", "ConfigError", "Settings", "mask_url"]

#: The ``.env`` file read by default: the one in the working directory.
DEFAULT_ENV_FILE = Path(".env")
#: Shortest and longest job duration, when ``POST /start`` does not fix it.
DEFAULT_MIN_DELAY = 3.0
DEFAULT_MAX_DELAY = 7.0
#: Chance that a job ends in ``error``.
DEFAULT_ERROR_PROBABILITY = 0.3
#: Longest long-poll hold; longer requested waits are cut to it.
DEFAULT_MAX_WAIT = 30.0
#: Most requests held at once by long-poll; past it requests answer at once. Each is one open
#: connection: the gevent server holds 10,000 in one process (``ulimit -n`` permitting).
DEFAULT_MAX_WAITERS = 10000
#: How long a finished job stays readable (and its idempotency key remembered).
DEFAULT_JOB_TTL = 3600.0
#: Most live jobs (pending or finished, not yet evicted) started by ``POST /start``.
DEFAULT_MAX_JOBS = 20000
#: Longest silence of a connection (no request yet, or between keep-alive requests) before the
#: server closes it; a held long-poll is not silence, the server is the one waiting then.
DEFAULT_IDLE_TIMEOUT = 30.0
#: Relative error of ``eta_seconds``: each job's estimate is off by a fixed factor in 1 ± this.
DEFAULT_ETA_NOISE = 0.2
#: Where jobs live: ``memory`` (this process only) or a Redis URL shared by every worker and host.
DEFAULT_JOB_STORE = "memory"
#: URL schemes of a Redis ``JOB_STORE`` (redis-py's ``Redis.from_url``).
REDIS_SCHEMES = frozenset({"redis", "rediss", "unix"})
#: Hosts a ``callback_url`` may name: loopback only, so the simulator never calls out.
DEFAULT_WEBHOOK_ALLOWED_HOSTS = "127.0.0.1,localhost,::1"
#: Delivery attempts per webhook (the first one included), and each attempt's time limit.
DEFAULT_WEBHOOK_MAX_ATTEMPTS = 5
DEFAULT_WEBHOOK_TIMEOUT = 5.0
#: Wait before the first retry of a webhook; each later retry waits twice the one before.
DEFAULT_WEBHOOK_RETRY_DELAY = 1.0
#: Most job events kept for ``GET /events`` resumes (none older than ``JOB_TTL`` either).
DEFAULT_EVENT_RETENTION = 100_000
#: Seconds of silence after which an event stream sends a ``: ping`` comment.
DEFAULT_EVENT_HEARTBEAT = 15.0
#: Seconds an event stream's write may stall (a client that stopped reading) before it is dropped.
DEFAULT_EVENT_SEND_TIMEOUT = 30.0
#: Most event streams open at once in one process; past it ``GET /events`` answers 429.
DEFAULT_MAX_STREAMS = 1000
#: Most ``job_id`` values in one ``GET /events``; past it the request is a 400.
DEFAULT_MAX_STREAM_JOBS = 1000
#: Requests kept by the request journal of the control API (``GET /_admin/requests``).
DEFAULT_JOURNAL_SIZE = 1000
#: What the server's time is: ``system`` (real) or ``virtual`` (moves only when told; tests).
CLOCK_KINDS = ("system", "virtual")

#: Lifetime of a signed output URL (a status read gives a fresh one).
DEFAULT_OUTPUT_TTL = 3600.0
#: Size of each completed job's output artifact, in bytes: 1 MiB.
DEFAULT_OUTPUT_SIZE = 1 << 20
#: Largest OUTPUT_SIZE: 16 GiB (the artifact is generated as it is sent, never held whole).
MAX_OUTPUT_SIZE = 1 << 34
#: The API shapes the simulator can answer in (``DIALECT``): ``native`` is its own API; each other
#: one is a public service's long-running-operation API (``vtwait/server/dialects/``).
DIALECTS = ("native", "azure", "google", "replicate", "openai", "heygen")
DEFAULT_DIALECT = "native"
#: Most jobs one ``POST /start/batch`` starts; past it the request is a 400 (issue 19).
DEFAULT_MAX_BATCH_START = 1000

_TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
_FALSE_WORDS = frozenset({"0", "false", "no", "off"})


class ConfigError(ValueError):
    """A setting is invalid; the message names the setting by its environment variable."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything that shapes the server's behaviour; each field is its environment variable in
    lower case (``MIN_DELAY`` is ``min_delay``).

    Raises:
        ConfigError: from construction, when a value is invalid (the message names the setting).
    """

    api_username: str | None = None
    api_password: str | None = dataclasses.field(default=None, repr=False)
    min_delay: float = DEFAULT_MIN_DELAY
    max_delay: float = DEFAULT_MAX_DELAY
    error_probability: float = DEFAULT_ERROR_PROBABILITY
    max_wait: float = DEFAULT_MAX_WAIT
    max_waiters: int = DEFAULT_MAX_WAITERS
    job_ttl: float = DEFAULT_JOB_TTL
    max_jobs: int = DEFAULT_MAX_JOBS
    seed: int | None = None
    log_file: str | None = None
    plain: bool = False
    eta_noise: float = DEFAULT_ETA_NOISE
    fault_503: float = 0.0
    fault_429: float = 0.0
    fault_latency: float = 0.0
    fault_drop: float = 0.0
    fault_garbage: float = 0.0
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT
    # Not in repr: its URL may carry a password (log ``mask_url(settings.job_store)`` instead).
    job_store: str = dataclasses.field(default=DEFAULT_JOB_STORE, repr=False)
    concurrency: int = 0
    webhook_secret: str | None = dataclasses.field(default=None, repr=False)
    webhook_allowed_hosts: str = DEFAULT_WEBHOOK_ALLOWED_HOSTS
    webhook_max_attempts: int = DEFAULT_WEBHOOK_MAX_ATTEMPTS
    webhook_timeout: float = DEFAULT_WEBHOOK_TIMEOUT
    webhook_retry_delay: float = DEFAULT_WEBHOOK_RETRY_DELAY
    rate_limit: int = 0
    rate_burst: int | None = None
    events: bool = True
    event_retention: int = DEFAULT_EVENT_RETENTION
    event_heartbeat: float = DEFAULT_EVENT_HEARTBEAT
    event_send_timeout: float = DEFAULT_EVENT_SEND_TIMEOUT
    max_streams: int = DEFAULT_MAX_STREAMS
    max_stream_jobs: int = DEFAULT_MAX_STREAM_JOBS
    # The control API's bearer credential: never in repr, never logged.
    admin_token: str | None = dataclasses.field(default=None, repr=False)
    admin_allow_remote: bool = False
    journal_size: int = DEFAULT_JOURNAL_SIZE
    cors_origins: str | None = None
    clock: str = "system"
    output_secret: str | None = dataclasses.field(default=None, repr=False)
    output_ttl: float = DEFAULT_OUTPUT_TTL
    output_size: int = DEFAULT_OUTPUT_SIZE
    fault_output_late: float = 0.0
    fault_output_drop: int = 0
    strict_body: bool = False
    # Not in repr, never logged: a secret like API_PASSWORD.
    api_key: str | None = dataclasses.field(default=None, repr=False)
    dialect: str = DEFAULT_DIALECT
    event_max_age: float = 0.0
    log_format: str = "text"
    max_batch_start: int = DEFAULT_MAX_BATCH_START

    def __post_init__(self) -> None:
        for name in ("api_username", "api_password", "log_file", "webhook_secret", "output_secret"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise ConfigError(f"{name.upper()} must be a string, got {value!r}")
            if value == "":  # an empty variable means "not set"
                object.__setattr__(self, name, None)
        if self.api_username is not None and ":" in self.api_username:
            raise ConfigError("API_USERNAME must not contain ':' (HTTP Basic auth cannot carry it)")
        for name, maximum, open_top in _NUMBER_RANGES:
            number = _check_number(name, getattr(self, name), maximum, open_top)
            object.__setattr__(self, name, number)
        for name, minimum in (("max_waiters", 0), ("max_jobs", 1), ("concurrency", 0),
                              ("webhook_max_attempts", 1), ("rate_limit", 0)):
            _check_int(name, getattr(self, name), minimum)
        if self.rate_burst is not None:
            _check_int("rate_burst", self.rate_burst, 1)
        if self.webhook_timeout <= 0:
            raise ConfigError(f"WEBHOOK_TIMEOUT must be more than 0, got {self.webhook_timeout!r}")
        _check_webhook_secret(self.webhook_secret)
        _ = self.webhook_hosts  # raises ConfigError on a malformed list
        for name, minimum in (("event_retention", 1), ("max_streams", 0), ("max_stream_jobs", 1)):
            _check_int(name, getattr(self, name), minimum)
        for name in ("event_heartbeat", "event_send_timeout"):  # 0 would spin or drop at once
            if getattr(self, name) == 0:
                raise ConfigError(f"{name.upper()} must be more than 0, got 0")
        if self.seed is not None:
            _check_int("seed", self.seed, None)
        for name, minimum in (("output_size", 0), ("fault_output_drop", 0)):
            _check_int(name, getattr(self, name), minimum)
        if self.output_size > MAX_OUTPUT_SIZE:
            raise ConfigError(f"OUTPUT_SIZE must be at most {MAX_OUTPUT_SIZE}, got "
                              f"{self.output_size!r}")
        if self.output_ttl < 1:  # expiry is in whole seconds: a shorter URL could be born dead
            raise ConfigError(f"OUTPUT_TTL must be at least 1, got {self.output_ttl!r}")
        _check_int("max_batch_start", self.max_batch_start, 1)
        if self.idle_timeout == 0:
            raise ConfigError("IDLE_TIMEOUT must be more than 0, got 0")
        for name in ("plain", "events"):
            value = getattr(self, name)
            if not isinstance(value, bool):
                raise ConfigError(f"{name.upper()} must be true or false, got {value!r}")
        if self.min_delay > self.max_delay:
            raise ConfigError(
                f"MIN_DELAY must not exceed MAX_DELAY, got {self.min_delay:g} > {self.max_delay:g}"
            )
        _check_job_store(self.job_store)
        _check_dialect_and_key(self)
        if self.log_format not in ("text", "json"):
            raise ConfigError(f"LOG_FORMAT must be text or json, got {self.log_format!r}")
        self._check_control_settings()
        _check_clock(self.clock, self.job_store)

    def _check_control_settings(self) -> None:
        """ADMIN_TOKEN, ADMIN_ALLOW_REMOTE, JOURNAL_SIZE, CORS_ORIGINS (the test-tool settings)."""
        for name in ("admin_token", "cors_origins"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise ConfigError(f"{name.upper()} must be a string, got {type(value).__name__}")
            if value == "":
                object.__setattr__(self, name, None)
        if self.admin_token is not None and (
                len(self.admin_token) < 8 or any(c.isspace() for c in self.admin_token)):
            # The message never quotes the value: it is a secret, even when malformed.
            raise ConfigError("ADMIN_TOKEN must be at least 8 characters without spaces")
        if not isinstance(self.admin_allow_remote, bool):
            raise ConfigError(f"ADMIN_ALLOW_REMOTE must be true or false, "
                              f"got {self.admin_allow_remote!r}")
        _check_int("journal_size", self.journal_size, 1)
        _ = self.cors_origin_set  # raises ConfigError on a malformed list

    @property
    def cors_origin_set(self) -> frozenset[str] | None:
        """``CORS_ORIGINS`` as a set of origins (``{"*"}`` for any), or None when CORS is off."""
        if self.cors_origins is None:
            return None
        origins = [o.strip().rstrip("/") for o in self.cors_origins.split(",")]
        for origin in origins:
            parts = urllib.parse.urlsplit(origin) if origin != "*" else None
            if parts is not None and (parts.scheme not in ("http", "https") or not parts.netloc
                                      or parts.path or parts.query or parts.fragment):
                raise ConfigError("CORS_ORIGINS must be * or origins such as "
                                  f"https://app.example:8080 separated by commas, got {origin!r}")
        return frozenset(origins)

    @property
    def webhook_hosts(self) -> frozenset[str]:
        """``WEBHOOK_ALLOWED_HOSTS`` as a set of lower-case host names and addresses."""
        if not isinstance(self.webhook_allowed_hosts, str):
            raise ConfigError(f"WEBHOOK_ALLOWED_HOSTS must be a string, got "
                              f"{self.webhook_allowed_hosts!r}")
        hosts = [h.strip().lower().removeprefix("[").removesuffix("]")
                 for h in self.webhook_allowed_hosts.split(",")]
        if not all(hosts) or any(c.isspace() or c in "/@?#" for h in hosts for c in h):
            raise ConfigError("WEBHOOK_ALLOWED_HOSTS must be host names or addresses separated by "
                              f"commas, got {self.webhook_allowed_hosts!r}")
        return frozenset(hosts)

    @property
    def rate_capacity(self) -> int:
        """The token bucket's size: ``RATE_BURST``, or one second's worth of ``RATE_LIMIT``."""
        return self.rate_limit if self.rate_burst is None else self.rate_burst

    @property
    def auth_enabled(self) -> bool:
        """Whether HTTP Basic auth is required: only when both credentials are set."""
        return self.api_username is not None and self.api_password is not None

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, env_file: str | os.PathLike | None = None
    ) -> Settings:
        """Reads settings from environment variables, over a ``.env`` file, over the defaults.

        Args:
            environ: the variables; ``None`` means ``os.environ``. Empty values count as unset.
            env_file: a ``.env`` file whose values the variables override. ``None`` means the
                ``.env`` next to this module when ``environ`` is ``None``, and no file otherwise
                (so tests that pass ``environ`` are not affected by a developer's ``.env``).

        Raises:
            ConfigError: a value is not valid; the message names the variable.
        """
        if environ is None:
            environ = os.environ
            if env_file is None:
                env_file = DEFAULT_ENV_FILE
        merged: dict[str, str] = {}
        if env_file is not None:
            from_file = dotenv_values(env_file, interpolate=False)  # values are taken literally
            merged.update({k: v for k, v in from_file.items() if v})
        merged.update({k: v for k, v in environ.items() if v})
        values: dict[str, Any] = {}
        for option in OPTIONS:
            raw = merged.get(option.env, "").strip()
            if raw:
                values[option.env.lower()] = _PARSERS[option.kind](option.env, raw)
        return cls(**values)


class _Option(NamedTuple):
    env: str
    kind: str  # "str", "float", "int", "bool"
    help: str
    flag: bool = True


# One table drives Settings.from_env, the command line flags and --help.
OPTIONS: tuple[_Option, ...] = (
    _Option("API_USERNAME", "str", "HTTP Basic user; auth is on when both are set", False),
    _Option("API_PASSWORD", "str", "HTTP Basic password (environment or .env only)", False),
    _Option("MIN_DELAY", "float", "shortest job duration, seconds"),
    _Option("MAX_DELAY", "float", "longest job duration, seconds"),
    _Option("ERROR_PROBABILITY", "float", "chance in [0, 1] that a job ends in error"),
    _Option("MAX_WAIT", "float", "longest long-poll hold, seconds"),
    _Option("MAX_WAITERS", "int", "most requests held by long-poll at once"),
    _Option("JOB_TTL", "float", "seconds a finished job is kept before it is forgotten"),
    _Option("MAX_JOBS", "int", "most live jobs; past it POST /start answers 429"),
    _Option("SEED", "int", "seed for job durations, outcomes and fault dice (reproducible runs)"),
    _Option("LOG_FILE", "str", "also append logs to this file"),
    _Option("PLAIN", "bool", "no hints (Retry-After, eta_seconds), no long-poll, no job lifecycle "
            "(Prefer on start, Cancel-After, outputs, GET /jobs)"),
    _Option("ETA_NOISE", "float", "relative error in [0, 1) of eta_seconds"),
    _Option("FAULT_503", "float", "rate in [0, 1] of status requests answered 503"),
    _Option("FAULT_429", "float", "rate in [0, 1] of status requests answered 429"),
    _Option("FAULT_LATENCY", "float", "extra seconds slept before each status answer"),
    _Option("FAULT_DROP", "float", "rate in [0, 1] of status requests whose connection is dropped"),
    _Option("FAULT_GARBAGE", "float", "rate in [0, 1] of status requests answered with non-JSON"),
    _Option("IDLE_TIMEOUT", "float", "seconds a silent connection is kept open"),
    _Option("JOB_STORE", "str", "memory, or a redis:// / rediss:// URL (environment or .env only)",
            False),
    _Option("CONCURRENCY", "int", "most jobs running at once, the rest queue in order; 0: no limit"),
    _Option("WEBHOOK_SECRET", "str", "whsec_<base64> key that signs webhooks (env or .env only)",
            False),
    _Option("WEBHOOK_ALLOWED_HOSTS", "str", "comma-separated hosts a callback_url may name"),
    _Option("WEBHOOK_MAX_ATTEMPTS", "int", "delivery attempts per webhook, the first included"),
    _Option("WEBHOOK_TIMEOUT", "float", "seconds one webhook attempt may take"),
    _Option("WEBHOOK_RETRY_DELAY", "float", "seconds before the first webhook retry; doubles"),
    _Option("RATE_LIMIT", "int", "requests per second per credential (token bucket); 0: off"),
    _Option("RATE_BURST", "int", "token bucket size (default: one second's worth of RATE_LIMIT)"),
    _Option("EVENTS", "bool", "serve the job event stream GET /events (off: a 404, as before it)"),
    _Option("EVENT_RETENTION", "int", "most job events kept for event stream resumes"),
    _Option("EVENT_HEARTBEAT", "float", "seconds of silence before an event stream sends a ping"),
    _Option("EVENT_SEND_TIMEOUT", "float", "seconds a stalled event stream write waits, then drops"),
    _Option("MAX_STREAMS", "int", "most event streams open at once; past it GET /events is a 429"),
    _Option("MAX_STREAM_JOBS", "int", "most job_id values in one GET /events (more is a 400)"),
    _Option("ADMIN_TOKEN", "str", "bearer token of the control API /_admin/ (off when unset; env or "
            ".env only)", False),
    _Option("ADMIN_ALLOW_REMOTE", "bool", "let non-loopback clients use the control API"),
    _Option("JOURNAL_SIZE", "int", "requests kept by the control API's request journal"),
    _Option("CORS_ORIGINS", "str", "origins allowed by CORS, comma-separated, or *; off when unset"),
    _Option("CLOCK", "str", "system, or virtual: time moves only when told (POST /_admin/clock)"),
    _Option("OUTPUT_SECRET", "str", "key that signs output URLs and GET /jobs cursors (default: "
            "random, shared through the job store; env or .env only)", False),
    _Option("OUTPUT_TTL", "float", "seconds a signed output URL stays valid (at least 1)"),
    _Option("OUTPUT_SIZE", "int", "bytes of each completed job's output artifact"),
    _Option("FAULT_OUTPUT_LATE", "float", "seconds after completed before a job's output exists"),
    _Option("FAULT_OUTPUT_DROP", "int", "drop an output download's connection once per job after "
            "this many bytes; 0: off"),
    _Option("STRICT_BODY", "bool", "unknown POST /start body keys are a 400 (off: ignored, logged)"),
    _Option("API_KEY", "str", "key accepted as Bearer or X-Api-Key beside Basic (env or .env only)",
            False),
    _Option("DIALECT", "str", "API shape: native, azure, google, replicate, openai or heygen"),
    _Option("EVENT_MAX_AGE", "float", "seconds until the server ends an event stream (it resumes); 0: never"),
    _Option("LOG_FORMAT", "str", "text, or json: one JSON object a line (trace ids when tracing)"),
    _Option("MAX_BATCH_START", "int", "most jobs one POST /start/batch starts (more is a 400)"),
)

# (field, maximum, maximum excluded); every number is finite and at least 0.
_NUMBER_RANGES: tuple[tuple[str, float, bool], ...] = (
    ("min_delay", math.inf, False),
    ("max_delay", math.inf, False),
    ("error_probability", 1.0, False),
    ("max_wait", math.inf, False),
    ("job_ttl", math.inf, False),
    ("eta_noise", 1.0, True),
    ("fault_503", 1.0, False),
    ("fault_429", 1.0, False),
    ("fault_latency", math.inf, False),
    ("fault_drop", 1.0, False),
    ("fault_garbage", 1.0, False),
    ("idle_timeout", math.inf, False),
    ("webhook_timeout", math.inf, False),
    ("webhook_retry_delay", math.inf, False),
    ("event_heartbeat", math.inf, False),
    ("event_send_timeout", math.inf, False),
    ("output_ttl", math.inf, False),
    ("fault_output_late", math.inf, False),
    ("event_max_age", math.inf, False),
)


def mask_url(url: str) -> str:
    """``url`` with its password, if any, replaced by ``***``: safe to log or show in an error."""
    try:
        parts = urllib.parse.urlsplit(url)
        password = parts.password
    except ValueError:
        return "<unparsable URL>"
    if password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def _check_dialect_and_key(settings: Settings) -> None:
    """DIALECT names a known dialect; API_KEY is a string of printable ASCII (an empty one is
    unset). STRICT_BODY is a bool."""
    if not isinstance(settings.strict_body, bool):
        raise ConfigError(f"STRICT_BODY must be true or false, got {settings.strict_body!r}")
    if settings.dialect not in DIALECTS:
        raise ConfigError(f"DIALECT must be one of {', '.join(DIALECTS)}, got {settings.dialect!r}")
    key = settings.api_key
    if key == "":
        object.__setattr__(settings, "api_key", None)
    elif key is not None and (not isinstance(key, str)
                              or not all(33 <= ord(c) <= 126 for c in key)):
        # The message never quotes the value: it is a secret, even when malformed.
        raise ConfigError("API_KEY must be printable ASCII without spaces")


def _check_job_store(value: Any) -> None:
    if not isinstance(value, str):
        raise ConfigError(f"JOB_STORE must be a string, got {type(value).__name__}")
    if value == DEFAULT_JOB_STORE:
        return
    problem = "must be 'memory' or a redis://, rediss:// or unix:// URL"
    try:
        parts = urllib.parse.urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number in range
    except ValueError:
        raise ConfigError(f"JOB_STORE {problem}, got {mask_url(value)!r}") from None
    if parts.scheme not in REDIS_SCHEMES or not (parts.hostname or parts.path):
        raise ConfigError(f"JOB_STORE {problem}, got {mask_url(value)!r}")
    database = parts.path.strip("/") if parts.scheme != "unix" else ""
    if database and not database.isdigit():
        raise ConfigError(f"JOB_STORE database must be a number, got {mask_url(value)!r}")


def _check_clock(value: Any, job_store: str) -> None:
    if value not in CLOCK_KINDS:
        raise ConfigError(f"CLOCK must be one of {', '.join(CLOCK_KINDS)}, got {value!r}")
    if value == "virtual" and job_store != "memory":
        # Redis keeps due times on the real clock its processes and hosts share.
        raise ConfigError("CLOCK=virtual needs JOB_STORE=memory: a Redis store runs on the "
                          "real clock its processes share")


def _check_number(name: str, value: Any, maximum: float, open_top: bool) -> float:
    env = name.upper()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{env} must be a number, got {value!r}")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise ConfigError(f"{env} must be a finite number, got {value!r}")
    if number < 0 or number > maximum or (open_top and number == maximum):
        if maximum == math.inf:
            raise ConfigError(f"{env} must be at least 0, got {value!r}")
        bracket = ")" if open_top else "]"
        raise ConfigError(f"{env} must be in [0, {maximum:g}{bracket}, got {value!r}")
    return number


def _check_webhook_secret(secret: str | None) -> None:
    """A Standard Webhooks secret is ``whsec_`` and the base64 of at least 16 random bytes."""
    if secret is None:
        return
    body = secret.removeprefix("whsec_")
    try:
        key = base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
    except ValueError:  # binascii.Error
        key = b""
    if not secret.startswith("whsec_") or len(key) < 16:
        # The message never quotes the value: it is a secret, even when malformed.
        raise ConfigError("WEBHOOK_SECRET must be whsec_ followed by the base64 of at least "
                          "16 bytes (e.g. python -c \"import base64,os; "
                          "print('whsec_'+base64.b64encode(os.urandom(32)).decode())\")")


def _check_int(name: str, value: Any, minimum: int | None) -> None:
    env = name.upper()
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{env} must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise ConfigError(f"{env} must be at least {minimum}, got {value!r}")


def _parse_float(env: str, raw: str) -> float:
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"{env} must be a number, got {raw!r}") from None


def _parse_int(env: str, raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{env} must be an integer, got {raw!r}") from None


def _parse_bool(env: str, raw: str) -> bool:
    word = raw.lower()
    if word in _TRUE_WORDS or word in _FALSE_WORDS:
        return word in _TRUE_WORDS
    raise ConfigError(f"{env} must be true or false (1/0, yes/no, on/off), got {raw!r}")


_PARSERS: dict[str, Callable[[str, str], Any]] = {
    "str": lambda env, raw: raw,
    "float": _parse_float,
    "int": _parse_int,
    "bool": _parse_bool,
}
