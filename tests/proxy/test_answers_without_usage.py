"""An answer whose usage cannot be read is never recorded as free: it is read anyway, or estimated."""

from __future__ import annotations

import gzip
import zlib

import pytest

from tests.conftest import Tollgate, chat_chunks, chat_completion, json_answer, sse
from tests.fakeprovider import Canned, FakeProvider

CHAT = "/v1/chat/completions"
BODY = b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello to everyone here"}]}'
STREAM = b'{"model": "gpt-4o-mini", "stream": true, "messages": [{"role": "user", "content": "Say hello"}]}'
SLOW = "read_timeout = 0.5"


@pytest.mark.parametrize(("coding", "compress"), [("gzip", gzip.compress), ("deflate", zlib.compress)])
def test_a_compressed_answer_is_relayed_as_it_came_and_its_usage_read(
    tollgate: Tollgate, provider: FakeProvider, coding: str, compress: object
) -> None:
    packed = compress(chat_completion(prompt_tokens=33, completion_tokens=7))  # type: ignore[operator]
    headers = ((b"content-type", b"application/json"), (b"content-encoding", coding.encode()))
    provider.answer("POST", CHAT, Canned(body=packed, headers=headers))
    response = tollgate.client.post(CHAT, content=BODY)
    assert response.headers["content-encoding"] == coding
    assert response.content == chat_completion(prompt_tokens=33, completion_tokens=7)  # httpx decodes it
    [row] = tollgate.rows()
    assert (row["input_tokens"], row["output_tokens"], row["usage_source"]) == (33, 7, "reported")


def test_a_compressed_stream_is_read_and_its_injected_usage_still_hidden(
    tollgate: Tollgate, provider: FakeProvider
) -> None:
    packer = zlib.compressobj(wbits=16 + zlib.MAX_WBITS)
    chunks = tuple(packer.compress(c) + packer.flush(zlib.Z_SYNC_FLUSH) for c in chat_chunks(completion_tokens=3))
    chunks += (packer.flush(),)
    headers = ((b"content-type", b"text/event-stream"), (b"content-encoding", b"gzip"))
    provider.answer("POST", CHAT, Canned(headers=headers, chunks=chunks))
    response = tollgate.client.post(CHAT, content=STREAM)
    assert response.content == b"".join(chat_chunks(include_usage=False))
    assert tollgate.rows()[0]["output_tokens"] == 3


def test_a_metered_answer_without_usage_is_estimated(tollgate: Tollgate, provider: FakeProvider) -> None:
    body = b'{"id": "x", "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello everyone"}}]}'
    provider.answer("POST", CHAT, json_answer(body))
    assert tollgate.client.post(CHAT, content=BODY).content == body
    [row] = tollgate.rows()
    assert row["usage_source"] == "estimated"
    assert row["input_tokens"] > 0 and row["output_tokens"] == 2 and row["cost_pico"] > 0


def test_an_answer_that_hangs_after_its_headers_is_a_504(tollgate_factory: object, provider: FakeProvider) -> None:
    tollgate: Tollgate = tollgate_factory("", SLOW)  # type: ignore[operator]
    provider.answer("POST", CHAT, Canned(chunks=(chat_completion(),), delay=2))
    response = tollgate.client.post(CHAT, content=BODY)
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "upstream_timeout"


def test_a_stream_that_hangs_after_its_headers_is_estimated_from_the_request(
    tollgate_factory: object, provider: FakeProvider
) -> None:
    tollgate: Tollgate = tollgate_factory("", SLOW)  # type: ignore[operator]
    provider.answer("POST", CHAT, sse(chat_chunks(), delay=2))
    tollgate.client.post(CHAT, content=STREAM)
    [row] = tollgate.rows()
    assert row["usage_source"] == "estimated"
    assert row["input_tokens"] > 0  # was 0, recorded as missing
