"""``python client.py``: start a job on the simulator and wait for it (``--help`` lists the flags).

The code is the ``vtwait`` package; ``from client import VideoTranslationClient`` keeps working from
a checkout, and installed code writes ``from vtwait import VideoTranslationClient``.
"""

import sys
from typing import Any

import vtwait
import vtwait.core
from vtwait import (  # noqa: F401  (re-exported: the public API but the lazy asyncio client)
    DEFAULT_BASE_URL,
    DEFAULT_REQUEST_TIMEOUT,
    DEFAULT_WAIT_TIMEOUT,
    DEFAULT_WEBHOOK_TOLERANCE,
    FINAL_RESULTS,
    AuthenticationError,
    BatchError,
    DurationHistory,
    InvalidRequestError,
    JobNotFoundError,
    JobRef,
    JobResult,
    JobStatus,
    PollingPolicy,
    ProtocolError,
    RetryPolicy,
    ServerError,
    ServerUnreachableError,
    StatusMapping,
    TranslationStatusClient,
    VideoTranslationClient,
    VideoTranslationError,
    WaitTimeout,
    WebhookVerificationError,
    equal_jitter,
    full_jitter,
    scaled_jitter,
    verify_webhook,
)
from vtwait.client.cli import main

__all__ = vtwait.__all__


def __getattr__(name: str) -> Any:  # AsyncVideoTranslationClient on first use; old internals
    return getattr(vtwait if name in vtwait.__all__ else vtwait.core, name)


if __name__ == "__main__":
    sys.exit(main())
