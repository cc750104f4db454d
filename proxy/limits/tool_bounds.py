"""The most a request's hosted tools can add in per-call fees, known before it is forwarded.

``proxy.limits.bounds`` bounds the tokens a hosted tool feeds back; the per-call fees
(``pricing.units``) come on top, and a hard limit must reserve them too:

- Responses and Anthropic hosted tools: each of ``max_tool_calls`` calls (Anthropic's summed
  ``max_uses``) may be the dearest declared tool's: a web search at the card's dearest
  ``search_context_cost_per_query`` (else the tool table's), a file search, or a new container;
- Chat search models (a model name with ``search`` in it): one search per choice;
- Gemini grounding (a ``googleSearch`` tool): one grounded prompt per candidate where the card bills
  ``per_prompt``; a card billing ``per_query`` runs as many queries as it likes, so it is refused.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, Decimal

from pricing import PriceCard, ToolPrices, cost_to_pico
from pricing.catalog import SEARCH_CONTEXT
from pricing.cost import PICO_USD
from pricing.units import Lookup, container_rate
from proxy.dialects.base import RequestFacts
from proxy.errors import CostUnbounded

_ZERO = Decimal(0)


def tool_fee_bound(
    card: PriceCard, facts: RequestFacts, tools: ToolPrices, lookup: Lookup, kind: str | None
) -> tuple[int, str]:
    """(picodollars, words) the request's hosted tools may add in fees; (0, "") when it uses none."""
    searches = facts.model is not None and "search" in facts.model
    if not (facts.hosted_tools or facts.grounded or searches):
        return 0, ""  # most requests: asked for every bound, so answered before any rate is looked up
    container = container_rate(tools, lookup, kind)
    search = max((rate for key, rate in card.unit_rates.items() if key.startswith(SEARCH_CONTEXT)), default=None)
    search_fee = search if search is not None else tools.web_search_call
    fees: list[tuple[Decimal, str]] = []
    if facts.hosted_tools and facts.max_tool_calls:
        per_call = max((_per_call(tool, search_fee, tools, container) for tool in facts.hosted_tools), default=_ZERO)
        fees.append((per_call * facts.max_tool_calls, f"{facts.max_tool_calls} hosted tool calls at ${per_call}"))
    if searches and not facts.hosted_tools:
        fees.append((search_fee * facts.choices, f"{facts.choices} web searches at ${search_fee}"))
    if facts.grounded:
        if card.web_search_billing_unit == "per_query":
            raise CostUnbounded(
                f"Grounding with Google Search on {card.model!r} is billed per query, and nothing caps how many "
                "queries it runs, so a spend limit cannot admit this request."
            )
        grounding = card.unit_rates.get(f"{SEARCH_CONTEXT}.medium", tools.web_search_call)
        fees.append((grounding * facts.choices, f"{facts.choices} grounded prompts at ${grounding}"))
    if not fees:
        return 0, ""
    total = sum((fee for fee, _ in fees), _ZERO)
    return cost_to_pico(total.quantize(PICO_USD, rounding=ROUND_CEILING)), ", ".join(words for _, words in fees)


def _per_call(tool: str, search_fee: Decimal, tools: ToolPrices, container: Decimal) -> Decimal:
    if tool.startswith("web_search"):
        return search_fee
    if tool.startswith("file_search"):
        return tools.file_search_call
    if tool.startswith("code_interpreter") or tool.startswith("code_execution"):
        return container
    return _ZERO  # tools with no fee of their own (their tokens are bounded already)
