"""HTTP headers as the request path holds them: ASGI's ``(lowercase name, value)`` byte pairs.

What is never relayed, in either direction, and the two look-ups the core makes.
"""

from __future__ import annotations

from collections.abc import Sequence

Headers = Sequence[tuple[bytes, bytes]]

# Never forwarded either way (RFC 9110 section 7.6.1), plus what the HTTP client sets itself.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"host",
        b"content-length",
    }
)
# Provider headers that make no sense, or say too much, on Tollgate's origin: cookies and alternative
# services are the provider's, not Tollgate's.
NEVER_RELAYED = frozenset({b"set-cookie", b"alt-svc"})


def header(headers: Headers, name: bytes) -> bytes:
    """The first value of ``name`` (lowercase), or b"" when it is absent."""
    for key, value in headers:
        if key == name:
            return value
    return b""


def is_event_stream(headers: Headers) -> bool:
    for name, value in headers:
        if name == b"content-type":
            return bool(value.startswith(b"text/event-stream"))
    return False
