"""Both clients against the simulator in every dialect (``DIALECT=...``), over loopback HTTP.

No status template is given: each job is asked about at the monitor its start answer names
(Operation-Location, Location, urls.get, AIP-151's name, OpenAI's id, HeyGen's video_id). Each
dialect's credentials (the service's own header, a bearer token) are accepted right and refused
wrong; cancel follows the dialect's cancel link where it has one. One live server per dialect for
the module; jobs of 0.05-0.2 s.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urljoin

import pytest

from tests.helpers import LiveServer, fast_settings, start_live_server
from vtwait import (
    AsyncVideoTranslationClient,
    AuthenticationError,
    JobRef,
    JobResult,
    PollingPolicy,
    VideoTranslationClient,
)

KEY = "live-dialect-key-0042"
#: Each dialect's start route, the path its monitor lives under, and the credentials its
#: service takes (client keyword arguments).
DIALECTS = {
    "native": ("/start", "/status/", {"api_key": KEY}),
    "azure": ("/translations", "/operations/",
              {"api_key": KEY, "api_key_header": "Ocp-Apim-Subscription-Key"}),
    "google": ("/v1/videos:translate", "/v1/operations/",
               {"api_key": KEY, "api_key_header": "x-goog-api-key"}),
    "replicate": ("/v1/predictions", "/v1/predictions/", {"bearer_token": KEY}),
    "openai": ("/v1/videos", "/v1/videos/", {"bearer_token": KEY}),
    "heygen": ("/v2/video/generate", "/v1/video_status.get", {"api_key": KEY}),
}
#: Where each dialect's final answer names the output (None until the server has outputs); the
#: OpenAI Videos API has a fixed route for it instead.
OUTPUT: dict[str, Callable[[Any], Any]] = {
    "native": lambda raw: (raw.get("output") or {}).get("url"),
    "azure": lambda raw: (raw.get("result") or {}).get("outputUrl"),
    "google": lambda raw: raw["response"].get("outputUri"),
    "replicate": lambda raw: raw.get("output"),
    "openai": lambda raw: f"/v1/videos/{raw['id']}/content",
    "heygen": lambda raw: raw["data"].get("video_url"),
}
#: Dialects whose cancel link the client follows (the others have no cancel route).
CANCELLABLE = ("native", "google", "replicate")
#: No waiting on the learned schedule's first-ask delay; jobs this short end before 1 s backoff.
POLICY = PollingPolicy(learn=False, initial_delay=0.05, max_delay=0.2)


@pytest.fixture(scope="module", params=list(DIALECTS))
def live(request: pytest.FixtureRequest) -> Iterator[tuple[str, LiveServer]]:
    server = start_live_server(fast_settings(dialect=request.param, api_key=KEY,
                                             min_delay=0.05, max_delay=0.2))
    try:
        yield request.param, server
    finally:
        server.stop()


def run_sync(url: str, action: Callable[[Any], Any], **kwargs: Any) -> Any:
    with VideoTranslationClient(url, policy=POLICY, **kwargs) as api:
        return action(api)


def run_async(url: str, action: Callable[[Any], Any], **kwargs: Any) -> Any:
    async def main() -> Any:
        async with AsyncVideoTranslationClient(url, policy=POLICY, **kwargs) as api:
            result = action(api)
            return await result if asyncio.iscoroutine(result) else result

    return asyncio.run(main())


@pytest.fixture(params=["sync", "async"])
def run(request: pytest.FixtureRequest) -> Callable[..., Any]:
    return run_sync if request.param == "sync" else run_async


def start_and_wait(outcome: str) -> Callable[[Any], Any]:
    async def in_async(api: Any) -> Any:
        job_id = await api.start_job(outcome=outcome)
        return await api.wait_for_completion(job_id, timeout=30), api.job_ref(job_id)

    def action(api: Any) -> Any:
        if isinstance(api, AsyncVideoTranslationClient):
            return in_async(api)
        job_id = api.start_job(outcome=outcome)
        return api.wait_for_completion(job_id, timeout=30), api.job_ref(job_id)
    return action


@pytest.mark.parametrize("outcome", ["completed", "error"])
def test_each_dialect_is_waited_for_at_its_discovered_monitor(live, run, monkeypatch, outcome):
    """Start and wait with no status template and the service's credentials: the final
    result as fated, asked at the dialect's monitor; a completed job names its output."""
    for name in ("API_USERNAME", "API_PASSWORD", "API_KEY", "API_BEARER_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    dialect, server = live
    start_url, monitor, credentials = DIALECTS[dialect]
    status, ref = run(server.url, start_and_wait(outcome), start_url=start_url, **credentials)
    assert status.result is JobResult(outcome) and status.done
    assert ref.status_url is not None and ref.status_url.startswith(server.url + monitor)
    if outcome == "completed":  # the output's location as the dialect's answer names it
        named = OUTPUT[dialect](status.raw)
        assert status.output_url == (None if named is None else urljoin(ref.status_url, named))


def test_each_dialect_refuses_a_wrong_key(live, run, monkeypatch):
    """The same credentials with a wrong secret: AuthenticationError (401) on the start."""
    for name in ("API_USERNAME", "API_PASSWORD", "API_KEY", "API_BEARER_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    dialect, server = live
    start_url, _, credentials = DIALECTS[dialect]
    wrong = {k: (v + "x" if v == KEY else v) for k, v in credentials.items()}
    with pytest.raises(AuthenticationError) as caught:
        run(server.url, start_and_wait("completed"), start_url=start_url, **wrong)
    assert caught.value.status_code == 401


def test_cancel_follows_the_dialect_s_link(live, run, monkeypatch):
    """Where the dialect has a cancel route, cancel() reaches it and the job ends cancelled."""
    for name in ("API_USERNAME", "API_PASSWORD", "API_KEY", "API_BEARER_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    dialect, server = live
    if dialect not in CANCELLABLE:
        pytest.skip(f"{dialect} has no cancel route (as the service)")
    start_url, _, credentials = DIALECTS[dialect]

    async def in_async(api: Any) -> Any:
        return await api.cancel(await api.start_job(delay=30))

    def action(api: Any) -> Any:
        if isinstance(api, AsyncVideoTranslationClient):
            return in_async(api)
        return api.cancel(api.start_job(delay=30))

    status = run(server.url, action, start_url=start_url, **credentials)
    assert (status.result, status.phase) == (JobResult.ERROR, "canceled")


def test_job_handles_carry_the_discovered_monitor(live, run, monkeypatch):
    """submit() in a dialect: the handle's ref is the dialect's monitor, its result comes from
    there, and a handle made from the saved ref in another client waits at the same place."""
    for name in ("API_USERNAME", "API_PASSWORD", "API_KEY", "API_BEARER_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    dialect, server = live
    start_url, monitor, credentials = DIALECTS[dialect]

    async def in_async(api: Any) -> Any:
        job = await api.submit()
        return job.ref, await job.result(timeout=30)

    def action(api: Any) -> Any:
        if isinstance(api, AsyncVideoTranslationClient):
            return in_async(api)
        job = api.submit()
        return job.ref, job.result(timeout=30)

    ref, status = run(server.url, action, start_url=start_url, **credentials)
    assert status.result is JobResult.COMPLETED
    assert ref.status_url is not None and ref.status_url.startswith(server.url + monitor)
    again = run_sync(server.url, lambda api: api.job(JobRef.from_dict(ref.to_dict())).result(
        timeout=30), **credentials)
    assert again.result is JobResult.COMPLETED and again.job_id == status.job_id
