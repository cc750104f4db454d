"""The openai SDK's AzureOpenAI client, pointed at Tollgate, behaves as against Azure, and each call is one row."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import openai
import orjson
import pytest

from proxy.keys import hash_key
from tests.conftest import chat_chunks, chat_completion, json_answer, sse
from tests.dialects.conftest import LiveTollgate
from tests.fakeprovider import FakeProvider

API_VERSION = "2024-10-21"
CHAT = "/openai/deployments/prod-mini/chat/completions"
DEPLOYMENTS = '[providers.deployments]\nprod-mini = "gpt-4o-mini"\n'
_OPEN: list[openai.OpenAI] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _OPEN:
        _OPEN.pop().close()


@pytest.fixture
def azure(live_tollgate_factory: Any) -> LiveTollgate:
    live: LiveTollgate = live_tollgate_factory(kinds={"azure": DEPLOYMENTS})
    return live


def _client(live: LiveTollgate, api_key: str = "azure-client-key", max_retries: int = 0) -> openai.AzureOpenAI:
    client = openai.AzureOpenAI(
        azure_endpoint=live.url,
        api_key=api_key,
        api_version=API_VERSION,
        default_headers={"X-User-Id": "alice"},
        max_retries=max_retries,
    )
    _OPEN.append(client)
    return client


def test_a_mapped_deployment_is_priced_by_azures_entry(azure: LiveTollgate, provider: FakeProvider) -> None:
    body = chat_completion(model="gpt-4o-mini-2024-07-18", prompt_tokens=1000, completion_tokens=100)
    provider.answer("POST", CHAT, json_answer(body))
    answer = _client(azure).chat.completions.create(model="prod-mini", messages=[{"role": "user", "content": "hi"}])
    assert answer.choices[0].message.content == "Hello!"
    [sent] = provider.requests
    assert (sent.path, sent.query) == (CHAT, f"api-version={API_VERSION}".encode())
    assert sent.header(b"api-key") == b"azure-client-key" and sent.header(b"x-user-id") is None
    [row] = azure.rows()
    assert (row["provider_kind"], row["model_requested"], row["user_id"]) == ("azure", "prod-mini", "alice")
    # azure/gpt-4o-mini: $0.15/M input, $0.60/M output.
    assert Decimal(row["cost_pico"]) / 10**12 == (1000 * Decimal("0.15") + 100 * Decimal("0.6")) / 10**6


def _azure_chunks() -> tuple[bytes, ...]:
    """Azure's stream: a first chunk with empty choices and the prompt's content filter results."""
    filters = {
        "prompt_index": 0,
        "content_filter_results": {"hate": {"filtered": False, "severity": "safe"}},
    }
    first = {"choices": [], "created": 0, "id": "", "model": "", "object": "", "prompt_filter_results": [filters]}
    return (b"data: " + orjson.dumps(first) + b"\n\n", *chat_chunks(completion_tokens=3, prompt_tokens=11))


def test_azures_first_stream_chunk_reaches_the_client(azure: LiveTollgate, provider: FakeProvider) -> None:
    provider.answer("POST", CHAT, sse(_azure_chunks()))
    stream = _client(azure).chat.completions.create(model="prod-mini", messages=[], stream=True)
    chunks = list(stream)
    assert chunks[0].choices == [] and chunks[0].model_extra is not None
    assert "prompt_filter_results" in chunks[0].model_extra
    assert all(c.usage is None for c in chunks)  # the usage Tollgate asked for stays hidden
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello!"
    assert orjson.loads(provider.requests[0].body)["stream_options"] == {"include_usage": True}
    [row] = azure.rows()
    assert (row["input_tokens"], row["output_tokens"], row["usage_source"]) == (11, 3, "reported")


def test_an_unmapped_deployment_is_priced_by_the_answers_model_with_one_warning(
    azure: LiveTollgate, provider: FakeProvider, caplog: pytest.LogCaptureFixture
) -> None:
    path = "/openai/deployments/team-4o/chat/completions"
    provider.answer("POST", path, json_answer(chat_completion(model="gpt-4o-2024-08-06", prompt_tokens=10)))
    client = _client(azure)
    with caplog.at_level(logging.WARNING, logger="tollgate.core"):
        for _ in range(2):
            client.chat.completions.create(model="team-4o", messages=[])
    rows = azure.rows(2)
    assert [r["model_served"] for r in rows] == ["gpt-4o-2024-08-06"] * 2
    # azure/gpt-4o-2024-08-06: $2.50/M input, $10/M output; 10 in and 5 out.
    assert rows[0]["cost_pico"] == (10 * 25 + 5 * 100) * 10**5
    assert sum("team-4o" in r.getMessage() for r in caplog.records) == 1


def test_the_v1_api_takes_the_deployment_as_model(azure: LiveTollgate, provider: FakeProvider) -> None:
    provider.answer("POST", "/openai/v1/chat/completions", json_answer(chat_completion(prompt_tokens=20)))
    client = openai.OpenAI(base_url=f"{azure.url}/openai/v1/", api_key="azure-client-key", max_retries=0)
    _OPEN.append(client)
    client.chat.completions.create(model="prod-mini", messages=[])
    [row] = azure.rows()
    assert (row["provider"], row["model_requested"], row["input_tokens"]) == ("fake-azure", "prod-mini", 20)
    assert row["cost_pico"] == (20 * 15 + 5 * 60) * 10**6 // 100


def test_upstream_errors_pass_through(azure: LiveTollgate, provider: FakeProvider) -> None:
    error = orjson.dumps({"error": {"code": "DeploymentNotFound", "message": "The API deployment does not exist"}})
    provider.answer("POST", CHAT, json_answer(error, status=404))
    with pytest.raises(openai.NotFoundError, match="deployment does not exist"):
        _client(azure).chat.completions.create(model="prod-mini", messages=[])
    assert azure.rows()[0]["status"] == 404


def test_spend_limit_refusal_is_not_retried(live_tollgate_factory: Any, provider: FakeProvider) -> None:
    limits = '[[limits]]\nscope = "user"\nwindow = "day"\nmax_usd = "0.000001"\n'
    live: LiveTollgate = live_tollgate_factory(limits, {"azure": DEPLOYMENTS})
    with pytest.raises(openai.RateLimitError) as raised:
        _client(live, max_retries=3).chat.completions.create(model="prod-mini", messages=[], max_tokens=100)
    assert raised.value.response.headers["x-should-retry"] == "false"
    assert provider.requests == []
    [row] = live.rows()
    assert (row["status"], row["provider_kind"]) == (429, "azure")


def test_a_managed_key_is_swapped_for_the_providers_api_key(
    live_tollgate_factory: Any, provider: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZURE_PROVIDER_KEY", "azure-provider-secret")
    keys = f'[auth]\nmode = "managed"\n[[keys]]\nname = "k"\nsha256 = "{hash_key("tg-az")}"\nuser = "u"\n'
    live: LiveTollgate = live_tollgate_factory(keys, {"azure": f'api_key_env = "AZURE_PROVIDER_KEY"\n{DEPLOYMENTS}'})
    provider.answer("POST", CHAT, json_answer(chat_completion()))
    _client(live, api_key="tg-az").chat.completions.create(model="prod-mini", messages=[])
    [sent] = provider.requests
    assert sent.header(b"api-key") == b"azure-provider-secret" and sent.header(b"authorization") is None
    assert live.rows()[0]["user_id"] == "u"
