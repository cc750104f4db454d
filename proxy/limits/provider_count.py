"""The providers' own free token counts: Anthropic ``count_tokens`` and Gemini ``countTokens``.

Pure: what to send and how to read the answer; ``proxy.limits.tighten`` sends it, once,
and only for a request that the byte bound would refuse.

- Anthropic: ``POST /v1/messages/count_tokens`` with the request's ``model``, ``messages``,
  ``system``, ``tools``, ``tool_choice`` and ``thinking`` (the endpoint refuses the other
  members); the answer is ``{"input_tokens": N}``.
- Gemini: ``POST {version}/models/{model}:countTokens`` with the whole request as
  ``generateContentRequest``; the answer is ``{"totalTokens": N, ...}``.

Both call their count an estimate that the bill may pass by a little, so Tollgate adds
``COUNT_MARGIN`` of it and ``COUNT_SLACK`` tokens before it bounds anything by it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson

from proxy.dialects.base import read_count

COUNT_MARGIN = Decimal("0.02")
COUNT_SLACK = 64
_ANTHROPIC_MEMBERS = ("model", "messages", "system", "tools", "tool_choice", "thinking")


@dataclass(frozen=True, slots=True)
class CountRequest:
    path: str
    """The path under the provider's ``base_url`` (both APIs' base URL is their root)."""
    body: bytes


def anthropic_count(payload: dict[str, Any]) -> CountRequest:
    body = {name: payload[name] for name in _ANTHROPIC_MEMBERS if name in payload}
    return CountRequest("/v1/messages/count_tokens", orjson.dumps(body))


def gemini_count(path: str, payload: dict[str, Any], model: str) -> CountRequest | None:
    """``path`` is the request's own (``/v1beta/models/gemini-2.5-pro:generateContent``)."""
    head, colon, _ = path.rpartition(":")
    if not colon:
        return None
    name = model if model.startswith("models/") else f"models/{model}"
    return CountRequest(f"{head}:countTokens", orjson.dumps({"generateContentRequest": {**payload, "model": name}}))


def read_anthropic_count(body: bytes) -> int | None:
    return _read(body, "input_tokens")


def read_gemini_count(body: bytes) -> int | None:
    return _read(body, "totalTokens")


def with_margin(tokens: int) -> int:
    """A provider's count, made an upper bound of what its bill may say."""
    return math.ceil(tokens * (1 + COUNT_MARGIN)) + COUNT_SLACK


def _read(body: bytes, key: str) -> int | None:
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(answer, dict) or key not in answer:
        return None
    count = read_count(answer, key)
    return count if count > 0 or answer.get(key) == 0 else None
