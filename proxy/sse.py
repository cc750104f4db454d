"""Reading usage from a Server-Sent Events stream while it passes through.

``StreamMeter.feed`` takes each chunk as it arrives from the provider and returns
the bytes to send on to the client. It splits the stream into events (a blank line
ends an event; lines end with LF, CRLF or CR) and reads each one that may matter:
an event carrying a ``"usage"`` that is not null is parsed, and the stream's closing
event (``data: [DONE]``, or the Responses API's final ``response.*`` event) is
recognised by its own fields, never by a substring anywhere in the stream: a model
that writes ``[DONE]`` in its text does not end anything.

When Tollgate itself turned on ``stream_options.include_usage`` (the client did not
ask for it), the meter *hides* what that added: the usage-only chunk (its
``choices`` empty) is dropped, and the ``"usage": null`` member of the other chunks
is cut, however the provider spaces its JSON. Hiding needs whole events, so in that
mode a partial event waits for its end before it is sent on. Otherwise every chunk
goes on at once, unchanged.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from proxy.usage import FINAL_RESPONSE_EVENTS, Usage, usage_from_event_object

_MAX_HELD = 1 << 20  # a "stream" with no event boundary in 1 MiB is not SSE: stop holding it
_KEEP_FOR_ESTIMATE = 256 << 10  # bytes of a stream kept for an estimate, should the usage never arrive
# A blank line: two line endings in a row, each LF, CRLF or CR (a CR followed by LF is one CRLF, never two).
_BOUNDARY = re.compile(rb"(?:\r\n|\r(?!\n)|\n)(?:\r\n|\r(?!\n)|\n)")
_USAGE = b'"usage"'
_USAGE_NULL = re.compile(rb'"usage"[ \t]*:[ \t]*null')
# The "usage": null member of a one-line JSON object, after another member or as the first one.
_NULL_MEMBER_AFTER = re.compile(rb',[ \t]*"usage"[ \t]*:[ \t]*null(?=[ \t]*[,}])')
_NULL_MEMBER_FIRST = re.compile(rb'(?<=\{)[ \t]*"usage"[ \t]*:[ \t]*null[ \t]*(?:,[ \t]*)?(?=["}])')
_DONE = b"[DONE]"


class StreamMeter:
    def __init__(self, hide_usage: bool = False) -> None:
        self.hide_usage = hide_usage
        self.usage: Usage | None = None
        self.finished = False
        """The stream's closing event has arrived: what follows is its end."""
        self.sse = True
        """False once the stream has shown it is not SSE: it then passes unread."""
        self.received = _Received()
        self._tail = b""

    def feed(self, chunk: bytes) -> bytes:
        """Read ``chunk``; return what the client should receive now."""
        self.received.add(chunk)
        if not self.sse:
            return chunk
        buffer = self._tail + chunk if self._tail else chunk
        events, self._tail = _split(buffer)
        kept = [self._read(event) for event in events]
        if len(self._tail) > _MAX_HELD:
            self.sse = False
            tail, self._tail = self._tail, b""
            return b"".join(kept) + tail if self.hide_usage else chunk
        return b"".join(kept) if self.hide_usage else chunk

    def finish(self) -> bytes:
        """The end of the stream: read whatever is held, and release it if it was held back."""
        tail, self._tail = self._tail, b""
        if not tail:
            return b""
        kept = self._read(tail) if self.sse else tail
        return kept if self.hide_usage else b""

    def _read(self, event: bytes) -> bytes:
        """Read one event (with its closing blank line); return it as the client should see it."""
        carries_usage = _USAGE in event
        if not carries_usage and _DONE not in event and b"response." not in event:
            return event  # most events: content deltas with nothing to read
        kind, data, data_lines = _fields(event)
        if data is None:
            return event
        if data == _DONE:
            self.finished = True
            return event
        obj: Any = None
        if carries_usage and len(_USAGE_NULL.findall(data)) < data.count(_USAGE):
            obj = _json(data)
            usage = usage_from_event_object(obj)
            if usage is not None:
                self.usage = usage
                if self.hide_usage and isinstance(obj, dict) and obj.get("choices") == []:
                    return b""  # the usage-only chunk that Tollgate asked for
        if kind is not None:
            self.finished = self.finished or kind.decode("latin-1") in FINAL_RESPONSE_EVENTS
        elif b'"response.' in data:
            obj = _json(data) if obj is None else obj
            self.finished = self.finished or (isinstance(obj, dict) and obj.get("type") in FINAL_RESPONSE_EVENTS)
        if self.hide_usage and carries_usage:
            return _without_null_usage(event, data, data_lines)
        return event


class _Received:
    """What a stream carried, for an estimate: the first few MiB whole, and the size of the rest."""

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


def _split(buffer: bytes) -> tuple[list[bytes], bytes]:
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


def _fields(event: bytes) -> tuple[bytes | None, bytes | None, int]:
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


def _json(data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return None


def _without_null_usage(event: bytes, data: bytes, data_lines: int) -> bytes:
    """``event`` without the top-level ``"usage": null`` member of its data."""
    if data_lines == 1:
        cut, found = _NULL_MEMBER_AFTER.subn(b"", event, count=1)
        return cut if found else _NULL_MEMBER_FIRST.sub(b"", event, count=1)
    # JSON spread over several data lines (rare): the member may span lines, so the data is rewritten
    # on one line. The client's JSON is the same but for the member Tollgate added.
    obj = _json(data)
    if not isinstance(obj, dict) or "usage" not in obj or obj["usage"] is not None:
        return event
    del obj["usage"]
    lines = event.splitlines(keepends=True)
    ending = next((line[len(line.rstrip(b"\r\n")) :] for line in lines if line.rstrip(b"\r\n")), b"\n")
    out: list[bytes] = []
    written = False
    for line in lines:
        if line.startswith(b"data"):
            if not written:
                out.append(b"data: " + orjson.dumps(obj) + ending)
                written = True
        elif line.rstrip(b"\r\n"):
            out.append(line)
    return b"".join(out) + ending
