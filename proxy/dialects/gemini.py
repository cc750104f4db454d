"""Google's Gemini API (generativelanguage.googleapis.com): the only module that knows its wire format.

Metered, under ``/v1beta/models/`` and ``/v1/models/`` (the version ``google-genai`` calls when
given a base URL): ``POST {model}:generateContent``, ``:streamGenerateContent`` (with
``?alt=sse``; without it the answer is one JSON array, relayed as it arrives and read item
by item), ``:embedContent`` and
``:batchEmbedContents``. ``:countTokens`` and every other path of the API are forwarded and
recorded with no tokens. A request is Gemini's when its path is under ``/v1beta/``, when it is a
``POST`` to ``/v1/models/{model}:{action}`` (OpenAI's ``GET /v1/models/{id}`` has no action), or
when it is any other ``/v1/...`` request sent by a Google SDK (``x-goog-api-key`` or
``x-goog-api-client``). Providers' ``base_url`` is the API's root: the path goes as it came.

The key comes in ``x-goog-api-key`` or a ``key=`` query parameter. The query goes upstream, but
never into a row, a log line or an error (rows keep the path alone; errors name only the origin).

Usage (``usageMetadata``), into Tollgate's one meaning per column (see ``proxy.usage``):

- ``promptTokenCount`` already includes ``cachedContentTokenCount`` (the cached part);
- ``toolUsePromptTokenCount`` is input too, outside ``promptTokenCount``;
- ``thoughtsTokenCount`` is billed as output and is not inside ``candidatesTokenCount``:
  output is their sum, and reasoning the thoughts;
- audio prompt tokens (``promptTokensDetails`` of modality ``AUDIO``) are a part of input;
- in a stream every chunk may carry running totals: the last one wins.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

import orjson

from pricing import TokenCounts
from proxy.dialects.base import Dialect, Endpoint, Headers, RequestFacts, StreamReader, read_count, read_label
from proxy.dialects.openai_requests import whole
from proxy.errors import TollgateError
from proxy.json_array import split_json_array
from proxy.keys import bearer_token
from proxy.sse import event_fields, parse_json
from proxy.usage import Usage

GENERATE = Endpoint("generate")
STREAM = Endpoint("stream_generate")
EMBED = Endpoint("embed", embeddings=True)
# The action after the model's name, lower-cased as the canonical path is.
_ACTIONS = {
    "generatecontent": GENERATE,
    "streamgeneratecontent": STREAM,
    "embedcontent": EMBED,
    "batchembedcontents": EMBED,
}
_MODEL_PATHS = ("/v1beta/models/", "/v1/models/")
_SDK_HEADERS = frozenset({b"x-goog-api-key", b"x-goog-api-client"})
_USAGE = b'"usageMetadata"'
_FINISH = b'"finishReason"'
_MEDIA_KEYS = ("inlineData", "inline_data", "fileData", "file_data")
# Google's error statuses by HTTP status, for refusals Tollgate writes itself.
_STATUSES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    413: "INVALID_ARGUMENT",
    415: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


class Gemini(Dialect):
    kind = "gemini"
    sdk_base_url = ("GOOGLE_GEMINI_BASE_URL", "")  # Gemini CLI's variable
    key_header = b"x-goog-api-key"
    key_hint = "'x-goog-api-key: <key>' (or a key= query parameter)"
    key_headers = frozenset({b"x-goog-api-key", b"authorization"})

    def serves(self, canonical_path: str) -> bool:
        return canonical_path.startswith("/v1beta/")

    def claims(self, method: str, canonical_path: str, headers: Headers) -> bool:
        if canonical_path.startswith("/v1beta/"):
            return True
        if not canonical_path.startswith("/v1/"):
            return False
        if method == "POST" and canonical_path.startswith("/v1/models/") and ":" in canonical_path[11:]:
            return True
        return any(name in _SDK_HEADERS for name, _ in headers)

    def client_key(self, headers: Headers, query: bytes) -> str | None:
        bearer: str | None = None
        for name, value in headers:
            if name == b"x-goog-api-key":
                return value.strip().decode("latin-1") or None
            if name == b"authorization":
                bearer = bearer_token(value)
        return _query_key(query) or bearer

    def provider_key_header(self, api_key: str) -> tuple[str, str]:
        return "x-goog-api-key", api_key

    def upstream_query(self, query: bytes, managed: bool) -> bytes:
        if not managed or b"key=" not in query:
            return query
        # The client's key= is a Tollgate key: it stays here, and the provider's goes in its header.
        return b"&".join(part for part in query.split(b"&") if not part.startswith(b"key="))

    def model_in_path(self, path: str) -> str | None:
        for prefix in _MODEL_PATHS:
            if path.startswith(prefix):
                return read_label(path[len(prefix) :].split(":", 1)[0].split("/", 1)[0])
        return None

    def endpoint(self, method: str, canonical_path: str) -> Endpoint | None:
        if method != "POST" or not canonical_path.startswith(_MODEL_PATHS):
            return None
        _, colon, action = canonical_path.rpartition(":")
        return _ACTIONS.get(action) if colon else None

    def upstream_path(self, raw_path: str) -> str:
        return raw_path  # base_url is the API's root

    def read_request(self, endpoint: Endpoint, payload: dict[str, Any]) -> RequestFacts:
        config = payload.get("generationConfig", payload.get("generation_config"))
        config = config if isinstance(config, dict) else {}
        cap = config.get("maxOutputTokens", config.get("max_output_tokens"))
        candidates = whole(config.get("candidateCount", config.get("candidate_count")))
        cached = payload.get("cachedContent", payload.get("cached_content"))
        return RequestFacts(
            model=None,  # named in the path
            stream=endpoint is STREAM,
            output_cap=whole(cap),
            choices=max(candidates or 1, 1),
            media_parts=_media_parts(payload),
            stored_input=frozenset({"cachedContent"}) if cached else frozenset(),
        )

    def with_output_cap(self, endpoint: Endpoint, payload: dict[str, Any], cap: int) -> dict[str, Any] | None:
        if endpoint.embeddings:
            return None
        # The request's own spelling is kept: camelCase, or the snake_case the API accepts too.
        name = "generation_config" if "generation_config" in payload else "generationConfig"
        config = payload.get(name)
        config = dict(config) if isinstance(config, dict) else {}
        key = "max_output_tokens" if "max_output_tokens" in config else "maxOutputTokens"
        return {**payload, name: {**config, key: cap}}

    def usage_from_body(self, body: bytes) -> Usage | None:
        return usage_from_body(body)

    def streams_json(self, endpoint: Endpoint) -> bool:
        return endpoint is STREAM

    def stream_reader(self, hide_usage: bool) -> StreamReader:
        return _StreamReader()

    def prompt_text(self, payload: dict[str, Any] | None) -> tuple[str, int]:
        if not payload:
            return "", 0
        contents = payload.get("contents")
        contents = contents if isinstance(contents, list) else []
        parts = [payload.get("systemInstruction"), contents, payload.get("content"), payload.get("requests")]
        return "\n".join(_texts(parts)), len(contents)

    def answer_text(self, body: bytes) -> str:
        return "".join(_texts(_candidates(parse_json(body))))

    def error_body(self, error: TollgateError) -> bytes:
        status = _STATUSES.get(error.status, "INTERNAL" if error.status >= 500 else "FAILED_PRECONDITION")
        return orjson.dumps({"error": {"code": error.status, "message": error.message, "status": status}})


def usage_from_metadata(metadata: Any, model: Any = None) -> Usage | None:
    """Usage from Gemini's ``usageMetadata`` (and the answer's ``modelVersion``); None if it is no object."""
    if not isinstance(metadata, dict):
        return None
    thoughts = read_count(metadata, "thoughtsTokenCount")
    details = metadata.get("promptTokensDetails")
    audio = (
        sum(read_count(d, "tokenCount") for d in details if isinstance(d, dict) and d.get("modality") == "AUDIO")
        if isinstance(details, list)
        else 0
    )
    prompt = read_count(metadata, "promptTokenCount")
    tokens = TokenCounts(
        input=prompt + read_count(metadata, "toolUsePromptTokenCount"),
        cached_input=min(read_count(metadata, "cachedContentTokenCount"), prompt),
        audio_input=min(audio, prompt),
        output=read_count(metadata, "candidatesTokenCount") + thoughts,
        reasoning=thoughts,
    )
    return Usage(tokens=tokens, model=read_label(model), provider_usage=metadata)


def usage_from_object(obj: Any) -> Usage | None:
    """Usage of one parsed answer, or of the last answer of a streamed JSON array that carries any."""
    if isinstance(obj, list):
        found = [usage_from_object(item) for item in obj]
        return next((usage for usage in reversed(found) if usage is not None), None)
    if not isinstance(obj, dict):
        return None
    return usage_from_metadata(obj.get("usageMetadata"), obj.get("modelVersion"))


def usage_from_body(body: bytes) -> Usage | None:
    """Usage of a whole answer (or a whole streamed JSON array), or None when it has none."""
    return usage_from_object(parse_json(body))


class _StreamReader(StreamReader):
    """Reads ``alt=sse`` events, or a JSON array's items: each chunk's running totals replace the last.

    A finish reason ends the stream.
    """

    def __init__(self) -> None:
        self.usage: Usage | None = None
        self.finished = False

    def read(self, event: bytes) -> bytes:
        if _USAGE not in event:
            return event
        _, data, _ = event_fields(event)
        usage = usage_from_object(parse_json(data)) if data is not None else None
        if usage is not None:
            self.usage = usage
        if _FINISH in event:
            self.finished = True
        return event

    def read_item(self, item: bytes) -> None:
        if _USAGE in item or _FINISH in item:
            answer = parse_json(item)
            usage = usage_from_object(answer)
            if usage is not None:
                self.usage = usage
            if _FINISH in item:
                self.finished = True

    def streamed_text(self, events: bytes) -> str:
        if events.lstrip()[:1] == b"[":  # a JSON array, perhaps cut short
            return "".join(_texts(_candidates([parse_json(item) for item in split_json_array(events)])))
        parts: list[str] = []
        for line in events.splitlines():
            if line.startswith(b"data:"):
                parts.extend(_texts(_candidates(parse_json(line[5:]))))
        return "".join(parts)


def _query_key(query: bytes) -> str | None:
    if b"key=" not in query:
        return None
    for name, value in parse_qsl(query.decode("latin-1")):
        if name == "key":
            return value or None
    return None


def _candidates(answer: Any) -> list[Any]:
    if isinstance(answer, list):
        return [c for item in answer for c in _candidates(item)]
    candidates = answer.get("candidates") if isinstance(answer, dict) else None
    return [c.get("content") for c in candidates if isinstance(c, dict)] if isinstance(candidates, list) else []


def _texts(value: Any, depth: int = 0) -> list[str]:
    """The text parts inside contents, a content, parts or requests."""
    found: list[str] = []
    if depth > 16:
        return found
    if isinstance(value, list):
        for item in value:
            found.extend(_texts(item, depth + 1))
    elif isinstance(value, dict):
        if isinstance(value.get("text"), str):
            found.append(value["text"])
        for key in ("parts", "content", "functionCall", "args"):
            if isinstance(value.get(key), (dict, list)):
                found.extend(_texts(value[key], depth + 1))
    return found


def _media_parts(payload: dict[str, Any]) -> int:
    """Inline images, audio and files in ``contents``: their tokens do not follow their bytes."""
    count = 0
    contents = payload.get("contents")
    for content in contents if isinstance(contents, list) else ():
        parts = content.get("parts") if isinstance(content, dict) else None
        for part in parts if isinstance(parts, list) else ():
            if isinstance(part, dict) and any(
                k in part for k in ("inlineData", "inline_data", "fileData", "file_data")
            ):
                count += 1
    return count
