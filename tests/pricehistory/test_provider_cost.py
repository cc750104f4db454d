"""A provider with cost_source = "provider": its reported cost is the row's, and a mismatch is said and counted."""

from __future__ import annotations

import logging
from typing import Any

import orjson
import pytest

from proxy.settlement import reported_cost
from tests.conftest import chat_completion, json_answer
from tests.fakeprovider import FakeProvider

# gpt-4o-mini at the map's $0.15 / $0.60 per 1M tokens: 1000 in and 500 out cost $0.00045.
CATALOG_PICO = 450_000_000
_MISMATCH = "tollgate_provider_cost_mismatches_total"


def _answer(provider: FakeProvider, cost: object, model: str = "gpt-4o-mini") -> None:
    body = orjson.loads(chat_completion(model=model, prompt_tokens=1000, completion_tokens=500))
    body["usage"]["cost"] = cost
    provider.answer("POST", "/v1/chat/completions", json_answer(orjson.dumps(body)))


def _ask(tollgate: Any, model: str = "gpt-4o-mini") -> dict[str, Any]:
    response = tollgate.client.post(
        "/v1/chat/completions", json={"model": model, "messages": [{"role": "user", "content": "hi"}]}
    )
    assert response.status_code == 200
    row: dict[str, Any] = tollgate.rows()[-1]
    return row


def test_the_reported_cost_is_recorded_and_a_mismatch_warned_and_counted(
    tollgate_factory: Any, provider: FakeProvider, caplog: pytest.LogCaptureFixture
) -> None:
    tollgate = tollgate_factory(provider_extra='cost_source = "provider"\ncost_tolerance_percent = 5')
    _answer(provider, 0.00054)  # 20% above the catalog's
    with caplog.at_level(logging.WARNING, "tollgate.core"):
        row = _ask(tollgate)
    assert (row["cost_pico"], row["provider_cost_pico"], row["unpriced"]) == (540_000_000, 540_000_000, False)
    assert "provider fake reported $0.00054" in caplog.text and "the catalog prices it at $0.00045" in caplog.text
    assert f'{_MISMATCH}{{provider="fake",model="gpt-4o-mini"}} 1' in tollgate.client.get("/metrics").text


def test_a_cost_within_the_tolerance_is_recorded_without_a_warning(
    tollgate_factory: Any, provider: FakeProvider, caplog: pytest.LogCaptureFixture
) -> None:
    tollgate = tollgate_factory(provider_extra='cost_source = "provider"\ncost_tolerance_percent = 5')
    _answer(provider, 0.000459)  # 2% above
    with caplog.at_level(logging.WARNING, "tollgate.core"):
        row = _ask(tollgate)
    assert row["cost_pico"] == row["provider_cost_pico"] == 459_000_000
    assert "reported" not in caplog.text
    assert f'{_MISMATCH}{{provider="fake"' not in tollgate.client.get("/metrics").text


def test_a_model_without_a_price_is_priced_by_the_providers_word(
    tollgate_factory: Any, provider: FakeProvider, caplog: pytest.LogCaptureFixture
) -> None:
    tollgate = tollgate_factory(provider_extra='cost_source = "provider"')
    _answer(provider, 0.002, model="my-router-model")
    with caplog.at_level(logging.WARNING, "tollgate.core"):
        row = _ask(tollgate, "my-router-model")
    assert (row["cost_pico"], row["unpriced"]) == (2 * 10**9, False)
    assert "the catalog prices it at nothing: no price" in caplog.text and "recorded as unpriced" not in caplog.text


def test_a_catalog_provider_ignores_a_reported_cost(tollgate: Any, provider: FakeProvider) -> None:
    _answer(provider, 1.0)
    row = _ask(tollgate)
    assert (row["cost_pico"], row["provider_cost_pico"]) == (CATALOG_PICO, None)


@pytest.mark.parametrize(
    ("usage", "pico"),
    [
        ({"cost": 0.00054}, 540_000_000),
        ({"cost": "0.0000000000015"}, 2),  # rounded once, half to even, to a picodollar
        ({"cost": 3}, 3 * 10**12),
        ({"cost": -1}, None),
        ({"cost": True}, None),
        ({"cost": "lots"}, None),
        ({"cost": float("nan")}, None),
        ({}, None),
        (None, None),
    ],
)
def test_reported_costs_are_read_exactly_or_not_at_all(usage: dict[str, Any] | None, pico: int | None) -> None:
    assert reported_cost(usage) == pico
