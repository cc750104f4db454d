"""A meter built from the same config text as the proxy's tests, its rows, and SDK clients through it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import openai
import orjson
import pytest

from proxy.config import Config
from proxy.inprocess import Meter
from proxy.recording.store import Store
from proxy.recording.tables import USAGE_TABLE
from tests.conftest import make_config
from tests.fakeprovider import FakeProvider

MeterFactory = Callable[..., Meter]
_OPENED: list[openai.OpenAI] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    """SDK clients made by a test are closed after it (their pools would leak sockets)."""
    yield
    while _OPENED:
        _OPENED.pop().close()


@pytest.fixture
def meter_factory(provider: FakeProvider, db_url: str) -> Iterator[MeterFactory]:
    made: list[Meter] = []

    def make(extra: str = "", url: str | None = None, provider_extra: str = "", **options: Any) -> Meter:
        meter = Meter(make_config(provider, url or db_url, extra, provider_extra), **options)
        made.append(meter)
        return meter

    yield make
    for meter in made:
        meter.close()


@pytest.fixture
def meter(meter_factory: MeterFactory) -> Meter:
    return meter_factory()


def rows(meter: Meter, config: Config | None = None) -> list[dict[str, Any]]:
    """Every row in the meter's database, once what it queued is written."""
    assert meter.flush()
    store = Store((config or meter.config).database.url)
    try:
        with store.engine.connect() as conn:
            query = USAGE_TABLE.select().order_by(USAGE_TABLE.c.started_at)
            return [dict(row._mapping) for row in conn.execute(query)]
    finally:
        store.dispose()


def as_sdk_client(client: httpx.Client | httpx.AsyncClient) -> Any:
    """An httpx client as the SDK's ``http_client``: openai 3 annotates httpx2's clients, and takes httpx's too."""
    return client


def sync_client(meter: Meter, provider: FakeProvider, **options: Any) -> openai.OpenAI:
    options.setdefault("max_retries", 0)
    http_client = as_sdk_client(meter.httpx_client())
    client = openai.OpenAI(base_url=provider.base_url, api_key="sk-app-key", http_client=http_client, **options)
    _OPENED.append(client)
    return client


def async_client(meter: Meter, provider: FakeProvider, **options: Any) -> openai.AsyncOpenAI:
    """An async SDK client through the meter; open it with ``async with`` on the test's loop."""
    options.setdefault("max_retries", 0)
    http_client = as_sdk_client(meter.async_httpx_client())
    return openai.AsyncOpenAI(base_url=provider.base_url, api_key="sk-app-key", http_client=http_client, **options)


def responses_stream(text: str = "Hi there", input_tokens: int = 40, output_tokens: int = 9) -> tuple[bytes, ...]:
    """A Responses API stream as OpenAI sends it: created, one text delta, completed with the usage."""

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
    message = {"type": "message", "id": "msg_1", "status": "completed", "role": "assistant"}
    done = {
        **response,
        "status": "completed",
        "output": [{**message, "content": [{"type": "output_text", "text": text, "annotations": []}]}],
        "usage": {
            "input_tokens": input_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": input_tokens + output_tokens,
        },
    }
    delta = {"item_id": "msg_1", "output_index": 0, "content_index": 0, "delta": text, "logprobs": []}
    return (
        event("response.created", {"response": response, "sequence_number": 0}),
        event("response.output_text.delta", {**delta, "sequence_number": 1}),
        event("response.completed", {"response": done, "sequence_number": 2}),
    )


def embeddings_body(tokens: int = 7) -> bytes:
    return orjson.dumps(
        {
            "object": "list",
            "data": [{"object": "embedding", "index": 0, "embedding": [0.1, -0.2]}],
            "model": "text-embedding-3-small",
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )
