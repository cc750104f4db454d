"""No request costs more than it was admitted with: every way around the bound is bounded or refused."""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

import orjson
import pytest

from pricing import Catalog
from proxy.dialects.openai_requests import choices, output_cap, read_request
from proxy.errors import CostUnbounded
from proxy.limits.bounds import request_bound
from tests.conftest import Tollgate, chat_completion, json_answer
from tests.fakeprovider import FakeProvider

CATALOG = Catalog.from_entries(
    {
        "m": {
            "input_cost_per_token": 1e-06,
            "output_cost_per_token": 2e-06,
            "max_output_tokens": 1000,
            "max_input_tokens": 50_000,
        },
        "no-window": {"input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06, "max_output_tokens": 1000},
    }
)
CHAT = "/v1/chat/completions"


def _bound(payload: dict[str, Any], body: bytes | None = None, model: str = "m") -> tuple[int, str]:
    raw = orjson.dumps(payload) if body is None else body
    return request_bound(CATALOG.lookup(model), len(raw), read_request(payload), embeddings=False, media_tokens=3000)


def test_an_escaped_key_is_still_a_media_part() -> None:
    body = (
        b'{"messages": [{"role": "user", "content": [{"type": "image\\u005furl", "image\\u005furl": {"url": "x"}}]}]}'
    )
    payload = orjson.loads(body)
    bound, why = _bound({**payload, "max_tokens": 0}, body)
    assert "1 media parts" in why
    assert bound == (len(body) + 3000) * 10**6


@pytest.mark.parametrize(
    ("payload", "cap"),
    [
        ({"max_tokens": 10, "max_completion_tokens": 16000}, 16000),
        ({"max_completion_tokens": 16000, "max_tokens": 10}, 16000),
        ({"max_output_tokens": 7.0}, 7),
        ({"max_tokens": True}, None),
        ({"max_tokens": -5}, None),
    ],
)
def test_the_largest_output_cap_bounds_the_output(payload: dict[str, Any], cap: int | None) -> None:
    assert output_cap(payload) == cap


@pytest.mark.parametrize(("payload", "n"), [({"n": 4.0}, 4), ({"n": 2.5}, 3), ({"best_of": 3, "n": 2}, 3), ({}, 1)])
def test_choices_count_as_the_provider_reads_them(payload: dict[str, Any], n: int) -> None:
    assert choices(payload) == n


@pytest.mark.parametrize(
    "payload",
    [
        {"previous_response_id": "resp_1", "input": "go on"},
        {"conversation": "conv_1", "input": "go on"},
        {"prompt": {"id": "pmpt_1"}, "input": "x"},
        {"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "file-1"}]}]},
        {"messages": [{"role": "user", "content": [{"type": "file", "file": {"file_id": "file-1"}}]}]},
        {"input": [{"type": "item_reference", "id": "msg_1"}]},
    ],
)
def test_input_stored_at_the_provider_is_bounded_by_the_context_window(payload: dict[str, Any]) -> None:
    bound, why = _bound({**payload, "max_output_tokens": 100})
    assert bound == (50_000 * 1 + 100 * 2) * 10**6
    assert "context window" in why
    with pytest.raises(CostUnbounded, match="no context window"):
        _bound({**payload, "max_output_tokens": 100}, model="no-window")


def test_hosted_tools_need_max_tool_calls_to_be_bounded() -> None:
    payload: dict[str, Any] = {"input": "news?", "tools": [{"type": "web_search"}], "max_output_tokens": 10}
    with pytest.raises(CostUnbounded, match="max_tool_calls"):
        _bound(payload)
    bound, why = _bound({**payload, "max_tool_calls": 2})
    body_bytes = len(orjson.dumps({**payload, "max_tool_calls": 2}))
    assert bound == (body_bytes * 3 * 1 + 10 * 3 * 2) * 10**6
    assert "over 3 model turns" in why


def test_a_completions_prompt_is_text_not_stored_input() -> None:
    assert "context window" not in _bound({"prompt": "Say hi", "max_tokens": 5})[1]


LIMIT = '[[limits]]\nscope = "user"\nmax_usd = "0.01"\n'
BODY = orjson.dumps({"model": "gpt-4o-mini", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]})
USER = {"x-user-id": "alice"}


def _spent(tollgate: Tollgate, expected: int) -> Decimal:
    return sum((Decimal(r["cost_pico"] or 0) for r in tollgate.rows(expected)), Decimal(0)) / 10**12


def test_a_dearer_model_listed_as_bound_model_never_passes_the_limit(
    tollgate_factory: Any, provider: FakeProvider
) -> None:
    tollgate: Tollgate = tollgate_factory(LIMIT, 'bound_models = ["o1-pro"]')
    provider.answer("POST", CHAT, json_answer(chat_completion(model="o1-pro", prompt_tokens=50, completion_tokens=10)))
    statuses = [tollgate.client.post(CHAT, content=BODY, headers=USER).status_code for _ in range(20)]
    assert _spent(tollgate, 20) <= Decimal("0.01")
    assert statuses.count(429) > 0


def test_an_unexpected_dearer_model_is_an_error_once_and_then_bounded(
    tollgate_factory: Any, provider: FakeProvider, caplog: pytest.LogCaptureFixture
) -> None:
    """gpt-4o-mini answered as o1-pro: the first answer overruns its bound, loudly; later ones are bounded by it."""
    tollgate: Tollgate = tollgate_factory('[[limits]]\nscope = "user"\nmax_usd = "0.05"\n')
    provider.answer("POST", CHAT, json_answer(chat_completion(model="o1-pro", prompt_tokens=50, completion_tokens=10)))
    with caplog.at_level(logging.ERROR, logger="tollgate.core"):
        statuses = [tollgate.client.post(CHAT, content=BODY, headers=USER).status_code for _ in range(20)]
    assert [r.message for r in caplog.records if "BOUND EXCEEDED" in r.message][:1]
    assert statuses[0] == 200 and statuses.count(200) < 5  # was 20 of 20, reaching $0.27
    metrics = tollgate.client.get("/metrics").text
    assert 'tollgate_bound_overruns_total{model="o1-pro"} 1' in metrics


def test_an_unpriced_model_under_a_limit_is_refused_saying_which_price_is_missing(
    tollgate: Tollgate, tollgate_factory: Any, provider: FakeProvider
) -> None:
    tollgate = tollgate_factory(LIMIT)
    provider.answer("POST", CHAT, json_answer(chat_completion(model="gpt-4o")))
    body = orjson.dumps({"model": "my-deployment", "max_tokens": 10, "messages": []})
    response = tollgate.client.post(CHAT, content=body, headers=USER)
    assert response.status_code == 400
    assert response.headers["x-should-retry"] == "false"
    error = response.json()["error"]
    assert error["code"] == "cost_unbounded" and "'my-deployment' has no price" in error["message"]
    assert provider.requests == []


def test_an_unpriced_deployment_is_bounded_by_the_providers_bound_models(
    tollgate_factory: Any, provider: FakeProvider
) -> None:
    tollgate: Tollgate = tollgate_factory(LIMIT, 'bound_models = ["gpt-4o"]')
    provider.answer("POST", CHAT, json_answer(chat_completion(model="gpt-4o", prompt_tokens=40, completion_tokens=10)))
    body = orjson.dumps({"model": "my-deployment", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}]})
    statuses = [tollgate.client.post(CHAT, content=body, headers=USER).status_code for _ in range(300)]
    assert statuses.count(200) > 0
    assert _spent(tollgate, 300) <= Decimal("0.01")  # was $0.32 over 300 of 300 requests


def test_requests_that_cost_nothing_are_refused_past_the_limit(tollgate_factory: Any, provider: FakeProvider) -> None:
    tollgate: Tollgate = tollgate_factory(LIMIT)
    provider.answer("POST", CHAT, json_answer(chat_completion(prompt_tokens=60_000, completion_tokens=10)))
    provider.answer("GET", "/v1/models", json_answer(b'{"object": "list", "data": []}'))
    assert tollgate.client.get("/v1/models", headers=USER).status_code == 200
    while tollgate.client.post(CHAT, content=BODY, headers=USER).status_code == 200:
        pass
    tollgate.rows(2)
    assert tollgate.client.get("/v1/models", headers=USER).status_code == 429
