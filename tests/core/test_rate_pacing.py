"""rate_pacing.py: the rate-limit field parsers (tables, properties) and the pacer (exact, fake time).

Nothing here sleeps or touches a network: the pacer is fed times and answers by hand.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vtwait.core.ratelimit import (
    DEFAULT_MAX_RESET,
    RateLimit,
    RatePacer,
    parse_rate_limit,
    parse_structured_list,
)

NOW = 1_700_000_000.0  # the wall clock the parser is given, for resets sent as timestamps


# ---------------------------------------------------------------------- structured fields
@pytest.mark.parametrize("text,expected", [
    ("", []),
    ('"default";q=100;w=60', [("default", {"q": 100, "w": 60})]),
    ('"a";r=1, b;r=2;t=0.5', [("a", {"r": 1}), ("b", {"r": 2, "t": 0.5})]),
    ("  tok;flag , ?1", [("tok", {"flag": True}), (True, {})]),
    ('"say \\"hi\\"";x=-3', [('say "hi"', {"x": -3})]),
    ("100;w=60, 50;w=1", [(100, {"w": 60}), (50, {"w": 1})]),
    (":aGk=:;k=?0", [(b"hi", {"k": False})]),
    ("a;k=1;k=2", [("a", {"k": 2})]),  # a repeated parameter: the last wins
])
def test_structured_list_parses(text, expected):
    """RFC 9651 lists of items with parameters: strings, tokens, numbers, booleans, bytes."""
    assert parse_structured_list(text) == expected


@pytest.mark.parametrize("text", [
    "a,", ",a", '"unterminated', "a b", "(a b)", "A;Q=1", "a;=1", '"tab\there"', "a;k=",
    "1234567890123456", "1.2345", "?2", ":not base64!:", "a;;k", "a,,b", "@123", "é",
])
def test_structured_list_rejects_what_does_not_parse(text):
    """Any syntax error makes the whole field unreadable (None), as RFC 9651 says."""
    assert parse_structured_list(text) is None


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=60))
def test_structured_list_never_raises(text):
    """Any text: a list of (item, params) pairs, or None; never an exception."""
    parsed = parse_structured_list(text)
    assert parsed is None or all(isinstance(params, dict) for _, params in parsed)


# -------------------------------------------------------------------------- the fields
IETF = {"RateLimit-Policy": '"default";q=100;w=60', "RateLimit": '"default";r=50;t=30'}


@pytest.mark.parametrize("headers,expected", [
    # IETF draft (07+): named policies, structured fields, any case.
    (IETF, RateLimit(50, 30.0, 100, 60.0, "default", "ietf")),
    ({"ratelimit-policy": "default;q=10;w=1", "ratelimit": "default;r=9;t=1"},
     RateLimit(9, 1.0, 10, 1.0, "default", "ietf")),
    ({"RateLimit-Policy": '"burst";q=100;w=60, "daily";q=1000;w=86400',
      "RateLimit": '"burst";r=50;t=30, "daily";r=10;t=3600'},
     RateLimit(10, 3600.0, 1000, 86400.0, "daily", "ietf")),  # the binding one: least left
    ({"RateLimit": '"default";r=0;t=2'}, RateLimit(0, 2.0, None, None, "default", "ietf")),
    ({"RateLimit-Policy": '"other";q=5;w=1', "RateLimit": '"default";r=3;t=1'},
     RateLimit(3, 1.0, None, None, "default", "ietf")),  # no policy of that name
    ({"RateLimit": '"d";r=-4;t=-1'}, RateLimit(0, 0.0, None, None, "d", "ietf")),  # clamped
    ({"RateLimit": '"d";r=4;t=999999999'}, RateLimit(4, DEFAULT_MAX_RESET, None, None, "d",
                                                     "ietf")),
    ({"RateLimit": '"d";r=4.7;t=1.5'}, RateLimit(4, 1.5, None, None, "d", "ietf")),
    ({"RateLimit-Policy": '"d";q=5;w=0', "RateLimit": '"d";r=4'},
     RateLimit(4, None, 5, None, "d", "ietf")),  # a zero window means nothing
    # The older drafts (03-06).
    ({"RateLimit-Limit": "100", "RateLimit-Remaining": "5", "RateLimit-Reset": "30"},
     RateLimit(5, 30.0, 100, None, None, "draft")),
    ({"RateLimit-Limit": "10, 10;w=1, 50;w=60", "RateLimit-Remaining": "7",
      "RateLimit-Reset": "1", "RateLimit-Policy": "10;w=1, 50;w=60"},
     RateLimit(7, 1.0, 10, 1.0, None, "draft")),
    # The widespread X-RateLimit-*: a reset as delta seconds or as a Unix timestamp.
    ({"X-RateLimit-Limit": "60", "X-RateLimit-Remaining": "24", "X-RateLimit-Reset": "60"},
     RateLimit(24, 60.0, 60, None, None, "x-ratelimit")),
    ({"x-ratelimit-remaining": "3", "x-ratelimit-reset": str(int(NOW + 45))},
     RateLimit(3, 45.0, None, None, None, "x-ratelimit")),
    ({"X-RateLimit-Remaining": "3", "X-RateLimit-Reset": str(int((NOW + 45) * 1000))},
     RateLimit(3, 45.0, None, None, None, "x-ratelimit")),  # milliseconds since the epoch
    ({"X-RateLimit-Remaining": "3", "X-RateLimit-Reset": str(int(NOW - 100))},
     RateLimit(3, 0.0, None, None, None, "x-ratelimit")),  # already past: now
    ({"X-RateLimit-Remaining": "-1", "X-RateLimit-Reset": "soon"},
     RateLimit(0, None, None, None, None, "x-ratelimit")),
    ({"X-RateLimit-Remaining": "2.0"}, RateLimit(2, None, None, None, None, "x-ratelimit")),
    # The IETF form wins when several are present.
    ({**IETF, "X-RateLimit-Remaining": "1"}, RateLimit(50, 30.0, 100, 60.0, "default", "ietf")),
])
def test_parse_rate_limit_reads_every_form(headers, expected):
    """Each form, clamped; names in any case; the reset as seconds from the answer."""
    assert parse_rate_limit(headers, now=NOW) == expected


@pytest.mark.parametrize("headers", [
    {},
    {"Retry-After": "60"},
    {"X-RateLimit-Limit": "60"},  # no remaining: nothing to pace by
    {"X-RateLimit-Remaining": "many"},
    {"X-RateLimit-Remaining": "1e3"},
    {"RateLimit": '"default";r=5;t='},  # a syntax error: the whole field is ignored
    {"RateLimit": '"default";t=5'},
    {"RateLimit": "5;r=3"},  # an item that is not a policy name
    {"RateLimit-Remaining": ""},
])
def test_parse_rate_limit_is_none_without_a_readable_quota(headers):
    """No rate-limit field, or none readable: None, never a guess."""
    assert parse_rate_limit(headers, now=NOW) is None


def test_parse_rate_limit_takes_header_pairs_and_joins_repeats():
    """Repeated fields (one per line) read as one list, as HTTP says."""
    pairs = [("RateLimit", '"a";r=9;t=1'), ("ratelimit", '"b";r=2;t=5')]
    assert parse_rate_limit(pairs, now=NOW) == RateLimit(2, 5.0, None, None, "b", "ietf")


field_names = st.sampled_from(["RateLimit", "RateLimit-Policy", "RateLimit-Remaining",
                               "RateLimit-Reset", "RateLimit-Limit", "X-RateLimit-Remaining",
                               "X-RateLimit-Reset", "X-RateLimit-Limit", "Retry-After"])
field_values = (st.text(max_size=40)
                | st.builds('"{}";r={};t={}'.format, st.text(max_size=5), st.integers(),
                            st.floats(allow_nan=True))
                | st.integers().map(str) | st.floats().map(str))


@settings(max_examples=500, deadline=None)
@given(st.dictionaries(field_names, field_values, max_size=6))
def test_parse_rate_limit_never_fails_and_stays_in_range(headers):
    """Any headers: None, or non-negative whole counts and resets within [0, max_reset]."""
    limit = parse_rate_limit(headers, now=NOW, max_reset=3600.0)
    if limit is None:
        return
    assert isinstance(limit.remaining, int) and limit.remaining >= 0
    assert limit.reset is None or 0.0 <= limit.reset <= 3600.0
    assert limit.limit is None or limit.limit >= 0
    assert limit.window is None or 0.0 < limit.window <= 3600.0


# ---------------------------------------------------------------------------- the pacer
def quota(remaining, reset=1.0, limit=20, window=1.0):
    return RateLimit(remaining, reset, limit, window, "default", "ietf")


def test_nothing_known_one_request_finds_out_first():
    """Before any answer one request goes; the others wait for its answer, then all go."""
    pacer = RatePacer()
    assert pacer.reserve(0.0) == (0, 0.0)
    assert pacer.reserve(0.0) == (None, 0.01)  # asks again shortly
    pacer.observe(None, ticket=0, at=0.004)  # answered, no rate-limit fields: no limit known
    assert [pacer.reserve(0.004) for _ in range(3)] == [(1, 0.0), (2, 0.0), (3, 0.0)]


def test_a_first_answer_that_never_comes_stops_holding_the_others():
    """A first request held long (a long-poll) holds the others first_answer_wait at most."""
    pacer = RatePacer(first_answer_wait=0.5)
    pacer.reserve(10.0)
    assert pacer.reserve(10.3) == (None, 0.01)
    assert pacer.reserve(10.5) == (1, 0.0)


def test_quota_left_goes_at_once_then_the_reset_then_the_refill_rate():
    """r=3 left: three go at once; the fourth at the reset; then one per window/limit."""
    pacer = RatePacer()
    pacer.reserve(0.0)
    pacer.observe(quota(3, reset=1.0), ticket=0, at=0.01)
    assert [pacer.reserve(0.01) for _ in range(3)] == [(1, 0.0), (2, 0.0), (3, 0.0)]
    ticket, delay = pacer.reserve(0.01)
    assert ticket == 4 and delay == pytest.approx(1.0)  # at the reset: 0.01 + 1.0
    # With the refill rate known, later slots are booked in the order asked, however far.
    assert [(t, pytest.approx(d)) for t, d in (pacer.reserve(0.01), pacer.reserve(0.51))] == \
        [(5, 1.05), (6, 0.60)]  # 1.06 and 1.11: spaced 1/20 s


def test_requests_booked_after_the_answered_one_count_against_its_quota():
    """An answer says r=2 for ticket 0, but tickets 1 and 2 went since: nothing is left."""
    pacer = RatePacer(first_answer_wait=0.0)
    assert [pacer.reserve(0.0)[0] for _ in range(3)] == [0, 1, 2]
    pacer.observe(quota(2, reset=0.5), ticket=0, at=0.02)
    ticket, delay = pacer.reserve(0.02)
    assert ticket == 3 and delay == pytest.approx(0.5)


def test_a_fresh_answer_with_quota_reopens_the_budget():
    """Spent, then an answer to a newer request says 19 left: requests go at once again."""
    pacer = RatePacer()
    pacer.reserve(0.0)
    pacer.observe(quota(0, reset=0.2), ticket=0, at=0.0)
    assert pacer.reserve(0.0) == (1, 0.2)
    pacer.observe(quota(19), ticket=1, at=0.21)
    assert pacer.reserve(0.21) == (2, 0.0)


def test_an_answer_to_an_older_request_is_ignored():
    """Answers arrive out of order: the newer request's word stands."""
    pacer = RatePacer(first_answer_wait=0.0)
    pacer.reserve(0.0)
    pacer.reserve(0.0)
    pacer.observe(quota(0, reset=5.0), ticket=1, at=0.1)
    pacer.observe(quota(50), ticket=0, at=0.2)  # older: ignored
    assert pacer.known == quota(0, reset=5.0)
    assert pacer.reserve(0.2) == (2, pytest.approx(4.9))  # at the reset, 5.1


def test_a_429_holds_every_request_until_the_server_says():
    """throttle(): nothing is booked before the hold ends, then requests go."""
    pacer = RatePacer()
    pacer.reserve(0.0)
    pacer.observe(None, ticket=0, at=0.0)
    pacer.throttle(7.5)
    pacer.throttle(3.0)  # an earlier hold does not shorten a later one
    assert pacer.reserve(1.0) == (None, 6.5)
    assert pacer.reserve(7.5) == (1, 0.0)


def test_without_a_refill_rate_the_spent_quota_is_probed_once_a_second():
    """X-RateLimit with no window: after the reset, one request per probe_interval, none booked
    beyond the horizon (a fresh answer may reopen the budget first), and a fresh answer does."""
    pacer = RatePacer()
    pacer.reserve(0.0)
    pacer.observe(RateLimit(0, 0.25, None, None, None, "x-ratelimit"), ticket=0, at=0.0)
    assert pacer.reserve(0.0) == (1, 0.25)
    assert pacer.reserve(0.25) == (2, 1.0)
    assert pacer.reserve(0.25) == (None, pytest.approx(1.0))  # the slot at 2.25: ask at 1.25
    pacer.observe(RateLimit(99, 60.0, None, None, None, "x-ratelimit"), ticket=2, at=1.3)
    assert pacer.reserve(1.3) == (3, 0.0)


def test_reserve_tokens_are_left_for_others():
    """reserve=2: with 3 left only one request goes before the reset."""
    pacer = RatePacer(reserve=2)
    pacer.reserve(0.0)
    pacer.observe(quota(3, reset=0.5), ticket=0, at=0.0)
    assert pacer.reserve(0.0) == (1, 0.0)
    assert pacer.reserve(0.0) == (2, 0.5)


def test_none_means_default_and_bad_values_are_refused():
    """RatePacer(None...) is RatePacer(); negative or zero settings are ValueErrors."""
    pacer = RatePacer(reserve=None, horizon=None, probe_interval=None, first_answer_wait=None)
    default = RatePacer()
    assert (pacer.reserve_tokens, pacer.horizon, pacer.probe_interval,
            pacer.first_answer_wait) == (default.reserve_tokens, default.horizon,
                                         default.probe_interval, default.first_answer_wait)
    for kwargs in ({"reserve": -1}, {"horizon": 0}, {"probe_interval": -1.0},
                   {"first_answer_wait": -0.1}, {"horizon": math.nan}):
        with pytest.raises(ValueError):
            RatePacer(**kwargs)


@settings(max_examples=200, deadline=None)
@given(rate=st.integers(1, 50), burst=st.integers(1, 50), requests=st.integers(1, 200),
       latency=st.floats(0.0, 0.2))
def test_paced_requests_never_run_a_token_bucket_dry(rate, burst, requests, latency):
    """Against a simulated token bucket (rate/s, burst) that answers with IETF fields after
    ``latency``, requests booked back to back are never refused (the first answer is awaited:
    before it, nothing is known)."""
    pacer = RatePacer()
    tokens, last, now = float(burst), 0.0, 0.0
    pending: list[tuple[float, int, RateLimit]] = []  # (answer time, ticket, fields)
    for _ in range(requests):
        while True:
            ticket, delay = pacer.reserve(now)
            now += delay
            for answer in sorted(a for a in pending if a[0] <= now):
                pacer.observe(answer[2], ticket=answer[1], at=answer[0])
                pending.remove(answer)
            if ticket is not None:
                break
        tokens = min(burst, tokens + (now - last) * rate)
        last = now
        assert tokens >= 1 - 1e-9, (ticket, now, tokens)
        tokens -= 1
        left = math.floor(tokens + 1e-9)
        refill = (burst - tokens) / rate
        pending.append((now + latency, ticket, RateLimit(left, refill, burst, burst / rate,
                                                         "default", "ietf")))


def test_the_pacer_remembers_a_bounded_window_of_bookings():
    """100,000 requests over 1,000 s: the bookings kept to match answers stay bounded, and the
    answered request is still found among them."""
    pacer = RatePacer(first_answer_wait=0.0)
    now = 0.0
    for _ in range(100_000):
        ticket, delay = pacer.reserve(now)
        pacer.observe(RateLimit(1_000_000, 1.0, 1_000_000, 1.0, "d"), ticket=ticket, at=now)
        assert delay == 0.0
        now += 0.01
    assert len(pacer._sent) <= 4_000  # 30 s at 100/s, forgotten in steps
    # Nothing was booked after the last answered request; the 25 booked in the 0.25 s before
    # it count as maybe not yet seen by the server (DEFAULT_SEND_SLACK: threads run late).
    assert pacer._uncounted == 25
