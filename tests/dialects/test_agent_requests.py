"""Requests shaped as the coding agents send them (seen by running each against Tollgate): one priced row each.

What they send, as observed:

- Claude Code 2.1: ``POST /v1/messages?beta=true``, streamed, about 115 KB of body, ``max_tokens``
  32000, ``x-api-key``, ``anthropic-version`` and a list of ``anthropic-beta`` features, and the
  ``ANTHROPIC_CUSTOM_HEADERS`` as headers;
- Gemini CLI 0.61: ``POST /v1beta/models/{model}:streamGenerateContent?alt=sse``, about 32 KB,
  ``x-goog-api-key`` and ``x-goog-api-client``, and the ``GEMINI_CLI_CUSTOM_HEADERS``;
- Codex CLI 0.171: ``POST /v1/responses``, streamed, about 40 KB, ``Authorization: Bearer``, and
  the provider's ``http_headers``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import orjson
import pytest

from tests.conftest import sse
from tests.dialects.conftest import LiveTollgate
from tests.dialects.test_anthropic_sdk import _stream_events
from tests.fakeprovider import FakeProvider

CLAUDE_CODE_HEADERS = {
    "x-api-key": "sk-ant-dev",
    "anthropic-version": "2023-06-01",
    "anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14,context-management-2025-06-27",
    "user-agent": "claude-cli/2.1.197 (external, sdk-cli)",
    "X-User-Id": "alice",
}


def _claude_code_body() -> bytes:
    tools = [{"name": f"Tool{i}", "description": "d" * 3000, "input_schema": {"type": "object"}} for i in range(30)]
    return orjson.dumps(
        {
            "model": "claude-sonnet-4-5",
            "max_tokens": 32000,
            "stream": True,
            "system": [{"type": "text", "text": "s" * 20000, "cache_control": {"type": "ephemeral"}}],
            "messages": [{"role": "user", "content": [{"type": "text", "text": "Reply with PONG"}]}],
            "tools": tools,
            "metadata": {"user_id": "user_" + "a" * 64 + "_account__session_" + "b" * 36},
        }
    )


def _limit(usd: str) -> str:
    return f'[[limits]]\nscope = "user"\nwindow = "day"\nmax_usd = "{usd}"\n'


def _claude_code_bound(body: bytes) -> Decimal:
    # Every body byte at the dearest input-side rate (1-hour cache writes, $6/M) plus 32,000 output at $15/M.
    return (len(body) * Decimal(6) + 32000 * Decimal(15)) / 10**6


@pytest.mark.parametrize(("limit", "admitted"), [("1.50", True), ("1.00", False)])
def test_a_claude_code_turn_is_bounded_by_its_body_and_max_tokens(
    live_tollgate_factory: Any, provider: FakeProvider, limit: str, admitted: bool
) -> None:
    body = _claude_code_body()
    assert len(body) > 100_000 and Decimal("1.00") < _claude_code_bound(body) < Decimal("1.50")
    live: LiveTollgate = live_tollgate_factory(_limit(limit))
    provider.answer("POST", "/v1/messages", sse(tuple(_stream_events(final_output=7))))
    answer = httpx.post(f"{live.url}/v1/messages?beta=true", content=body, headers=CLAUDE_CODE_HEADERS)
    [row] = live.rows()
    assert (row["user_id"], row["provider_kind"]) == ("alice", "anthropic")
    if admitted:
        assert answer.status_code == 200, answer.text
        assert provider.requests[0].query == b"beta=true"
        assert row["cost_pico"] == (20 * 3 + 7 * 15) * 10**6  # 20 input at $3/M, 7 output at $15/M
    else:
        assert answer.status_code == 429 and answer.json()["error"]["type"] == "rate_limit_error"
        # Only the free count_tokens was asked, before the refusal (this fake provider does not answer it).
        assert [r.path for r in provider.requests] == ["/v1/messages/count_tokens"]


def test_a_gemini_cli_turn_is_one_priced_row(live: LiveTollgate, provider: FakeProvider) -> None:
    path = "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
    final = {
        "candidates": [{"content": {"parts": [{"text": "PONG"}], "role": "model"}, "finishReason": "STOP"}],
        "usageMetadata": {"promptTokenCount": 900, "candidatesTokenCount": 2, "thoughtsTokenCount": 30},
        "modelVersion": "gemini-2.5-flash",
    }
    provider.answer("POST", path, sse((b"data: " + orjson.dumps(final) + b"\r\n\r\n",)))
    body = orjson.dumps({"contents": [{"role": "user", "parts": [{"text": "x" * 32000}]}], "generationConfig": {}})
    headers = {
        "x-goog-api-key": "AIza-dev",
        "x-goog-api-client": "google-genai-sdk/1.30.0 gl-node/v20",
        "X-User-Id": "bob",
    }
    assert httpx.post(f"{live.url}{path}?alt=sse", content=body, headers=headers).status_code == 200
    [row] = live.rows()
    assert (row["user_id"], row["input_tokens"], row["output_tokens"]) == ("bob", 900, 32)
    assert row["cost_pico"] == (900 * 30 + 32 * 250) * 10**4  # $0.30/M in, $2.50/M out and thinking


def test_a_codex_turn_is_one_priced_row(live: LiveTollgate, provider: FakeProvider) -> None:
    from tests.dialects.test_openai_sdk import _responses_stream

    provider.answer("POST", "/v1/responses", sse(_responses_stream()))
    body = orjson.dumps({"model": "gpt-4o-mini", "instructions": "i" * 40000, "input": [], "stream": True})
    headers = {"authorization": "Bearer sk-dev", "originator": "codex_exec", "X-User-Id": "carol"}
    assert httpx.post(f"{live.url}/v1/responses", content=body, headers=headers).status_code == 200
    [row] = live.rows()
    assert (row["user_id"], row["provider_kind"], row["input_tokens"]) == ("carol", "openai", 40)
    assert row["cost_pico"] is not None and not row["unpriced"]
