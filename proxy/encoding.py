"""Reading answers a provider compressed although Tollgate asked for ``Accept-Encoding: identity``.

The client still gets the bytes as they came; only Tollgate's copy for reading the
usage is decompressed. gzip and deflate are read with the standard library, and
Brotli when the ``brotli`` package is installed. An answer in an encoding Tollgate
cannot read has its usage estimated, like one that carries none.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Sequence
from typing import Protocol

logger = logging.getLogger("tollgate.encoding")


class Decoder(Protocol):
    def decompress(self, data: bytes) -> bytes: ...


class _Brotli:
    def __init__(self) -> None:
        import brotli  # type: ignore[import-not-found,unused-ignore]

        self._decoder = brotli.Decompressor()

    def decompress(self, data: bytes) -> bytes:
        result: bytes = self._decoder.process(data)
        return result


def content_encoding(headers: Sequence[tuple[bytes, bytes]]) -> str | None:
    """The answer's content coding, or None for identity."""
    for name, value in headers:
        if name == b"content-encoding":
            coding = value.decode("latin-1").strip().lower()
            return None if coding in ("", "identity") else coding
    return None


def decoder_for(coding: str) -> Decoder | None:
    """An incremental decoder for ``coding``, or None when Tollgate cannot read it."""
    if coding in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if coding == "deflate":
        return zlib.decompressobj(zlib.MAX_WBITS | 32)  # zlib-wrapped, as HTTP's deflate is meant to be
    if coding == "br":
        try:
            return _Brotli()
        except ImportError:
            return None
    return None


def decoded(body: bytes, headers: Sequence[tuple[bytes, bytes]]) -> bytes | None:
    """``body`` as Tollgate can read it; None when it is in an encoding Tollgate cannot decode."""
    coding = content_encoding(headers)
    if coding is None:
        return body
    decoder = decoder_for(coding)
    if decoder is None:
        logger.warning("an answer in content encoding %r cannot be read; its usage is estimated", coding)
        return None
    try:
        return decoder.decompress(body)
    except (zlib.error, OSError, ValueError) as exc:
        logger.warning("an answer in content encoding %r did not decode (%s); its usage is estimated", coding, exc)
        return None
