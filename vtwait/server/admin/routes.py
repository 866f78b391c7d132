"""The control API's routes, one Blueprint (``admin_api``) under ``/_admin/``.

==========================================  =====================================================
``POST /_admin/reset``                      204: forgets every job (but the default one), the
                                            journal, the fault rules and the queued scripts
``GET /_admin/faults``                      ``{"rules": [Rule]}`` in the order they play
``POST /_admin/faults``                     a Rule without ``id``/``fired`` -> 201 the Rule
``DELETE /_admin/faults[/<id>]``            204 (all rules, or one; 404 for an unknown id)
``GET /_admin/requests?route=&method=``     ``{"requests": [...]}`` oldest first; also
``&job_id=&status=&since=&limit=``          ``DELETE`` -> 204 empties the journal
``POST /_admin/scripts``                    ``{"timeline": [...], "count": N}`` -> 201: scripts
                                            the next N starts
``GET /_admin/clock``                       ``{"virtual", "time", "monotonic"}``
``POST /_admin/clock``                      ``{"advance": s}`` -> 200 the same; 409 when the
                                            clock is not virtual
==========================================  =====================================================

Every answer but 204 is JSON; a bad body or query is a 400 whose message starts with the field's
name. Who may call is ``auth.py``'s business (checked before routing, so an unknown route or
method under ``/_admin/`` is a 404 or 405 only for a caller who may call).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from flask import Blueprint, Response, jsonify, request

from vtwait.server.admin.auth import check_admin
from vtwait.server.admin.scripts import MAX_COUNT, Script, ScriptError, parse_timeline
from vtwait.server.errors import ApiError
from vtwait.server.faults import RuleError
from vtwait.server.routenames import ADMIN_PREFIX, ROUTE_NAMES
from vtwait.server.state import AppState, current_state
from vtwait.server.stores.base import JOB_ID_RE

__all__ = ["ADMIN_BLUEPRINT", "MAX_ADVANCE", "admin_api", "check_caller"]

#: The Blueprint's name: the app's own auth and rate limit skip its endpoints.
ADMIN_BLUEPRINT = "admin"
#: Longest single clock advance: ten years.
MAX_ADVANCE = 10 * 365 * 86400.0
#: Largest control-API body.
MAX_ADMIN_BODY = 64 * 1024

admin_api = Blueprint(ADMIN_BLUEPRINT, __name__, url_prefix="/_admin")

_QUERY_KEYS = frozenset({"route", "method", "job_id", "status", "since", "limit"})
_METHOD_RE = re.compile(r"[A-Z]{1,16}")


def check_caller() -> None:
    """before_request (app-wide, for every ``/_admin/`` path, before routing answers a 404 or
    405): see ``auth.py``."""
    if request.path.startswith(ADMIN_PREFIX):
        settings = current_state().settings
        check_admin(settings.admin_token, settings.admin_allow_remote, request.remote_addr,
                    request.headers.get("Authorization"))


def _admin(state: AppState | None = None) -> Any:
    state = state or current_state()
    admin = getattr(state, "admin", None)
    if admin is None:  # an app built without the control API's parts
        raise ApiError(404, "not_found", "no such route")
    return admin


def _body() -> Any:
    raw = request.get_data(cache=False)
    if len(raw) > MAX_ADMIN_BODY:
        raise ApiError(400, "bad_request", f"body: larger than {MAX_ADMIN_BODY} bytes")
    if not raw.strip():
        raise ApiError(400, "bad_request", "body: a JSON object is required")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise ApiError(400, "bad_request", "body: not valid JSON") from None


def _no_content() -> Response:
    return Response(status=204)


@admin_api.post("/reset")
def reset() -> Response:
    state = current_state()
    admin = _admin(state)
    state.store.reset()
    admin.journal.clear()
    admin.faults.clear()
    admin.scripts.clear()
    return _no_content()


@admin_api.get("/faults")
def list_faults() -> Response:
    return jsonify({"rules": _admin().faults.rules()})


@admin_api.post("/faults")
def add_fault() -> Response:
    try:
        rule = _admin().faults.add(_body())
    except RuleError as exc:
        raise ApiError(400, "bad_request", str(exc)) from None
    response = jsonify(rule.to_json())
    response.status_code = 201
    response.headers["Location"] = f"/_admin/faults/{rule.id}"
    return response


@admin_api.delete("/faults")
def clear_faults() -> Response:
    _admin().faults.clear()
    return _no_content()


@admin_api.delete("/faults/<rule_id>")
def remove_fault(rule_id: str) -> Response:
    if not _admin().faults.remove(rule_id):
        raise ApiError(404, "not_found", f"no fault rule {rule_id}"[:200])
    return _no_content()


@admin_api.get("/requests")
def list_requests() -> Response:
    admin = _admin()
    args = request.args
    unknown = sorted(set(args) - _QUERY_KEYS)
    if unknown:
        raise ApiError(400, "bad_request", f"{unknown[0][:50]}: unknown query parameter (known: "
                                           + ", ".join(sorted(_QUERY_KEYS)) + ")")
    route = args.get("route")
    if route is not None and route not in ROUTE_NAMES:
        raise ApiError(400, "bad_request", "route: must be one of " + ", ".join(ROUTE_NAMES))
    method = args.get("method")
    if method is not None and not _METHOD_RE.fullmatch(method.upper()):
        raise ApiError(400, "bad_request", "method: must be an HTTP method such as GET")
    job_id = args.get("job_id")
    if job_id is not None and not JOB_ID_RE.fullmatch(job_id):
        raise ApiError(400, "bad_request", "job_id: must be a job id")
    status = _int_arg("status", 100, 599)
    limit = _int_arg("limit", 1, 10**9)
    since = args.get("since")
    since_value = None
    if since is not None:
        try:
            since_value = float(since)
        except ValueError:
            since_value = math.nan
        if not math.isfinite(since_value):
            raise ApiError(400, "bad_request", "since: must be Unix seconds")
    found = admin.journal.query(route=route, method=None if method is None else method.upper(),
                                job_id=job_id, status=status, since=since_value, limit=limit)
    return jsonify({"requests": found})


def _int_arg(name: str, low: int, high: int) -> int | None:
    raw = request.args.get(name)
    if raw is None:
        return None
    if not raw.isascii() or not raw.isdigit() or len(raw) > 10 or not low <= int(raw) <= high:
        raise ApiError(400, "bad_request", f"{name}: must be an integer from {low} to {high}")
    return int(raw)


@admin_api.delete("/requests")
def clear_requests() -> Response:
    _admin().journal.clear()
    return _no_content()


@admin_api.post("/scripts")
def add_script() -> Response:
    admin = _admin()
    body = _body()
    if not isinstance(body, dict):
        raise ApiError(400, "bad_request", "body: must be a JSON object")
    unknown = sorted(set(body) - {"timeline", "count"})
    if unknown:
        raise ApiError(400, "bad_request", f"{unknown[0][:50]}: unknown key")
    count = body.get("count", 1)
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_COUNT:
        raise ApiError(400, "bad_request", f"count: must be an integer from 1 to {MAX_COUNT}")
    try:
        script = Script(parse_timeline(body.get("timeline"), "timeline"))
    except ScriptError as exc:
        raise ApiError(400, "bad_request", str(exc)) from None
    admin.scripts.queue(script, count)
    response = jsonify({**script.to_json(), "count": count, "queued": admin.scripts.queued()})
    response.status_code = 201
    return response


@admin_api.get("/clock")
def get_clock() -> Response:
    return jsonify(_clock_document(current_state()))


@admin_api.post("/clock")
def advance_clock() -> Response:
    state = current_state()
    body = _body()
    if not isinstance(body, dict) or set(body) != {"advance"}:
        raise ApiError(400, "bad_request", 'advance: the body is {"advance": <seconds>}')
    seconds = body["advance"]
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) \
            or not 0 <= seconds <= MAX_ADVANCE:
        raise ApiError(400, "bad_request", f"advance: must be seconds in [0, {MAX_ADVANCE:g}]")
    clock = getattr(state, "clock", None)
    if clock is None or not _is_virtual(clock):
        raise ApiError(409, "conflict", "the clock is not virtual: start the server with "
                                        "CLOCK=virtual to move it")
    clock.advance(float(seconds))
    return jsonify(_clock_document(state))


def _clock_document(state: AppState) -> dict[str, Any]:
    # The app's clock functions: the virtual clock's own when CLOCK=virtual (create_app binds
    # them to it), else the real ones (or a test's fakes).
    admin = _admin(state)
    return {"virtual": _is_virtual(getattr(state, "clock", None)), "time": admin.wall_clock(),
            "monotonic": admin.clock()}


def _is_virtual(clock: Any) -> bool:
    return bool(getattr(clock, "virtual", False))
