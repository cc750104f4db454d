"""The largest cost a request can have, known before it is forwarded.

Spend limits are hard, so a request is admitted against this bound, never a guess:

- prompt tokens: at most one per byte of the request body (a token is at least
  one byte of text; JSON punctuation more than covers the per-message overhead),
  plus a fixed allowance for each image, audio or file part, whose tokens do not
  follow their bytes;
- output tokens: ``max_tokens``, ``max_completion_tokens`` or
  ``max_output_tokens`` when the request sets one, else the model's maximum
  output from the price map, times ``n`` (or ``best_of``) choices;
- priced at the most expensive rate that could apply (``pricing.bound_cost``).

Counting bytes costs nothing on the request path, unlike a tokenizer, at the price
of a bound about four times the prompt's real size for English text.
"""

from __future__ import annotations

from typing import Any

from pricing import PriceCard, bound_cost, cost_to_pico

# When neither the request nor the price map says how long the answer can be.
DEFAULT_MAX_OUTPUT_TOKENS = 131_072
_MEDIA_PARTS = (b'"image_url"', b'"input_image"', b'"input_audio"', b'"input_file"', b'"file_data"')
_OUTPUT_CAPS = ("max_tokens", "max_completion_tokens", "max_output_tokens")


def output_cap(payload: dict[str, Any]) -> int | None:
    """The output token cap a request sets, if any."""
    for name in _OUTPUT_CAPS:
        value = payload.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
    return None


def choices(payload: dict[str, Any]) -> int:
    """How many answers the request asks for (``n`` or ``best_of``)."""
    counts = [payload.get("n"), payload.get("best_of")]
    return max([1, *(c for c in counts if isinstance(c, int) and not isinstance(c, bool))])


def request_bound(
    card: PriceCard | None, body: bytes, payload: dict[str, Any], *, embeddings: bool, media_tokens: int
) -> tuple[int, str]:
    """(bound in picodollars, how it was reached in words) for a request to a model priced by ``card``."""
    if card is None:
        return 0, "the model has no price, so its usage is recorded unpriced"
    media = sum(body.count(marker) for marker in _MEDIA_PARTS)
    prompt = len(body) + media * media_tokens
    prompt_words = f"{prompt:,} prompt tokens at most ({len(body):,} body bytes" + (
        f" + {media} media parts)" if media else ")"
    )
    if embeddings:
        return cost_to_pico(bound_cost(card, prompt, 0)), prompt_words
    cap = output_cap(payload)
    if cap is None:
        cap = card.max_output_tokens or DEFAULT_MAX_OUTPUT_TOKENS
        source = "no max_tokens set, so the model's maximum output"
    else:
        source = "the request's max_tokens"
    n = choices(payload)
    output = cap * n
    output_words = f"{output:,} output tokens ({source}" + (f", times {n} choices)" if n > 1 else ")")
    return cost_to_pico(bound_cost(card, prompt, output)), f"{prompt_words} and {output_words}"
