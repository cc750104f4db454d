"""What an OpenAI request says about its own cost: model, stream, user, output caps, and inputs not in its bytes.

Read by parsing the request, never by searching its bytes: an escaped key such as
``image\\u005furl`` is still an image. ``proxy.limits.bounds`` turns these facts into a bound.
"""

from __future__ import annotations

import math
from typing import Any

from proxy.dialects.base import RequestFacts
from proxy.dialects.units import request_search_context

_OUTPUT_CAPS = ("max_tokens", "max_completion_tokens", "max_output_tokens")
# Content parts whose tokens do not follow their bytes.
_MEDIA_TYPES = frozenset(
    {"image_url", "input_image", "image", "input_audio", "audio", "input_file", "file", "image_file", "document"}
)
_MEDIA_KEYS = ("image_url", "input_audio", "file_data", "image_file", "inline_data", "inlineData")
MEDIA_TYPES, MEDIA_KEYS = _MEDIA_TYPES, _MEDIA_KEYS  # also how proxy.limits.prompt_count finds media parts
# Keys of parts that point at a file stored at the provider (or on the web) instead of carrying it.
_REFERENCE_KEYS = ("file_id", "file_url", "file_uri", "fileUri")
# Tools the provider runs itself, feeding their results back to the model as more input.
_HOSTED_TOOLS = ("web_search", "file_search", "code_interpreter", "mcp", "image_generation", "computer_use")
_MAX_DEPTH = 32
_MAX_FALLBACKS = 16


def read_request(payload: dict[str, Any]) -> RequestFacts:
    """The facts of a parsed Chat, Completions, Embeddings or Responses request."""
    model, stream, user = _basics(payload)
    parts = _Parts.of(payload)
    fallbacks = payload.get("models")  # a router's fallback list (OpenRouter): each may answer
    return RequestFacts(
        model=model,
        stream=stream,
        user=user,
        output_cap=output_cap(payload),
        choices=choices(payload),
        media_parts=parts.media,
        stored_input=frozenset(parts.by_reference),
        hosted_tools=frozenset(parts.hosted_tools),
        max_tool_calls=whole(payload.get("max_tool_calls")),
        search_context=request_search_context(payload),
        fallback_models=tuple(m for m in fallbacks if isinstance(m, str) and m)[:_MAX_FALLBACKS]
        if isinstance(fallbacks, list)
        else (),
    )


def _basics(payload: dict[str, Any]) -> tuple[str | None, bool, str | None]:
    model = payload.get("model")
    user = payload.get("user")
    return (
        model if isinstance(model, str) and model else None,
        payload.get("stream") is True,
        user if isinstance(user, str) else None,
    )


def output_cap(payload: dict[str, Any]) -> int | None:
    """The largest output token cap a request sets, if any: the provider may honour any of them."""
    caps = [whole(payload.get(name)) for name in _OUTPUT_CAPS]
    found = [cap for cap in caps if cap is not None]
    return max(found) if found else None


def choices(payload: dict[str, Any]) -> int:
    """How many answers the request asks for (``n`` or ``best_of``; ``4.0`` is 4)."""
    counts = [whole(payload.get("n")), whole(payload.get("best_of"))]
    return max([1, *(c for c in counts if c is not None)])


def whole(value: Any) -> int | None:
    """A count as a client may write it: 4, or 4.0 (a fraction counts up); None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float) and math.isfinite(value) and value >= 0:
        return math.ceil(value)
    return None


class _Parts:
    """What a parsed request holds that its size does not tell: media parts, input by reference, hosted tools."""

    __slots__ = ("media", "by_reference", "hosted_tools")

    def __init__(self) -> None:
        self.media = 0
        self.by_reference: set[str] = set()
        self.hosted_tools: set[str] = set()

    @classmethod
    def of(cls, payload: dict[str, Any]) -> _Parts:
        parts = cls()
        for name in ("previous_response_id", "conversation"):
            if payload.get(name) not in (None, "", {}):
                parts.by_reference.add(name)
        prompt = payload.get("prompt")
        if isinstance(prompt, dict) and prompt.get("id"):  # a stored prompt (Completions' prompt is text)
            parts.by_reference.add("prompt")
        tools = payload.get("tools")
        for tool in tools if isinstance(tools, list) else ():
            kind = tool.get("type") if isinstance(tool, dict) else None
            if isinstance(kind, str) and kind.startswith(_HOSTED_TOOLS):
                parts.hosted_tools.add(kind)
        for name in ("messages", "input", "prompt", "contents", "system"):
            parts._walk(payload.get(name), 0)
        return parts

    def _walk(self, value: Any, depth: int) -> None:
        if depth > _MAX_DEPTH:
            return
        if isinstance(value, list):
            for child in value:
                if isinstance(child, (dict, list)):
                    self._walk(child, depth + 1)
            return
        if not isinstance(value, dict):
            return
        kind = value.get("type")
        if kind == "item_reference":
            self.by_reference.add("item_reference")
        for key in _REFERENCE_KEYS:
            if isinstance(value.get(key), str) and value[key]:
                self.by_reference.add(key)
        if kind in _MEDIA_TYPES or (kind is None and any(key in value for key in _MEDIA_KEYS)):
            self.media += 1
            if not any(isinstance(v, dict) and _references(v) for v in value.values()):
                return  # one part, counted once: what it holds is its data
        for child in value.values():
            if isinstance(child, (dict, list)):
                self._walk(child, depth + 1)


def _references(value: dict[str, Any]) -> bool:
    return any(isinstance(value.get(key), str) and value[key] for key in _REFERENCE_KEYS)
