"""A rate-limit refusal as each API writes its own: OpenAI's ``x-ratelimit-*``, Anthropic's ``anthropic-ratelimit-*``.

The body comes from the dialect (``Dialect.error_body``: OpenAI's ``type`` ``requests`` or ``tokens`` with
``code`` ``rate_limit_exceeded``, Anthropic's ``rate_limit_error``, Gemini's ``RESOURCE_EXHAUSTED``); this
module words the message and builds the headers. ``retry-after`` (and ``retry-after-ms``, which OpenAI's
SDKs read first) say when the minute ends, or, for requests in flight, a second. A request whose token
bound is larger than the whole limit can never fit: it gets ``x-should-retry: false``.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

from proxy.errors import RateLimitExceeded, TokenRateExceeded
from proxy.limits.rates import CONCURRENT, TOKENS, RateCounter

# Requests in flight end at no known time: a second is a fair wait before trying again.
_CONCURRENT_RETRY_S = 1.0
_UNITS = {"requests": "requests per minute", "tokens": "tokens per minute", "concurrent": "requests in flight"}


def rate_refusal(counter: RateCounter, free: int, need: int, now: float, dialect_kind: str) -> RateLimitExceeded:
    """The refusal of a request needing ``need`` on ``counter``, which leaves ``free`` across the fleet."""
    wait = counter.resets_at - now if counter.resets_at is not None else _CONCURRENT_RETRY_S
    wait = max(wait, 0.001)
    remaining = max(free, 0)
    never = need > counter.limit
    unit = _UNITS[counter.kind]
    if never:
        message = (
            f"Rate limit for {counter.describe()} is {counter.limit:,} {unit}, and this request could use up to "
            f"{need:,} tokens (its prompt bound plus its output cap), so it can never fit; "
            "lower max_tokens (or max_completion_tokens / max_output_tokens) or send a shorter prompt."
        )
    elif counter.kind == CONCURRENT:
        message = (
            f"Rate limit reached for {counter.describe()}: at most {counter.limit:,} {unit}, and that many are "
            "running; retry once one has finished."
        )
    else:
        message = (
            f"Rate limit reached for {counter.describe()}: {counter.limit:,} {unit}, {remaining:,} left in this "
            f"minute and "
            f"this request needs {need:,}; the minute resets in {math.ceil(wait)}s."
        )
    headers = _headers(counter, remaining, wait, now, dialect_kind)
    if never:
        headers["x-should-retry"] = "false"
    else:
        headers["retry-after"] = str(max(1, math.ceil(wait)))
        headers["retry-after-ms"] = str(max(1, math.ceil(wait * 1000)))
    error_class = TokenRateExceeded if counter.kind == TOKENS else RateLimitExceeded
    return error_class(message, headers=headers, scope=counter.scope.partition(":")[0])


def _headers(counter: RateCounter, remaining: int, wait: float, now: float, dialect_kind: str) -> dict[str, str]:
    kind = counter.kind
    if dialect_kind == "anthropic":
        reset = datetime.fromtimestamp(now + wait, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        prefix = f"anthropic-ratelimit-{kind}"
        return {f"{prefix}-limit": str(counter.limit), f"{prefix}-remaining": str(remaining), f"{prefix}-reset": reset}
    if dialect_kind == "gemini":  # Gemini says when to retry in retry-after only
        return {}
    return {
        f"x-ratelimit-limit-{kind}": str(counter.limit),
        f"x-ratelimit-remaining-{kind}": str(remaining),
        f"x-ratelimit-reset-{kind}": _duration(wait),
    }


def _duration(seconds: float) -> str:
    """OpenAI's way of writing a reset: '12s', '1m30s', '250ms'."""
    if seconds < 1:
        return f"{max(1, round(seconds * 1000))}ms"
    whole = math.ceil(seconds)
    minutes, rest = divmod(whole, 60)
    return f"{minutes}m{rest}s" if minutes else f"{rest}s"
