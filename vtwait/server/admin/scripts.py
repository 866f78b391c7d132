"""Scripted jobs: a timeline of phases, progress and final result at given times.

A start body may carry ``"script": {"timeline": [...]}``, or ``POST /_admin/scripts`` sets one for
the next N starts. Each step is ``{"at": s, "phase"?: "queued" | "running", "progress"?: 0..1,
"result"?: "completed" | "error"}``; ``at`` counts seconds from the job's creation and never goes
back; only the last step may carry a result. A timeline without one keeps the job running
(pending) forever, until it is cancelled.

How it works, and so what each store does: the job is started in the store with the final step's
time as its delay and its result as its outcome (a timeline without a result: a delay of
:data:`FOREVER`), so the final result and duration are the store's own, on every store and in every
worker. The steps before it are an overlay on the status documents this process answers
(``POST /start``, ``GET /status``, cancel): ``phase`` and ``progress`` are the latest step's (before
the first step: running, progress 0), and ``eta_seconds`` counts down to the final step (absent
when there is none). The overlay is kept in this process; the event stream and webhooks carry the
store's own documents::

    book = ScriptBook(wall_clock=time.time)
    script = parse_script({"timeline": [{"at": 1, "progress": 0.5}, {"at": 2, "result": "error"}]})
    book.queue(script, count=3)
"""

from __future__ import annotations

import collections
import dataclasses
import json
import threading
from collections.abc import Callable
from typing import Any

from vtwait.server.stores.base import JobResult

__all__ = ["FOREVER", "MAX_AT", "MAX_STEPS", "Script", "ScriptBook", "ScriptError", "Step",
           "parse_script"]

#: The store's delay for a timeline without a result: ten years, as good as forever and finite.
FOREVER = 10 * 365 * 86400.0
#: Latest ``at`` of a step (a year: virtual time makes long timelines cheap).
MAX_AT = 365 * 86400.0
#: Most steps in one timeline, and most scripted jobs remembered for the overlay.
MAX_STEPS = 100
MAX_REMEMBERED = 100_000
#: Most starts ``POST /_admin/scripts`` can script at once.
MAX_COUNT = 100_000

_STEP_KEYS = frozenset({"at", "phase", "progress", "result"})
_PHASES = ("queued", "running")
_RESULTS = ("completed", "error")


class ScriptError(ValueError):
    """A script is invalid; ``field`` names the key at fault (``timeline[2].at``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclasses.dataclass(frozen=True, slots=True)
class Step:
    at: float
    phase: str | None = None
    progress: float | None = None
    result: str | None = None

    def to_json(self) -> dict[str, Any]:
        step: dict[str, Any] = {"at": self.at}
        for key in ("phase", "progress", "result"):
            if getattr(self, key) is not None:
                step[key] = getattr(self, key)
        return step


@dataclasses.dataclass(frozen=True, slots=True)
class Script:
    """A validated timeline."""

    timeline: tuple[Step, ...]

    @property
    def final(self) -> Step | None:
        """The step that ends the job, or None (running forever)."""
        last = self.timeline[-1]
        return last if last.result is not None else None

    @property
    def delay(self) -> float:
        """The job's duration in the store."""
        final = self.final
        return FOREVER if final is None else final.at

    @property
    def outcome(self) -> JobResult:
        final = self.final
        return JobResult.COMPLETED if final is None else JobResult(final.result)

    def to_json(self) -> dict[str, Any]:
        return {"timeline": [step.to_json() for step in self.timeline]}

    def overlay(self, doc: dict[str, Any], elapsed: float) -> dict[str, Any]:
        """``doc`` (a pending job's document) as the timeline says it is ``elapsed`` s in."""
        phase, progress = "running", 0.0
        for step in self.timeline:
            if step.at > elapsed:
                break
            phase = step.phase or phase
            progress = progress if step.progress is None else step.progress
        doc["phase"], doc["progress"] = phase, progress
        if phase == "queued":
            doc.pop("started_at", None)
        else:
            doc.pop("queue_position", None)
        final = self.final
        if final is None:
            doc.pop("eta_seconds", None)  # no end to estimate
        else:
            doc["eta_seconds"] = round(max(final.at - elapsed, 0.0), 3)
        return doc


def parse_script(value: Any, where: str = "script") -> Script:
    """A script from its JSON form ``{"timeline": [...]}``.

    Raises:
        ScriptError: not a valid script; the error names the key (e.g. ``script.timeline[1].at``).
    """
    if not isinstance(value, dict):
        raise ScriptError(where, 'must be an object {"timeline": [...]}')
    unknown = sorted(set(value) - {"timeline"})
    if unknown:
        raise ScriptError(f"{where}.{unknown[0]}", "unknown key")
    return Script(parse_timeline(value.get("timeline"), f"{where}.timeline"))


def parse_timeline(value: Any, where: str = "timeline") -> tuple[Step, ...]:
    """The steps of a timeline (see the module's docstring).

    Raises:
        ScriptError: not a valid timeline; the error names the step and key.
    """
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_STEPS:
        raise ScriptError(where, f"must be a list of 1 to {MAX_STEPS} steps")
    steps: list[Step] = []
    for index, raw in enumerate(value):
        field = f"{where}[{index}]"
        if not isinstance(raw, dict):
            raise ScriptError(field, "must be an object")
        unknown = sorted(set(raw) - _STEP_KEYS)
        if unknown:
            raise ScriptError(f"{field}.{unknown[0]}", "unknown key")
        at = raw.get("at")
        if isinstance(at, bool) or not isinstance(at, (int, float)) or not 0 <= at <= MAX_AT:
            raise ScriptError(f"{field}.at", f"must be a number of seconds in [0, {MAX_AT:g}]")
        if steps and at < steps[-1].at:
            raise ScriptError(f"{field}.at", f"goes back in time ({at:g} < {steps[-1].at:g})")
        phase, progress, result = raw.get("phase"), raw.get("progress"), raw.get("result")
        if phase is not None and phase not in _PHASES:
            raise ScriptError(f"{field}.phase", "must be " + " or ".join(_PHASES))
        if progress is not None and (isinstance(progress, bool)
                                     or not isinstance(progress, (int, float))
                                     or not 0 <= progress <= 1):
            raise ScriptError(f"{field}.progress", "must be a number in [0, 1]")
        if result is not None and result not in _RESULTS:
            raise ScriptError(f"{field}.result", "must be " + " or ".join(_RESULTS))
        if result is not None and index != len(value) - 1:
            raise ScriptError(f"{field}.result", "only the last step may end the job")
        steps.append(Step(float(at), phase, None if progress is None else float(progress),
                          result))
    return tuple(steps)


class ScriptBook:
    """The scripts waiting for the next starts, and the scripted jobs of this process.

    Args:
        wall_clock: Unix seconds, the clock of the documents' ``created_at``.
    """

    def __init__(self, *, wall_clock: Callable[[], float]) -> None:
        self._wall_clock = wall_clock
        self._lock = threading.Lock()
        self._queued: collections.deque[list[Any]] = collections.deque()  # [script, uses left]
        self._jobs: collections.OrderedDict[str, Script] = collections.OrderedDict()

    def queue(self, script: Script, count: int) -> None:
        """Scripts the next ``count`` starts (after those queued before)."""
        with self._lock:
            self._queued.append([script, count])

    def queued(self) -> int:
        """How many starts are still to be scripted."""
        with self._lock:
            return sum(uses for _, uses in self._queued)

    def script_for(self, body: bytes) -> Script | None:
        """The script of a start: the body's ``script``, else the next queued one (not used up
        until :meth:`attach`), else None.

        Raises:
            ScriptError: the body's script is invalid.
        """
        if b'"script"' in body:  # cheap test first: almost no start body has one
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = None  # the start route's own parser says what is wrong
            if isinstance(parsed, dict) and "script" in parsed:
                return parse_script(parsed["script"])
        with self._lock:
            return self._queued[0][0] if self._queued else None

    def attach(self, job_id: str, script: Script) -> None:
        """Remembers a job started with ``script``; uses up one start of a queued script."""
        with self._lock:
            if self._queued and self._queued[0][0] is script:
                self._queued[0][1] -= 1
                if self._queued[0][1] <= 0:
                    self._queued.popleft()
            self._jobs[job_id] = script
            while len(self._jobs) > MAX_REMEMBERED:
                self._jobs.popitem(last=False)

    def overlay(self, doc: dict[str, Any]) -> dict[str, Any]:
        """``doc`` with its script's phase, progress and ETA if it is a pending scripted job."""
        if not self._jobs or doc.get("result") != "pending":
            return doc
        with self._lock:
            script = self._jobs.get(doc.get("job_id", ""))
        created = doc.get("created_at")
        if script is None or not isinstance(created, (int, float)):
            return doc
        return script.overlay(doc, max(self._wall_clock() - created, 0.0))

    def clear(self) -> None:
        with self._lock:
            self._queued.clear()
            self._jobs.clear()
