"""OpenAI's cache writes are read under their current names and priced at the map's write rates."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
import pytest

from proxy.dialects.openai import usage_from_object
from tests.conftest import Tollgate, json_answer
from tests.fakeprovider import FakeProvider


@pytest.mark.parametrize(
    ("usage", "short", "long"),
    [
        ({"prompt_tokens": 9000, "prompt_tokens_details": {"cache_write_tokens": 5000}}, 5000, 0),
        ({"prompt_tokens": 9000, "prompt_tokens_details": {"cache_creation_tokens": 700}}, 700, 0),
        (
            {
                "input_tokens": 9000,
                "input_tokens_details": {
                    "cache_write_tokens": 5000,
                    "cache_write_tokens_details": {"ttl_30m_tokens": 3000, "ttl_12h_tokens": 2000},
                },
            },
            3000,
            2000,
        ),
        (  # writes beyond the split are priced at the 30-minute rate, never dropped
            {
                "input_tokens": 9000,
                "input_tokens_details": {
                    "cache_write_tokens": 5000,
                    "cache_write_tokens_details": {"ttl_12h_tokens": 500},
                },
            },
            4500,
            500,
        ),
        (  # a split larger than the total is held to it
            {
                "input_tokens": 9,
                "input_tokens_details": {"cache_write_tokens": 5, "cache_write_tokens_details": {"ttl_12h_tokens": 50}},
            },
            0,
            5,
        ),
    ],
)
def test_cache_writes_are_read_with_their_lifetimes(usage: dict[str, Any], short: int, long: int) -> None:
    found = usage_from_object({"usage": usage})
    assert found is not None
    assert (found.tokens.cache_write, found.tokens.cache_write_12h) == (short, long)


def _rate(key: str) -> Decimal:
    from pricing import Catalog

    card = Catalog.load().lookup("gpt-5.6-sol")
    assert card is not None
    return card.rates[key]


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/responses"])
def test_a_gpt_5_6_answer_that_writes_the_cache_costs_what_the_map_says(
    tollgate: Tollgate, provider: FakeProvider, path: str
) -> None:
    if path == "/v1/responses":
        details = {
            "cache_write_tokens": 5000,
            "cache_write_tokens_details": {"ttl_30m_tokens": 3000, "ttl_12h_tokens": 2000},
        }
        usage: dict[str, Any] = {"input_tokens": 8000, "input_tokens_details": details, "output_tokens": 1000}
        long = 2000
    else:
        usage = {
            "prompt_tokens": 8000,
            "prompt_tokens_details": {"cache_write_tokens": 5000},
            "completion_tokens": 1000,
        }
        long = 0
    provider.answer("POST", path, json_answer(orjson.dumps({"id": "x", "model": "gpt-5.6-sol", "usage": usage})))
    tollgate.client.post(path, content=b'{"model": "gpt-5.6-sol", "input": "x", "messages": []}')
    [row] = tollgate.rows()
    expected = (
        3000 * _rate("input_cost_per_token")
        + (5000 - long) * _rate("cache_creation_input_token_cost")
        + long * _rate("cache_creation_input_token_cost_above_12hr")
        + 1000 * _rate("output_cost_per_token")
    )
    assert (row["cache_write_tokens"], row["cache_write_12h_tokens"]) == (5000 - long, long)
    assert Decimal(row["cost_pico"]) / 10**12 == expected  # the 5,000 written tokens were priced as plain input
