"""Anthropic's Messages API: the only module that knows its wire format.

Metered: ``POST /v1/messages``, as JSON and as Server-Sent Events. ``/v1/messages/count_tokens``,
``/v1/models`` and every other path of the API are forwarded and recorded with no tokens. A
request is Anthropic's when its path is under ``/v1/messages``, or when it is any other ``/v1/...``
path and carries ``anthropic-version`` (so ``GET /v1/models`` is told apart from OpenAI's).
Providers' ``base_url`` is the API's root, ``https://api.anthropic.com``: the path goes as it came.

Usage, into Tollgate's one meaning per column (see ``proxy.usage``):

- ``input_tokens`` excludes cache reads and writes, so Tollgate's input is
  ``input_tokens + cache_creation_input_tokens + cache_read_input_tokens``;
- ``cache_read_input_tokens`` is the cached part; ``cache_creation_input_tokens`` the written
  part, which ``cache_creation.ephemeral_1h_input_tokens`` splits: the 1-hour writes are priced
  at their rate, and every other write (``ephemeral_5m_input_tokens``, or writes the split
  does not account for) at the 5-minute rate, never dropped;
- in a stream, ``message_start`` carries the first usage and ``message_delta`` cumulative
  counts: each count's last value wins, never a sum;
- ``service_tier`` (``standard``, ``priority``, ``batch``) chooses the rates.

Streams need no change: the client gets the provider's bytes as they came.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson

from pricing import TokenCounts
from proxy.dialects.base import Dialect, Endpoint, Headers, RequestFacts, StreamReader, read_count, read_label
from proxy.dialects.openai_requests import read_request as read_openai_request
from proxy.dialects.openai_requests import whole
from proxy.dialects.units import anthropic_units
from proxy.errors import TollgateError
from proxy.keys import bearer_token
from proxy.recording.records import MAX_TIER_CHARS
from proxy.sse import event_fields, parse_json
from proxy.usage import Usage

MESSAGES = Endpoint("messages")
_MESSAGES_PATH = "/v1/messages"
_VERSION_HEADER = b"anthropic-version"
_USAGE = b'"usage"'
_STOP = b"message_stop"
# Anthropic's error types by status, for refusals Tollgate writes itself.
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
}
_TEXT_KEYS = ("text", "thinking", "partial_json")
_MIN_THINKING_BUDGET = 1024


class Anthropic(Dialect):
    kind = "anthropic"
    sdk_base_url = ("ANTHROPIC_BASE_URL", "")  # Claude Code and the anthropic SDK add /v1 themselves
    key_header = b"x-api-key"
    key_hint = "'x-api-key: <key>' (or 'Authorization: Bearer <key>')"
    key_headers = frozenset({b"x-api-key", b"authorization"})
    account_headers = frozenset({b"anthropic-organization-id"})

    def serves(self, canonical_path: str) -> bool:
        return canonical_path == _MESSAGES_PATH or canonical_path.startswith("/v1/messages/")

    def claims(self, method: str, canonical_path: str, headers: Headers) -> bool:
        if self.serves(canonical_path):
            return True
        if not canonical_path.startswith("/v1/"):
            return False
        for name, _ in headers:  # every OpenAI request asks this: a loop, not a generator
            if name == _VERSION_HEADER:
                return True
        return False

    def client_key(self, headers: Headers, query: bytes) -> str | None:
        bearer: str | None = None
        for name, value in headers:
            if name == b"x-api-key":
                return value.strip().decode("latin-1") or None
            if name == b"authorization":
                bearer = bearer_token(value)
        return bearer

    def provider_key_header(self, api_key: str) -> tuple[str, str]:
        return "x-api-key", api_key

    def endpoint(self, method: str, canonical_path: str) -> Endpoint | None:
        return MESSAGES if method == "POST" and canonical_path == _MESSAGES_PATH else None

    def upstream_path(self, raw_path: str) -> str:
        return raw_path  # base_url is the API's root

    def read_request(self, endpoint: Endpoint, payload: dict[str, Any]) -> RequestFacts:
        facts = read_openai_request(payload)  # model, stream, media parts and stored input read alike
        metadata = payload.get("metadata")
        user = read_label(metadata.get("user_id")) if isinstance(metadata, dict) else None
        tool_uses = [
            whole(tool.get("max_uses"))
            for tool in payload.get("tools") or ()
            if isinstance(tool, dict) and isinstance(tool.get("type"), str) and tool["type"] in facts.hosted_tools
        ]
        return dataclasses.replace(
            facts,
            user=user,
            output_cap=whole(payload.get("max_tokens")),
            choices=1,
            fallback_models=(),
            # A server tool's max_uses caps how often it feeds results back; without it, nothing does.
            max_tool_calls=sum(t for t in tool_uses if t is not None) if tool_uses and None not in tool_uses else None,
        )

    def with_output_cap(self, endpoint: Endpoint, payload: dict[str, Any], cap: int) -> dict[str, Any] | None:
        thinking = payload.get("thinking")
        budget = whole(thinking.get("budget_tokens")) if isinstance(thinking, dict) else None
        if not isinstance(thinking, dict) or budget is None or budget < cap:
            return {**payload, "max_tokens": cap}
        # The thinking budget must stay below max_tokens, and at least 1,024: it is lowered with it, if it can be.
        if cap - 1 < _MIN_THINKING_BUDGET:
            return None
        return {**payload, "max_tokens": cap, "thinking": {**thinking, "budget_tokens": cap - 1}}

    def usage_from_body(self, body: bytes) -> Usage | None:
        return usage_from_body(body)

    def stream_reader(self, hide_usage: bool) -> StreamReader:
        return _StreamReader()

    def prompt_text(self, payload: dict[str, Any] | None) -> tuple[str, int]:
        if not payload:
            return "", 0
        messages = payload.get("messages")
        messages = messages if isinstance(messages, list) else []
        return "\n".join(_strings([payload.get("system"), messages])), len(messages)

    def answer_text(self, body: bytes) -> str:
        message = parse_json(body)
        return "".join(_strings(message.get("content"))) if isinstance(message, dict) else ""

    def error_body(self, error: TollgateError) -> bytes:
        kind = _ERROR_TYPES.get(error.status, "invalid_request_error" if error.status < 500 else "api_error")
        return orjson.dumps({"type": "error", "error": {"type": kind, "message": error.message}})


def usage_from_counts(usage: Any, model: Any = None) -> Usage | None:
    """Usage from Anthropic's ``usage`` object (and the message's ``model``); None if it is no object."""
    if not isinstance(usage, dict):
        return None
    uncached = read_count(usage, "input_tokens")
    read = read_count(usage, "cache_read_input_tokens")
    split = usage.get("cache_creation")
    short, long = read_count(split, "ephemeral_5m_input_tokens"), read_count(split, "ephemeral_1h_input_tokens")
    # Every write is counted: the total, or the split's sum should the split say more.
    writes = max(read_count(usage, "cache_creation_input_tokens"), short + long)
    tokens = TokenCounts(
        input=uncached + read + writes,
        cached_input=read,
        cache_write=writes - long,
        cache_write_1h=long,
        output=read_count(usage, "output_tokens"),
    )
    return Usage(
        tokens=tokens,
        service_tier=read_label(usage.get("service_tier"), MAX_TIER_CHARS),
        model=read_label(model),
        provider_usage=usage,
        units=anthropic_units(usage),
    )


def usage_from_body(body: bytes) -> Usage | None:
    """Usage of a whole Messages answer, or None when it has none."""
    message = parse_json(body)
    if not isinstance(message, dict):
        return None
    return usage_from_counts(message.get("usage"), message.get("model"))


class _StreamReader(StreamReader):
    """Reads a Messages stream: ``message_start``'s usage, then ``message_delta``'s, each count's last value kept."""

    def __init__(self) -> None:
        self.usage: Usage | None = None
        self.finished = False
        self._counts: dict[str, Any] = {}
        self._model: Any = None

    def read(self, event: bytes) -> bytes:
        if _USAGE not in event:
            if _STOP in event and event_fields(event)[0] == _STOP:
                self.finished = True
            return event  # most events: content deltas with nothing to read
        _, data, _ = event_fields(event)
        obj = parse_json(data) if data is not None else None
        if not isinstance(obj, dict):
            return event
        kind = obj.get("type")
        if kind == "message_start" and isinstance(obj.get("message"), dict):
            message = obj["message"]
            self._model = message.get("model")
            self._take(message.get("usage"))
        elif kind == "message_delta":
            self._take(obj.get("usage"))
        return event

    def _take(self, usage: Any) -> None:
        if not isinstance(usage, dict):
            return
        # Cumulative counts: a later event's value replaces the earlier one; absent or null ones keep it.
        self._counts.update((key, value) for key, value in usage.items() if value is not None)
        self.usage = usage_from_counts(self._counts, self._model)

    def streamed_text(self, events: bytes) -> str:
        parts: list[str] = []
        for line in events.splitlines():
            if not line.startswith(b"data:"):
                continue
            obj = parse_json(line[5:])
            delta = obj.get("delta") if isinstance(obj, dict) and obj.get("type") == "content_block_delta" else None
            if isinstance(delta, dict):
                parts.extend(_strings(delta))
        return "".join(parts)


def _strings(value: Any) -> list[str]:
    """The text inside a message, its content blocks, a tool's input or a delta."""
    found: list[str] = []
    if isinstance(value, str):
        found.append(value)
    elif isinstance(value, list):
        for item in value:
            found.extend(_strings(item))
    elif isinstance(value, dict):
        for key in (*_TEXT_KEYS, "content"):
            if key in value:
                found.extend(_strings(value[key]))
        if isinstance(value.get("input"), dict):
            found.append(orjson.dumps(value["input"]).decode())
    return found
