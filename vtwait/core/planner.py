"""How one job's wait decides, with no I/O: :class:`WaitPlanner` and the :class:`JobWait` machine.

    wait = JobWait("j1", WaitPlanner(PollingPolicy()), started=now, timeout=60.0)
    step = wait.next(now)                       # Ask(wait=30): send a status request
    step = wait.on_answer(status, asked_wait=30, sent_at=t0, received_at=t1, now=t1)
    # -> Done(status), or Sleep(delay=...) and then wait.next(now) again

:class:`WaitPlanner` says how long to wait before the next status request and why (long-poll,
the server's hints, backoff). :class:`JobWait` is the whole per-job wait as a state machine in the
manner of tenacity's ``DoAttempt``/``DoSleep``: each step is :class:`Ask` (send one status
request, with this long-poll), :class:`Sleep` (this long) or :class:`Done` (the final status). It
holds every rule of a wait, written once for both clients and the batch drivers: the attempt budget,
the protocol-error budget, the wording of a 404 for a job that was known, the deadline (each sleep
cut to end at it, one last ask there) and the :class:`~vtwait.core.errors.WaitTimeout`. The
transports only send and sleep; times are passed in (no clock is read here). All durations are in
seconds.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Callable
from dataclasses import dataclass

from vtwait.core.errors import (
    JobNotFoundError,
    ProtocolError,
    ServerError,
    ServerUnreachableError,
    VideoTranslationError,
    WaitTimeout,
)
from vtwait.core.policy import PollingPolicy, exponential_delays
from vtwait.core.status import JobStatus

__all__ = ["Ask", "Decision", "Done", "JobWait", "Sleep", "Step", "WaitPlanner", "strategy_of"]

logger = logging.getLogger(__name__)

# Time a long-poll ETA check-in waits for, as a share of the ETA; and how late after the predicted
# end the final ask is placed, so that it lands after the server's own timer rather than just before.
_ETA_CHECK_IN_SHARE = 0.5
_ETA_LANDING_MARGIN = 0.005
# First step after the ETA has run out with the job still pending; the steps double from it.
_OVERDUE_FIRST_DELAY = 0.01
# Bounds on the measured speed of the server's ETA against our clock (1.0 = the ETA is honest).
_ETA_RATE_BOUNDS = (0.5, 2.0)


@dataclass(frozen=True)
class Decision:
    """What the planner says after an answer: sleep ``delay`` before the next request, and why."""

    delay: float
    reason: str


class WaitPlanner:
    """The waiting strategy with no I/O: feed it each answer, it says how long to wait and why.

    Drive it with any transport: call :meth:`long_poll_for` before each request,
    :meth:`after_answer` with what came back (or :meth:`after_failure`), then sleep the delay.
    """

    def __init__(self, policy: PollingPolicy, *, rng: random.Random | None = None):
        self.policy = policy
        self._rng = rng or random.Random()
        self._backoff = exponential_delays(policy.initial_delay, policy.multiplier,
                                           policy.max_delay)
        self._last_eta: tuple[float, float] | None = None  # (received at, eta then)
        # After the ETA has run out and the job is still pending: short, growing steps.
        self._overdue = exponential_delays(_OVERDUE_FIRST_DELAY, 2.0, policy.max_delay)

    def long_poll_for(self, time_left: float) -> int | None:
        """Whole seconds of long-poll to ask for, bounded by the time left, or None for none."""
        if not self.policy.long_poll:
            return None
        seconds = math.floor(min(self.policy.max_long_poll, time_left))
        return seconds if seconds >= 1 else None

    def after_answer(self, status: JobStatus, *, asked_wait: float | None, sent_at: float,
                     received_at: float) -> Decision:
        """The delay before the next request, given a pending answer."""
        took = received_at - sent_at
        if asked_wait:
            # Held for most of the window, or said so and held at least half of it: the server
            # long-polls, so ask again at once. A bare echo with no hold is not trusted (no spin).
            if took >= 0.8 * asked_wait or (status.wait_applied is not None
                                            and took >= 0.5 * asked_wait):
                return Decision(0.0, f"long-poll window of {asked_wait:g} s ended")
        if self.policy.use_hints:
            decision = self._from_hints(status, received_at)
            if decision is not None:
                return decision
        return self._when_silent(status, received_at)

    def first_delay(self, now: float) -> Decision | None:
        """The delay before the first poll, or None to ask at once (``LearnedPlanner`` may wait)."""
        return None

    def after_failure(self, error: Exception) -> Decision:
        """The delay before the next request after a poll that got no usable answer."""
        return self._next_backoff(f"poll failed ({type(error).__name__}): backoff")

    def _from_hints(self, status: JobStatus, received_at: float) -> Decision | None:
        eta = status.eta_seconds
        if eta is not None and eta > 0:
            previous, self._last_eta = self._last_eta, (received_at, eta)
            rate = None
            if previous is not None and received_at - previous[0] >= 0.05 and eta < previous[1]:
                low, high = _ETA_RATE_BOUNDS
                rate = min(max((previous[1] - eta) / (received_at - previous[0]), low), high)
            if rate is None and eta > 1.0 and previous is None:
                return self._clamp_hint(eta * _ETA_CHECK_IN_SHARE,
                                        f"check in halfway through the ETA of {eta:.3f} s")
            remaining = eta / (rate or 1.0)
            why = f"ETA {eta:.3f} s" + (f" running at {rate:.2f}x our clock" if rate else "")
            return self._clamp_hint(remaining + _ETA_LANDING_MARGIN, why)
        if eta is not None:  # 0 while pending: due any moment, which beats a whole-second hint
            return Decision(next(self._overdue), "ETA ran out, job still pending: short step")
        limit = status.rate_limit
        if status.retry_after is not None and limit is not None and limit.remaining:
            # A rate limiter's Retry-After beside quota left (its window, say 60 s) says nothing
            # about the job: following it would learn of a 2 s job a minute late.
            return None
        if status.retry_after is not None:
            return self._clamp_hint(status.retry_after, f"Retry-After {status.retry_after:g} s")
        return None

    def _when_silent(self, status: JobStatus, received_at: float) -> Decision:
        """The delay after an answer with no hint; ``LearnedPlanner`` overrides it."""
        return self._next_backoff("no hint from the server: backoff")

    def _clamp_hint(self, delay: float, why: str) -> Decision:
        if delay > self.policy.max_hint_delay:
            return Decision(self.policy.max_hint_delay, f"{why}, cut to max_hint_delay")
        return Decision(max(delay, 0.0), why)

    def _next_backoff(self, why: str) -> Decision:
        delay = next(self._backoff)
        if self.policy.jitter is not None:
            delay = self.policy.jitter(delay, self._rng)
        return Decision(delay, why)


# ----------------------------------------------------------------------- one job's wait, as steps
@dataclass(frozen=True)
class Ask:
    """Send one status request, asking the server to hold it up to ``wait`` s (None: no hold)."""

    wait: int | None


@dataclass(frozen=True)
class Sleep:
    """Sleep ``delay`` seconds (never past the deadline), then call :meth:`JobWait.next`."""

    delay: float
    reason: str = ""


@dataclass(frozen=True)
class Done:
    """The job reached its final status (answered at ``received_at``): the wait returns it."""

    status: JobStatus
    received_at: float


Step = Ask | Sleep | Done

#: The failures of a status request a wait goes on after (an unanswered poll, backoff); any other
#: error (refused credentials, a rejected request) ends the wait.
TRANSIENT_FAILURES: tuple[type[VideoTranslationError], ...] = (
    ServerError, ServerUnreachableError, ProtocolError)


class JobWait:
    """One job's wait, sans-IO: which step comes next, from the answers and times passed in.

    A driver calls :meth:`next` to begin and after each :class:`Sleep`; on an :class:`Ask` it sends
    one status request and reports what came back with :meth:`on_answer` or :meth:`on_failure`,
    which return :class:`Done` or :class:`Sleep`, or raise the error that ends the wait::

        step = wait.next(clock())
        while not isinstance(step, Done):
            if isinstance(step, Sleep):
                sleep(step.delay)
                step = wait.next(clock())
                continue
            try:
                status, sent_at, received_at = poll(job_id, step.wait, wait.deadline)
            except VideoTranslationError as exc:
                step = wait.on_failure(exc, now=clock())
            else:
                step = wait.on_answer(status, asked_wait=step.wait, sent_at=sent_at,
                                      received_at=received_at, now=clock())

    Args:
        job_id: The job (None: the server's single job).
        planner: Its planner (a :class:`WaitPlanner` or a learned one).
        started: The clock when the wait began.
        timeout: Seconds from ``started`` to the deadline (``math.inf``: none).
        max_attempts: Status requests the wait may make (None: no limit but the deadline).
        max_protocol_errors: Unreadable answers in a row it tolerates (default: the policy's).
        on_update: Called with each answer whose result or progress differs from the last one.

    Raises (from :meth:`on_answer` and :meth:`on_failure`):
        WaitTimeout: the attempt budget or the deadline ran out (the last failure as cause).
        JobNotFoundError: a 404, worded for a job that was known and is gone if it was.
        ProtocolError: more unreadable answers in a row than tolerated.
        VideoTranslationError: any other failure that is not transient, as it came.
    """

    def __init__(self, job_id: str | None, planner: WaitPlanner, *, started: float,
                 timeout: float = math.inf, max_attempts: int | None = None,
                 max_protocol_errors: int | None = None,
                 on_update: Callable[[JobStatus], None] | None = None) -> None:
        self.job_id = job_id
        self.planner = planner
        self.started = started
        self.timeout = timeout
        self.deadline = started + timeout
        self.max_attempts = max_attempts
        self.max_protocol_errors = (planner.policy.max_protocol_errors
                                    if max_protocol_errors is None else max_protocol_errors)
        self.on_update = on_update
        self.attempts = 0  #: status requests asked for so far
        self.protocol_errors = 0  #: unreadable answers in a row
        self.last: JobStatus | None = None  #: the last status answered
        self.last_error: VideoTranslationError | None = None  #: the last failure since an answer
        self._begun = False
        self._asking: Ask | None = None
        self._last_wait: int | None = None  # the last Ask's long-poll hold
        self._last_reason = ""  # why the last Sleep

    @property
    def strategy(self) -> str:
        """How the last request came to be asked, by the planner's lights: ``long-poll`` (it asked
        the server to hold), ``hints`` (an ETA or ``Retry-After``), ``learned`` (the durations
        seen), ``backoff``, or ``first request`` (no sleep yet); for traces and logs."""
        return strategy_of(self._last_wait, self._last_reason)

    @property
    def label(self) -> str:
        """The job's name in messages."""
        return self.job_id or "(default job)"

    @property
    def out_of_attempts(self) -> bool:
        """True once ``max_attempts`` status requests were made."""
        return self.max_attempts is not None and self.attempts >= self.max_attempts

    def next(self, now: float) -> Ask | Sleep:
        """The step at the start or after a :class:`Sleep`: an :class:`Ask` (the attempt is
        counted; asked again before an answer, the same Ask), or at the start a :class:`Sleep`
        when the planner would rather not ask at once."""
        if not self._begun:
            self._begun = True
            first = self.planner.first_delay(now)
            if first is not None:
                logger.debug("job %s: first ask in %.3f s: %s", self.label, first.delay,
                             first.reason)
                self._last_reason = first.reason
                return Sleep(min(first.delay, max(self.deadline - now, 0.0)), first.reason)
        if self._asking is None:
            self.attempts += 1
            self._asking = Ask(self.planner.long_poll_for(self.deadline - now))
            self._last_wait = self._asking.wait
        return self._asking

    def on_answer(self, status: JobStatus, *, asked_wait: float | None, sent_at: float,
                  received_at: float, now: float) -> Done | Sleep:
        """A status answered: :class:`Done` if it is final, else how long to sleep."""
        self._asking = None
        if self.on_update is not None and (
                self.last is None
                or (status.result, status.progress) != (self.last.result, self.last.progress)):
            self.on_update(status)
        self.protocol_errors, self.last_error, self.last = 0, None, status
        if status.done:
            logger.info("job %s %s after %d status requests in %.3f s", self.label,
                        status.result, self.attempts, received_at - self.started)
            return Done(status, received_at)
        decision = self.planner.after_answer(status, asked_wait=asked_wait, sent_at=sent_at,
                                             received_at=received_at)
        logger.debug("job %s: attempt %d: %s (progress %s, took %.3f s); next in %.3f s: %s",
                     self.label, self.attempts, status.result, status.progress,
                     received_at - sent_at, decision.delay, decision.reason)
        return self._sleep(decision, now)

    def on_failure(self, error: VideoTranslationError, *, now: float) -> Sleep:
        """A status request failed: how long to sleep before the next, or raise what ends it."""
        self._asking = None
        if isinstance(error, JobNotFoundError):
            raise self.not_found(error)
        if not isinstance(error, TRANSIENT_FAILURES):
            raise error
        if isinstance(error, ProtocolError):
            self.protocol_errors += 1
            if self.protocol_errors > self.max_protocol_errors:
                raise error
        self.last_error = error
        logger.warning("job %s: attempt %d failed: %s", self.label, self.attempts, error)
        return self._sleep(self.planner.after_failure(error), now)

    def not_found(self, error: JobNotFoundError) -> JobNotFoundError:
        """The error for a 404: worded for a job that was known and is gone, if it was."""
        if self.last is None:
            return error
        gone = JobNotFoundError(f"job {self.job_id} was known to the server and is unknown now: "
                                "the server may have restarted, or the job expired",
                                job_id=self.job_id, status_code=404)
        gone.__cause__ = error
        return gone

    def timed_out(self, why: str, *, now: float) -> WaitTimeout:
        """The WaitTimeout of this wait, with the last status and the last failure as cause."""
        seen = f"last seen {self.last.result}" if self.last else "never answered"
        because = f"; last failure: {self.last_error}" if self.last_error else ""
        error = WaitTimeout(f"job {self.label}: {why} ({seen}{because}); pass a larger timeout "
                            "or check the server", job_id=self.job_id, last_status=self.last,
                            attempts=self.attempts, elapsed=now - self.started)
        error.__cause__ = self.last_error
        logger.info("%s", error)
        return error

    def _sleep(self, decision: Decision, now: float) -> Sleep:
        if self.out_of_attempts:
            raise self.timed_out(f"no final status after {self.attempts} status requests "
                                 "(max_attempts)", now=now)
        if now >= self.deadline:
            raise self.timed_out(f"no final status within {self.timeout:g} s", now=now)
        self._last_reason = decision.reason
        # The last sleep is cut to end at the deadline; one last ask happens there.
        return Sleep(min(decision.delay, self.deadline - now), decision.reason)


def strategy_of(asked_wait: int | None, reason: str) -> str:
    """The strategy behind a request (see :attr:`JobWait.strategy`): the long-poll hold it asked
    for, else the reason of the sleep before it."""
    if asked_wait:
        return "long-poll"
    if not reason:
        return "first request"
    if "learned" in reason:
        return "learned"
    if "backoff" in reason:
        return "backoff"
    return "hints"  # an ETA, its check-in or overdue steps, Retry-After, a long-poll window's end
