"""OpenAI's API, and those that copy it: the only module that knows its wire format.

Metered: ``POST /v1/chat/completions``, ``/v1/completions``, ``/v1/embeddings`` and
``/v1/responses``, as JSON and as Server-Sent Events. Every other ``/v1/...`` path is
forwarded and recorded with no tokens. Providers' ``base_url`` ends in ``/v1``.

Usage reads, in both of OpenAI's shapes (cached, cache-write and audio input are
*parts* of the input count, and reasoning and audio output parts of the output count,
as OpenAI reports them; pricing counts each once):

- Chat Completions, Completions, Embeddings: ``prompt_tokens``, ``completion_tokens``,
  ``prompt_tokens_details.{cached_tokens, cache_write_tokens, audio_tokens}``,
  ``completion_tokens_details.{reasoning_tokens, audio_tokens}``;
- Responses: ``input_tokens``, ``output_tokens``, ``input_tokens_details.{cached_tokens,
  cache_write_tokens, cache_write_tokens_details}``, ``output_tokens_details.reasoning_tokens``.

Chat and Completions streams report usage only with ``stream_options.include_usage``:
Tollgate turns it on when the client did not, and hides what that adds (the usage-only
chunk, and the ``"usage": null`` member of every other chunk); see ``_StreamReader``.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, ClassVar

import orjson

from pricing import TokenCounts, UnitCounts
from proxy.dialects import media
from proxy.dialects.base import Dialect, Endpoint, RequestFacts, StreamReader, read_count, read_label
from proxy.dialects.openai_requests import read_request
from proxy.dialects.units import cites_the_web, openai_units
from proxy.errors import TollgateError, render_error
from proxy.multipart import Form
from proxy.recording.records import MAX_TIER_CHARS, label_problem
from proxy.sse import event_fields, parse_json
from proxy.usage import Usage

ENDPOINTS = {
    "/v1/chat/completions": Endpoint("chat", usage_opt_in=True),
    "/v1/completions": Endpoint("completions", usage_opt_in=True),
    "/v1/embeddings": Endpoint("embeddings", embeddings=True),
    "/v1/responses": Endpoint("responses"),
    "/v1/images/generations": Endpoint("images", media=media.IMAGES),
    "/v1/images/edits": Endpoint("image_edits", media=media.IMAGES, form=True),
    "/v1/audio/speech": Endpoint("speech", media=media.SPEECH),
    "/v1/audio/transcriptions": Endpoint("transcriptions", media=media.TRANSCRIPTION, form=True),
    "/v1/audio/translations": Endpoint("translations", media=media.TRANSCRIPTION, form=True),
}
VECTOR_SEARCH = Endpoint("vector_store_search", media=media.VECTOR_SEARCH)
_VECTOR_SEARCH = re.compile(r"/v1/vector_stores/[^/]+/search")
METERED_PATHS = frozenset(ENDPOINTS)
# Responses API stream events that carry the final response with its usage.
FINAL_RESPONSE_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})
_INCLUDE_USAGE = b'"stream_options":{"include_usage":true},'
_DONE = b"[DONE]"
_USAGE = b'"usage"'
_CITATION = b'"url_citation"'
# Stream events of the image and speech endpoints that carry their usage.
_MEDIA_DONE_EVENTS = frozenset({"image_generation.completed", "image_edit.completed", "speech.audio.done"})
_NULL_MEMBER = b',"usage":null'  # as OpenAI writes it in each chunk of a stream asked for its usage
_USAGE_NULL = re.compile(rb'"usage"[ \t]*:[ \t]*null')
# The "usage": null member of a one-line JSON object, after another member or as the first one.
_NULL_MEMBER_AFTER = re.compile(rb',[ \t]*"usage"[ \t]*:[ \t]*null(?=[ \t]*[,}])')
_NULL_MEMBER_FIRST = re.compile(rb'(?<=\{)[ \t]*"usage"[ \t]*:[ \t]*null[ \t]*(?:,[ \t]*)?(?=["}])')
# A fetch, or a cancel, of one stored response (matched as proxy.paths judges paths: any case, ;params, a slash).
_JOB_FETCH = re.compile(r"/v1/responses/([^/;]+)(?:;[^/]*)?(/cancel)?(?:;[^/]*)?/?", re.IGNORECASE)
_QUEUED = frozenset({"queued", "in_progress"})
OUTPUT_CAPS = ("max_tokens", "max_completion_tokens", "max_output_tokens")
_OWN_CAP = {"chat": "max_completion_tokens", "completions": "max_tokens", "responses": "max_output_tokens"}
_FINISHED = frozenset({"completed", "failed", "incomplete", "cancelled"})


class OpenAI(Dialect):
    kind = "openai"
    # With a managed key the provider account is Tollgate's: its organisation and project stay private.
    account_headers = frozenset({b"openai-organization", b"openai-project"})
    sdk_base_url: ClassVar[tuple[str, str] | None] = ("OPENAI_BASE_URL", "/v1")

    def serves(self, canonical_path: str) -> bool:
        return canonical_path.startswith("/v1/")

    def endpoint(self, method: str, canonical_path: str) -> Endpoint | None:
        if method != "POST":
            return None
        found = ENDPOINTS.get(canonical_path)
        return VECTOR_SEARCH if found is None and _VECTOR_SEARCH.fullmatch(canonical_path) else found

    def upstream_path(self, raw_path: str) -> str:
        return raw_path[3:]  # base_url ends in /v1

    def read_request(self, endpoint: Endpoint, payload: dict[str, Any]) -> RequestFacts:
        if endpoint.media is not None:
            return media.facts_from_json(endpoint.media, payload)
        return read_request(payload)

    def read_form(self, endpoint: Endpoint, form: Form) -> RequestFacts:
        return media.facts_from_form(endpoint.media or media.TRANSCRIPTION, form)

    def usage_from_answer(self, endpoint: Endpoint, facts: RequestFacts, body: bytes) -> tuple[Usage | None, bool]:
        if facts.media is not None:
            return media.usage_of(facts.media, facts.model, body)
        return usage_from_body(body), False

    def with_usage_reporting(self, endpoint: Endpoint, body: bytes, payload: dict[str, Any]) -> tuple[bytes, bool]:
        if not endpoint.usage_opt_in or payload.get("stream") is not True:
            return body, False
        options = payload.get("stream_options")
        if isinstance(options, dict) and options.get("include_usage") is True:
            return body, False
        if options is None and "stream_options" not in payload:
            # Insert the member after the opening brace: the rest of the body goes upstream byte for byte.
            start = body.index(b"{") + 1
            return body[:start] + _INCLUDE_USAGE + body[start:], True
        payload["stream_options"] = {**(options if isinstance(options, dict) else {}), "include_usage": True}
        return orjson.dumps(payload), True

    def with_output_cap(self, endpoint: Endpoint, payload: dict[str, Any], cap: int) -> dict[str, Any] | None:
        if endpoint.embeddings:
            return None
        # Every cap the request sets is lowered (the provider may honour any); with none, the endpoint's own is set.
        present = [name for name in OUTPUT_CAPS if name in payload]
        return {**payload, **{name: cap for name in present or [_OWN_CAP[endpoint.name]]}}

    def usage_from_body(self, body: bytes) -> Usage | None:
        return usage_from_body(body)

    def created_object(self, method: str, canonical_path: str, body: bytes) -> str | None:
        if method != "POST" or canonical_path != "/v1/vector_stores":
            return None
        obj = parse_json(body)
        found = obj.get("id") if isinstance(obj, dict) and obj.get("object") == "vector_store" else None
        return found if isinstance(found, str) and 0 < len(found) <= 128 and label_problem(found) is None else None

    def stream_reader(self, hide_usage: bool) -> StreamReader:
        return _StreamReader(hide_usage)

    def prompt_text(self, payload: dict[str, Any] | None) -> tuple[str, int]:
        if not payload:
            return "", 0
        messages = payload.get("messages")
        if isinstance(messages, list):
            return "\n".join(_strings(messages)), len(messages)
        return "\n".join(_strings([payload.get("input"), payload.get("prompt"), payload.get("instructions")])), 0

    def answer_text(self, body: bytes) -> str:
        data = parse_json(body)
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

    def queued_job(self, body: bytes) -> str | None:
        obj = parse_json(body)
        if not isinstance(obj, dict) or obj.get("background") is not True or obj.get("status") not in _QUEUED:
            return None
        return obj["id"] if isinstance(obj.get("id"), str) else None

    def fetches_job(self, method: str, path: str) -> str | None:
        found = _JOB_FETCH.fullmatch(path)
        if found is None or (method, bool(found[2])) not in (("GET", False), ("POST", True)):
            return None
        return found[1]

    def finished_job(self, body: bytes) -> bool:
        obj = parse_json(body)
        return isinstance(obj, dict) and obj.get("status") in _FINISHED

    def error_body(self, error: TollgateError) -> bytes:
        return render_error(error)


def _count(table: Any, key: str) -> int:
    if not isinstance(table, dict):
        return 0
    value = table.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return 0
    return value


def usage_from_object(obj: Any) -> Usage | None:
    """Usage of a parsed response object (``{"usage": {...}, "service_tier": ...}``); never raises."""
    if not isinstance(obj, dict):
        return None
    usage = obj.get("usage")
    if not isinstance(usage, dict):
        return None
    # What the provider says is kept only if a row can hold it: a bad value would fail the row's whole batch.
    tier = obj.get("service_tier")
    service_tier = (
        tier if isinstance(tier, str) and len(tier) <= MAX_TIER_CHARS and label_problem(tier) is None else None
    )
    served = obj.get("model")
    model = served if isinstance(served, str) and label_problem(served) is None else None
    if "input_tokens" in usage or "output_tokens" in usage:
        in_details, out_details = usage.get("input_tokens_details"), usage.get("output_tokens_details")
        prompt, completion = _count(usage, "input_tokens"), _count(usage, "output_tokens")
        cached = _count(in_details, "cached_tokens")
        short, long = _cache_writes(in_details)
    else:
        in_details, out_details = usage.get("prompt_tokens_details"), usage.get("completion_tokens_details")
        prompt, completion = _count(usage, "prompt_tokens"), _count(usage, "completion_tokens")
        cached = _count(in_details, "cached_tokens") or _count(usage, "cache_read_input_tokens")
        short, long = _cache_writes(in_details)
        short = short or _count(usage, "cache_creation_input_tokens")
    tokens = TokenCounts(
        input=prompt,
        cached_input=cached,
        cache_write=short,
        cache_write_12h=long,
        audio_input=_count(in_details, "audio_tokens"),
        output=completion,
        reasoning=_count(out_details, "reasoning_tokens"),
        audio_output=_count(out_details, "audio_tokens"),
    )
    return Usage(tokens=tokens, service_tier=service_tier, model=model, provider_usage=usage, units=openai_units(obj))


def _cache_writes(details: Any) -> tuple[int, int]:
    """(30-minute, 12-hour) cache writes from OpenAI's token details.

    ``cache_write_tokens`` is every write; ``cache_write_tokens_details`` may split off the 12-hour ones,
    and what the split leaves is priced at the 30-minute rate, never dropped. ``cache_creation_tokens`` is
    the older name.
    """
    total = _count(details, "cache_write_tokens") or _count(details, "cache_creation_tokens")
    split = details.get("cache_write_tokens_details") if isinstance(details, dict) else None
    long = min(_count(split, "ttl_12h_tokens"), total)
    return total - long, long


def usage_from_body(body: bytes) -> Usage | None:
    """Usage of a whole JSON answer, or None when it has none."""
    return usage_from_object(parse_json(body))


def usage_from_event(data: bytes) -> Usage | None:
    """Usage carried by one SSE ``data:`` payload, or None.

    A chat or completions chunk carries it at the top level (the final chunk, when
    ``stream_options.include_usage`` is on); a Responses API stream carries it in the
    ``response`` of its ``response.completed`` event.
    """
    return usage_from_event_object(parse_json(data))


def usage_from_event_object(obj: Any) -> Usage | None:
    if not isinstance(obj, dict):
        return None
    kind = obj.get("type")
    if kind in FINAL_RESPONSE_EVENTS:
        return usage_from_object(obj.get("response"))
    usage = usage_from_object(obj)
    if usage is not None and kind in _MEDIA_DONE_EVENTS:
        return _media_stream_usage(kind, obj, usage)
    return usage


def _media_stream_usage(kind: str, obj: dict[str, Any], usage: Usage) -> Usage:
    """A streamed image's tokens are image tokens, and streamed speech's output tokens are audio."""
    tokens = usage.tokens
    if kind == "speech.audio.done":
        return dataclasses.replace(usage, tokens=dataclasses.replace(tokens, audio_output=tokens.output))
    details = obj["usage"].get("input_tokens_details")
    units = UnitCounts(
        images=1,
        image_size=read_label(obj.get("size"), 32),
        image_quality=read_label(obj.get("quality"), 16),
        image_tokens_in=min(read_count(details, "image_tokens"), tokens.input),
        image_tokens_out=tokens.output,
    )
    return dataclasses.replace(usage, units=units)


class _StreamReader(StreamReader):
    """Reads OpenAI's events: ``data: [DONE]`` or a final ``response.*`` event ends a stream, never text."""

    def __init__(self, hide_usage: bool) -> None:
        self.hide_usage = hide_usage
        self.usage: Usage | None = None
        self.finished = False
        self._cited: set[int] = set()  # choices whose deltas carried a url_citation: each ran a search

    def read(self, event: bytes) -> bytes:
        if _CITATION in event:
            self._cite(event)
        carries_usage = _USAGE in event
        if not carries_usage and _DONE not in event and b"response." not in event:
            return event  # most events: content deltas with nothing to read
        if self.hide_usage and carries_usage:
            if _is_plain_null_usage(event):  # most events of a stream Tollgate asked for usage: as below, at once
                return event.replace(_NULL_MEMBER, b"", 1)
        kind, data, data_lines = event_fields(event)
        if data is None:
            return event
        if data == _DONE:
            self.finished = True
            return event
        obj: Any = None
        if carries_usage and len(_USAGE_NULL.findall(data)) < data.count(_USAGE):
            obj = parse_json(data)
            usage = usage_from_event_object(obj)
            if usage is not None:
                self.usage = self._with_citations(usage)
                if self.hide_usage and isinstance(obj, dict) and obj.get("choices") == []:
                    return b""  # the usage-only chunk that Tollgate asked for
        if kind is not None:
            self.finished = self.finished or kind.decode("latin-1") in FINAL_RESPONSE_EVENTS
        elif b'"response.' in data:
            obj = parse_json(data) if obj is None else obj
            self.finished = self.finished or (isinstance(obj, dict) and obj.get("type") in FINAL_RESPONSE_EVENTS)
        if self.hide_usage and carries_usage:
            return _without_null_usage(event, data, data_lines)
        return event

    def _cite(self, event: bytes) -> None:
        _, data, _ = event_fields(event)
        obj = parse_json(data) if data is not None else None
        choices = obj.get("choices") if isinstance(obj, dict) else None
        for choice in choices if isinstance(choices, list) else ():
            delta = choice.get("delta") if isinstance(choice, dict) else None
            if isinstance(delta, dict) and cites_the_web(delta.get("annotations")):
                index = choice.get("index")
                self._cited.add(index if isinstance(index, int) else 0)
        if self.usage is not None:
            self.usage = self._with_citations(self.usage)

    def _with_citations(self, usage: Usage) -> Usage:
        if not self._cited or usage.units.web_search_calls:
            return usage
        return dataclasses.replace(usage, units=dataclasses.replace(usage.units, web_search_calls=len(self._cited)))

    def streamed_text(self, events: bytes) -> str:
        parts: list[str] = []
        for line in events.splitlines():
            if not line.startswith(b"data:"):
                continue
            data = parse_json(line[5:])
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


def _is_plain_null_usage(event: bytes) -> bool:
    """Whether ``event`` is one ``data:`` line whose only usage member is ``,"usage":null`` before a ``,`` or ``}``.

    ``_without_null_usage`` would cut exactly that member, and nothing else is read from such an event.
    """
    at = event.find(_NULL_MEMBER)
    end = at + len(_NULL_MEMBER)
    return (
        at >= 0
        and event[end : end + 1] in (b",", b"}")
        and event.count(_USAGE) == 1
        and event.startswith(b"data:")
        and event.find(b"\n") == len(event) - 2
        and b"\r" not in event
        and b'"response.' not in event
    )


def _without_null_usage(event: bytes, data: bytes, data_lines: int) -> bytes:
    """``event`` without the top-level ``"usage": null`` member of its data."""
    if data_lines == 1:
        cut, found = _NULL_MEMBER_AFTER.subn(b"", event, count=1)
        return cut if found else _NULL_MEMBER_FIRST.sub(b"", event, count=1)
    # JSON spread over several data lines (rare): the member may span lines, so the data is rewritten
    # on one line. The client's JSON is the same but for the member Tollgate added.
    obj = parse_json(data)
    if not isinstance(obj, dict) or "usage" not in obj or obj["usage"] is not None:
        return event
    del obj["usage"]
    lines = event.splitlines(keepends=True)
    ending = next((line[len(line.rstrip(b"\r\n")) :] for line in lines if line.rstrip(b"\r\n")), b"\n")
    out: list[bytes] = []
    written = False
    for line in lines:
        if line.startswith(b"data"):
            if not written:
                out.append(b"data: " + orjson.dumps(obj) + ending)
                written = True
        elif line.rstrip(b"\r\n"):
            out.append(line)
    return b"".join(out) + ending


def _strings(value: Any) -> list[str]:
    """The text inside a message, content parts or tool call."""
    found: list[str] = []
    if isinstance(value, str):
        found.append(value)
    elif isinstance(value, list):
        for item in value:
            found.extend(_strings(item))
    elif isinstance(value, dict):
        for key in ("content", "text", "input", "prompt", "arguments", "refusal"):
            if key in value:
                found.extend(_strings(value[key]))
    return found
