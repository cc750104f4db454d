"""The largest cost a request can have, known before it is forwarded.

Spend limits are hard, so a request is admitted against this bound, never a guess:

- prompt tokens: at most one per byte of the request body (a token is at least
  one byte of text; JSON punctuation more than covers the per-message overhead),
  plus a fixed allowance for each image, audio or file part, whose tokens do not
  follow their bytes. Parts are found by parsing the request, never by searching
  its bytes (an escaped key such as ``image\\u005furl`` is still an image);
- input the body only points at (``previous_response_id``, a stored
  ``conversation`` or ``prompt``, a ``file_id``, an item reference) can be as large
  as the model's context window, so the prompt is bounded by that window
  (``max_input_tokens`` in the price map);
- output tokens: the largest of ``max_tokens``, ``max_completion_tokens`` and
  ``max_output_tokens`` the request sets (a provider may honour any of them), else
  the model's maximum output from the price map, times ``n`` (or ``best_of``) choices;
- priced at the most expensive rate that could apply (``pricing.bound_cost``).

A request this cannot bound is refused (``CostUnbounded``) rather than admitted on
trust: a model with no price, input by reference to a model with no known context
window, or hosted tools (web search, file search, ...) that feed their results
back as input without ``max_tool_calls``.

Counting bytes costs nothing on the request path, unlike a tokenizer, at the price
of a bound about four times the prompt's real size for English text.
"""

from __future__ import annotations

import math
from typing import Any

from pricing import PriceCard, bound_cost, cost_to_pico
from proxy.errors import CostUnbounded

# When neither the request nor the price map says how long the answer can be.
DEFAULT_MAX_OUTPUT_TOKENS = 131_072
_OUTPUT_CAPS = ("max_tokens", "max_completion_tokens", "max_output_tokens")
# Content parts whose tokens do not follow their bytes.
_MEDIA_TYPES = frozenset(
    {"image_url", "input_image", "image", "input_audio", "audio", "input_file", "file", "image_file", "document"}
)
_MEDIA_KEYS = ("image_url", "input_audio", "file_data", "image_file", "inline_data", "inlineData")
# Keys of parts that point at a file stored at the provider (or on the web) instead of carrying it.
_REFERENCE_KEYS = ("file_id", "file_url", "file_uri", "fileUri")
# Tools the provider runs itself, feeding their results back to the model as more input.
_HOSTED_TOOLS = ("web_search", "file_search", "code_interpreter", "mcp", "image_generation", "computer_use")
_MAX_DEPTH = 32


def output_cap(payload: dict[str, Any]) -> int | None:
    """The largest output token cap a request sets, if any: the provider may honour any of them."""
    caps = [_whole(payload.get(name)) for name in _OUTPUT_CAPS]
    found = [cap for cap in caps if cap is not None]
    return max(found) if found else None


def choices(payload: dict[str, Any]) -> int:
    """How many answers the request asks for (``n`` or ``best_of``; ``4.0`` is 4)."""
    counts = [_whole(payload.get("n")), _whole(payload.get("best_of"))]
    return max([1, *(c for c in counts if c is not None)])


def request_bound(
    card: PriceCard | None, body: bytes, payload: dict[str, Any], *, embeddings: bool, media_tokens: int
) -> tuple[int, str]:
    """(bound in picodollars, how it was reached in words) for a request to a model priced by ``card``.

    Raises ``CostUnbounded`` when the request's cost has no bound.
    """
    if card is None:
        model = payload.get("model")
        raise CostUnbounded(
            f"The model {model!r} has no price in Tollgate, so the cost of this request has no bound and a "
            f'spend limit cannot admit it. Add its price under [pricing.models."{model}"], or list the priced '
            "models its provider may answer with in [[providers]] bound_models."
        )
    parts = _Parts.of(payload)
    steps = 1
    if parts.hosted_tools:
        tool_calls = _whole(payload.get("max_tool_calls"))
        if tool_calls is None:
            raise CostUnbounded(
                f"This request uses hosted tools ({', '.join(sorted(parts.hosted_tools))}) whose results become "
                "more input with each call, so its cost has no bound without max_tool_calls; set max_tool_calls "
                "to admit it under a spend limit."
            )
        steps += tool_calls  # each tool call runs the model again, on at least the same prompt
    over_steps = f", over {steps} model turns" if steps > 1 else ""
    if parts.by_reference:
        stored = ", ".join(sorted(parts.by_reference))
        if card.max_input_tokens is None:
            raise CostUnbounded(
                f"This request brings in stored input ({stored}), which can be as long as the model's context "
                f"window, and the price map gives no context window for {card.model!r}; set max_input_tokens "
                f'under [pricing.models."{card.model}"] to admit it under a spend limit.'
            )
        prompt = card.max_input_tokens * steps
        prompt_words = f"{prompt:,} prompt tokens at most (the model's context window, for {stored}{over_steps})"
    else:
        prompt = (len(body) + parts.media * media_tokens) * steps
        media = f" + {parts.media} media parts" if parts.media else ""
        prompt_words = f"{prompt:,} prompt tokens at most ({len(body):,} body bytes{media}{over_steps})"
    if embeddings:
        return cost_to_pico(bound_cost(card, prompt, 0)), prompt_words
    cap = output_cap(payload)
    if cap is None:
        cap = card.max_output_tokens or DEFAULT_MAX_OUTPUT_TOKENS
        source = "no max_tokens set, so the model's maximum output"
    else:
        source = "the request's largest output cap"
    n = choices(payload)
    output = cap * n * steps
    output_words = f"{output:,} output tokens ({source}" + (f", times {n} choices)" if n > 1 else ")")
    return cost_to_pico(bound_cost(card, prompt, output)), f"{prompt_words} and {output_words}"


class _Parts:
    """What a parsed request holds that its size does not tell: media parts, input by reference, hosted tools."""

    __slots__ = ("media", "by_reference", "hosted_tools")

    def __init__(self) -> None:
        self.media = 0
        self.by_reference: set[str] = set()
        self.hosted_tools: set[str] = set()

    @classmethod
    def of(cls, payload: dict[str, Any]) -> _Parts:
        parts = cls()
        for name in ("previous_response_id", "conversation"):
            if payload.get(name) not in (None, "", {}):
                parts.by_reference.add(name)
        prompt = payload.get("prompt")
        if isinstance(prompt, dict) and prompt.get("id"):  # a stored prompt (Completions' prompt is text)
            parts.by_reference.add("prompt")
        tools = payload.get("tools")
        for tool in tools if isinstance(tools, list) else ():
            kind = tool.get("type") if isinstance(tool, dict) else None
            if isinstance(kind, str) and kind.startswith(_HOSTED_TOOLS):
                parts.hosted_tools.add(kind)
        for name in ("messages", "input", "prompt", "contents", "system"):
            parts._walk(payload.get(name), 0)
        return parts

    def _walk(self, value: Any, depth: int) -> None:
        if depth > _MAX_DEPTH:
            return
        if isinstance(value, list):
            for child in value:
                if isinstance(child, (dict, list)):
                    self._walk(child, depth + 1)
            return
        if not isinstance(value, dict):
            return
        kind = value.get("type")
        if kind == "item_reference":
            self.by_reference.add("item_reference")
        for key in _REFERENCE_KEYS:
            if isinstance(value.get(key), str) and value[key]:
                self.by_reference.add(key)
        if kind in _MEDIA_TYPES or (kind is None and any(key in value for key in _MEDIA_KEYS)):
            self.media += 1
            if not any(isinstance(v, dict) and _references(v) for v in value.values()):
                return  # one part, counted once: what it holds is its data
        for child in value.values():
            if isinstance(child, (dict, list)):
                self._walk(child, depth + 1)


def _references(value: dict[str, Any]) -> bool:
    return any(isinstance(value.get(key), str) and value[key] for key in _REFERENCE_KEYS)


def _whole(value: Any) -> int | None:
    """A count as a client may write it: 4, or 4.0 (a fraction counts up); None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float) and math.isfinite(value) and value >= 0:
        return math.ceil(value)
    return None
