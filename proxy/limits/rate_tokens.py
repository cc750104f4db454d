"""The most tokens a request can use, known before it is forwarded: what a tokens-per-minute limit holds.

The same reasoning as the spend bound (``proxy.limits.bounds``), in tokens rather than dollars:
one prompt token per byte of the body, plus ``image_tokens`` per media part (or the model's
context window for input the body only points at), or the prompt as counted when the byte bound
would refuse (``proxy.second_look.tighter_token_hold``); the largest output cap the request sets,
else the model's maximum output; times the choices and the model turns of hosted tools.
A request with nothing to bound it by (stored input for a model with no known context window,
hosted tools without ``max_tool_calls``) is held at the model's context window or, without one,
at the default maximum output for each turn: a rate limit is not a hard money guarantee, and
refusing every such request outright would be worse than a generous hold.
"""

from __future__ import annotations

from pricing import PriceCard
from proxy.dialects.base import RequestFacts
from proxy.limits.bounds import DEFAULT_MAX_OUTPUT_TOKENS

# Turns of a hosted-tool loop without max_tool_calls, for the token hold only (spend limits refuse such requests).
_UNBOUNDED_TOOL_TURNS = 8


def token_bound(
    card: PriceCard | None, body_bytes: int, facts: RequestFacts, *, media_tokens: int, counted: int | None = None
) -> int:
    """Prompt plus output tokens the request can use at most (see the module docstring).

    ``counted``: the prompt's tokens as counted (``proxy.limits.tighten.count_prompt``), media parts included.
    """
    turns = 1
    if facts.hosted_tools:
        turns += facts.max_tool_calls if facts.max_tool_calls is not None else _UNBOUNDED_TOOL_TURNS
    context = card.max_input_tokens if card is not None else None
    if facts.stored_input:
        prompt = context if context is not None else DEFAULT_MAX_OUTPUT_TOKENS
    elif counted is not None:
        prompt = counted
    else:
        prompt = body_bytes + facts.media_parts * media_tokens
    cap = facts.output_cap
    if cap is None:
        cap = (card.max_output_tokens if card is not None else None) or DEFAULT_MAX_OUTPUT_TOKENS
    return (prompt + cap * facts.choices) * turns
