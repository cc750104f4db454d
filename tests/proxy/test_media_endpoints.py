"""Images, audio and vector store searches: forwarded as they came (multipart byte for byte), metered, bounded."""

from __future__ import annotations

import struct
from typing import Any

import orjson
import pytest

from tests.conftest import Tollgate, json_answer
from tests.fakeprovider import Canned, FakeProvider

# A second provider on the same fake, for the model names the default one does not route.
_MEDIA_PROVIDER = """
[[providers]]
name = "media"
base_url = "{base_url}"
models = ["whisper-*", "tts-*", "dall-e-*"]
"""
_LIMIT = '[[limits]]\nscope = "user"\nmax_usd = "5"\n'
_USER = {"x-user-id": "alice"}


def _open(tollgate_factory: Any, provider: FakeProvider, extra: str = "") -> Tollgate:
    tollgate: Tollgate = tollgate_factory(extra + _MEDIA_PROVIDER.format(base_url=provider.base_url))
    return tollgate


def _wav(seconds: float, rate: int = 16_000) -> bytes:
    data = b"\x00\x00" * int(seconds * rate)
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16)
    chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks


def _form(fields: dict[str, str], file: bytes, filename: str = "a.wav", name: str = "file") -> tuple[bytes, str]:
    boundary = "tollgate-test-boundary"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode()
        for key, value in fields.items()
    ]
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
    parts.append(head.encode() + b"Content-Type: application/octet-stream\r\n\r\n" + file + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def test_a_transcription_is_forwarded_byte_for_byte_and_priced_by_its_wav_duration(
    tollgate_factory: Any, provider: FakeProvider
) -> None:
    tollgate = _open(tollgate_factory, provider)
    provider.answer("POST", "/v1/audio/transcriptions", json_answer(b'{"text": "hello"}'))
    body, content_type = _form({"model": "whisper-1", "response_format": "json"}, _wav(2.5))
    response = tollgate.client.post("/v1/audio/transcriptions", content=body, headers={"content-type": content_type})
    assert response.json() == {"text": "hello"}
    assert provider.requests[0].body == body
    assert provider.requests[0].header(b"content-type") == content_type.encode()
    [row] = tollgate.rows()
    assert (row["audio_ms"], row["usage_source"]) == (2500, "reported")
    assert row["cost_pico"] == 250_000_000  # 2.5 s x $0.0001


def test_a_verbose_transcription_is_priced_by_the_duration_it_reports(
    tollgate_factory: Any, provider: FakeProvider
) -> None:
    tollgate = _open(tollgate_factory, provider)
    answer = {"task": "transcribe", "language": "english", "duration": 8.470000267028809, "text": "hi", "segments": []}
    provider.answer("POST", "/v1/audio/transcriptions", json_answer(orjson.dumps(answer)))
    body, content_type = _form({"model": "whisper-1", "response_format": "verbose_json"}, b"ID3 not a wav", "a.mp3")
    tollgate.client.post("/v1/audio/transcriptions", content=body, headers={"content-type": content_type})
    [row] = tollgate.rows()
    assert (row["audio_ms"], row["cost_pico"]) == (8470, 847_000_000)


def test_a_token_billed_transcription_is_priced_by_its_tokens(tollgate: Tollgate, provider: FakeProvider) -> None:
    usage = {
        "type": "tokens",
        "input_tokens": 120,
        "input_token_details": {"text_tokens": 0, "audio_tokens": 120},
        "output_tokens": 30,
        "total_tokens": 150,
    }
    provider.answer("POST", "/v1/audio/transcriptions", json_answer(orjson.dumps({"text": "hi", "usage": usage})))
    body, content_type = _form({"model": "gpt-4o-transcribe"}, _wav(1.0))
    tollgate.client.post("/v1/audio/transcriptions", content=body, headers={"content-type": content_type})
    [row] = tollgate.rows()
    assert (row["input_tokens"], row["audio_input_tokens"], row["output_tokens"]) == (120, 120, 30)
    assert row["cost_pico"] == 120 * 2_500_000 + 30 * 10_000_000


def test_an_unreadable_upload_without_a_duration_is_estimated(tollgate_factory: Any, provider: FakeProvider) -> None:
    tollgate = _open(tollgate_factory, provider)
    provider.answer(
        "POST", "/v1/audio/translations", Canned(body=b"hello", headers=((b"content-type", b"text/plain"),))
    )
    body, content_type = _form({"model": "whisper-1", "response_format": "text"}, b"\xff\xfb" * 8000, "a.mp3")
    tollgate.client.post("/v1/audio/translations", content=body, headers={"content-type": content_type})
    [row] = tollgate.rows()
    assert row["usage_source"] == "estimated"
    assert row["audio_ms"] == 16_000 * 8 * 1000 // 128_000


def test_speech_is_priced_by_the_characters_of_its_input(tollgate_factory: Any, provider: FakeProvider) -> None:
    tollgate = _open(tollgate_factory, provider)
    audio = Canned(body=b"\xff\xfbMP3 bytes", headers=((b"content-type", b"audio/mpeg"),))
    provider.answer("POST", "/v1/audio/speech", audio)
    response = tollgate.client.post("/v1/audio/speech", json={"model": "tts-1", "input": "x" * 1234, "voice": "alloy"})
    assert response.content == b"\xff\xfbMP3 bytes"
    [row] = tollgate.rows()
    assert (row["audio_characters"], row["cost_pico"]) == (1234, 18_510_000_000)


def test_gpt_image_1_is_priced_by_the_tokens_it_reports(tollgate: Tollgate, provider: FakeProvider) -> None:
    usage = {
        "total_tokens": 4210,
        "input_tokens": 50,
        "output_tokens": 4160,
        "input_tokens_details": {"text_tokens": 50, "image_tokens": 0},
    }
    answer = {"created": 1, "data": [{"b64_json": "AAAA"}], "size": "1024x1024", "quality": "high", "usage": usage}
    provider.answer("POST", "/v1/images/generations", json_answer(orjson.dumps(answer)))
    tollgate.client.post("/v1/images/generations", json={"model": "gpt-image-1", "prompt": "a gate"})
    [row] = tollgate.rows()
    assert (row["images"], row["image_size"], row["image_quality"], row["image_tokens_out"]) == (
        1,
        "1024x1024",
        "high",
        4160,
    )
    assert row["cost_pico"] == 50 * 5_000_000 + 4160 * 40_000_000
    assert row["unit_cost_pico"] == 4160 * 40_000_000


def test_an_image_edit_is_forwarded_byte_for_byte(tollgate: Tollgate, provider: FakeProvider) -> None:
    usage = {
        "input_tokens": 300,
        "output_tokens": 1056,
        "input_tokens_details": {"text_tokens": 20, "image_tokens": 280},
    }
    provider.answer(
        "POST", "/v1/images/edits", json_answer(orjson.dumps({"data": [{"b64_json": "A"}], "usage": usage}))
    )
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40
    body, content_type = _form({"model": "gpt-image-1", "prompt": "add a hat"}, png, "in.png", "image[]")
    tollgate.client.post("/v1/images/edits", content=body, headers={"content-type": content_type})
    assert provider.requests[0].body == body
    [row] = tollgate.rows()
    assert (row["image_tokens_in"], row["image_tokens_out"]) == (280, 1056)
    assert row["cost_pico"] == 20 * 5_000_000 + 280 * 10_000_000 + 1056 * 40_000_000


def test_a_vector_store_search_is_metered_as_a_file_search_call(tollgate: Tollgate, provider: FakeProvider) -> None:
    provider.answer(
        "POST",
        "/v1/vector_stores/vs_1/search",
        json_answer(b'{"object": "vector_store.search_results.page", "data": []}'),
    )
    tollgate.client.post("/v1/vector_stores/vs_1/search", json={"query": "gates"})
    [row] = tollgate.rows()
    assert (row["file_search_calls"], row["cost_pico"], row["unpriced"]) == (1, 2_500_000_000, False)


def test_under_a_limit_a_transcription_reserves_its_bound_and_is_admitted(
    tollgate_factory: Any, provider: FakeProvider
) -> None:
    tollgate = _open(tollgate_factory, provider, _LIMIT)
    provider.answer("POST", "/v1/audio/transcriptions", json_answer(b'{"text": "hello"}'))
    body, content_type = _form({"model": "whisper-1"}, _wav(3.0))
    response = tollgate.client.post(
        "/v1/audio/transcriptions", content=body, headers={"content-type": content_type, **_USER}
    )
    assert response.status_code == 200
    assert tollgate.rows()[0]["cost_pico"] == 300_000_000


@pytest.mark.parametrize(
    ("path", "request_body"),
    [
        ("/v1/audio/speech", {"model": "gpt-4o-mini-tts", "input": "hello", "voice": "alloy"}),
        ("/v1/images/generations", {"model": "dall-e-9", "prompt": "a gate"}),
    ],
)
def test_under_a_limit_media_that_cannot_be_bounded_is_refused(
    tollgate_factory: Any, provider: FakeProvider, path: str, request_body: dict[str, str]
) -> None:
    tollgate = _open(tollgate_factory, provider, _LIMIT)
    response = tollgate.client.post(path, json=request_body, headers=_USER)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "cost_unbounded"
    assert provider.requests == []


def test_speech_of_a_model_with_no_character_price_is_unpriced_not_free(
    tollgate: Tollgate, provider: FakeProvider
) -> None:
    provider.answer("POST", "/v1/audio/speech", Canned(body=b"audio", headers=((b"content-type", b"audio/mpeg"),)))
    tollgate.client.post("/v1/audio/speech", json={"model": "gpt-4o-mini-tts", "input": "hello", "voice": "alloy"})
    [row] = tollgate.rows()
    assert (row["cost_pico"], row["unpriced"], row["unpriced_units"]) == (None, True, "audio_characters")


def test_an_azure_transcription_is_priced_by_its_deployments_model(
    tollgate_factory: Any, provider: FakeProvider
) -> None:
    root = provider.base_url.removesuffix("/v1")
    azure = f'[[providers]]\nname = "az"\nkind = "azure"\nbase_url = "{root}"\n'
    azure += '[providers.deployments]\nears = "whisper-1"\n'
    tollgate: Tollgate = tollgate_factory(azure)
    path = "/openai/deployments/ears/audio/transcriptions"
    provider.answer("POST", path, json_answer(b'{"text": "hi"}'))
    body, content_type = _form({"response_format": "json"}, _wav(1.5))
    tollgate.client.post(f"{path}?api-version=2024-06-01", content=body, headers={"content-type": content_type})
    assert provider.requests[0].body == body
    [row] = tollgate.rows()
    assert (row["model_requested"], row["audio_ms"], row["cost_pico"]) == ("ears", 1500, 150_000_000)
