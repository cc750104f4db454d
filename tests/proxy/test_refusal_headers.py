"""Tollgate's own refusals tell the SDKs whether to retry, and admitted answers what the limit leaves."""

from __future__ import annotations

from decimal import Decimal

import openai
import orjson
import pytest

from proxy.keys import hash_key
from tests.conftest import Tollgate, chat_completion, json_answer
from tests.fakeprovider import Canned, FakeProvider, free_port

CHAT = "/v1/chat/completions"
BODY = b'{"model": "gpt-4o-mini", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}'


def test_tollgates_own_502_after_its_retries_is_not_retried_by_the_sdk(
    tollgate_factory: object, provider: FakeProvider
) -> None:
    unreachable = f'[[providers]]\nname = "down"\nbase_url = "http://127.0.0.1:{free_port()}/v1"\nmodels = ["down-*"]\n'
    tollgate: Tollgate = tollgate_factory(unreachable)  # type: ignore[operator]
    response = tollgate.client.post(CHAT, content=b'{"model": "down-model"}')
    assert response.status_code == 502
    assert response.headers["x-should-retry"] == "false"
    client = openai.OpenAI(base_url="http://tollgate.test/v1", api_key="sk", http_client=tollgate.client, max_retries=2)
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="down-model", messages=[])
    assert len(tollgate.rows(2)) == 2  # one request, not three


def test_a_timeout_after_the_headers_leaves_retrying_to_the_sdk(
    tollgate_factory: object, provider: FakeProvider
) -> None:
    """Tollgate retries nothing once an answer has begun, so the SDK's retry is the only one."""
    tollgate: Tollgate = tollgate_factory("", "read_timeout = 0.3")  # type: ignore[operator]
    provider.answer("POST", CHAT, Canned(chunks=(chat_completion(),), delay=2))
    response = tollgate.client.post(CHAT, content=BODY)
    assert (response.status_code, response.headers.get("x-should-retry")) == (504, None)  # after its headers


def test_remaining_budget_on_a_json_answer_reflects_its_settled_cost(
    tollgate_factory: object, provider: FakeProvider
) -> None:
    tollgate: Tollgate = tollgate_factory('[[limits]]\nscope = "user"\nmax_usd = "1"\n')  # type: ignore[operator]
    provider.answer("POST", CHAT, json_answer(chat_completion(prompt_tokens=12, completion_tokens=5)))
    response = tollgate.client.post(CHAT, content=BODY, headers={"x-user-id": "alice"})
    cost = Decimal(response.headers["x-tollgate-cost-usd"])
    assert Decimal(response.headers["x-tollgate-limit-remaining-usd"]) == Decimal(1) - cost


def test_managed_mode_authenticates_before_reading_the_body(tollgate_factory: object, provider: FakeProvider) -> None:
    keys = f'[auth]\nmode = "managed"\n[[keys]]\nname = "k"\nsha256 = "{hash_key("tg-right")}"\n'
    tollgate: Tollgate = tollgate_factory(keys)  # type: ignore[operator]
    missing = tollgate.client.post(CHAT, content=b"{not json")
    wrong = tollgate.client.post(CHAT, content=b"{not json", headers={"authorization": "Bearer tg-wrong"})
    assert (missing.status_code, wrong.status_code) == (401, 401)  # not 400: the body was never parsed
    assert "is required" in missing.json()["error"]["message"]
    assert "not valid" in wrong.json()["error"]["message"]
    assert orjson.loads(wrong.content)["error"]["code"] == "invalid_api_key"
