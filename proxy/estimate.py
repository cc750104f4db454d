"""Token estimates for when the provider's usage never arrived (a stream cut short).

The text is counted with tiktoken's ``o200k_base`` encoding, read from the copy
that the litellm wheel ships (located without importing litellm), so nothing is
downloaded. If that copy is missing, four characters count as one token. Either
way the record says ``usage_source = "estimated"``.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import math
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import orjson

from pricing import TokenCounts

logger = logging.getLogger("tollgate.estimate")

# Per message, chat formats add a few tokens of their own around the content.
_TOKENS_PER_MESSAGE = 4


@functools.cache
def _encoder() -> Callable[[str], int]:
    spec = importlib.util.find_spec("litellm")
    if spec is not None and spec.submodule_search_locations:
        folder = Path(next(iter(spec.submodule_search_locations))) / "litellm_core_utils" / "tokenizers"
        os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(folder))
    try:
        import tiktoken

        encoding = tiktoken.get_encoding("o200k_base")
    except Exception as exc:  # no local copy of the encoding, and no network to fetch it
        logger.warning("tiktoken encoding unavailable (%s); estimating 4 characters per token", type(exc).__name__)
        return lambda text: math.ceil(len(text) / 4)
    return lambda text: len(encoding.encode(text, disallowed_special=()))


def count_tokens(text: str) -> int:
    return _encoder()(text) if text else 0


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, dict):
        for key in ("content", "text", "input", "prompt", "arguments", "refusal"):
            if key in value:
                yield from _strings(value[key])


def prompt_tokens(payload: dict[str, Any] | None) -> int:
    """Tokens of a request's prompt: its messages, input or prompt text."""
    if not payload:
        return 0
    messages = payload.get("messages")
    if isinstance(messages, list):
        text = "\n".join(_strings(messages))
        return count_tokens(text) + _TOKENS_PER_MESSAGE * len(messages)
    return count_tokens("\n".join(_strings([payload.get("input"), payload.get("prompt"), payload.get("instructions")])))


def streamed_text(events: bytes) -> str:
    """The text an SSE stream carried: chat deltas, completion text, Responses API text deltas."""
    parts: list[str] = []
    for line in events.splitlines():
        if not line.startswith(b"data:"):
            continue
        try:
            data = orjson.loads(line[5:])
        except orjson.JSONDecodeError:
            continue
        if not isinstance(data, dict):
            continue
        if data.get("type") == "response.output_text.delta" and isinstance(data.get("delta"), str):
            parts.append(data["delta"])
            continue
        choices = data.get("choices")
        for choice in choices if isinstance(choices, list) else ():
            if not isinstance(choice, dict):
                continue
            delta = choice.get("delta")
            parts.extend(_strings(delta if isinstance(delta, dict) else {}))
            if isinstance(choice.get("text"), str):
                parts.append(choice["text"])
            if isinstance(delta, dict):
                for call in delta.get("tool_calls") or ():
                    if isinstance(call, dict) and isinstance(call.get("function"), dict):
                        parts.extend(_strings(call["function"]))
    return "".join(parts)


def estimate_stream(payload: dict[str, Any] | None, kept: Sequence[bytes], total: int) -> TokenCounts:
    """Estimated usage of a stream whose usage never arrived.

    ``kept`` is the start of the stream and ``total`` its whole size in bytes: a stream
    longer than what was kept is counted in proportion, rather than held in memory whole.
    """
    head = b"".join(kept)
    output = count_tokens(streamed_text(head))
    if total > len(head) > 0:
        output = math.ceil(output * total / len(head))
    return TokenCounts(input=prompt_tokens(payload), output=output)


def answer_text(body: bytes) -> str:
    """The text a whole JSON answer carries: chat messages, completion text, Responses API output."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return ""
    if not isinstance(data, dict):
        return ""
    parts: list[str] = []
    choices = data.get("choices")
    for choice in choices if isinstance(choices, list) else ():
        if isinstance(choice, dict):
            parts.extend(_strings(choice.get("message") if isinstance(choice.get("message"), dict) else {}))
            if isinstance(choice.get("text"), str):
                parts.append(choice["text"])
    output = data.get("output")
    for item in output if isinstance(output, list) else ():
        if isinstance(item, dict):
            parts.extend(_strings(item))
    return "".join(parts)


def estimate_answer(payload: dict[str, Any] | None, body: bytes) -> TokenCounts:
    """Estimated usage of a whole answer that carried none."""
    return TokenCounts(input=prompt_tokens(payload), output=count_tokens(answer_text(body)))
