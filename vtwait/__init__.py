"""Know the moment slow server-side jobs are done, without hammering the server.

    from vtwait import VideoTranslationClient
    with VideoTranslationClient("http://127.0.0.1:8000", username="admin", password="...") as api:
        status = api.wait_for_completion(api.start_job())   # status.result: completed | error

``__all__`` below is the public API. Each name is imported on first use (PEP 562), so ``import
vtwait`` loads no HTTP library, and ``import vtwait.server`` or ``import vtwait.core`` none of the
client's. Internals for writing another transport (planners, parsers, state machines) are in
:mod:`vtwait.core`.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

__version__ = "3.0.0"

if TYPE_CHECKING:
    from vtwait.client.aio import AsyncVideoTranslationClient
    from vtwait.client.history import DurationHistory
    from vtwait.client.job import AsyncJob, Job
    from vtwait.client.sync import (
        TranslationStatusClient,
        VideoTranslationClient,
    )
    from vtwait.core import (
        DEFAULT_BASE_URL,
        DEFAULT_REQUEST_TIMEOUT,
        DEFAULT_WAIT_TIMEOUT,
        DEFAULT_WEBHOOK_TOLERANCE,
        FINAL_RESULTS,
        AuthenticationError,
        BatchError,
        BatchState,
        ChecksumMismatchError,
        DownloadProgress,
        InvalidRequestError,
        JobNotFoundError,
        JobOutput,
        JobRef,
        JobResult,
        JobStatus,
        NoOutputError,
        PollingPolicy,
        ProtocolError,
        RetryPolicy,
        ServerError,
        ServerUnreachableError,
        StartBatchError,
        StatusMapping,
        UnsupportedFeatureError,
        VideoTranslationError,
        WaitTimeout,
        WebhookVerificationError,
        equal_jitter,
        full_jitter,
        scaled_jitter,
        verify_webhook,
    )

__all__ = [
    # clients
    "VideoTranslationClient",
    "AsyncVideoTranslationClient",
    "TranslationStatusClient",
    "Job",
    "AsyncJob",
    # values
    "JobStatus",
    "JobResult",
    "FINAL_RESULTS",
    "PollingPolicy",
    "RetryPolicy",
    "full_jitter",
    "equal_jitter",
    "scaled_jitter",
    "DurationHistory",
    "JobOutput",
    "DownloadProgress",
    "BatchState",
    "verify_webhook",
    "DEFAULT_BASE_URL",
    "DEFAULT_REQUEST_TIMEOUT",
    "DEFAULT_WAIT_TIMEOUT",
    "DEFAULT_WEBHOOK_TOLERANCE",
    # other APIs: where a job's status monitor is, how to read an unknown status shape
    "JobRef",
    "StatusMapping",
    # exceptions
    "VideoTranslationError",
    "AuthenticationError",
    "JobNotFoundError",
    "InvalidRequestError",
    "ServerError",
    "ServerUnreachableError",
    "ProtocolError",
    "WaitTimeout",
    "BatchError",
    "StartBatchError",
    "WebhookVerificationError",
    "UnsupportedFeatureError",
    "NoOutputError",
    "ChecksumMismatchError",
]

#: The module each public name is imported from on first use; everything of the core comes
#: through ``vtwait.core``'s own table.
_HOMES = {
    "VideoTranslationClient": "vtwait.client.sync",
    "TranslationStatusClient": "vtwait.client.sync",
    "AsyncVideoTranslationClient": "vtwait.client.aio",  # aiohttp: only when asked for
    "DurationHistory": "vtwait.client.history",
    "Job": "vtwait.client.job",
    "AsyncJob": "vtwait.client.job",
}

# A library logs, the application decides where to (urllib3's convention).
logging.getLogger(__name__).addHandler(logging.NullHandler())


def __getattr__(name: str) -> Any:
    if name in __all__:
        value = getattr(importlib.import_module(_HOMES.get(name, "vtwait.core")), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'vtwait' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
