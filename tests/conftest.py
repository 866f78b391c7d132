"""Shared fixtures: an in-process app and client, app and live-server factories, a fake clock."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from helpers import FakeClock, LiveServer, fast_settings, start_live_server

import server


@pytest.fixture
def make_app() -> Iterator[Callable[..., Flask]]:
    """Factory: make_app(settings=None, **create_app_kwargs) -> Flask; stores shut down at teardown."""
    apps: list[Flask] = []

    def factory(settings: server.Settings | None = None, **kwargs: Any) -> Flask:
        app = server.create_app(settings or fast_settings(), **kwargs)
        apps.append(app)
        return app

    yield factory
    for app in apps:
        app.extensions["job_store"].shutdown()
        app.extensions["webhooks"].close()


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
def make_server() -> Iterator[Callable[..., LiveServer]]:
    """Factory: make_server(settings=None, **create_app_kwargs) -> LiveServer; all stopped at teardown."""
    servers: list[LiveServer] = []

    def factory(settings: server.Settings | None = None, **kwargs: Any) -> LiveServer:
        live = start_live_server(settings, **kwargs)
        servers.append(live)
        return live

    yield factory
    for live in servers:
        live.stop()
