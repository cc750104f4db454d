"""Rate limits on the request path: each API's refusal shape, SDK retries, tokens settled to the real count."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import openai
import orjson
import pytest
from starlette.testclient import TestClient

from proxy.app import create_app
from proxy.clock import Clock
from tests.conftest import chat_completion, json_answer, make_config
from tests.dialects.conftest import provider_kinds
from tests.fakeprovider import Canned, FakeProvider, ServerThread

CHAT = "/v1/chat/completions"
ALICE = {"x-user-id": "alice"}
BODY = orjson.dumps({"model": "gpt-4o-mini", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]})
TOKEN_BOUND = len(BODY) + 50  # one token per body byte, plus the output cap
USED = 12 + 5  # what chat_completion() reports


class _MovingClock:
    """Real time passing from ``start``, which puts it ``seconds_into_minute`` into a calendar minute."""

    def __init__(self) -> None:
        self.start(0.0)

    def start(self, seconds_into_minute: float) -> _MovingClock:
        now = time.time()
        self._at, self._origin = now - now % 60 + seconds_into_minute, time.monotonic()
        return self

    def __call__(self) -> datetime:
        return datetime.fromtimestamp(self._at + time.monotonic() - self._origin, UTC)


@pytest.fixture
def open_app(provider: FakeProvider, db_url: str) -> Iterator[Any]:
    opened: list[TestClient] = []

    def open_app(limits: str, clock: Clock | None = None) -> TestClient:
        config = make_config(provider, db_url, limits, provider_kinds(provider))
        app = create_app(config, clock=clock) if clock is not None else create_app(config)
        client = TestClient(app, base_url="http://tollgate.test")
        client.__enter__()
        opened.append(client)
        return client

    yield open_app
    for client in opened:
        client.__exit__(None, None, None)


def test_a_request_past_requests_per_minute_gets_openais_rate_limit_error(
    open_app: Any, provider: FakeProvider
) -> None:
    provider.answer("POST", CHAT, json_answer(chat_completion()))
    clock = _MovingClock()
    client = open_app('[[rate_limits]]\nscope = "user"\nrequests_per_minute = 2\n', clock)
    clock.start(10)
    statuses = [client.post(CHAT, content=BODY, headers=ALICE).status_code for _ in range(3)]
    refused = client.post(CHAT, content=BODY, headers=ALICE)
    assert statuses == [200, 200, 429] and refused.status_code == 429
    error = refused.json()["error"]
    assert (error["type"], error["code"]) == ("requests", "rate_limit_exceeded")
    assert "user 'alice'" in error["message"] and "2 requests per minute" in error["message"]
    headers = refused.headers
    assert (headers["x-ratelimit-limit-requests"], headers["x-ratelimit-remaining-requests"]) == ("2", "0")
    assert 40 <= int(headers["retry-after"]) <= 50 and headers["x-ratelimit-reset-requests"].endswith("s")
    assert "x-should-retry" not in headers
    assert len(provider.requests) == 2  # refused requests never reach the provider
    assert client.post(CHAT, content=BODY, headers={"x-user-id": "bob"}).status_code == 200  # per user


def test_tokens_per_minute_holds_the_bound_and_frees_what_was_not_used(open_app: Any, provider: FakeProvider) -> None:
    provider.answer("POST", CHAT, json_answer(chat_completion()))
    # Room for two bounds at once; each request then uses only USED tokens, so many more fit in the minute.
    client = open_app(f'[[rate_limits]]\nscope = "global"\ntokens_per_minute = {2 * TOKEN_BOUND + 10}\n')
    statuses = [client.post(CHAT, content=BODY, headers=ALICE).status_code for _ in range(6)]
    assert statuses == [200] * 6
    big = orjson.dumps({"model": "gpt-4o-mini", "max_tokens": 5000, "messages": []})
    refused = client.post(CHAT, content=big, headers=ALICE)
    error = refused.json()["error"]
    assert (refused.status_code, error["type"], error["code"]) == (429, "tokens", "rate_limit_exceeded")
    assert refused.headers["x-should-retry"] == "false"  # its bound is more than the whole limit
    assert "x-ratelimit-limit-tokens" in refused.headers


def test_max_concurrent_refuses_only_while_the_slots_are_taken(provider: FakeProvider, db_url: str) -> None:
    slow = Canned(chunks=(chat_completion(),), delay=0.5)
    provider.answer("POST", CHAT, slow)
    config = make_config(provider, db_url, '[[rate_limits]]\nscope = "user"\nmax_concurrent = 2\n')
    with ServerThread(create_app(config)) as server:
        url = f"http://127.0.0.1:{server.port}{CHAT}"

        async def burst() -> list[int]:
            async with httpx.AsyncClient(timeout=30) as client:
                answers = await asyncio.gather(*(client.post(url, content=BODY, headers=ALICE) for _ in range(6)))
                after = await client.post(url, content=BODY, headers=ALICE)
            return [a.status_code for a in answers] + [after.status_code]

        statuses = asyncio.run(burst())
    assert sorted(statuses[:6]) == [200, 200, 429, 429, 429, 429]
    assert statuses[6] == 200  # the slots came back


def test_the_openai_sdk_retries_a_rate_limit_refusal_and_not_a_quota_refusal(
    open_app: Any, provider: FakeProvider
) -> None:
    provider.answer("POST", CHAT, json_answer(chat_completion()))
    limits = '[[rate_limits]]\nscope = "user"\nrequests_per_minute = 1\n'
    limits += '[[limits]]\nscope = "user"\nid = "bob"\nmax_usd = "0.0000001"\n'
    clock = _MovingClock()
    client = open_app(limits, clock)
    clock.start(58.0)  # the minute ends in 2 s: a retry after it is admitted
    sdk = openai.OpenAI(base_url="http://tollgate.test/v1", api_key="sk", http_client=client, max_retries=3)
    sdk.chat.completions.create(model="gpt-4o-mini", messages=[], max_tokens=5, user="alice")
    started = time.monotonic()
    sdk.chat.completions.create(model="gpt-4o-mini", messages=[], max_tokens=5, user="alice")  # refused, retried
    assert 0.1 < time.monotonic() - started < 6
    with pytest.raises(openai.RateLimitError) as raised:
        sdk.chat.completions.create(model="gpt-4o-mini", messages=[], max_tokens=5, user="bob")
    assert raised.value.code == "spend_limit_exceeded"
    portal = client.portal
    assert portal is not None
    portal.call(client.app_state["recorder"].flush)
    rows = _rows(client)
    # alice: 200, then at least one 429 and the 200 of the retry; bob: one quota refusal, not retried.
    assert [s for u, s in rows if u == "bob"] == [429]
    alice = [s for u, s in rows if u == "alice"]
    assert alice[0] == 200 and alice[-1] == 200 and 429 in alice


def _rows(client: TestClient) -> list[tuple[str, int]]:
    from proxy.recording.store import Store
    from proxy.recording.tables import USAGE_TABLE

    store = Store(client.app_state["store"].url)
    with store.engine.connect() as conn:
        query = USAGE_TABLE.select().order_by(USAGE_TABLE.c.started_at)
        rows = [(r.user_id, r.status) for r in conn.execute(query)]
    store.dispose()
    return rows


def test_anthropic_paths_get_anthropics_rate_limit_error_and_headers(open_app: Any, provider: FakeProvider) -> None:
    provider.answer("POST", "/v1/messages", json_answer(b"{}"))
    client = open_app('[[rate_limits]]\nscope = "global"\nrequests_per_minute = 1\n')
    body = {"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    headers = {"anthropic-version": "2023-06-01", "x-api-key": "k"}
    client.post("/v1/messages", json=body, headers=headers)
    refused = client.post("/v1/messages", json=body, headers=headers)
    assert refused.status_code == 429
    assert refused.json()["type"] == "error" and refused.json()["error"]["type"] == "rate_limit_error"
    assert refused.headers["anthropic-ratelimit-requests-limit"] == "1"
    assert refused.headers["anthropic-ratelimit-requests-remaining"] == "0"
    assert refused.headers["anthropic-ratelimit-requests-reset"].endswith("Z")
    assert int(refused.headers["retry-after"]) >= 1
    assert "x-ratelimit-limit-requests" not in refused.headers


def test_gemini_paths_get_resource_exhausted_with_retry_after(open_app: Any, provider: FakeProvider) -> None:
    path = "/v1beta/models/gemini-2.5-flash:generateContent"
    provider.answer("POST", path, json_answer(b"{}"))
    client = open_app('[[rate_limits]]\nscope = "model"\nid = "gemini-2.5-flash"\nrequests_per_minute = 1\n')
    body = {"contents": [{"parts": [{"text": "hi"}]}], "generationConfig": {"maxOutputTokens": 10}}
    client.post(path, json=body, headers={"x-goog-api-key": "k"})
    refused = client.post(path, json=body, headers={"x-goog-api-key": "k"})
    assert refused.status_code == 429
    assert refused.json()["error"]["status"] == "RESOURCE_EXHAUSTED"
    assert "model 'gemini-2.5-flash'" in refused.json()["error"]["message"]
    assert int(refused.headers["retry-after"]) >= 1


def test_a_tag_scope_counts_each_value_of_the_tag(open_app: Any, provider: FakeProvider) -> None:
    provider.answer("POST", CHAT, json_answer(chat_completion()))
    clock = _MovingClock()
    client = open_app('[[rate_limits]]\nscope = "tag"\ntag = "project"\nrequests_per_minute = 1\n', clock)
    clock.start(5)
    checkout = {"x-tollgate-tag-project": "checkout"}
    statuses = [client.post(CHAT, content=BODY, headers=checkout).status_code for _ in range(2)]
    other = client.post(CHAT, content=BODY, headers={"x-tollgate-tag-project": "search"}).status_code
    untagged = client.post(CHAT, content=BODY).status_code
    assert (statuses, other, untagged) == ([200, 429], 200, 200)
