"""Tollgate's prices agree with litellm's own cost calculator on popular models.

litellm is imported here only, once per module: it takes seconds, and the server never does it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from decimal import Decimal

import pytest

from pricing import Catalog, Cost, TokenCounts, price_tokens
from tests.pricing.cards import real_card

pytestmark = [
    pytest.mark.slow,
    # litellm builds pydantic adapters lazily, per provider; pydantic warns about litellm's own types.
    pytest.mark.filterwarnings("ignore:.*using the `ReadOnly` qualifier:UserWarning"),
]

CostPerToken = Callable[..., tuple[float, float]]

_POPULAR = [
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-4.1",
    "gpt-4.1-mini",
    "gpt-4.1-nano",
    "gpt-4",
    "gpt-3.5-turbo",
    "o1",
    "o3",
    "o3-mini",
    "o4-mini",
    "gpt-5",
    "gpt-5-mini",
    "gpt-5-nano",
    "text-embedding-3-small",
    "text-embedding-3-large",
    "claude-sonnet-4-5",
    "claude-haiku-4-5",
    "claude-opus-4-5",
    "gemini/gemini-2.5-pro",
    "gemini/gemini-2.5-flash",
    "mistral/mistral-large-latest",
    "mistral/mistral-small-latest",
    "deepseek/deepseek-chat",
    "deepseek/deepseek-reasoner",
]
_RELATIVE: Decimal = Decimal("1e-12")


@pytest.fixture(scope="module")
def litellm_cost_per_token() -> Iterator[CostPerToken]:
    with pytest.MonkeyPatch.context() as patch:
        # Use the bundled map, the one Tollgate reads, instead of fetching the latest from GitHub.
        patch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        litellm = importlib.import_module("litellm")
        cost_per_token: CostPerToken = litellm.cost_per_token
        yield cost_per_token


def _assert_close(ours: Decimal, theirs: float) -> None:
    expected = Decimal(theirs)
    assert abs(ours - expected) <= _RELATIVE * abs(expected), f"{ours} != {theirs}"


def _prompt_side(cost: Cost) -> Decimal:
    return cost.input + cost.cached_input + cost.cache_write


def _completion_side(cost: Cost) -> Decimal:
    return cost.output + cost.reasoning


@pytest.mark.parametrize("model", _POPULAR)
@pytest.mark.parametrize(("prompt", "completion"), [(1_000, 500), (123_457, 8_191)])
def test_plain_token_costs_match_litellm(
    catalog: Catalog, litellm_cost_per_token: CostPerToken, model: str, prompt: int, completion: int
) -> None:
    cost = price_tokens(real_card(catalog, model), TokenCounts(input=prompt, output=completion))

    theirs = litellm_cost_per_token(model=model, prompt_tokens=prompt, completion_tokens=completion)

    _assert_close(_prompt_side(cost), theirs[0])
    _assert_close(_completion_side(cost), theirs[1])
    _assert_close(cost.total, sum(theirs))


@pytest.mark.parametrize(
    ("model", "cache_read", "cache_write"),
    [
        ("gpt-4o-mini", 400, 0),
        ("gpt-5", 900, 0),
        ("claude-sonnet-4-5", 400, 100),
        ("claude-haiku-4-5", 0, 700),
        ("deepseek/deepseek-chat", 600, 0),
        ("gemini/gemini-2.5-pro", 250_000, 0),
    ],
)
def test_cached_token_costs_match_litellm(
    catalog: Catalog, litellm_cost_per_token: CostPerToken, model: str, cache_read: int, cache_write: int
) -> None:
    prompt = cache_read + cache_write + 1_000
    tokens = TokenCounts(input=prompt, cached_input=cache_read, cache_write=cache_write, output=300)
    cost = price_tokens(real_card(catalog, model), tokens)

    prompt_cost, completion_cost = litellm_cost_per_token(
        model=model,
        prompt_tokens=prompt,
        completion_tokens=300,
        cache_read_input_tokens=cache_read,
        cache_creation_input_tokens=cache_write,
    )

    _assert_close(_prompt_side(cost), prompt_cost)
    _assert_close(_completion_side(cost), completion_cost)


@pytest.mark.parametrize(
    ("model", "prompt", "service_tier"),
    [
        ("gemini/gemini-2.5-pro", 250_000, None),
        ("gpt-5", 1_000, "priority"),
        ("gpt-5-mini", 1_000, "flex"),
        ("o4-mini", 5_000, "flex"),
        ("gpt-4o", 2_000, "priority"),
    ],
)
def test_tiered_costs_match_litellm(
    catalog: Catalog, litellm_cost_per_token: CostPerToken, model: str, prompt: int, service_tier: str | None
) -> None:
    cost = price_tokens(real_card(catalog, model), TokenCounts(input=prompt, output=700), service_tier)

    prompt_cost, completion_cost = litellm_cost_per_token(
        model=model, prompt_tokens=prompt, completion_tokens=700, service_tier=service_tier
    )

    _assert_close(_prompt_side(cost), prompt_cost)
    _assert_close(_completion_side(cost), completion_cost)


@pytest.mark.parametrize(
    ("kind", "model", "usage", "litellm_args"),
    [
        # Anthropic: input_tokens excludes the cache; litellm takes the same three numbers.
        (
            "anthropic",
            "claude-sonnet-4-5",
            {
                "input_tokens": 40,
                "cache_read_input_tokens": 9000,
                "cache_creation_input_tokens": 800,
                "output_tokens": 70,
            },
            {
                "prompt_tokens": 9840,
                "completion_tokens": 70,
                "cache_read_input_tokens": 9000,
                "cache_creation_input_tokens": 800,
            },
        ),
        # Gemini: thoughts are billed as output, beside the candidates; litellm counts them in completion_tokens.
        (
            "gemini",
            "gemini-2.5-flash",
            {"promptTokenCount": 5000, "candidatesTokenCount": 60, "thoughtsTokenCount": 400},
            {"prompt_tokens": 5000, "completion_tokens": 460},
        ),
        # Azure: priced by the azure/ entry.
        (
            "azure",
            "gpt-4o-mini",
            {"prompt_tokens": 3000, "completion_tokens": 90},
            {"prompt_tokens": 3000, "completion_tokens": 90},
        ),
    ],
)
def test_usage_read_from_each_provider_costs_what_litellm_says(
    catalog: Catalog,
    litellm_cost_per_token: CostPerToken,
    kind: str,
    model: str,
    usage: dict[str, int],
    litellm_args: dict[str, int],
) -> None:
    from pricing import lookup_for_kind, priced_name
    from proxy.dialects.anthropic import usage_from_counts
    from proxy.dialects.gemini import usage_from_metadata
    from proxy.dialects.openai import usage_from_object

    read = {
        "anthropic": lambda: usage_from_counts(usage),
        "gemini": lambda: usage_from_metadata(usage),
        "azure": lambda: usage_from_object({"usage": usage}),
    }[kind]()
    card = lookup_for_kind(catalog, model, kind)
    assert read is not None and card is not None
    cost = price_tokens(card, read.tokens)
    prompt_cost, completion_cost = litellm_cost_per_token(model=priced_name(model, kind), **litellm_args)
    _assert_close(_prompt_side(cost), prompt_cost)
    _assert_close(_completion_side(cost), completion_cost)
