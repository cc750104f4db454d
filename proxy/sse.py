"""Server-Sent Events as they pass through: split into events, each read by the dialect's stream reader.

``StreamMeter.feed`` takes each chunk as it arrives from the provider and returns the
bytes to send on to the client. It splits the stream into events (a blank line ends
an event; lines end with LF, CRLF or CR), and hands each complete one to the
dialect's ``StreamReader``, which reads its usage and knows the stream's closing
event by its own fields, never by a substring anywhere in the stream.

A stream that is not SSE but a JSON array arriving over time (Gemini's without
``?alt=sse``) is split into its items instead (``proxy.json_array``), each handed to
the reader's ``read_item``, and passes unchanged.

When the reader hides something Tollgate added to the stream (the usage it asked a
stream to report), the client gets what the reader returns for each event, so an
event waits for its end before it is sent on. Otherwise every chunk goes on at once,
unchanged.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from proxy.dialects.base import StreamReader
from proxy.json_array import JsonArrayItems
from proxy.usage import Usage

_MAX_HELD = 1 << 20  # a "stream" with no event boundary in 1 MiB is not SSE: stop holding it
_MAX_ITEM = 32 << 20  # a JSON array's item (an answer chunk, images inline) is read up to 32 MiB
_KEEP_FOR_ESTIMATE = 256 << 10  # bytes of a stream kept for an estimate, should the usage never arrive
# A blank line: two line endings in a row, each LF, CRLF or CR (a CR followed by LF is one CRLF, never two).
_BOUNDARY = re.compile(rb"(?:\r\n|\r(?!\n)|\n)(?:\r\n|\r(?!\n)|\n)")


class StreamMeter:
    def __init__(self, reader: StreamReader, hide_usage: bool = False, *, json_array: bool = False) -> None:
        self.reader = reader
        self.hide_usage = hide_usage
        self.sse = True
        """False once the stream has shown it cannot be read: it then passes unread."""
        self.received = Received()
        self._tail = b""
        self._items = JsonArrayItems(_MAX_ITEM) if json_array else None

    @property
    def usage(self) -> Usage | None:
        return self.reader.usage

    @property
    def finished(self) -> bool:
        """The stream's closing event has arrived: what follows is its end."""
        return self.reader.finished

    def feed(self, chunk: bytes) -> bytes:
        """Read ``chunk``; return what the client should receive now."""
        self.received.add(chunk)
        if not self.sse:
            return chunk
        if self._items is not None:
            read_item = self.reader.read_item
            for item in self._items.feed(chunk):
                read_item(item)
            self.sse = not self._items.overflowed
            return chunk
        if not self._tail and chunk.endswith(b"\n\n") and chunk.find(b"\n\n") == len(chunk) - 2 and b"\r" not in chunk:
            # The common case, one whole event per chunk: what split_events would make of it, without its lists.
            event = self.reader.read(chunk)
            return event if self.hide_usage else chunk
        buffer = self._tail + chunk if self._tail else chunk
        events, self._tail = split_events(buffer)
        read = self.reader.read
        kept = [read(event) for event in events]
        if len(self._tail) > _MAX_HELD:
            self.sse = False
            tail, self._tail = self._tail, b""
            return b"".join(kept) + tail if self.hide_usage else chunk
        return b"".join(kept) if self.hide_usage else chunk

    def finish(self) -> bytes:
        """The end of the stream: read whatever is held, and release it if it was held back."""
        tail, self._tail = self._tail, b""
        if not tail:  # always so for a JSON array: nothing of it is held
            return b""
        kept = self.reader.read(tail) if self.sse else tail
        return kept if self.hide_usage else b""

    def streamed_text(self) -> str:
        """The text of what was kept for an estimate."""
        return self.reader.streamed_text(b"".join(self.received.parts))


class Received:
    """What a stream carried, for an estimate: the first 256 KiB whole, and the size of the rest."""

    __slots__ = ("parts", "kept", "total")

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.kept = 0
        self.total = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        if self.kept < _KEEP_FOR_ESTIMATE:
            self.parts.append(chunk)
            self.kept += len(chunk)

    def __bool__(self) -> bool:
        return self.total > 0


def split_events(buffer: bytes) -> tuple[list[bytes], bytes]:
    """The complete events in ``buffer`` (each with its closing blank line), and the partial one after them."""
    events: list[bytes] = []
    if b"\r" not in buffer:  # the common case: LF line endings
        start = 0
        while (end := buffer.find(b"\n\n", start)) >= 0:
            events.append(buffer[start : end + 2])
            start = end + 2
        return events, buffer[start:]
    # A CR at the very end may be the first half of a CRLF: wait for the next byte.
    searchable = buffer[:-1] if buffer.endswith(b"\r") else buffer
    start = 0
    for boundary in _BOUNDARY.finditer(searchable):
        events.append(buffer[start : boundary.end()])
        start = boundary.end()
    return events, buffer[start:]


def event_fields(event: bytes) -> tuple[bytes | None, bytes | None, int]:
    """(the ``event:`` field, the ``data:`` payload with lines joined by LF, the number of data lines)."""
    kind: bytes | None = None
    data: list[bytes] = []
    for line in event.splitlines():
        name, colon, value = line.partition(b":")
        if colon and value.startswith(b" "):
            value = value[1:]
        if name == b"data":
            data.append(value)
        elif name == b"event":
            kind = value
    return kind, (b"\n".join(data) if data else None), len(data)


def parse_json(data: bytes) -> Any:
    """``data`` parsed, or None when it is not JSON: what a provider sends is never trusted to parse."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
