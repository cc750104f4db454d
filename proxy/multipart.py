"""Reading a ``multipart/form-data`` body without changing it: its text fields, and the size and head of its files.

Audio transcriptions and image edits arrive as multipart forms. Tollgate forwards the body byte for
byte; it only reads the fields that say what the request costs (``model``, ``response_format``, ``n``,
``size``, ``quality``) and, of each file, its size and first bytes (a WAV header tells the audio's
duration). Nothing here allocates a copy of a file.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

_HEAD_BYTES: Final = 4096  # of each file: enough for a WAV header with a LIST chunk before its data
_MAX_FIELD_CHARS: Final = 4096
_MAX_PARTS: Final = 256


@dataclass(frozen=True, slots=True)
class FilePart:
    name: str
    size: int
    head: bytes  # its first bytes, for a header


@dataclass(frozen=True, slots=True)
class Form:
    fields: dict[str, str]
    files: tuple[FilePart, ...]


class MultipartError(ValueError):
    """The body is not the multipart form its Content-Type says."""


def boundary_of(content_type: bytes) -> bytes | None:
    """The boundary a ``multipart/form-data`` Content-Type names, or None when it is not one."""
    kind, _, params = content_type.partition(b";")
    if kind.strip().lower() != b"multipart/form-data":
        return None
    for param in params.split(b";"):
        key, _, value = param.strip().partition(b"=")
        if key.lower() == b"boundary" and value:
            return value.strip(b'"')
    return None


def read_form(body: bytes, boundary: bytes) -> Form:
    """The fields and files of a multipart body; raises ``MultipartError`` when it has no parts."""
    delimiter = b"--" + boundary
    fields: dict[str, str] = {}
    files: list[FilePart] = []
    start = body.find(delimiter)
    if start < 0:
        raise MultipartError("the body holds no part with the boundary its Content-Type names")
    position = start + len(delimiter)
    for _ in range(_MAX_PARTS):
        if body.startswith(b"--", position):
            break  # the closing delimiter
        headers_end = body.find(b"\r\n\r\n", position)
        following = body.find(b"\r\n" + delimiter, headers_end + 4) if headers_end >= 0 else -1
        if headers_end < 0 or following < 0:
            raise MultipartError("a part of the body is not closed by the boundary")
        name, is_file = _disposition(body[position:headers_end])
        content_start = headers_end + 4
        if name is not None and is_file:
            size = following - content_start
            files.append(FilePart(name, size, body[content_start : content_start + min(size, _HEAD_BYTES)]))
        elif name is not None:
            fields[name] = body[content_start:following][:_MAX_FIELD_CHARS].decode("utf-8", "replace")
        position = following + 2 + len(delimiter)
    return Form(fields, tuple(files))


def _disposition(headers: bytes) -> tuple[str | None, bool]:
    for line in headers.split(b"\r\n"):
        key, _, value = line.partition(b":")
        if key.strip().lower() != b"content-disposition":
            continue
        name: str | None = None
        is_file = False
        for param in value.split(b";")[1:]:
            pkey, _, pvalue = param.strip().partition(b"=")
            if pkey.lower() == b"name":
                name = pvalue.strip(b'"').decode("utf-8", "replace")
            elif pkey.lower() == b"filename":
                is_file = True
        return name, is_file
    return None, False


def wav_duration_ms(head: bytes, size: int) -> int | None:
    """The duration of a WAV file from its header (``fmt `` byte rate, ``data`` size), or None if it is no WAV."""
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    position, byte_rate = 12, 0
    while position + 8 <= len(head):
        chunk, length = head[position : position + 4], struct.unpack_from("<I", head, position + 4)[0]
        if chunk == b"fmt " and position + 16 <= len(head):
            byte_rate = struct.unpack_from("<I", head, position + 16)[0]
        elif chunk == b"data":
            if not byte_rate:
                return None
            # A streamed WAV may say 0 or 0xFFFFFFFF: what the file holds after the header is the data then.
            available = size - (position + 8)
            data = length if 0 < length <= available else available
            return max(data, 0) * 1000 // byte_rate
        position += 8 + length + (length & 1)
    return None
