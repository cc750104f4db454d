"""A spend limit reserves what hosted tools may add in per-call fees, beside the tokens they feed back."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from pricing import DEFAULT_TOOL_PRICES, Catalog
from proxy.dialects.base import RequestFacts
from proxy.errors import CostUnbounded
from proxy.limits.tool_bounds import tool_fee_bound
from tests.conftest import Tollgate, json_answer
from tests.fakeprovider import FakeProvider

_CATALOG = Catalog.load()
_LIMIT = '[[limits]]\nscope = "user"\nmax_usd = "0.02"\n'
_ANSWER = orjson.dumps(
    {"object": "response", "model": "gpt-5", "output": [], "usage": {"input_tokens": 5, "output_tokens": 5}}
)


@pytest.mark.parametrize(("calls", "status"), [(1, 200), (3, 429)])
def test_web_search_fees_are_reserved_per_allowed_call(
    tollgate_factory: Any, provider: FakeProvider, calls: int, status: int
) -> None:
    tollgate: Tollgate = tollgate_factory(_LIMIT)
    provider.answer("POST", "/v1/responses", json_answer(_ANSWER))
    body = {
        "model": "gpt-5",
        "input": "news",
        "tools": [{"type": "web_search"}],
        "max_tool_calls": calls,
        "max_output_tokens": 10,
    }
    response = tollgate.client.post("/v1/responses", json=body, headers={"x-user-id": "alice"})
    # One search ($0.01) fits a $0.02 limit; three ($0.03) do not, though their tokens alone (about $0.002) would.
    assert response.status_code == status


@pytest.mark.parametrize(
    ("model", "facts", "pico"),
    [
        ("gpt-4o-search-preview", RequestFacts(model="gpt-4o-search-preview", choices=2), 50_000_000_000),
        (
            "gpt-4.1",
            RequestFacts(model="gpt-4.1", hosted_tools=frozenset({"code_interpreter"}), max_tool_calls=2),
            60_000_000_000,
        ),
        ("gemini/gemini-2.5-flash", RequestFacts(model="gemini-2.5-flash", grounded=True), 35_000_000_000),
        ("gpt-4.1", RequestFacts(model="gpt-4.1"), 0),
    ],
)
def test_each_fee_is_bounded_by_its_price(model: str, facts: RequestFacts, pico: int) -> None:
    card = _CATALOG.lookup(model)
    assert card is not None
    assert tool_fee_bound(card, facts, DEFAULT_TOOL_PRICES, _CATALOG.lookup, "openai")[0] == pico


def test_grounding_billed_per_query_cannot_be_bounded() -> None:
    card = _CATALOG.lookup("gemini-3.1-flash-lite-preview")
    assert card is not None
    with pytest.raises(CostUnbounded, match="billed per query"):
        tool_fee_bound(card, RequestFacts(model=card.model, grounded=True), DEFAULT_TOOL_PRICES, _CATALOG.lookup, None)
