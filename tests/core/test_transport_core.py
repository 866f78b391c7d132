"""The sans-IO retry decisions the asyncio client uses: urllib3's schedule, Retry-After, deadline."""

from __future__ import annotations

import random

import pytest

from vtwait import (
    AuthenticationError,
    InvalidRequestError,
    JobNotFoundError,
    RetryPolicy,
    ServerError,
)
from vtwait.core.retry import RetryState, error_for_answer, error_message


def test_schedule_is_urllib3s_first_at_once_then_doubling_capped():
    """No jitter: 0, 0.4, 0.8, 1.6, then give up after max_retries."""
    retries = RetryState(RetryPolicy(max_retries=4, backoff_jitter=0.0, backoff_max=1.0))
    assert [retries.after_fault() for _ in range(5)] == [0.0, 0.4, 0.8, 1.0, None]


def test_jitter_adds_at_most_backoff_jitter():
    """backoff_jitter adds up to its value to each backoff."""
    retries = RetryState(RetryPolicy(backoff_jitter=0.1), rng=random.Random(1))
    retries.after_fault()
    assert 0.4 <= retries.after_fault() <= 0.5


@pytest.mark.parametrize(("header", "expected"), [("2", 2.0), ("0", 0.0), ("999", 60.0),
                                                  ("soon", 0.0)])
def test_retry_after_wins_clamped_and_zero_means_now(header, expected):
    """Retry-After is honoured (clamped to max_retry_after; 0 is now; unreadable: backoff)."""
    retries = RetryState(RetryPolicy())
    assert retries.after_fault(status=503, headers={"Retry-After": header}) == expected


def test_never_a_sleep_past_the_deadline():
    """A retry whose sleep would pass the deadline is not made."""
    retries = RetryState(RetryPolicy())
    assert retries.after_fault(status=429, headers={"Retry-After": "5"}, time_left=4.9) is None


@pytest.mark.parametrize(("code", "kind"), [(401, AuthenticationError), (403, AuthenticationError),
                                            (404, JobNotFoundError), (409, InvalidRequestError),
                                            (503, ServerError), (500, ServerError)])
def test_error_for_answer_maps_like_the_sync_client(code, kind):
    """Each error status maps onto the same exception class as the sync client's."""
    error = error_for_answer("GET", "http://h/status/x", code, "why", job_id="x", retries=5)
    assert type(error) is kind and error.status_code == code and error.job_id == "x"


def test_error_message_prefers_the_servers_words():
    """The JSON error message, else the start of the body, else the reason."""
    assert error_message(b'{"error": {"code": "c", "message": "m"}}') == "m"
    assert error_message(b"<html>oops") == "'<html>oops'"
    assert error_message(b"", "Bad Gateway") == "Bad Gateway"
