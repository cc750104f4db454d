"""The largest cost a request can have, known before it is forwarded.

Spend limits are hard, so a request is admitted against this bound, never a guess:

- prompt tokens: at most one per byte of the request body (a token is at least
  one byte of text; JSON punctuation more than covers the per-message overhead),
  plus a fixed allowance for each image, audio or file part, whose tokens do not
  follow their bytes (the dialect finds them by parsing the request);
- input the body only points at (``previous_response_id``, a stored
  ``conversation`` or ``prompt``, a ``file_id``, an item reference) can be as large
  as the model's context window, so the prompt is bounded by that window
  (``max_input_tokens`` in the price map);
- output tokens: the largest output cap the request sets (a provider may honour any
  of them), else the model's maximum output from the price map, times its choices;
- priced at the most expensive rate that could apply (``pricing.bound_cost``).

A request this cannot bound is refused (``CostUnbounded``) rather than admitted on
trust: a model with no price, input by reference to a model with no known context
window, or hosted tools (web search, file search, ...) that feed their results
back as input without ``max_tool_calls``.

Counting bytes costs nothing on the request path, unlike a tokenizer, at the price
of a bound about four times the prompt's real size for English text. So only a
request that this bound would refuse is bounded again, tightly (``tight_request_bound``,
from a prompt counted by ``proxy.limits.tighten``).
"""

from __future__ import annotations

import dataclasses

from pricing import PriceCard, PromptParts, bound_cost, cost_to_pico, tight_bound_cost
from proxy.dialects.base import RequestFacts
from proxy.errors import CostUnbounded

# When neither the request nor the price map says how long the answer can be.
DEFAULT_MAX_OUTPUT_TOKENS = 131_072


def request_bound(
    card: PriceCard | None, body_bytes: int, facts: RequestFacts, *, embeddings: bool, media_tokens: int
) -> tuple[int, str]:
    """(bound in picodollars, how it was reached in words) for a request to a model priced by ``card``.

    Raises ``CostUnbounded`` when the request's cost has no bound.
    """
    if card is None:
        model = facts.model
        raise CostUnbounded(
            f"The model {model!r} has no price in Tollgate, so the cost of this request has no bound and a "
            f'spend limit cannot admit it. Add its price under [pricing.models."{model}"], or list the priced '
            "models its provider may answer with in [[providers]] bound_models."
        )
    steps = 1
    if facts.hosted_tools:
        if facts.max_tool_calls is None:
            raise CostUnbounded(
                f"This request uses hosted tools ({', '.join(sorted(facts.hosted_tools))}) whose results become "
                "more input with each call, so its cost has no bound without max_tool_calls; set max_tool_calls "
                "to admit it under a spend limit."
            )
        steps += facts.max_tool_calls  # each tool call runs the model again, on at least the same prompt
    over_steps = f", over {steps} model turns" if steps > 1 else ""
    if facts.stored_input:
        stored = ", ".join(sorted(facts.stored_input))
        if card.max_input_tokens is None:
            raise CostUnbounded(
                f"This request brings in stored input ({stored}), which can be as long as the model's context "
                f"window, and the price map gives no context window for {card.model!r}; set max_input_tokens "
                f'under [pricing.models."{card.model}"] to admit it under a spend limit.'
            )
        prompt = card.max_input_tokens * steps
        prompt_words = f"{prompt:,} prompt tokens at most (the model's context window, for {stored}{over_steps})"
    else:
        prompt = (body_bytes + facts.media_parts * media_tokens) * steps
        media = f" + {facts.media_parts} media parts" if facts.media_parts else ""
        prompt_words = f"{prompt:,} prompt tokens at most ({body_bytes:,} body bytes{media}{over_steps})"
    if embeddings:
        return cost_to_pico(bound_cost(card, prompt, 0)), prompt_words
    output, output_words = _output(card, facts, steps)
    return cost_to_pico(bound_cost(card, prompt, output)), f"{prompt_words} and {output_words}"


def tight_request_bound(
    card: PriceCard, facts: RequestFacts, prompt: PromptParts, how: str, *, embeddings: bool
) -> tuple[int, str]:
    """(bound in picodollars, in words) of a request whose prompt was counted into ``prompt``'s parts.

    The caller has refused what ``request_bound`` refuses (stored input, hosted tools without
    ``max_tool_calls``); each model turn reads at least the same prompt.
    """
    steps = 1 + ((facts.max_tool_calls or 0) if facts.hosted_tools else 0)
    if steps > 1:
        prompt = PromptParts(*(part * steps for part in dataclasses.astuple(prompt)))
    over_steps = f", over {steps} model turns" if steps > 1 else ""
    prompt_words = f"{prompt.total:,} prompt tokens at most ({how}{over_steps})"
    if embeddings:
        return cost_to_pico(tight_bound_cost(card, prompt, 0)), prompt_words
    output, output_words = _output(card, facts, steps)
    return cost_to_pico(tight_bound_cost(card, prompt, output)), f"{prompt_words} and {output_words}"


def output_bound(card: PriceCard, facts: RequestFacts) -> int:
    """The most output tokens a request may be billed for: its cap (or the model's), times choices and turns."""
    steps = 1 + ((facts.max_tool_calls or 0) if facts.hosted_tools else 0)
    return _output(card, facts, steps)[0]


def _output(card: PriceCard, facts: RequestFacts, steps: int) -> tuple[int, str]:
    cap = facts.output_cap
    if cap is None:
        cap = card.max_output_tokens or DEFAULT_MAX_OUTPUT_TOKENS
        source = "no max_tokens set, so the model's maximum output"
    else:
        source = "the request's largest output cap"
    n = facts.choices
    output = cap * n * steps
    return output, f"{output:,} output tokens ({source}" + (f", times {n} choices)" if n > 1 else ")")
