"""The sans-IO core: every decision of a wait, with no sockets, no sleeps, no files and no clock.

    planner = WaitPlanner(PollingPolicy())
    decision = planner.after_answer(status, asked_wait=None, sent_at=t0, received_at=t1)
    ...sleep(decision.delay), then ask again          # the transport moves bytes and sleeps

For writing another transport. Users of the clients import from :mod:`vtwait`, which re-exports
the values and exceptions below (``JobStatus``, ``PollingPolicy``, ``WaitTimeout``, ...); the
internals (planners, parsers, the batch and retry state machines) are public only here. The folder's
rule is in its ``README.md``. The imports below are the one table of where each name lives.
"""

from vtwait.core.batch import ManyJobs, StreamAction, StreamChunk, unique_job_ids
from vtwait.core.batch_state import BatchState
from vtwait.core.dialects import (
    DIALECTS,
    JobRef,
    StatusMapping,
    detect_dialect,
    read_job_status,
    start_answer_ref,
)
from vtwait.core.download import Download, DownloadProgress
from vtwait.core.durations import DurationModel, Schedule
from vtwait.core.errors import (
    AuthenticationError,
    BatchError,
    ChecksumMismatchError,
    InvalidRequestError,
    JobNotFoundError,
    NoOutputError,
    ProtocolError,
    ServerError,
    ServerUnreachableError,
    StartBatchError,
    UnsupportedFeatureError,
    VideoTranslationError,
    WaitTimeout,
)
from vtwait.core.learned import DurationLearner, DurationStore, LearnedPlanner
from vtwait.core.lifecycle import JobOutput, OutputWait, read_start_answer
from vtwait.core.planner import Ask, Decision, Done, JobWait, Sleep, WaitPlanner
from vtwait.core.policy import (
    DEFAULT_BASE_URL,
    DEFAULT_REQUEST_TIMEOUT,
    DEFAULT_WAIT_TIMEOUT,
    PollingPolicy,
    RetryPolicy,
    equal_jitter,
    exponential_delays,
    full_jitter,
    scaled_jitter,
)
from vtwait.core.quiet import RepeatedWarnings
from vtwait.core.ratelimit import RateLimit, RatePacer, parse_rate_limit
from vtwait.core.retry import RetryState, error_for_answer
from vtwait.core.sse import SSEEvent, SSEParser
from vtwait.core.status import (
    FINAL_RESULTS,
    JobResult,
    JobStatus,
    parse_preference_applied,
    parse_retry_after,
    parse_status_document,
    read_status_answer,
)
from vtwait.core.structured_fields import parse_structured_list
from vtwait.core.webhook import DEFAULT_WEBHOOK_TOLERANCE, WebhookVerificationError, verify_webhook

__all__ = [
    # Values and exceptions, re-exported by vtwait.
    "DEFAULT_BASE_URL",
    "DEFAULT_REQUEST_TIMEOUT",
    "DEFAULT_WAIT_TIMEOUT",
    "DEFAULT_WEBHOOK_TOLERANCE",
    "FINAL_RESULTS",
    "AuthenticationError",
    "BatchError",
    "BatchState",
    "ChecksumMismatchError",
    "DownloadProgress",
    "InvalidRequestError",
    "JobNotFoundError",
    "JobOutput",
    "JobRef",
    "JobResult",
    "JobStatus",
    "NoOutputError",
    "PollingPolicy",
    "ProtocolError",
    "RetryPolicy",
    "ServerError",
    "ServerUnreachableError",
    "StartBatchError",
    "StatusMapping",
    "UnsupportedFeatureError",
    "VideoTranslationError",
    "WaitTimeout",
    "WebhookVerificationError",
    "equal_jitter",
    "full_jitter",
    "scaled_jitter",
    "verify_webhook",
    # Internals for transports: public here, not in vtwait.
    "Ask",
    "DIALECTS",
    "Decision",
    "Done",
    "Download",
    "DurationLearner",
    "DurationModel",
    "DurationStore",
    "JobWait",
    "LearnedPlanner",
    "ManyJobs",
    "OutputWait",
    "RateLimit",
    "RatePacer",
    "RepeatedWarnings",
    "RetryState",
    "Sleep",
    "SSEEvent",
    "SSEParser",
    "Schedule",
    "StreamAction",
    "StreamChunk",
    "WaitPlanner",
    "detect_dialect",
    "error_for_answer",
    "exponential_delays",
    "parse_preference_applied",
    "parse_rate_limit",
    "parse_retry_after",
    "parse_status_document",
    "parse_structured_list",
    "read_job_status",
    "read_start_answer",
    "read_status_answer",
    "start_answer_ref",
    "unique_job_ids",
]
