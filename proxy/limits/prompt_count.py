"""Upper bounds on a prompt's tokens that are tighter than one per byte: counted, not guessed.

Pure: a parsed request, its size and a tokenizer in, token bounds out.

OpenAI (``count_openai``): the text the model reads (message ``content`` and ``text``
parts, ``name``, tool call ``arguments``, and the Responses and Completions ``input``,
``instructions`` and ``prompt``) is counted with the model's tiktoken encoding, each
string alone, as the chat format tokenizes it between its special tokens, plus:

- ``MESSAGE_TOKENS`` per message (OpenAI's format adds 3 or 4) and ``REPLY_TOKENS`` once
  (the reply's start);
- ``PART_MARGIN`` per string counted, for merges across the boundary of two parts;
- every other byte of the body, at one token per byte as in the byte bound: keys,
  punctuation, tool definitions, schemas (a token is at least one byte, so whatever the
  provider makes of them, they are covered);
- each image, audio or file part at ``budget.image_tokens``, its bytes not counted again.

The result is never above the byte bound. Anthropic and Gemini publish no tokenizer:
their prompts are counted by the provider (``proxy.limits.provider_count``); what is
here for them is where an Anthropic prompt may be written to the cache (``cache_marks``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from proxy.dialects.openai_requests import MEDIA_KEYS, MEDIA_TYPES
from proxy.limits.tokenizer import Encoding

MESSAGE_TOKENS = 4
REPLY_TOKENS = 3
PART_MARGIN = 2
# Members of a request, and of its messages or items, whose strings the model reads as text.
_PROMPT_MEMBERS = ("messages", "input", "instructions", "prompt", "system")
_TEXT_KEYS = frozenset({"content", "text", "name", "arguments", "output", "input", "instructions", "prompt"})
_MAX_DEPTH = 32
# Anthropic puts tool definitions into a system prompt of its own, of a few hundred tokens.
_TOOL_PROMPT_TOKENS = 1024


@dataclass(frozen=True, slots=True)
class CountedPrompt:
    tokens: int
    """Upper bound of the prompt's tokens, media allowances excluded."""
    media: int
    """Tokens allowed for its image, audio and file parts."""


def count_openai(payload: dict[str, Any], body_bytes: int, encoding: Encoding, media_tokens: int) -> CountedPrompt:
    """The prompt of an OpenAI request, counted with its model's ``encoding`` (see the module docstring)."""
    walk = _Walk(encoding, media_tokens)
    for member in _PROMPT_MEMBERS:
        value = payload.get(member)
        if isinstance(value, str):
            walk.text(value)
        else:
            walk.node(value, 0)
    rest = max(body_bytes - walk.bytes_counted, 0)
    tokens = rest + walk.tokens + MESSAGE_TOKENS * walk.messages + REPLY_TOKENS
    return CountedPrompt(tokens=min(tokens, body_bytes), media=walk.media)


class _Walk:
    __slots__ = ("encoding", "media_tokens", "tokens", "bytes_counted", "messages", "media")

    def __init__(self, encoding: Encoding, media_tokens: int) -> None:
        self.encoding = encoding
        self.media_tokens = media_tokens
        self.tokens = 0  # counted tokens, with their margins
        self.bytes_counted = 0  # body bytes that those tokens (or media allowances) stand for
        self.messages = 0
        self.media = 0

    def text(self, value: str) -> None:
        size = len(value.encode("utf-8", "surrogatepass"))
        # Never more than the string's own bytes: one token per byte bounds it already.
        self.tokens += min(len(self.encoding.encode_ordinary(value)) + PART_MARGIN, size + PART_MARGIN)
        self.bytes_counted += size

    def node(self, value: Any, depth: int) -> None:
        if depth > _MAX_DEPTH:
            return  # left to the byte bound
        if isinstance(value, list):
            for child in value:
                if isinstance(child, str):
                    self.text(child)
                else:
                    self.node(child, depth + 1)
            return
        if not isinstance(value, dict):
            return
        kind = value.get("type")
        if kind in MEDIA_TYPES or (kind is None and any(key in value for key in MEDIA_KEYS)):
            # Its tokens do not follow its bytes: the allowance stands for them. orjson writes it no longer
            # than the body holds it (no spaces, no escapes beyond JSON's own), so its bytes are not dropped twice.
            self.media += self.media_tokens
            self.bytes_counted += len(orjson.dumps(value))
            return
        if "role" in value:
            self.messages += 1
        for key, child in value.items():
            if isinstance(child, str):
                if key in _TEXT_KEYS:
                    self.text(child)
            elif isinstance(child, (dict, list)):
                self.node(child, depth + 1)


@dataclass(frozen=True, slots=True)
class CacheMarks:
    """Where an Anthropic request may write its prompt to the cache: upper bounds of the prefixes, in tokens."""

    upto_1h: int = 0
    """Tokens up to the last block cached for 1 hour (they may be written at the 1-hour rate)."""
    upto_last: int = 0
    """Tokens up to the last block marked ``cache_control`` (they may be written, at one rate or the other)."""


def cache_marks(payload: dict[str, Any]) -> CacheMarks:
    """The prefixes of an Anthropic request that its ``cache_control`` marks may write, at one token per byte.

    The cache holds a prefix, in the order tools, system, messages, up to and including a
    marked block; a request-level ``cache_control`` may cache all of it. Everything after
    the last mark is read at the input rate.
    """
    items: list[Any] = []
    tools, system, messages = payload.get("tools"), payload.get("system"), payload.get("messages")
    items += tools if isinstance(tools, list) else []
    items += system if isinstance(system, list) else [system] if system is not None else []
    items += messages if isinstance(messages, list) else []
    allowance = _TOOL_PROMPT_TOKENS if tools else 0
    marks, size = [], allowance
    for item in items:
        size += len(orjson.dumps(item)) + MESSAGE_TOKENS
        ttl = _marked(item, 0)
        if ttl is not None:
            marks.append((size, ttl))
    whole = payload.get("cache_control")
    if isinstance(whole, dict):
        marks.append((size, _ttl(whole)))
    if not marks:
        return CacheMarks()
    upto_1h = max((at for at, ttl in marks if ttl == "1h"), default=0)
    return CacheMarks(upto_1h=upto_1h, upto_last=max(at for at, _ in marks))


def _marked(value: Any, depth: int) -> str | None:
    """The longest cache lifetime marked in a tool, system block or message, if any."""
    if depth > _MAX_DEPTH:
        return None
    found: str | None = None
    if isinstance(value, dict):
        control = value.get("cache_control")
        if isinstance(control, dict):
            found = _ttl(control)
        children: Any = value.values()
    elif isinstance(value, list):
        children = value
    else:
        return None
    for child in children:
        if isinstance(child, (dict, list)):
            inner = _marked(child, depth + 1)
            if inner == "1h" or (inner is not None and found is None):
                found = inner
    return found


def _ttl(control: dict[str, Any]) -> str:
    return "1h" if control.get("ttl") == "1h" else "5m"
