"""The public API is pinned: ``vtwait.__all__`` (httpx's tests/test_exported_members.py), what
``vtwait.core`` exports for other transports, and what importing the package loads."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import vtwait
import vtwait.client
import vtwait.client.cli
import vtwait.core

ROOT = Path(__file__).resolve().parents[1]

PUBLIC = [
    "AsyncJob",
    "AsyncVideoTranslationClient",
    "AuthenticationError",
    "BatchError",
    "BatchState",
    "ChecksumMismatchError",
    "DEFAULT_BASE_URL",
    "DEFAULT_REQUEST_TIMEOUT",
    "DEFAULT_WAIT_TIMEOUT",
    "DEFAULT_WEBHOOK_TOLERANCE",
    "DownloadProgress",
    "DurationHistory",
    "FINAL_RESULTS",
    "InvalidRequestError",
    "Job",
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
    "TranslationStatusClient",
    "UnsupportedFeatureError",
    "VideoTranslationClient",
    "VideoTranslationError",
    "WaitTimeout",
    "WebhookVerificationError",
    "equal_jitter",
    "full_jitter",
    "scaled_jitter",
    "verify_webhook",
]

#: Internals that left the top-level namespace: importable from vtwait.core, not from vtwait.
INTERNAL = ["Decision", "DurationModel", "JobWait", "LearnedPlanner", "ManyJobs", "RateLimit",
            "RatePacer", "RetryState", "SSEParser", "Schedule", "WaitPlanner", "error_for_answer",
            "parse_rate_limit", "parse_retry_after", "parse_status_document",
            "read_status_answer", "read_job_status", "start_answer_ref", "detect_dialect"]


def test_the_public_names_are_pinned():
    """vtwait.__all__ is exactly the user-facing API; vtwait.client offers the same."""
    assert sorted(vtwait.__all__) == PUBLIC
    assert vtwait.client.__all__ == vtwait.__all__


@pytest.mark.parametrize("name", PUBLIC)
def test_every_public_name_is_importable_and_ours(name):
    """Each public name resolves (through the lazy import), is the same object in vtwait.client,
    and each class or function says it lives in the vtwait package."""
    value = getattr(vtwait, name)
    assert getattr(vtwait.client, name) is value
    if hasattr(value, "__module__"):
        assert value.__module__.startswith("vtwait"), (name, value.__module__)


def test_core_exports_the_internals_and_the_values_vtwait_re_exports():
    """vtwait.core.__all__ names real objects of the core; the internals are not in vtwait, and
    every public value that is not a client comes from the core, as the same object."""
    for name in vtwait.core.__all__:
        value = getattr(vtwait.core, name)
        if hasattr(value, "__module__"):
            assert value.__module__.startswith("vtwait.core"), (name, value.__module__)
    assert set(INTERNAL) <= set(vtwait.core.__all__)
    assert not set(INTERNAL) & set(vtwait.__all__)
    clients = {"VideoTranslationClient", "AsyncVideoTranslationClient",
               "TranslationStatusClient", "DurationHistory", "Job", "AsyncJob"}
    for name in set(vtwait.__all__) - clients:
        assert getattr(vtwait, name) is getattr(vtwait.core, name)


def test_an_unknown_name_is_an_attribute_error():
    """A name outside __all__ (an internal, a typo) is not reachable from vtwait."""
    with pytest.raises(AttributeError):
        vtwait.WaitPlanner  # noqa: B018
    with pytest.raises(AttributeError):
        vtwait.client.NoSuchThing  # noqa: B018


def test_the_checkout_shim_offers_the_public_api_and_the_old_names():
    """`from client import ...` (client.py in a checkout) gives vtwait's objects; the names the
    old flat client exported (planners, parsers) still resolve, from vtwait.core."""
    import client

    assert client.__all__ == vtwait.__all__
    for name in vtwait.__all__:
        assert getattr(client, name) is getattr(vtwait, name)
    assert client.WaitPlanner is vtwait.core.WaitPlanner
    assert client.main is vtwait.client.cli.main


def loaded_after(code: str) -> set[str]:
    """The top-level modules a fresh interpreter has loaded after running ``code``."""
    script = textwrap.dedent(code) + "\nimport sys\nprint(' '.join(sys.modules))\n"
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=True)
    return {name.split(".")[0] for name in done.stdout.split()}


def test_import_vtwait_loads_no_http_library_nor_the_cli_nor_the_server():
    """`import vtwait` (and touching a value) loads no aiohttp, tqdm or flask."""
    loaded = loaded_after("import vtwait\nvtwait.JobStatus, vtwait.PollingPolicy")
    assert not {"aiohttp", "tqdm", "flask", "requests"} & loaded


def test_the_sync_client_loads_neither_aiohttp_nor_tqdm():
    """The requests client alone: no aiohttp (the asyncio client is imported on first use), no
    tqdm (the CLI's optional progress bar)."""
    loaded = loaded_after("from vtwait import VideoTranslationClient")
    assert "requests" in loaded
    assert not {"aiohttp", "tqdm", "flask"} & loaded


def test_the_core_loads_no_transport_and_no_file_library():
    """`import vtwait.core` loads no requests, aiohttp, flask, sqlite3 or gevent (the folder's
    rule, vtwait/core/README.md)."""
    loaded = loaded_after("import vtwait.core")
    assert not {"requests", "aiohttp", "flask", "sqlite3", "gevent", "urllib3"} & loaded
