"""Managed Tollgate keys: stored as SHA-256 hashes, never in clear.

A client presents its key as ``Authorization: Bearer <key>``. Tollgate hashes
it and looks the digest up; the final comparison is constant-time. The key
itself is never logged, stored or recorded.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from proxy.config import KeyConfig

KEY_PREFIX = "tg-"


def hash_key(key: str) -> str:
    """The hex SHA-256 of ``key``, as written in ``[[keys]] sha256``."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    """A fresh random Tollgate key."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def bearer_token(authorization: bytes | None) -> str | None:
    """The token of an ``Authorization: Bearer`` header value, or None."""
    if not authorization or authorization[:7].lower() != b"bearer ":
        return None
    return authorization[7:].strip().decode("latin-1") or None


class KeyRing:
    """The configured managed keys, by digest."""

    def __init__(self, keys: tuple[KeyConfig, ...]) -> None:
        self._by_digest = {k.sha256.lower(): k for k in keys}

    def __bool__(self) -> bool:
        return bool(self._by_digest)

    def identify(self, token: str | None) -> KeyConfig | None:
        """The managed key ``token`` is, or None."""
        if token is None or not self._by_digest:
            return None
        digest = hash_key(token)
        key = self._by_digest.get(digest)
        if key is None or not hmac.compare_digest(digest, key.sha256.lower()):
            return None
        return key
