"""Shared fixtures: an in-process app and client, app and live-server factories, a fake clock,
a private Redis server, and the store the app factories use (``store_kind``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

import vtwait.server.app as server
from tests.helpers import FakeClock, LiveServer, fast_settings, start_live_server
from vtwait.server.state import app_state
from vtwait.testing import RedisServer


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A private redis-server on a free loopback port, shared by the run (each app gets its own
    empty database through ``fresh_url()``)."""
    redis = RedisServer.start(tmp_path_factory.mktemp("redis"))
    yield redis
    redis.stop()


@pytest.fixture
def store_kind() -> str:
    """The store the app factories build: "memory" here; a test file may run both stores by
    overriding this fixture with params ["memory", "redis"]."""
    return "memory"


@pytest.fixture
def with_store(store_kind: str, request: pytest.FixtureRequest) -> Callable[..., server.Settings]:
    """with_store(settings) -> the settings on the ``store_kind`` store (Redis: a fresh database),
    unless they name a store already."""
    if store_kind == "memory":
        return lambda settings: settings
    redis: RedisServer = request.getfixturevalue("redis_server")

    def on_redis(settings: server.Settings) -> server.Settings:
        if settings.job_store != "memory":
            return settings
        return dataclasses.replace(settings, job_store=redis.fresh_url())

    return on_redis


@pytest.fixture
def make_app(with_store: Callable[..., server.Settings]) -> Iterator[Callable[..., Flask]]:
    """Factory: make_app(settings=None, **create_app_kwargs) -> Flask; stores shut down at teardown."""
    apps: list[Flask] = []

    def factory(settings: server.Settings | None = None, **kwargs: Any) -> Flask:
        app = server.create_app(with_store(settings or fast_settings()), **kwargs)
        apps.append(app)
        return app

    yield factory
    for app in apps:
        app_state(app).store.shutdown()
        app_state(app).webhooks.close()


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    """An app with fast_settings(): 50 ms jobs that complete, no auth, its timer thread running."""
    return make_app()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """An in-process test client of ``app``."""
    return app.test_client()


@pytest.fixture
def fake_clock() -> FakeClock:
    """A fake monotonic + wall clock pair; see helpers.FakeClock."""
    return FakeClock()


@pytest.fixture
def make_server(with_store: Callable[..., server.Settings]) -> Iterator[Callable[..., LiveServer]]:
    """Factory: make_server(settings=None, **create_app_kwargs) -> LiveServer; all stopped at teardown."""
    servers: list[LiveServer] = []

    def factory(settings: server.Settings | None = None, **kwargs: Any) -> LiveServer:
        live = start_live_server(with_store(settings or fast_settings()), **kwargs)
        servers.append(live)
        return live

    yield factory
    for live in servers:
        live.stop()


# pytest-xdist (`-n auto --dist loadgroup`, pyproject.toml) runs tests on two workers. The tests
# that load the machine with thousands of connections, and whose waits assume the server keeps up
# (e.g. 2,000 jobs started before the first one ends), go to one worker, one after the other, as
# they ran before the suite was parallel. Node-id prefixes, so no test file needs a marker.
LOAD_TESTS = (
    "tests/server/test_serving.py::test_two_thousand_long_polls",
    "tests/e2e/test_load.py::",
    "tests/e2e/test_many_live.py::",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.nodeid.startswith(LOAD_TESTS):
            item.add_marker(pytest.mark.xdist_group("load"))
