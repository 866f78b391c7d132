"""Fault injection by rules: an error status, a dropped connection, a garbage body, added latency,
a slow trickle of the body; on any route, method or job, by chance or for the next N requests.

A rule is what ``POST /_admin/faults`` takes (the control API, ``admin/``); the ``FAULT_*``
settings become rules on the status route when the app starts. Every API request (``start``,
``status``, ``cancel``, ``events``, ``jobs``, ``outputs``; see ``routenames.py``) is matched
against the rules in the order they were added: each matching rule draws its own dice (its own
random stream, seeded by its ``seed``, else by ``SEED`` and its id, so a seeded run is
reproducible), and a rule that fires counts it in ``fired``. ``latency`` and ``trickle`` rules
add to the answer and let the next rules play; the first ``status``, ``drop`` or ``garbage`` rule
that fires is the answer::

    faults = Faults(settings)                      # the FAULT_* rules
    faults.add({"route": "start", "action": "status", "status": 503, "times": 2})
    answer = faults.inject("status", job_id)       # before the view: a faulty answer, or None
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import math
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http import HTTPStatus
from typing import Any

from flask import Response, g, request

from vtwait.server.errors import STATUS_CODES, error_response
from vtwait.server.routenames import ROUTE_NAMES
from vtwait.server.settings import Settings
from vtwait.server.stores.base import JOB_ID_RE

__all__ = ["ACTIONS", "GARBAGE_BODY", "METHODS", "FaultRule", "Faults", "RuleError", "parse_rule"]

logger = logging.getLogger(__name__)

#: Body of a ``garbage`` answer: what a misbehaving proxy might send.
GARBAGE_BODY = "<html>upstream garbage</html>"
#: What a rule can do.
ACTIONS = ("status", "drop", "garbage", "latency", "trickle")
#: Actions that decide the answer; the others add to it.
TERMINAL_ACTIONS = frozenset({"status", "drop", "garbage"})
#: Methods a rule can name (``*``: any).
METHODS = ("GET", "POST", "DELETE", "HEAD", "*")
#: Longest latency or trickle a rule may add: a rule is a test's tool, not a way to hang a server.
MAX_FAULT_SECONDS = 300.0
#: A trickle's time when the rule gives no ``latency``.
DEFAULT_TRICKLE_SECONDS = 1.0
#: Pieces a trickled body is cut into.
TRICKLE_PIECES = 20
#: Error code of an injected status that has no code of its own.
INJECTED_CODE = "injected_fault"

_RULE_KEYS = frozenset({"route", "method", "job_id", "action", "status", "retry_after", "latency",
                        "probability", "times", "seed"})


class RuleError(ValueError):
    """A rule is invalid; ``field`` names the key at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclasses.dataclass(slots=True, eq=False)
class FaultRule:
    """One fault rule, as the control API lists it (:meth:`to_json`)."""

    id: str
    action: str
    route: str = "*"
    method: str = "*"
    job_id: str | None = None
    status: int | None = None
    retry_after: float | None = None
    latency: float | None = None
    probability: float = 1.0
    times: int | None = None
    seed: int | None = None
    fired: int = 0
    rng: random.Random = dataclasses.field(default_factory=random.Random, repr=False)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "route": self.route, "method": self.method, "job_id": self.job_id,
                "action": self.action, "status": self.status, "retry_after": self.retry_after,
                "latency": self.latency, "probability": self.probability, "times": self.times,
                "seed": self.seed, "fired": self.fired}

    def matches(self, route: str, method: str, job_id: str | None) -> bool:
        return ((self.route == "*" or self.route == route)
                and (self.method == "*" or self.method == method)
                and (self.job_id is None or self.job_id == job_id))


def parse_rule(body: Any, rule_id: str, default_seed: str | None) -> FaultRule:
    """A rule from the JSON ``body`` of ``POST /_admin/faults``.

    Args:
        body: the decoded JSON.
        rule_id: the id the new rule gets.
        default_seed: seeds the rule's dice when the body gives no ``seed`` (None: unseeded).

    Raises:
        RuleError: the body is not a valid rule; the error names the key.
    """
    if not isinstance(body, dict):
        raise RuleError("body", "must be a JSON object")
    unknown = sorted(set(body) - _RULE_KEYS)
    if unknown:
        raise RuleError(unknown[0], "unknown key (a rule has " + ", ".join(sorted(_RULE_KEYS)) + ")")
    action = body.get("action")
    if action not in ACTIONS:
        raise RuleError("action", "must be one of " + ", ".join(ACTIONS))
    route = body.get("route", "*")
    if route != "*" and route not in ROUTE_NAMES:
        raise RuleError("route", "must be * or one of " + ", ".join(ROUTE_NAMES))
    method = body.get("method", "*")
    if not isinstance(method, str) or method.upper() not in METHODS:
        raise RuleError("method", "must be one of " + ", ".join(METHODS))
    job_id = body.get("job_id")
    if job_id is not None and (not isinstance(job_id, str) or not JOB_ID_RE.fullmatch(job_id)):
        raise RuleError("job_id", "must be null or a job id")
    status = body.get("status")
    if action == "status":
        if not isinstance(status, int) or isinstance(status, bool) or not 400 <= status <= 599:
            raise RuleError("status", "must be an HTTP status from 400 to 599")
    elif status is not None:
        raise RuleError("status", f"only a status rule has one (this is {action})")
    retry_after = _number(body, "retry_after", 0, 86400)
    if retry_after is not None and action != "status":
        raise RuleError("retry_after", f"only a status rule has one (this is {action})")
    latency = _number(body, "latency", 0, MAX_FAULT_SECONDS)
    if action == "latency" and latency is None:
        raise RuleError("latency", "a latency rule needs the seconds to add")
    if action == "trickle" and latency is None:
        latency = DEFAULT_TRICKLE_SECONDS
    if latency is not None and action not in ("latency", "trickle"):
        raise RuleError("latency", f"only a latency or trickle rule has one (this is {action})")
    probability = _number(body, "probability", 0, 1)
    times = body.get("times")
    if times is not None and (not _is_int(times) or times < 1):
        raise RuleError("times", "must be null or an integer of at least 1")
    seed = body.get("seed")
    if seed is not None and (not _is_int(seed) or abs(seed) > 2**63):
        raise RuleError("seed", "must be null or an integer")
    rng = random.Random(seed if seed is not None else default_seed)
    return FaultRule(id=rule_id, action=action, route=route, method=method.upper(), job_id=job_id,
                     status=status, retry_after=retry_after, latency=latency,
                     probability=1.0 if probability is None else probability, times=times,
                     seed=seed, rng=rng)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(body: dict[str, Any], key: str, low: float, high: float) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise RuleError(key, f"must be null or a number in [{low:g}, {high:g}]")
    return float(value)


class Faults:
    """The fault rules of one app (this process), safe to share between request threads.

    Args:
        settings: the ``FAULT_*`` settings become the first rules; ``SEED`` seeds unseeded rules.
        sleep: waits out a latency or a trickle's pauses (real time: it simulates the network).
    """

    def __init__(self, settings: Settings, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self.settings = settings
        self._sleep = sleep
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._rules: list[FaultRule] = []
        for spec in rules_from_settings(settings):
            self.add(spec)

    @property
    def enabled(self) -> bool:
        """Whether any rule exists (the hot path skips the rest when none does)."""
        return bool(self._rules)

    def add(self, body: Any) -> FaultRule:
        """Adds a rule from its JSON form (see :func:`parse_rule`); returns it.

        Raises:
            RuleError: the body is not a valid rule.
        """
        with self._lock:
            rule_id = f"r{next(self._ids)}"
            seed = self.settings.seed
            rule = parse_rule(body, rule_id, None if seed is None else f"faults:{seed}:{rule_id}")
            self._rules.append(rule)
        logger.info("fault rule %s added: %s", rule_id, rule.to_json())
        return rule

    def rules(self) -> list[dict[str, Any]]:
        """Every rule in the order they play, with its ``fired`` count."""
        with self._lock:
            return [rule.to_json() for rule in self._rules]

    def remove(self, rule_id: str) -> bool:
        """Removes one rule; False if there is no such rule."""
        with self._lock:
            kept = [rule for rule in self._rules if rule.id != rule_id]
            found = len(kept) != len(self._rules)
            self._rules = kept
        return found

    def clear(self) -> None:
        """Removes every rule, the ``FAULT_*`` ones too."""
        with self._lock:
            self._rules = []

    def inject(self, route: str | None, job_id: str | None) -> Response | None:
        """Plays the rules on the current request; returns the faulty answer, if any.

        A ``trickle`` that fires is left in ``g.fault_trickle`` (seconds) for :meth:`trickle`.
        """
        if route is None or not self._rules:
            return None  # the usual case: nothing to match or draw on the hot path
        method = request.method
        where = f"{method} {request.path}"
        played: list[FaultRule] = []
        with self._lock:
            for rule in self._rules:
                if rule.matches(route, method, job_id) and self._fires(rule):
                    rule.fired += 1
                    played.append(rule)
                    if rule.action in TERMINAL_ACTIONS:
                        break  # the answer is decided: later rules neither draw nor count
        for rule in played:
            answer = self._play(rule, where)
            if answer is not None:
                return answer
        return None

    def trickle(self, response: Response) -> Response:
        """Sends a buffered body slowly: in pieces over ``g.fault_trickle`` seconds."""
        seconds = g.pop("fault_trickle", None)
        if seconds is None or response.is_streamed:
            return response
        body = response.get_data()
        size = max(1, math.ceil(len(body) / TRICKLE_PIECES))
        pieces = [body[i:i + size] for i in range(0, len(body), size)] or [b""]
        pause = seconds / len(pieces)
        sleep = self._sleep

        def slowly() -> Iterator[bytes]:
            for piece in pieces:
                sleep(pause)
                yield piece

        response.response = slowly()
        response.headers["Content-Length"] = str(len(body))
        return response

    @staticmethod
    def _fires(rule: FaultRule) -> bool:
        if rule.times is not None and rule.fired >= rule.times:
            return False
        return rule.probability >= 1.0 or rule.rng.random() < rule.probability

    def _play(self, rule: FaultRule, where: str) -> Response | None:
        action = rule.action
        logger.warning("fault %s: %s on %s", rule.id, action, where)
        if action == "latency":
            self._sleep(rule.latency or 0.0)
            return None
        if action == "trickle":
            g.fault_trickle = rule.latency
            return None
        if action == "garbage":
            return Response(GARBAGE_BODY, 200, mimetype="text/html")
        if action == "drop":
            return _drop(where)
        status = rule.status or 503
        headers = {}
        if rule.retry_after is not None:
            headers["Retry-After"] = str(math.ceil(rule.retry_after))
        try:
            phrase = HTTPStatus(status).phrase.lower()
        except ValueError:  # a status without a name, e.g. 499
            phrase = f"status {status}"
        return error_response(status, STATUS_CODES.get(status, INJECTED_CODE),
                              f"injected fault: {phrase}", headers)


def _drop(where: str) -> Response:
    """Closes the request's connection; the answer returned is never sent."""
    sock = request.environ.get("werkzeug.socket") or request.environ.get("gunicorn.socket")
    if sock is None:  # not served over a socket (e.g. app.test_client()): nothing to drop
        logger.warning("fault: no socket to drop on %s; answering 503 instead", where)
        return error_response(503, "service_unavailable", "injected fault: drop",
                              {"Retry-After": "1"})
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    # The server's write of this answer now fails with BrokenPipeError, which werkzeug and
    # gunicorn treat as a client that went away: no traceback, and the server keeps serving.
    g.dropped = True
    return Response(status=500)


def rules_from_settings(settings: Settings) -> list[dict[str, Any]]:
    """The ``FAULT_*`` settings as rules on the status route, in the order they always played."""
    rules: list[dict[str, Any]] = []
    if settings.fault_latency > 0:
        rules.append({"route": "status", "action": "latency", "latency": settings.fault_latency})
    for rate, rule in (
        (settings.fault_drop, {"action": "drop"}),
        (settings.fault_503, {"action": "status", "status": 503, "retry_after": 1}),
        (settings.fault_429, {"action": "status", "status": 429, "retry_after": 1}),
        (settings.fault_garbage, {"action": "garbage"}),
    ):
        if rate:
            rules.append({"route": "status", "probability": rate, **rule})
    return rules
