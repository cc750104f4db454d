"""The official openai SDK through a sync meter: one priced, attributed row per call, streams hidden as by the proxy."""

from __future__ import annotations

import gc
from decimal import Decimal

import httpx
import openai
import orjson
import pytest
from openai.types.chat import ChatCompletionMessageParam

from proxy.inprocess import Meter
from proxy.recording.store import Store
from tests.conftest import chat_chunks, chat_completion, json_answer, sse
from tests.fakeprovider import FakeProvider, free_port
from tests.inprocess.conftest import as_sdk_client, embeddings_body, responses_stream, rows, sync_client

_HI: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]


def test_a_chat_completion_is_one_priced_attributed_row(meter: Meter, provider: FakeProvider) -> None:
    provider.answer("POST", "/v1/chat/completions", json_answer(chat_completion(content="Bonjour")))
    client = sync_client(meter, provider)
    with meter.attribute(user="alice", team="research", thread="t-42", agent="planner", tags={"env": "prod"}):
        completion = client.chat.completions.create(model="gpt-4o-mini", messages=_HI)
    assert completion.choices[0].message.content == "Bonjour"
    [row] = rows(meter)
    assert (row["user_id"], row["team_id"], row["thread_id"], row["agent"]) == ("alice", "research", "t-42", "planner")
    assert orjson.loads(row["tags"]) == {"env": "prod"}
    assert (row["front_door"], row["provider"], row["usage_source"]) == ("inprocess", "fake", "reported")
    # 12 input at $0.15/M and 5 output at $0.60/M
    assert Decimal(row["cost_pico"]) / 10**12 == (12 * Decimal("0.15") + 5 * Decimal("0.6")) / 10**6
    assert provider.requests[0].header(b"authorization") == b"Bearer sk-app-key"


def test_a_stream_without_include_usage_is_metered_and_its_usage_chunk_hidden(
    meter: Meter, provider: FakeProvider
) -> None:
    provider.answer("POST", "/v1/chat/completions", sse(chat_chunks(words=("a", "b"), completion_tokens=2)))
    stream = sync_client(meter, provider).chat.completions.create(model="gpt-4o-mini", messages=_HI, stream=True)
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "ab"
    assert all(c.choices and c.usage is None for c in chunks)
    assert orjson.loads(provider.requests[0].body)["stream_options"] == {"include_usage": True}
    [row] = rows(meter)
    assert (row["output_tokens"], row["usage_source"], row["stream"]) == (2, "reported", True)


def test_a_stream_asked_for_its_usage_goes_out_with_its_length_and_the_app_keeps_its_own_body(
    meter: Meter, provider: FakeProvider
) -> None:
    provider.answer("POST", "/v1/chat/completions", sse(chat_chunks(words=("a",), completion_tokens=1)))
    stream = sync_client(meter, provider).chat.completions.create(model="gpt-4o-mini", messages=_HI, stream=True)
    list(stream)
    [sent] = provider.requests
    names = [name for name, _ in sent.headers]
    assert names[0] == b"host" and sent.header(b"host") == f"127.0.0.1:{provider.port}".encode()
    assert names[-1] == b"content-length" and sent.header(b"content-length") == str(len(sent.body)).encode()
    assert names.count(b"content-length") == 1
    assert b"stream_options" not in stream.response.request.content


def test_a_stream_that_asked_for_usage_keeps_its_usage_chunk(meter: Meter, provider: FakeProvider) -> None:
    provider.answer("POST", "/v1/chat/completions", sse(chat_chunks(prompt_tokens=30)))
    stream = sync_client(meter, provider).chat.completions.create(
        model="gpt-4o-mini", messages=_HI, stream=True, stream_options={"include_usage": True}
    )
    last = list(stream)[-1]
    assert last.usage is not None and last.usage.prompt_tokens == 30
    assert rows(meter)[0]["input_tokens"] == 30


def test_a_responses_stream_is_metered(meter: Meter, provider: FakeProvider) -> None:
    provider.answer("POST", "/v1/responses", sse(responses_stream(input_tokens=40, output_tokens=9)))
    events = list(sync_client(meter, provider).responses.create(model="gpt-4o-mini", input="hi", stream=True))
    assert events[-1].type == "response.completed"
    [row] = rows(meter)
    assert (row["endpoint"], row["input_tokens"], row["output_tokens"]) == ("/v1/responses", 40, 9)


def test_embeddings_are_metered(meter: Meter, provider: FakeProvider) -> None:
    provider.answer("POST", "/v1/embeddings", json_answer(embeddings_body(tokens=7)))
    result = sync_client(meter, provider).embeddings.create(model="text-embedding-3-small", input="hello")
    assert len(result.data) == 1
    [row] = rows(meter)
    assert (row["input_tokens"], Decimal(row["cost_pico"]) / 10**12) == (7, 7 * Decimal("0.02") / 10**6)


def test_a_stream_closed_part_way_is_recorded_with_an_estimate(meter: Meter, provider: FakeProvider) -> None:
    provider.answer("POST", "/v1/chat/completions", sse(chat_chunks(words=("one", "two", "three"))))
    stream = sync_client(meter, provider).chat.completions.create(model="gpt-4o-mini", messages=_HI, stream=True)
    next(iter(stream))
    stream.close()
    [row] = rows(meter)
    assert (row["usage_source"], row["error_type"]) == ("estimated", "client_disconnected")
    assert row["input_tokens"] > 0


def test_an_abandoned_stream_is_recorded_once(meter: Meter, provider: FakeProvider) -> None:
    provider.answer("POST", "/v1/chat/completions", sse(chat_chunks()))
    stream = sync_client(meter, provider).chat.completions.create(model="gpt-4o-mini", messages=_HI, stream=True)
    next(iter(stream))
    del stream
    gc.collect()
    [row] = rows(meter)
    assert row["error_type"] == "client_disconnected"


def test_a_stream_still_open_when_the_meter_closes_is_recorded(meter: Meter, provider: FakeProvider) -> None:
    provider.answer("POST", "/v1/chat/completions", sse(chat_chunks()))
    stream = sync_client(meter, provider).chat.completions.create(model="gpt-4o-mini", messages=_HI, stream=True)
    next(iter(stream))
    config = meter.config
    meter.close()
    store = Store(config.database.url)
    assert store.count_records() == 1
    store.dispose()
    stream.close()


def test_attribution_headers_beat_the_scope_and_never_leave_the_process(meter: Meter, provider: FakeProvider) -> None:
    provider.answer("POST", "/v1/chat/completions", json_answer(chat_completion()))
    client = sync_client(meter, provider)
    with meter.attribute(user="alice", team="research"):
        client.chat.completions.create(
            model="gpt-4o-mini", messages=_HI, extra_headers={"X-User-Id": "bob", "X-Tollgate-Tag-Step": "plan"}
        )
    [row] = rows(meter)
    assert (row["user_id"], row["team_id"], orjson.loads(row["tags"])) == ("bob", "research", {"step": "plan"})
    sent = {name for name, _ in provider.requests[0].headers}
    assert not sent & {b"x-user-id", b"x-tollgate-tag-step"}


def test_nested_scopes_override_and_merge(meter: Meter, provider: FakeProvider) -> None:
    provider.answer("POST", "/v1/chat/completions", json_answer(chat_completion()))
    client = sync_client(meter, provider)
    with meter.attribute(user="alice", tags={"env": "prod"}):
        with meter.attribute(agent="planner", tags={"step": "1"}):
            client.chat.completions.create(model="gpt-4o-mini", messages=_HI)
        client.chat.completions.create(model="gpt-4o-mini", messages=_HI)
    inner, outer = sorted(rows(meter), key=lambda r: r["agent"] or "", reverse=True)
    assert (inner["user_id"], inner["agent"], orjson.loads(inner["tags"])) == (
        "alice",
        "planner",
        {"env": "prod", "step": "1"},
    )
    assert (outer["user_id"], outer["agent"], orjson.loads(outer["tags"])) == ("alice", None, {"env": "prod"})


def test_the_body_user_is_the_fallback(meter: Meter, provider: FakeProvider) -> None:
    provider.answer("POST", "/v1/chat/completions", json_answer(chat_completion()))
    sync_client(meter, provider).chat.completions.create(model="gpt-4o-mini", messages=_HI, user="carol")
    assert rows(meter)[0]["user_id"] == "carol"


def test_an_unmetered_provider_call_is_recorded_without_usage(meter: Meter, provider: FakeProvider) -> None:
    models = orjson.dumps(
        {"object": "list", "data": [{"id": "gpt-4o-mini", "object": "model", "created": 1, "owned_by": "x"}]}
    )
    provider.answer("GET", "/v1/models", json_answer(models))
    listed = sync_client(meter, provider).models.list()
    assert [m.id for m in listed] == ["gpt-4o-mini"]
    [row] = rows(meter)
    assert (row["endpoint"], row["usage_source"], row["cost_pico"]) == ("/v1/models", "none", None)


def test_a_url_no_provider_uses_goes_out_unmetered(meter: Meter, provider: FakeProvider) -> None:
    provider.answer("GET", "/healthz", json_answer(b'{"ok": true}'))
    with meter.httpx_client() as client:
        assert client.get(f"http://127.0.0.1:{provider.port}/healthz").json() == {"ok": True}
    assert rows(meter) == []


def test_a_provider_error_passes_through_as_the_sdk_error_and_is_recorded(meter: Meter, provider: FakeProvider) -> None:
    error = orjson.dumps({"error": {"message": "upstream says no", "type": "x", "param": None, "code": "y"}})
    provider.answer("POST", "/v1/chat/completions", json_answer(error, status=400))
    with pytest.raises(openai.BadRequestError, match="upstream says no"):
        sync_client(meter, provider).chat.completions.create(model="gpt-4o-mini", messages=_HI)
    assert rows(meter)[0]["status"] == 400


def test_a_connection_failure_is_recorded_and_raised_for_the_sdk_to_retry(meter: Meter) -> None:
    nowhere = FakeProvider(port=free_port())
    client = sync_client(meter, nowhere, max_retries=1)
    with pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(model="gpt-4o-mini", messages=_HI)
    recorded = rows(meter)
    assert [(r["status"], r["error_type"]) for r in recorded] == [(502, "upstream_unavailable")] * 2


def test_a_mounted_transport_is_metered_too(meter: Meter, provider: FakeProvider) -> None:
    provider.answer("POST", "/v1/chat/completions", json_answer(chat_completion()))
    http_client = as_sdk_client(meter.httpx_client(mounts={"http://127.0.0.1": httpx.HTTPTransport(retries=1)}))
    with openai.OpenAI(base_url=provider.base_url, api_key="k", http_client=http_client, max_retries=0) as client:
        client.chat.completions.create(model="gpt-4o-mini", messages=_HI)
    assert len(rows(meter)) == 1
