"""``UsageRecord``: what Tollgate knows of one finished request.

It is built on the request path, queued to the recorder, written as one row of
``usage_records`` and handed to the usage handlers. Its field names are the table's
column names.

Handlers also read it through the names of an app's own usage callback: ``agent_name``,
``model``, ``usage`` (input, output, total, cached and reasoning tokens), ``cost`` and
``provider_metadata`` (the provider's usage object, parsed).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson

from pricing import pico_to_usd

# The longest user, team, thread, agent, model or endpoint a row holds; longer ones are refused at the door.
MAX_LABEL_CHARS = 256
MAX_TIER_CHARS = 32  # a service tier, as the provider names it


def label_problem(value: str) -> str | None:
    """Why ``value`` cannot be a row's user, team, thread, agent, model or endpoint; None if it can.

    Such a value would make the database refuse its whole batch of rows, so it is refused at the door.
    """
    if len(value) > MAX_LABEL_CHARS:
        return f"is {len(value)} characters long; Tollgate records at most {MAX_LABEL_CHARS}"
    if "\x00" in value:
        return "holds a NUL character, which PostgreSQL cannot store"
    return None


@dataclass(frozen=True, slots=True)
class UsageRecord:
    request_id: str
    started_at: datetime
    ended_at: datetime
    method: str
    endpoint: str
    provider: str | None
    model_requested: str | None
    model_served: str | None
    stream: bool
    status: int
    user_id: str | None
    team_id: str | None
    thread_id: str | None
    agent: str | None
    key_name: str | None
    tags: str | None
    input_tokens: int
    cached_input_tokens: int
    cache_write_tokens: int
    cache_write_1h_tokens: int
    output_tokens: int
    reasoning_tokens: int
    audio_input_tokens: int
    audio_output_tokens: int
    service_tier: str | None
    cost_pico: int | None
    unpriced: bool
    usage_source: str
    latency_ms: float
    ttfb_ms: float | None
    error_type: str | None
    cache_write_12h_tokens: int = 0  # last, with a default: journals and archives from before it still read
    provider_kind: str | None = None  # the API the provider speaks: openai, anthropic, gemini or azure
    provider_usage: str | None = None  # the provider's own usage object, as JSON
    front_door: str = "proxy"  # how the request reached the meter: "proxy" (over HTTP) or "inprocess"
    # Units beyond tokens (pricing.UnitCounts), with defaults: journals and archives from before them still read.
    web_search_calls: int = 0
    search_context_size: str | None = None
    file_search_calls: int = 0
    container_sessions: int = 0
    server_tool_requests: int = 0
    grounding_queries: int = 0
    images: int = 0
    image_size: str | None = None
    image_quality: str | None = None
    image_tokens_in: int = 0
    image_tokens_out: int = 0
    audio_characters: int = 0
    audio_ms: int = 0
    storage_bytes: int = 0
    storage_free_bytes: int = 0
    unit_cost_pico: int | None = None  # the units' part of cost_pico
    unpriced_units: str | None = None  # units used that had no price, comma-separated
    resource_id: str | None = None  # the id of the object the request created at the provider (a vector store)
    price_version: int | None = None  # the imported price version that priced it (None: config and bundled map)
    provider_cost_pico: int | None = None  # the cost the provider reported, where its cost_source is "provider"

    @property
    def cost_usd(self) -> Decimal | None:
        """The exact cost in dollars, or None when the model had no price."""
        return None if self.cost_pico is None else pico_to_usd(self.cost_pico)

    @property
    def cost(self) -> Decimal | None:
        """``cost_usd``, by the name usage callbacks use."""
        return self.cost_usd

    @property
    def provider_metadata(self) -> Any:
        """The provider's own usage object (``provider_usage`` parsed), or None."""
        return None if self.provider_usage is None else orjson.loads(self.provider_usage)

    @property
    def agent_name(self) -> str | None:
        return self.agent

    @property
    def model(self) -> str | None:
        """The model that answered, else the one asked for."""
        return self.model_served or self.model_requested

    @property
    def usage(self) -> TokenUsage:
        return TokenUsage(
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            total_tokens=self.input_tokens + self.output_tokens,
            cached_tokens=self.cached_input_tokens,
            reasoning_tokens=self.reasoning_tokens,
        )


@dataclass(frozen=True, slots=True)
class TokenUsage:
    """A record's tokens as a usage callback reads them: cached are part of input, reasoning of output."""

    input_tokens: int
    output_tokens: int
    total_tokens: int
    cached_tokens: int
    reasoning_tokens: int
