"""A sans-IO parser of Server-Sent Events (``text/event-stream``): bytes in, events out.

    parser = SSEParser()
    for event in parser.feed(chunk):        # any chunking: bytes split anywhere are fine
        print(event.event, event.last_event_id, event.data)

It follows the WHATWG HTML "event stream interpretation" rules: UTF-8 with one leading BOM
dropped, lines ending in CRLF, LF or CR (a CR at the end of one chunk and an LF at the start of the
next are one line end), ``:`` comment lines, ``field: value`` with one leading space dropped, ``data``
lines joined with newlines, ``id`` kept across events (and ignored if it holds NUL), ``retry`` only
when all digits, an event dispatched at a blank line only if it has data, and an unfinished event at
the end of the stream dropped. No sockets, no clock: the sync and the asyncio clients both feed it.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass

__all__ = ["SSEEvent", "SSEParser"]

_BOM = "\ufeff"


@dataclass(frozen=True)
class SSEEvent:
    """One dispatched event."""

    #: The ``event:`` field, ``"message"`` when the event had none.
    event: str
    #: The ``data:`` lines joined with ``"\\n"``.
    data: str
    #: The stream's last event id at dispatch (the spec's ``lastEventId``): it persists across
    #: events, so an event without an ``id:`` line carries the previous one ("" for none yet).
    last_event_id: str
    #: Whether this event had its own ``id:`` line.
    has_id: bool = False


class SSEParser:
    """Turns the bytes of one event stream into :class:`SSEEvent` values.

    Attributes:
        last_event_id: The id to resume from (``Last-Event-ID``), ``""`` before any.
        retry: The last ``retry:`` the server sent, in milliseconds, or None.
        comments: How many comment lines (heartbeats) were seen.
    """

    def __init__(self, last_event_id: str = "") -> None:
        self.last_event_id = last_event_id
        self.retry: int | None = None
        self.comments = 0
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._started = False  # a BOM is dropped only at the very start of the stream
        self._buffer = ""  # text after the last complete line
        self._skip_lf = False  # the previous chunk ended in CR: an LF first is part of that end
        self._data: list[str] = []
        self._event = ""
        self._has_id = False

    def feed(self, data: bytes) -> list[SSEEvent]:
        """Parse the next bytes of the stream; returns the events they complete, in order."""
        return self.feed_text(self._decoder.decode(data))

    def feed_text(self, text: str) -> list[SSEEvent]:
        """Like :meth:`feed`, for already decoded text."""
        if not self._started and text:
            self._started = True
            if text.startswith(_BOM):
                text = text[1:]
        if self._skip_lf and text:
            self._skip_lf = False
            text = text.removeprefix("\n")
        text = self._buffer + text
        events: list[SSEEvent] = []
        start = 0
        length = len(text)
        # Next CR and LF at or after start; searched again only once passed (an event stream
        # usually has no CR at all, and one scan per line to the end would be quadratic).
        cr, lf = text.find("\r"), text.find("\n")
        while True:
            if 0 <= cr < start:
                cr = text.find("\r", start)
            if 0 <= lf < start:
                lf = text.find("\n", start)
            if cr < 0 and lf < 0:
                break
            end = lf if cr < 0 or (0 <= lf < cr) else cr
            line = text[start:end]
            if text[end] == "\r":
                if end + 1 < length:
                    start = end + 2 if text[end + 1] == "\n" else end + 1
                else:  # CR last: an LF may open the next chunk
                    start = end + 1
                    self._skip_lf = True
            else:
                start = end + 1
            event = self._line(line)
            if event is not None:
                events.append(event)
        self._buffer = text[start:]
        return events

    def _line(self, line: str) -> SSEEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            self.comments += 1
            return None
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self.last_event_id = value
                self._has_id = True
        elif name == "retry" and value.isascii() and value.isdigit():
            self.retry = int(value)
        return None  # unknown fields are ignored

    def _dispatch(self) -> SSEEvent | None:
        data, event, has_id = self._data, self._event, self._has_id
        self._data, self._event, self._has_id = [], "", False
        if not data:
            return None
        return SSEEvent(event=event or "message", data="\n".join(data),
                        last_event_id=self.last_event_id, has_id=has_id)
