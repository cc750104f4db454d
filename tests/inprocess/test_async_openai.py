"""The official openai SDK through an async meter: the same rows as sync, and scopes that follow asyncio tasks."""

from __future__ import annotations

import asyncio
import contextvars
import threading

import openai
import orjson
from openai.types.chat import ChatCompletionMessageParam

from proxy.inprocess import Meter
from tests.conftest import chat_chunks, chat_completion, json_answer, sse
from tests.fakeprovider import FakeProvider
from tests.inprocess.conftest import async_client, responses_stream, rows, sync_client

_HI: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]


def test_an_async_chat_completion_is_one_priced_attributed_row(meter: Meter, provider: FakeProvider) -> None:
    provider.answer("POST", "/v1/chat/completions", json_answer(chat_completion(content="Bonjour")))

    async def call() -> str | None:
        async with async_client(meter, provider) as client:
            with meter.attribute(user="alice", agent="planner"):
                completion = await client.chat.completions.create(model="gpt-4o-mini", messages=_HI)
        return completion.choices[0].message.content

    assert asyncio.run(call()) == "Bonjour"
    [row] = rows(meter)
    assert (row["user_id"], row["agent"], row["front_door"], row["input_tokens"]) == (
        "alice",
        "planner",
        "inprocess",
        12,
    )
    assert row["cost_pico"] > 0


def test_an_async_stream_is_metered_and_its_usage_chunk_hidden(meter: Meter, provider: FakeProvider) -> None:
    provider.answer("POST", "/v1/chat/completions", sse(chat_chunks(words=("a", "b"), completion_tokens=2)))

    async def call() -> list[str]:
        async with async_client(meter, provider) as client:
            stream = await client.chat.completions.create(model="gpt-4o-mini", messages=_HI, stream=True)
            return [c.choices[0].delta.content or "" if c.choices else "<usage>" async for c in stream]

    assert "".join(asyncio.run(call())) == "ab"
    [row] = rows(meter)
    assert (row["output_tokens"], row["usage_source"]) == (2, "reported")


def test_an_async_responses_stream_is_metered(meter: Meter, provider: FakeProvider) -> None:
    provider.answer("POST", "/v1/responses", sse(responses_stream(input_tokens=40, output_tokens=9)))

    async def call() -> str:
        async with async_client(meter, provider) as client:
            stream = await client.responses.create(model="gpt-4o-mini", input="hi", stream=True)
            return [event.type async for event in stream][-1]

    assert asyncio.run(call()) == "response.completed"
    assert (rows(meter)[0]["input_tokens"], rows(meter)[0]["output_tokens"]) == (40, 9)


def test_an_async_stream_closed_part_way_is_recorded_with_an_estimate(meter: Meter, provider: FakeProvider) -> None:
    provider.answer("POST", "/v1/chat/completions", sse(chat_chunks(words=("one", "two", "three"))))

    async def call() -> None:
        async with async_client(meter, provider) as client:
            stream = await client.chat.completions.create(model="gpt-4o-mini", messages=_HI, stream=True)
            await stream.__anext__()
            await stream.close()

    asyncio.run(call())
    [row] = rows(meter)
    assert (row["usage_source"], row["error_type"]) == ("estimated", "client_disconnected")


def test_concurrent_tasks_each_keep_their_own_user(meter: Meter, provider: FakeProvider) -> None:
    provider.answer("POST", "/v1/chat/completions", json_answer(chat_completion(), delay=0.01))

    async def one(client: openai.AsyncOpenAI, user: str) -> None:
        with meter.attribute(user=user):
            await asyncio.sleep(0)  # let the other tasks open their scopes in between
            await client.chat.completions.create(model="gpt-4o-mini", messages=_HI)

    async def many() -> None:
        async with async_client(meter, provider) as client:
            await asyncio.gather(*(one(client, f"user-{i}") for i in range(20)))

    asyncio.run(many())
    assert sorted(row["user_id"] for row in rows(meter)) == sorted(f"user-{i}" for i in range(20))


def test_a_scope_follows_tasks_and_threads_started_in_its_context(meter: Meter, provider: FakeProvider) -> None:
    provider.answer("POST", "/v1/chat/completions", json_answer(chat_completion()))
    client = sync_client(meter, provider)

    def call() -> None:
        client.chat.completions.create(model="gpt-4o-mini", messages=_HI)

    async def inside() -> None:
        with meter.attribute(team="research"):
            await asyncio.to_thread(call)
            thread = threading.Thread(target=contextvars.copy_context().run, args=(call,))
            thread.start()
            thread.join()

    asyncio.run(inside())
    assert [row["team_id"] for row in rows(meter)] == ["research", "research"]


def test_async_attribution_headers_beat_the_scope(meter: Meter, provider: FakeProvider) -> None:
    provider.answer("POST", "/v1/chat/completions", json_answer(chat_completion()))

    async def call() -> None:
        async with async_client(meter, provider) as client:
            with meter.attribute(user="alice", tags={"env": "prod"}):
                await client.chat.completions.create(
                    model="gpt-4o-mini", messages=_HI, extra_headers={"X-User-Id": "bob"}
                )

    asyncio.run(call())
    [row] = rows(meter)
    assert (row["user_id"], orjson.loads(row["tags"])) == ("bob", {"env": "prod"})
    assert provider.requests[0].header(b"x-user-id") is None
