"""OpenAI's image and audio endpoints: what a request says it will cost, and what its answer shows it used.

- ``/v1/images/generations`` (JSON) and ``/v1/images/edits`` (multipart, or JSON): the answer's ``usage``
  (gpt-image-1: text and image tokens) where it has one, else the images in ``data`` at the size and
  quality the answer (or the request) names;
- ``/v1/audio/speech`` (JSON in, audio out): the characters of ``input``, counted from the request;
- ``/v1/audio/transcriptions`` and ``/translations`` (multipart): the answer's ``usage`` (``tokens``
  for gpt-4o-transcribe, ``duration`` seconds for whisper-1), else a verbose answer's ``duration``,
  else the uploaded audio's duration from its WAV header, else an estimate from its size at 128 kbit/s
  (flagged ``estimated``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final

from pricing import TokenCounts, UnitCounts
from proxy.dialects.base import RequestFacts, read_count, read_label
from proxy.dialects.openai_requests import whole
from proxy.multipart import Form, wav_duration_ms
from proxy.sse import parse_json
from proxy.usage import Usage

IMAGES: Final = "images"
SPEECH: Final = "speech"
TRANSCRIPTION: Final = "transcription"
VECTOR_SEARCH: Final = "vector_search"
_ESTIMATE_BITS_PER_SECOND: Final = 128_000  # a common compressed-audio rate, for uploads Tollgate cannot read
_NO_TOKENS: Final = TokenCounts()
_MAX_SECONDS: Final = 10.0**9  # a duration past this is no audio's (held, so the row can hold it)


@dataclass(frozen=True, slots=True)
class MediaFacts:
    """What an image or audio request says about its cost."""

    kind: str  # IMAGES, SPEECH or TRANSCRIPTION
    images: int = 1
    size: str | None = None
    quality: str | None = None
    characters: int = 0
    audio_ms: int | None = None  # the uploaded audio's duration, where its header tells it
    upload_bytes: int = 0


def facts_from_json(kind: str, payload: dict[str, Any]) -> RequestFacts:
    """The facts of a JSON image, speech or vector store search request."""
    text = payload.get("input")
    media = MediaFacts(
        kind,
        images=whole(payload.get("n")) or 1,
        size=read_label(payload.get("size"), 32),
        quality=read_label(payload.get("quality"), 16),
        characters=len(text) if isinstance(text, str) else 0,
    )
    return _facts(payload.get("model"), payload.get("user"), media)


def facts_from_form(kind: str, form: Form) -> RequestFacts:
    """The facts of a multipart transcription, translation or image edit."""
    fields = form.fields
    audio = next((f for f in form.files if f.name == "file"), None)
    n = whole(_number(fields.get("n"))) or 1
    media = MediaFacts(
        kind,
        images=n,
        size=read_label(fields.get("size"), 32),
        quality=read_label(fields.get("quality"), 16),
        audio_ms=wav_duration_ms(audio.head, audio.size) if audio is not None else None,
        upload_bytes=sum(f.size for f in form.files),
    )
    return _facts(fields.get("model"), fields.get("user"), media, stream=fields.get("stream") == "true")


def usage_of(media: MediaFacts, model: str | None, body: bytes) -> tuple[Usage, bool]:
    """(the usage of an answer, whether it is estimated) for an image or audio request."""
    answer = parse_json(body) if body[:1] in (b"{", b" ", b"\n") else None
    answer = answer if isinstance(answer, dict) else {}
    usage = answer.get("usage") if isinstance(answer.get("usage"), dict) else None
    if media.kind == IMAGES:
        return _image_usage(media, model, answer, usage), False
    if media.kind == VECTOR_SEARCH:  # billed as a file-search call; no model answers it
        return Usage(_NO_TOKENS, units=UnitCounts(file_search_calls=1)), False
    if media.kind == SPEECH:
        return Usage(_NO_TOKENS, model=model, units=UnitCounts(audio_characters=media.characters)), False
    if usage is not None and usage.get("type") == "tokens":
        details = usage.get("input_token_details")
        tokens = TokenCounts(
            input=read_count(usage, "input_tokens"),
            audio_input=min(read_count(details, "audio_tokens"), read_count(usage, "input_tokens")),
            output=read_count(usage, "output_tokens"),
        )
        return Usage(tokens, model=model, provider_usage=usage), False
    reported = usage.get("seconds") if usage is not None and usage.get("type") == "duration" else None
    seconds = _seconds(reported if reported is not None else answer.get("duration"))
    if seconds is not None:
        return _audio(model, round(seconds * 1000), usage), False  # to the millisecond: float noise gone
    if media.audio_ms is not None:
        return _audio(model, media.audio_ms, usage), False
    return _audio(model, media.upload_bytes * 8 * 1000 // _ESTIMATE_BITS_PER_SECOND, usage), True


def _image_usage(media: MediaFacts, model: str | None, answer: dict[str, Any], usage: Any) -> Usage:
    data = answer.get("data")
    images = len(data) if isinstance(data, list) else 0
    size = read_label(answer.get("size"), 32) or media.size
    quality = read_label(answer.get("quality"), 16) or media.quality
    if usage is None:
        units = UnitCounts(images=images, image_size=size, image_quality=quality)
        return Usage(_NO_TOKENS, model=model, units=units)
    details = usage.get("input_tokens_details")
    prompt, output = read_count(usage, "input_tokens"), read_count(usage, "output_tokens")
    units = UnitCounts(
        images=images,
        image_size=size,
        image_quality=quality,
        image_tokens_in=min(read_count(details, "image_tokens"), prompt),
        image_tokens_out=output,  # an image answer's output tokens are all image tokens
    )
    return Usage(TokenCounts(input=prompt, output=output), model=model, provider_usage=usage, units=units)


def _audio(model: str | None, ms: int, usage: Any) -> Usage:
    return Usage(_NO_TOKENS, model=model, provider_usage=usage, units=UnitCounts(audio_ms=max(ms, 0)))


def _seconds(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value >= 0:
        return min(float(value), _MAX_SECONDS)
    return None


def _number(text: str | None) -> int | None:
    return int(text) if text is not None and text.strip().isdigit() else None


def _facts(model: Any, user: Any, media: MediaFacts, *, stream: bool = False) -> RequestFacts:
    return RequestFacts(
        model=model if isinstance(model, str) and model else None,
        user=user if isinstance(user, str) else None,
        stream=stream,
        choices=media.images if media.kind == IMAGES else 1,
        media=media,
    )
