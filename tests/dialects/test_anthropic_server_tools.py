"""Anthropic's server tools (web search, web fetch): the row keeps their counts in the provider's raw usage.

Pricing them is not this module's concern; what it checks is that the counts reach the row whole,
from a JSON answer and from a stream whose ``message_delta`` restates them cumulatively.
"""

from __future__ import annotations

from typing import Any

import anthropic
import orjson

from tests.conftest import json_answer, sse
from tests.dialects.conftest import LiveTollgate
from tests.fakeprovider import FakeProvider

MESSAGES = "/v1/messages"
MODEL = "claude-sonnet-4-5"


def _event(kind: str, data: dict[str, Any]) -> bytes:
    return f"event: {kind}\ndata: ".encode() + orjson.dumps({"type": kind, **data}) + b"\n\n"


def _ask(live: LiveTollgate, *, stream: bool) -> None:
    client = anthropic.Anthropic(base_url=live.url, api_key="sk-ant-client", max_retries=0)
    with client:
        request: dict[str, Any] = {"model": MODEL, "max_tokens": 100, "messages": [{"role": "user", "content": "q"}]}
        if stream:
            with client.messages.stream(**request) as events:
                events.until_done()
        else:
            client.messages.create(**request)


def test_a_json_answer_keeps_its_server_tool_counts(live: LiveTollgate, provider: FakeProvider) -> None:
    usage = {"input_tokens": 900, "output_tokens": 80, "server_tool_use": {"web_search_requests": 3}}
    message = {"id": "m", "type": "message", "role": "assistant", "model": MODEL, "content": [], "usage": usage}
    provider.answer("POST", MESSAGES, json_answer(orjson.dumps(message | {"stop_reason": "end_turn"})))
    _ask(live, stream=False)
    [row] = live.rows()
    assert orjson.loads(row["provider_usage"])["server_tool_use"] == {"web_search_requests": 3}
    assert (row["input_tokens"], row["output_tokens"]) == (900, 80)


def test_a_stream_keeps_the_last_server_tool_counts(live: LiveTollgate, provider: FakeProvider) -> None:
    start = {"input_tokens": 40, "output_tokens": 1, "server_tool_use": {"web_search_requests": 0}}
    message = {"id": "m", "type": "message", "role": "assistant", "model": MODEL, "content": [], "usage": start}
    final = {"output_tokens": 60, "server_tool_use": {"web_search_requests": 2, "web_fetch_requests": 1}}
    events = (
        _event("message_start", {"message": message}),
        _event("message_delta", {"delta": {"stop_reason": None}, "usage": {"output_tokens": 20}}),
        _event("message_delta", {"delta": {"stop_reason": "end_turn"}, "usage": final}),
        _event("message_stop", {}),
    )
    provider.answer("POST", MESSAGES, sse(events))
    _ask(live, stream=True)
    [row] = live.rows()
    raw = orjson.loads(row["provider_usage"])
    assert raw["server_tool_use"] == {"web_search_requests": 2, "web_fetch_requests": 1}
    assert (row["input_tokens"], row["output_tokens"]) == (40, 60)
