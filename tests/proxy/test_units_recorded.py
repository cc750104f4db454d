"""Units beyond tokens reach the row: counted, priced, their part of the cost kept beside the whole."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from proxy.config import ConfigError, parse_config
from tests.conftest import Tollgate, json_answer
from tests.fakeprovider import FakeProvider

_SEARCH = {"type": "web_search_call", "id": "ws_1", "status": "completed", "action": {"type": "search", "query": "q"}}
_FILES = {"type": "file_search_call", "id": "fs_1", "status": "completed", "queries": ["q"], "results": None}


def _response(output: list[dict[str, Any]], tools: list[dict[str, Any]]) -> bytes:
    usage = {"input_tokens": 1000, "output_tokens": 100, "input_tokens_details": {"cached_tokens": 0}}
    return orjson.dumps({"object": "response", "model": "gpt-5", "output": output, "tools": tools, "usage": usage})


def test_a_responses_web_search_is_recorded_and_priced(tollgate: Tollgate, provider: FakeProvider) -> None:
    tools = [{"type": "web_search", "search_context_size": "low"}]
    provider.answer("POST", "/v1/responses", json_answer(_response([_SEARCH, {**_SEARCH, "id": "ws_2"}], tools)))
    tollgate.client.post("/v1/responses", json={"model": "gpt-5", "input": "news?", "tools": tools})
    [row] = tollgate.rows()
    assert (row["web_search_calls"], row["search_context_size"]) == (2, "low")
    assert row["unit_cost_pico"] == 20_000_000_000  # 2 x $0.01
    assert row["cost_pico"] == 1000 * 1_250_000 + 100 * 10_000_000 + row["unit_cost_pico"]
    assert row["unpriced_units"] is None and not row["unpriced"]


def test_a_chat_search_takes_its_context_size_from_the_request(tollgate: Tollgate, provider: FakeProvider) -> None:
    citation = {"type": "url_citation", "url_citation": {"url": "https://example.com", "title": "t"}}
    answer = {
        "object": "chat.completion",
        "model": "gpt-4o-search-preview",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "x", "annotations": [citation]}}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 10},
    }
    provider.answer("POST", "/v1/chat/completions", json_answer(orjson.dumps(answer)))
    request = {"model": "gpt-4o-search-preview", "messages": [], "web_search_options": {"search_context_size": "high"}}
    tollgate.client.post("/v1/chat/completions", json=request)
    [row] = tollgate.rows()
    assert (row["web_search_calls"], row["search_context_size"]) == (1, "high")
    assert row["unit_cost_pico"] == 25_000_000_000


def test_tool_prices_are_overridden_in_config(tollgate_factory: Any, provider: FakeProvider) -> None:
    tollgate: Tollgate = tollgate_factory('[pricing.tools]\nfile_search_call = "0.004"\n')
    provider.answer("POST", "/v1/responses", json_answer(_response([_FILES, {**_FILES, "id": "fs_2"}], [])))
    tollgate.client.post("/v1/responses", json={"model": "gpt-5", "input": "find"})
    [row] = tollgate.rows()
    assert (row["file_search_calls"], row["unit_cost_pico"]) == (2, 8_000_000_000)


def test_a_bad_tool_price_is_refused_naming_the_key_and_file() -> None:
    with pytest.raises(ConfigError, match=r"c\.toml.*\[pricing\.tools\]: unknown key 'file_serch_call'"):
        parse_config('[pricing.tools]\nfile_serch_call = "0.004"\n', "c.toml")
