"""``python client.py``: start a job on the simulator and wait for it (``--help`` lists the flags).

The code is the ``vtwait`` package; ``from client import VideoTranslationClient`` keeps working from
a checkout, and installed code writes ``from vtwait import VideoTranslationClient``.
"""

import sys
from typing import Any

import vtwait
from vtwait import (
    AuthenticationError as AuthenticationError,
    BatchError as BatchError,
    DEFAULT_BASE_URL as DEFAULT_BASE_URL,
    DEFAULT_REQUEST_TIMEOUT as DEFAULT_REQUEST_TIMEOUT,
    DEFAULT_WAIT_TIMEOUT as DEFAULT_WAIT_TIMEOUT,
    DEFAULT_WEBHOOK_TOLERANCE as DEFAULT_WEBHOOK_TOLERANCE,
    Decision as Decision,
    DurationHistory as DurationHistory,
    DurationModel as DurationModel,
    FINAL_RESULTS as FINAL_RESULTS,
    InvalidRequestError as InvalidRequestError,
    JobNotFoundError as JobNotFoundError,
    JobResult as JobResult,
    JobStatus as JobStatus,
    LearnedPlanner as LearnedPlanner,
    PollingPolicy as PollingPolicy,
    ProtocolError as ProtocolError,
    RateLimit as RateLimit,
    RatePacer as RatePacer,
    RetryPolicy as RetryPolicy,
    Schedule as Schedule,
    ServerError as ServerError,
    ServerUnreachableError as ServerUnreachableError,
    TranslationStatusClient as TranslationStatusClient,
    VideoTranslationClient as VideoTranslationClient,
    VideoTranslationError as VideoTranslationError,
    WaitPlanner as WaitPlanner,
    WaitTimeout as WaitTimeout,
    WebhookVerificationError as WebhookVerificationError,
    equal_jitter as equal_jitter,
    exponential_delays as exponential_delays,
    full_jitter as full_jitter,
    parse_preference_applied as parse_preference_applied,
    parse_rate_limit as parse_rate_limit,
    parse_retry_after as parse_retry_after,
    parse_status_document as parse_status_document,
    read_status_answer as read_status_answer,
    scaled_jitter as scaled_jitter,
    verify_webhook as verify_webhook,
)
from vtwait.client.sync import main

__all__ = vtwait.__all__


def __getattr__(name: str) -> Any:  # AsyncVideoTranslationClient, imported on first use
    return getattr(vtwait, name)


if __name__ == "__main__":
    sys.exit(main())
