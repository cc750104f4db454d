"""Reading usage from a Server-Sent Events stream while it passes through.

``StreamMeter.feed`` takes each chunk as it arrives from the provider and
returns the bytes to send on to the client. It parses only events that can
carry usage (those that mention ``"usage"`` with a value other than null), so a
long stream costs a substring search per chunk.

When Tollgate itself turned on ``stream_options.include_usage`` (the client did
not ask for it), the meter *hides* what that added: the usage-only chunk is
dropped and the ``"usage":null`` member of the other chunks is cut, so the
client receives the stream it asked for. Hiding needs whole events, so in that
mode a partial event waits for its end before it is sent on.
"""

from __future__ import annotations

from proxy.usage import Usage, usage_from_event

_USAGE = b'"usage"'
_NULL_USAGE = b',"usage":null'
_MAX_HELD = 1 << 20  # a "stream" with no event boundary in 1 MiB is not SSE: stop holding it


class StreamMeter:
    def __init__(self, hide_usage: bool = False) -> None:
        self.hide_usage = hide_usage
        self.usage: Usage | None = None
        self._tail = b""
        self._sep: bytes | None = None
        self.received: list[bytes] = []  # kept for an estimate, should the usage never arrive

    def feed(self, chunk: bytes) -> bytes:
        """Scan ``chunk``; return what the client should receive now."""
        self.received.append(chunk)
        buffer = self._tail + chunk if self._tail else chunk
        sep = self._sep
        if sep is None:
            sep = self._sep = _separator(buffer)
        end = buffer.rfind(sep) if sep is not None else -1
        if end < 0:
            if len(buffer) <= _MAX_HELD:
                self._tail = buffer
                return b"" if self.hide_usage else chunk
            self._tail = b""
            return buffer if self.hide_usage else chunk
        end += len(sep)  # type: ignore[arg-type]  # end >= 0 only once sep is known
        complete, self._tail = buffer[:end], buffer[end:]
        if self.hide_usage:
            # One pass over the whole buffer: most events only carry the "usage":null Tollgate asked for.
            complete = complete.replace(_NULL_USAGE, b"")
        if _USAGE not in complete or _all_null_usage(complete):
            return complete if self.hide_usage else chunk
        kept = self._scan(complete)
        return kept if self.hide_usage else chunk

    def finish(self) -> bytes:
        """The end of the stream: scan whatever is held, and release it if it was held back."""
        tail, self._tail = self._tail, b""
        sep = self._sep
        if not tail or sep is None:
            return tail if self.hide_usage else b""
        if self.hide_usage:
            tail = tail.replace(_NULL_USAGE, b"")
        kept = self._scan(tail + sep) if _USAGE in tail else tail + sep
        if not self.hide_usage:
            return b""
        return kept[: -len(sep)] if kept else b""

    def _scan(self, events: bytes) -> bytes:
        sep = self._sep or b"\n\n"
        kept: list[bytes] = []
        for event in events.split(sep)[:-1]:
            if _USAGE not in event or (event.count(_USAGE) == 1 and _is_null_usage(event)):
                kept.append(event.replace(_NULL_USAGE, b"") if self.hide_usage else event)
                continue
            data = _event_data(event)
            usage = usage_from_event(data) if data and data != b"[DONE]" else None
            if usage is not None:
                self.usage = usage
                if self.hide_usage and b'"choices":[]' in data:
                    continue
            if self.hide_usage:
                event = event.replace(_NULL_USAGE, b"")
            kept.append(event)
        if not kept:
            return b""
        return sep.join(kept) + sep


def _separator(data: bytes) -> bytes | None:
    """The event separator of a stream, once its first line ending has arrived."""
    newline = data.find(b"\n")
    if newline < 0:
        return None
    return b"\r\n\r\n" if newline > 0 and data[newline - 1] == 13 else b"\n\n"


def _is_null_usage(event: bytes) -> bool:
    return b'"usage":null' in event or b'"usage": null' in event


def _all_null_usage(events: bytes) -> bool:
    """Whether every "usage" member in ``events`` is null (as in each chunk of a stream that asked for usage)."""
    return events.count(_USAGE) == events.count(b'"usage":null') + events.count(b'"usage": null')


def _event_data(event: bytes) -> bytes:
    """The ``data:`` payload of one event, multi-line data joined by newlines."""
    lines = [line for line in event.splitlines() if line.startswith(b"data:")]
    if len(lines) == 1:
        return lines[0][5:].strip()
    return b"\n".join(line[5:].removeprefix(b" ") for line in lines).strip()
