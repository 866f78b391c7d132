"""``VtServer``: a simulator subprocess with its control API on, as the pytest plugin hands it out.

    with VtServer.start(CLOCK="virtual", MIN_DELAY=3600, MAX_DELAY=3600) as server:
        client = server.client()
        job = client.start()
        server.clock.advance(3600)                  # the hour passes at once
        assert client.status(job.job_id).result == "completed"
        assert len(server.requests(route="start")) == 1

Settings are keywords named like the server's environment variables (``MIN_DELAY=3600``). The
server gets HTTP Basic credentials and an ``ADMIN_TOKEN`` of its own (random, unless given), and
speaks to its control API (``/_admin/...``, docs/testing-your-client.md) with that token. Only
the ``requests`` library is used here: nothing of the server is imported into this process.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import requests

from vtwait.testing._process import ServerProcess

if TYPE_CHECKING:
    from vtwait.client.aio import AsyncVideoTranslationClient
    from vtwait.client.sync import VideoTranslationClient

__all__ = ["Faults", "VirtualClockControl", "VtServer", "settings_env"]

#: The user name the fixture's servers require (HTTP Basic), unless ``API_USERNAME`` is given.
DEFAULT_USERNAME = "vt-test"
#: Seconds a control-API call may take (an advance waits for what it wakes: jobs, webhooks).
ADMIN_TIMEOUT = 60.0


def settings_env(settings: Mapping[str, Any]) -> dict[str, str]:
    """Keyword settings as environment variables: names upper-cased, ``True``/``False`` as 1/0,
    ``None`` as unset (an empty value)."""
    env = {}
    for name, value in settings.items():
        if isinstance(value, bool):
            text = "1" if value else "0"
        else:
            text = "" if value is None else str(value)
        env[name.upper()] = text
    return env


class _Admin:
    """Calls of the control API with the admin token."""

    def __init__(self, base_url: str, token: str) -> None:
        self.base_url = base_url
        self._session = requests.Session()
        self._session.trust_env = False  # loopback: no proxy from the environment
        self._session.headers["Authorization"] = f"Bearer {token}"

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """The JSON answer (None for a 204).

        Raises:
            requests.HTTPError: the server answered an error (its JSON body in the message).
        """
        answer = self._session.request(method, self.base_url + path, timeout=ADMIN_TIMEOUT,
                                       **kwargs)
        if answer.status_code >= 400:
            raise requests.HTTPError(f"{method} {path}: {answer.status_code} {answer.text[:500]}",
                                     response=answer)
        return None if answer.status_code == 204 or not answer.content else answer.json()

    def close(self) -> None:
        self._session.close()


class Faults:
    """The server's fault rules (``/_admin/faults``)."""

    def __init__(self, admin: _Admin) -> None:
        self._admin = admin

    def add(self, route: str = "*", action: str = "status", **rule: Any) -> dict[str, Any]:
        """Adds a rule and returns it (with its ``id``), e.g.
        ``add("status", "status", status=503, retry_after=1, times=2)``."""
        return dict(self._admin.call("POST", "/_admin/faults",
                                     json={"route": route, "action": action, **rule}))

    def list(self) -> list[dict[str, Any]]:
        """Every rule, each with how often it ``fired``."""
        return list(self._admin.call("GET", "/_admin/faults")["rules"])

    def remove(self, rule_id: str) -> None:
        """Removes one rule."""
        self._admin.call("DELETE", f"/_admin/faults/{rule_id}")

    def clear(self) -> None:
        """Removes every rule."""
        self._admin.call("DELETE", "/_admin/faults")


class VirtualClockControl:
    """The server's clock (``/_admin/clock``); :meth:`advance` needs ``CLOCK="virtual"``."""

    def __init__(self, admin: _Admin) -> None:
        self._admin = admin

    def read(self) -> dict[str, Any]:
        """``{"virtual": bool, "time": unix seconds, "monotonic": seconds}``."""
        return dict(self._admin.call("GET", "/_admin/clock"))

    def now(self) -> float:
        """The server's Unix time (virtual on a virtual clock)."""
        return float(self.read()["time"])

    def monotonic(self) -> float:
        """The server's monotonic time."""
        return float(self.read()["monotonic"])

    def advance(self, seconds: float) -> float:
        """Moves the server's virtual clock forward; returns once what fell due has run (jobs
        ended, holds answered, webhooks tried). Returns the new Unix time.

        Raises:
            requests.HTTPError: a 409 when the server's clock is not virtual.
        """
        return float(self._admin.call("POST", "/_admin/clock", json={"advance": seconds})["time"])


@dataclasses.dataclass
class VtServer:
    """A running simulator with its control API on (the ``vt_server`` fixture's object).

    Attributes:
        process: the subprocess (``process.output`` holds what the server printed).
        settings: the environment variables it was started with (the credentials and token too).
        username, password: its HTTP Basic credentials.
        admin_token: its ``ADMIN_TOKEN``.
        faults: its fault rules.
        clock: its clock.
    """

    process: ServerProcess
    settings: dict[str, str]
    username: str | None
    password: str | None
    admin_token: str
    faults: Faults = dataclasses.field(init=False)
    clock: VirtualClockControl = dataclasses.field(init=False)
    _admin: _Admin = dataclasses.field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._admin = _Admin(self.base_url, self.admin_token)
        self.faults = Faults(self._admin)
        self.clock = VirtualClockControl(self._admin)

    @classmethod
    def start(cls, **settings: Any) -> VtServer:
        """Starts ``python -m vtwait.server`` on a free loopback port with these settings (names
        of environment variables), HTTP Basic credentials and an admin token of its own.

        Raises:
            RuntimeError: the server did not start (a bad setting: its message is included).
        """
        env = {
            "API_USERNAME": DEFAULT_USERNAME,
            "API_PASSWORD": secrets.token_urlsafe(16),
            "ADMIN_TOKEN": secrets.token_urlsafe(24),
            **settings_env(settings),
        }
        process = ServerProcess.start(env=env)
        return cls(process, env, env["API_USERNAME"] or None, env["API_PASSWORD"] or None,
                   env["ADMIN_TOKEN"])

    @property
    def base_url(self) -> str:
        """The server's URL, ``http://127.0.0.1:<port>``."""
        return self.process.url

    @property
    def url(self) -> str:
        """Same as :attr:`base_url`."""
        return self.process.url

    @property
    def credentials(self) -> tuple[str | None, str | None]:
        """``(username, password)``."""
        return self.username, self.password

    def client(self, **options: Any) -> VideoTranslationClient:
        """A :class:`~vtwait.VideoTranslationClient` of this server (``options`` passed on)."""
        from vtwait.client.sync import VideoTranslationClient

        return VideoTranslationClient(self.base_url, self.username, self.password, **options)

    def async_client(self, **options: Any) -> AsyncVideoTranslationClient:
        """An :class:`~vtwait.AsyncVideoTranslationClient` of this server (needs the ``async``
        extra); use it as ``async with``."""
        from vtwait.client.aio import AsyncVideoTranslationClient

        return AsyncVideoTranslationClient(self.base_url, self.username, self.password, **options)

    def requests(self, **filters: Any) -> list[dict[str, Any]]:
        """The request journal, oldest first, filtered by ``route``, ``method``, ``job_id``,
        ``status``, ``since`` (Unix seconds) or ``limit``; each entry has ``method``, ``path``,
        ``route``, ``job_id``, ``status``, ``duration_ms``, ``time`` and ``headers``."""
        params = {k: v for k, v in filters.items() if v is not None}
        return list(self._admin.call("GET", "/_admin/requests", params=params)["requests"])

    def reset(self) -> None:
        """Empties the jobs, the journal and the fault rules."""
        self._admin.call("POST", "/_admin/reset")

    def admin(self, method: str, path: str, **kwargs: Any) -> Any:
        """Any control-API call, e.g. ``admin("POST", "/_admin/scripts", json={...})``."""
        return self._admin.call(method, path, **kwargs)

    def stop(self) -> None:
        """Stops the server."""
        self._admin.close()
        self.process.stop()

    def kill(self) -> None:
        """Kills the server at once (SIGKILL to its process group): a test server has nothing to
        save, and a polite stop takes gunicorn seconds."""
        self._admin.close()
        self.process.kill()

    def __enter__(self) -> VtServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
