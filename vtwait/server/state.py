"""What one app holds: its settings, job store, webhook sender, metrics, limiter and streams.

``create_app`` builds one :class:`AppState` and keeps it under a single ``app.extensions`` key;
everything else (routes, the gunicorn worker, tests) reaches it through :func:`app_state`::

    state = app_state(app)
    state.store.process_due()
    state.webhooks.close()
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from flask import Flask, current_app

from vtwait.server.clock import Clock, SystemClock
from vtwait.server.settings import Settings
from vtwait.server.stores.base import JobStore

if TYPE_CHECKING:  # only types: this module stays a leaf of the server package
    from vtwait.server.admin import AdminState
    from vtwait.server.events import EventStreams
    from vtwait.server.faults import Faults
    from vtwait.server.metrics import Metrics
    from vtwait.server.outputs import Outputs
    from vtwait.server.ratelimit import RequestLimiter
    from vtwait.server.webhooks import WebhookSender

__all__ = ["EXTENSION_KEY", "AppState", "app_state", "current_state", "state_of"]

#: The one ``app.extensions`` key of an app built by ``create_app``.
EXTENSION_KEY = "vtwait"


@dataclasses.dataclass(frozen=True, slots=True)
class AppState:
    """The parts of one app, built once by ``create_app``.

    Attributes:
        settings: the behaviour the app was built with.
        store: where its jobs live; call ``store.shutdown()`` when done.
        webhooks: the webhook sender; call ``webhooks.close()`` when done.
        webhook_secret: the ``whsec_`` secret the sender signs with.
        metrics: the Prometheus metrics of ``/metrics``.
        faults: the fault rules, played before every API view.
        rate_limiter: the per-credential limiter, or None when ``RATE_LIMIT`` is off.
        streams: the ``GET /events`` streams, or None when the route is off.
        admin: what the control API drives (journal, scripts, fault rules); see ``admin/``.
        clock: the time everything time-driven follows (``CLOCK=virtual``: a ``VirtualClock``
            that ``POST /_admin/clock`` advances).
        outputs: job outputs (``GET /outputs``), or None when PLAIN.
        signing_secret: the key of output URLs and ``GET /jobs`` cursors, or None when PLAIN.
    """

    settings: Settings
    store: JobStore
    webhooks: WebhookSender
    webhook_secret: str
    metrics: Metrics
    faults: Faults
    rate_limiter: RequestLimiter | None = None
    streams: EventStreams | None = None
    admin: AdminState | None = None
    clock: Clock = dataclasses.field(default_factory=SystemClock)
    outputs: Outputs | None = None
    signing_secret: bytes | None = dataclasses.field(default=None, repr=False)


def app_state(app: Flask) -> AppState:
    """The state of an app built by ``create_app``.

    Raises:
        LookupError: ``app`` was not built by ``create_app``.
    """
    state = state_of(app)
    if state is None:
        raise LookupError(f"{app!r} was not built by vtwait.server.create_app")
    return state


def state_of(app: Any) -> AppState | None:
    """The state of ``app`` if it is a Flask app built by ``create_app``, else None (any WSGI app)."""
    extensions = getattr(app, "extensions", None)
    state = None if extensions is None else extensions.get(EXTENSION_KEY)
    return state if isinstance(state, AppState) else None


def current_state() -> AppState:
    """The state of the app handling the current request."""
    return app_state(current_app)
