"""Know the moment slow server-side jobs are done, without hammering the server.

    from vtwait import VideoTranslationClient
    with VideoTranslationClient("http://127.0.0.1:8000", username="admin", password="...") as api:
        status = api.wait_for_completion(api.start_job())   # status.result: completed | error

The public names are imported on first use (PEP 562), so ``import vtwait.server`` or
``import vtwait.core`` loads no HTTP client library.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

__version__ = "3.0.0"

if TYPE_CHECKING:
    from vtwait.client.aio import AsyncVideoTranslationClient as AsyncVideoTranslationClient
    from vtwait.client.sync import (
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

__all__ = ['AsyncVideoTranslationClient', 'AuthenticationError', 'BatchError', 'DEFAULT_BASE_URL', 'DEFAULT_REQUEST_TIMEOUT', 'DEFAULT_WAIT_TIMEOUT', 'DEFAULT_WEBHOOK_TOLERANCE', 'Decision', 'DurationHistory', 'DurationModel', 'FINAL_RESULTS', 'InvalidRequestError', 'JobNotFoundError', 'JobResult', 'JobStatus', 'LearnedPlanner', 'PollingPolicy', 'ProtocolError', 'RateLimit', 'RatePacer', 'RetryPolicy', 'Schedule', 'ServerError', 'ServerUnreachableError', 'TranslationStatusClient', 'VideoTranslationClient', 'VideoTranslationError', 'WaitPlanner', 'WaitTimeout', 'WebhookVerificationError', 'equal_jitter', 'exponential_delays', 'full_jitter', 'parse_preference_applied', 'parse_rate_limit', 'parse_retry_after', 'parse_status_document', 'read_status_answer', 'scaled_jitter', 'verify_webhook']

# A library logs, the application decides where to (urllib3's convention).
logging.getLogger(__name__).addHandler(logging.NullHandler())

_HOMES = {"AsyncVideoTranslationClient": "vtwait.client.aio"}


def __getattr__(name: str) -> Any:
    if name in __all__:
        value = getattr(importlib.import_module(_HOMES.get(name, "vtwait.client.sync")), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'vtwait' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
