"""Which API route a request is, and which job it names: the words fault rules and the journal use.

The names are the control API's (``start``, ``status``, ``cancel``, ``events``, ``jobs``,
``outputs``), read from the path alone, so that every route another module adds under those paths
is named without a table to keep in step::

    route_of("/status/abc/cancel")   # "cancel"
    job_id_of("/status/abc/cancel", args)   # "abc"
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from flask import Flask

from vtwait.server.stores.base import JOB_ID_RE

__all__ = ["ADMIN_PREFIX", "ROUTE_NAMES", "endpoint_routes", "job_id_of", "route_of",
           "route_of_request"]

#: Every path of the control API starts with this.
ADMIN_PREFIX = "/_admin/"
#: The names a fault rule or a journal filter may give (``*``: any).
ROUTE_NAMES = ("start", "status", "cancel", "events", "jobs", "outputs")

_ENDPOINT_ROUTES_KEY = "vtwait.endpoint_routes"
_PATH_RE = re.compile(r"/(start|status|events|jobs|outputs)(?:/([^/]*))?(/cancel)?/?")


def route_of(path: str) -> str | None:
    """The route name of ``path``, or None for a path outside the job API (health, metrics,
    the API description, the control API)."""
    match = _PATH_RE.fullmatch(path)
    if match is None:
        return None
    return "cancel" if match[3] else match[1]


def endpoint_routes(app: Flask) -> dict[str, str]:
    """The route names of endpoints on other paths than the native ones (a dialect's views,
    ``DIALECT=google``'s ``/v1/operations/<id>`` is ``status``): endpoint -> name."""
    table: dict[str, str] = app.extensions.setdefault(_ENDPOINT_ROUTES_KEY, {})
    return table


def route_of_request(app: Flask, path: str, endpoint: str | None) -> str | None:
    """:func:`route_of` the path, or else the route name its endpoint was given."""
    route = route_of(path)
    if route is None and endpoint is not None:
        route = app.extensions.get(_ENDPOINT_ROUTES_KEY, {}).get(endpoint)
    return route


def job_id_of(path: str, args: Mapping[str, str] | None = None) -> str | None:
    """The job a request names: in the path (``/status/<id>``, ``/jobs/<id>``, ``/outputs/<id>``)
    or as the one ``job_id`` query parameter; None for none (or an id of the wrong form)."""
    match = _PATH_RE.fullmatch(path)
    if match is None or match[1] == "start":
        return None
    job_id = match[2]
    if not job_id and args is not None:
        values = args.getlist("job_id") if hasattr(args, "getlist") else [args.get("job_id")]
        job_id = values[0] if len(values) == 1 else None
    return job_id if job_id and JOB_ID_RE.fullmatch(job_id) else None
