"""The sans-IO SSE parser against the WHATWG event-stream rules, with any chunking of the bytes."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from vtwait.core.sse import SSEEvent, SSEParser

STREAM = (b"retry: 1500\n: ping\n\n"
          b"event: status\ndata: {\"job_id\": \"a\"}\n\n"  # a snapshot: no id
          b"id: 7\nevent: status\ndata: one\ndata: two\n\n"
          b"data:no space\n\n")
EXPECTED = [
    SSEEvent("status", '{"job_id": "a"}', "", False),
    SSEEvent("status", "one\ntwo", "7", True),
    SSEEvent("message", "no space", "7", False),
]


def parse(*chunks: bytes) -> tuple[list[SSEEvent], SSEParser]:
    parser = SSEParser()
    events = [event for chunk in chunks for event in parser.feed(chunk)]
    return events, parser


def test_fields_comments_retry_and_the_persisting_id():
    """event/data/id/retry fields, a comment, multi-line data, an id kept for later events."""
    events, parser = parse(STREAM)
    assert events == EXPECTED
    assert parser.retry == 1500 and parser.comments == 1 and parser.last_event_id == "7"


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"])
def test_every_line_ending_reads_the_same(newline):
    """LF, CRLF and CR line ends give the same events."""
    events, _ = parse(STREAM.replace(b"\n", newline))
    assert events == EXPECTED


@given(st.lists(st.integers(min_value=0, max_value=len(STREAM.replace(b"\n", b"\r\n"))),
                max_size=8), st.sampled_from([b"\n", b"\r\n", b"\r"]))
def test_any_chunking_gives_the_same_events(cuts, newline):
    """Bytes split anywhere (inside a CRLF, a UTF-8 character, a field name) parse the same."""
    stream = ("\ufeff" + STREAM.decode().replace("one", "ünïcødé")).encode().replace(b"\n", newline)
    points = sorted({min(cut, len(stream)) for cut in cuts})
    chunks = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]
    events, _ = parse(*chunks)
    assert [e.data for e in events] == ['{"job_id": "a"}', "ünïcødé\ntwo", "no space"]


def test_one_leading_bom_is_dropped_and_a_second_is_data():
    """A BOM at the start of the stream is dropped; a later one is kept as text."""
    events, _ = parse(b"\xef\xbb\xbf", b"data: x\n\n\xef\xbb\xbfdata: y\n\n")
    assert [e.data for e in events] == ["x"]  # the second line's field name is "\ufeffdata"


@pytest.mark.parametrize(("lines", "expected"), [
    (b"data\n\n", [""]),  # a field with no colon: empty value, still an event
    (b"data:\ndata:\n\n", ["\n"]),
    (b"data:  two spaces\n\n", [" two spaces"]),  # only one leading space is dropped
    (b"event: x\n\n", []),  # no data: nothing is dispatched, and the type is reset
    (b"event: x\n\ndata: y\n\n", ["y"]),
    (b"data: cut off at the end", []),  # an unfinished event is never dispatched
    (b"unknown: field\ndata: z\n\n", ["z"]),
])
def test_line_rules(lines, expected):
    """Colon-less fields, one space stripped, empty events dropped, unknown fields ignored."""
    events, _ = parse(lines)
    assert [e.data for e in events] == expected
    assert all(e.event == "message" for e in events)


@pytest.mark.parametrize(("retry", "expected"), [(b"250", 250), (b"2.5", None), (b"-1", None),
                                                 (b"1e3", None), (b"", None), (b"\xd9\xa3", None)])
def test_retry_only_when_all_ascii_digits(retry, expected):
    """retry: is taken only when it is all ASCII digits."""
    _, parser = parse(b"retry: " + retry + b"\n\n")
    assert parser.retry == expected


def test_an_id_with_nul_is_ignored_and_an_empty_id_resets():
    """id: holding NUL is ignored; an empty id: resets the last event id."""
    events, parser = parse(b"id: 5\ndata: a\n\nid: 6\x00\ndata: b\n\nid\ndata: c\n\n")
    assert [(e.last_event_id, e.has_id) for e in events] == [("5", True), ("5", False),
                                                             ("", True)]
    assert parser.last_event_id == ""


def test_resume_id_is_seeded():
    """A parser for a resumed stream starts from the id it resumes after."""
    parser = SSEParser("41")
    assert parser.feed(b"data: x\n\n")[0].last_event_id == "41"


@given(st.lists(st.sampled_from(["\n", "\r\n", "\r"]), min_size=12, max_size=12),
       st.integers(min_value=1, max_value=40))
def test_mixed_line_endings_in_one_stream(endings, size):
    """Every line may end differently (LF, CRLF, CR), in chunks of any size: same events."""
    lines = ["retry: 5", "", "data: a", "data: b", "", "id: 3", "event: status", "data: c", "",
             ": ping", "data: d", ""]
    for i in range(len(lines) - 1):  # CR then an empty line ending in LF is a CRLF: one line end
        assume(not (endings[i] == "\r" and lines[i + 1] == "" and endings[i + 1] == "\n"))
    stream = "".join(line + end for line, end in zip(lines, endings, strict=True)).encode()
    events, parser = parse(*(stream[i:i + size] for i in range(0, len(stream), size)))
    assert [(e.event, e.data, e.last_event_id) for e in events] == [
        ("message", "a\nb", ""), ("status", "c", "3"), ("message", "d", "3")]
    assert parser.retry == 5 and parser.comments == 1
