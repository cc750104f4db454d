"""The official openai SDK, pointed at Tollgate, behaves as against the provider."""

from __future__ import annotations

from decimal import Decimal

import openai
import orjson
import pytest

from tests.conftest import Tollgate, chat_chunks, chat_completion, json_answer, sse
from tests.fakeprovider import FakeProvider


def _client(tollgate: Tollgate, **headers: str) -> openai.OpenAI:
    return openai.OpenAI(
        base_url="http://tollgate.test/v1",
        api_key="sk-client-key",
        http_client=tollgate.client,
        default_headers=headers,
        max_retries=0,
    )


def test_chat_completion(tollgate: Tollgate, provider: FakeProvider) -> None:
    provider.answer("POST", "/v1/chat/completions", json_answer(chat_completion(content="Bonjour")))
    client = _client(tollgate, **{"X-User-Id": "alice"})
    completion = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert completion.choices[0].message.content == "Bonjour"
    assert completion.usage is not None and completion.usage.prompt_tokens == 12
    assert provider.requests[0].header(b"authorization") == b"Bearer sk-client-key"
    assert tollgate.rows()[0]["user_id"] == "alice"


def test_chat_stream_without_usage_option(tollgate: Tollgate, provider: FakeProvider) -> None:
    provider.answer("POST", "/v1/chat/completions", sse(chat_chunks(words=("a", "b"), completion_tokens=2)))
    client = _client(tollgate)
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=[], stream=True)
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "ab"
    assert all(c.usage is None for c in chunks)
    assert all(c.choices for c in chunks)  # the usage-only chunk Tollgate asked for is not shown
    assert tollgate.rows()[0]["output_tokens"] == 2


def test_chat_stream_with_usage_option(tollgate: Tollgate, provider: FakeProvider) -> None:
    provider.answer("POST", "/v1/chat/completions", sse(chat_chunks(prompt_tokens=30, completion_tokens=3)))
    client = _client(tollgate)
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=[], stream=True, stream_options={"include_usage": True}
    )
    last = list(stream)[-1]
    assert last.usage is not None and last.usage.prompt_tokens == 30
    assert tollgate.rows()[0]["input_tokens"] == 30


def _responses_stream() -> tuple[bytes, ...]:
    def event(kind: str, data: dict[str, object]) -> bytes:
        return f"event: {kind}\n".encode() + b"data: " + orjson.dumps({"type": kind, **data}) + b"\n\n"

    response: dict[str, object] = {
        "id": "resp_1",
        "object": "response",
        "created_at": 1732550400,
        "model": "gpt-4o-mini-2024-07-18",
        "status": "in_progress",
        "output": [],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": None,
    }
    done = {
        **response,
        "status": "completed",
        "output": [
            {
                "type": "message",
                "id": "msg_1",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "Hi there", "annotations": []}],
            }
        ],
        "usage": {
            "input_tokens": 40,
            "input_tokens_details": {"cached_tokens": 32},
            "output_tokens": 9,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 49,
        },
    }
    return (
        event("response.created", {"response": response, "sequence_number": 0}),
        event(
            "response.output_text.delta",
            {
                "item_id": "msg_1",
                "output_index": 0,
                "content_index": 0,
                "delta": "Hi there",
                "sequence_number": 1,
                "logprobs": [],
            },
        ),
        event("response.completed", {"response": done, "sequence_number": 2}),
    )


def test_responses_stream(tollgate: Tollgate, provider: FakeProvider) -> None:
    provider.answer("POST", "/v1/responses", sse(_responses_stream()))
    client = _client(tollgate)
    events = list(client.responses.create(model="gpt-4o-mini", input="hi", stream=True))
    assert [e.type for e in events][-1] == "response.completed"
    [row] = tollgate.rows()
    assert (row["input_tokens"], row["cached_input_tokens"], row["output_tokens"]) == (40, 32, 9)
    # 8 uncached at $0.15/M, 32 cached at $0.075/M, 9 output at $0.60/M
    expected = (8 * Decimal("0.15") + 32 * Decimal("0.075") + 9 * Decimal("0.6")) / 10**6
    assert Decimal(row["cost_pico"]) / 10**12 == expected


def test_embeddings(tollgate: Tollgate, provider: FakeProvider) -> None:
    body = orjson.dumps(
        {
            "object": "list",
            "data": [{"object": "embedding", "index": 0, "embedding": [0.1, -0.2]}],
            "model": "text-embedding-3-small",
            "usage": {"prompt_tokens": 7, "total_tokens": 7},
        }
    )
    provider.answer("POST", "/v1/embeddings", json_answer(body))
    client = _client(tollgate)
    result = client.embeddings.create(model="text-embedding-3-small", input="hello", encoding_format="float")
    assert result.data[0].embedding == [0.1, -0.2]
    [row] = tollgate.rows()
    assert (row["input_tokens"], Decimal(row["cost_pico"]) / 10**12) == (7, 7 * Decimal("0.02") / 10**6)


@pytest.mark.parametrize(
    ("status", "exception"),
    [(400, openai.BadRequestError), (401, openai.AuthenticationError), (500, openai.InternalServerError)],
)
def test_upstream_errors_raise_the_sdk_error(
    tollgate: Tollgate, provider: FakeProvider, status: int, exception: type[Exception]
) -> None:
    error = orjson.dumps({"error": {"message": "upstream says no", "type": "x", "param": None, "code": "y"}})
    provider.answer("POST", "/v1/chat/completions", json_answer(error, status=status))
    with pytest.raises(exception, match="upstream says no"):
        _client(tollgate).chat.completions.create(model="gpt-4o-mini", messages=[])


def test_unknown_model_raises_not_found(tollgate: Tollgate, provider: FakeProvider) -> None:
    with pytest.raises(openai.NotFoundError) as raised:
        _client(tollgate).chat.completions.create(model="nobody-serves-this", messages=[])
    assert raised.value.code == "model_not_found"
    assert provider.requests == []
