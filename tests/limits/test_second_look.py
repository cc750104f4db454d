"""A request the byte bound would refuse is bounded again, tightly, or clamped, before it is refused."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

import orjson
import pytest

from pricing import Catalog, TokenCounts, bound_cost, price_tokens
from proxy.limits.prompt_count import count_openai
from proxy.limits.tokenizer import encoding
from tests.conftest import Tollgate, chat_chunks, chat_completion, json_answer, sse
from tests.dialects.conftest import provider_kinds
from tests.fakeprovider import FakeProvider

CHAT = "/v1/chat/completions"
MESSAGES = "/v1/messages"
TEXT = "Tollgate meters every request, bounds its cost before it runs, and refuses what it cannot pay for. "
PRICES = '[pricing.models."gpt-4o-mini"]\ninput = 1\noutput = 2\nmax_output_tokens = 1000\n'


def _limit(max_usd: Decimal | str, extra: str = "") -> str:
    return f'[[limits]]\nscope = "user"\nmax_usd = "{max_usd}"\n{extra}\n'


def _chat(content: str, max_tokens: int | None = 100, **more: Any) -> bytes:
    payload: dict[str, Any] = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": content}], **more}
    if max_tokens is not None:
        payload["max_tokens"] = max_tokens
    return orjson.dumps(payload)


def test_a_long_prompt_the_byte_bound_refuses_is_admitted_by_its_counted_bound(
    tollgate_factory: Any, provider: FakeProvider
) -> None:
    body = _chat(TEXT * 40)  # about 4 KB of English: some 700 tokens
    byte_bound = (len(body) * 1 + 100 * 2) / Decimal(10**6)
    tollgate: Tollgate = tollgate_factory(PRICES + _limit(byte_bound / 2))
    provider.answer("POST", CHAT, json_answer(chat_completion(model="gpt-4o-mini", prompt_tokens=700)))
    response = tollgate.client.post(CHAT, content=body, headers={"x-user-id": "alice"})
    assert response.status_code == 200, response.text
    assert provider.requests[0].body == body  # admitted by a tighter bound, forwarded byte for byte


def test_a_request_that_does_not_fit_even_counted_is_refused_with_the_counted_bound(
    tollgate_factory: Any, provider: FakeProvider
) -> None:
    tollgate: Tollgate = tollgate_factory(PRICES + _limit("0.0002"))
    response = tollgate.client.post(CHAT, content=_chat(TEXT * 40), headers={"x-user-id": "alice"})
    assert response.status_code == 429
    assert "counted with tiktoken o200k_base" in response.json()["error"]["message"]
    assert provider.requests == []


def test_clamp_lowers_the_output_cap_to_what_the_budget_covers(tollgate_factory: Any, provider: FakeProvider) -> None:
    tollgate: Tollgate = tollgate_factory(PRICES + _limit("0.0015", 'on_exceed = "clamp"'))
    provider.answer("POST", CHAT, json_answer(chat_completion(model="gpt-4o-mini")))
    body = _chat(TEXT * 4, max_tokens=1000)
    response = tollgate.client.post(CHAT, content=body, headers={"x-user-id": "alice"})
    assert response.status_code == 200, response.text
    original, new = response.headers["x-tollgate-clamped"].split("->")
    sent = orjson.loads(provider.requests[0].body)
    assert original == "1000" and 256 <= int(new) == sent["max_tokens"] < 1000
    assert {k: v for k, v in sent.items() if k != "max_tokens"} == {
        k: v for k, v in orjson.loads(body).items() if k != "max_tokens"
    }
    # The clamp uses the budget: one more output token would not have fitted ($1/M input, $2/M output).
    o200k = encoding("o200k_base")
    assert o200k is not None
    prompt = count_openai(orjson.loads(body), len(body), o200k, 3000).tokens
    assert prompt + 2 * int(new) <= 1500 < prompt + 2 * (int(new) + 1)


def test_a_clamped_stream_carries_the_header_and_still_hides_the_usage_it_asked_for(
    tollgate_factory: Any, provider: FakeProvider
) -> None:
    tollgate: Tollgate = tollgate_factory(PRICES + _limit("0.0015", 'on_exceed = "clamp"'))
    provider.answer("POST", CHAT, sse(chat_chunks(model="gpt-4o-mini")))
    body = _chat(TEXT * 4, max_tokens=1000, stream=True)
    with tollgate.client.stream("POST", CHAT, content=body, headers={"x-user-id": "alice"}) as response:
        text = b"".join(response.iter_bytes())
        assert response.status_code == 200
        assert response.headers["x-tollgate-clamped"].startswith("1000->")
    sent = orjson.loads(provider.requests[0].body)
    assert sent["stream_options"] == {"include_usage": True} and sent["max_tokens"] < 1000
    assert b'"usage"' not in text
    assert tollgate.rows()[0]["input_tokens"] == 12


def test_clamp_refuses_when_the_prompt_and_min_output_do_not_fit(tollgate_factory: Any, provider: FakeProvider) -> None:
    tollgate: Tollgate = tollgate_factory(PRICES + _limit("0.0015", 'on_exceed = "clamp"\nmin_output_tokens = 700'))
    response = tollgate.client.post(CHAT, content=_chat(TEXT * 4, max_tokens=1000), headers={"x-user-id": "alice"})
    assert response.status_code == 429
    assert provider.requests == []


def test_a_refusing_limit_is_not_clamped_for_by_another(tollgate_factory: Any, provider: FakeProvider) -> None:
    limits = _limit("0.0015", 'on_exceed = "clamp"') + '[[limits]]\nscope = "global"\nmax_usd = "0.0014"\n'
    tollgate: Tollgate = tollgate_factory(PRICES + limits)
    response = tollgate.client.post(CHAT, content=_chat(TEXT * 4, max_tokens=1000), headers={"x-user-id": "alice"})
    assert response.status_code == 429
    assert provider.requests == []


# The Claude Code case: an 87 KB body, mostly cached, with max_tokens 32000, on Claude Sonnet 4.5.
SONNET = Catalog.load().lookup("claude-sonnet-4-5")


def _claude_code_body(max_tokens: int = 32000) -> bytes:
    schema = {"type": "object", "properties": {f"arg{i}": {"type": "string", "description": TEXT} for i in range(6)}}
    tools = [{"name": f"Tool{i}", "description": TEXT * 4, "input_schema": schema} for i in range(28)]
    system = [
        {"type": "text", "text": "You are Claude Code."},
        {"type": "text", "text": TEXT * 160, "cache_control": {"type": "ephemeral"}},
    ]
    turns: list[dict[str, Any]] = []
    for i in range(16):
        turns.append({"role": "user", "content": [{"type": "text", "text": f"Step {i}: " + TEXT * 12}]})
        turns.append({"role": "assistant", "content": [{"type": "text", "text": TEXT * 6}]})
    turns.append(
        {"role": "user", "content": [{"type": "text", "text": "Go on.", "cache_control": {"type": "ephemeral"}}]}
    )
    payload = {"model": "claude-sonnet-4-5", "max_tokens": max_tokens, "system": system, "tools": tools}
    return orjson.dumps({**payload, "messages": turns, "stream": False})


def _tokens(request: dict[str, Any]) -> int:
    return math.ceil(len(orjson.dumps(request)) / 4)


def _message(input_tokens: int, output_tokens: int = 400) -> bytes:
    usage = {"input_tokens": 3, "cache_read_input_tokens": input_tokens - 3, "output_tokens": output_tokens}
    return orjson.dumps(
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-5",
            "content": [],
            "stop_reason": "end_turn",
            "usage": usage,
        }
    )


def _claude_code(tollgate_factory: Any, provider: FakeProvider, extra: str = "") -> tuple[Tollgate, bytes, int]:
    body = _claude_code_body()
    assert 80_000 < len(body) < 95_000
    provider.speak_counts(_tokens)
    counted = _tokens({k: v for k, v in orjson.loads(body).items() if k not in ("max_tokens", "stream")})
    provider.answer("POST", MESSAGES, json_answer(_message(counted)))
    tollgate: Tollgate = tollgate_factory(_limit("1", extra), provider_kinds(provider))
    return tollgate, body, counted


def _send(tollgate: Tollgate, body: bytes) -> Any:
    headers = {"x-user-id": "dev", "anthropic-version": "2023-06-01", "x-api-key": "sk-ant"}
    return tollgate.client.post(MESSAGES, content=body, headers=headers)


def test_claude_code_runs_on_a_one_dollar_limit_while_it_can_pay(tollgate_factory: Any, provider: FakeProvider) -> None:
    tollgate, body, counted = _claude_code(tollgate_factory, provider)
    assert SONNET is not None
    cost = price_tokens(SONNET, TokenCounts(input=counted, cached_input=counted - 3, output=400)).total
    statuses = [_send(tollgate, body).status_code for _ in range(40)]
    admitted = statuses.count(200)
    assert statuses == [200] * admitted + [429] * (40 - admitted)
    # Admitted while what is left covers the counted bound: 32,000 output tokens at $15/M and the prompt.
    bound = Decimal(32000) * Decimal("0.000015") + Decimal(math.ceil(counted * 1.02) + 64) * Decimal("0.00000375")
    assert admitted == int((1 - bound) // cost) + 1
    assert sum(r["cost_pico"] for r in tollgate.rows(40) if r["cost_pico"]) <= 10**12


def test_claude_code_gets_a_lowered_max_tokens_when_its_limit_clamps(
    tollgate_factory: Any, provider: FakeProvider
) -> None:
    tollgate, body, _ = _claude_code(tollgate_factory, provider, 'on_exceed = "clamp"')
    responses = [_send(tollgate, body) for _ in range(60)]
    clamped = [r for r in responses if "x-tollgate-clamped" in r.headers]
    assert clamped, "the last requests before the limit are clamped, not refused"
    for response in clamped:
        original, new = response.headers["x-tollgate-clamped"].split("->")
        assert original == "32000" and 256 <= int(new) < 32000
    sent = [orjson.loads(r.body)["max_tokens"] for r in provider.requests if r.path == MESSAGES]
    assert sent[0] == 32000 and min(sent) < 32000
    assert sum(r["cost_pico"] for r in tollgate.rows(60) if r["cost_pico"]) <= 10**12


@pytest.mark.parametrize("counts", [True, False])
def test_gemini_prompts_are_counted_by_count_tokens(
    tollgate_factory: Any, provider: FakeProvider, counts: bool
) -> None:
    path = "/v1beta/models/gemini-2.5-flash:generateContent"
    payload = {
        "contents": [{"role": "user", "parts": [{"text": TEXT * 40}]}],
        "generationConfig": {"maxOutputTokens": 50},
    }
    body = orjson.dumps(payload)
    if counts:
        provider.speak_counts(lambda request: 900)
    usage = {"promptTokenCount": 900, "candidatesTokenCount": 50, "totalTokenCount": 950}
    provider.answer("POST", path, json_answer(orjson.dumps({"candidates": [], "usageMetadata": usage})))
    card = Catalog.load().lookup("gemini/gemini-2.5-flash")
    assert card is not None
    byte_bound = bound_cost(card, len(body), 50)
    tollgate: Tollgate = tollgate_factory(_limit(byte_bound / 2), provider_kinds(provider))
    response = tollgate.client.post(path, content=body, headers={"x-user-id": "alice", "x-goog-api-key": "k"})
    assert response.status_code == (200 if counts else 429), response.text


def _tokens_per_minute(tokens: int) -> str:
    return f'[[rate_limits]]\nscope = "user"\ntokens_per_minute = {tokens}\n'


def test_a_prompt_whose_bytes_pass_a_tokens_per_minute_limit_is_held_at_its_counted_tokens(
    tollgate_factory: Any, provider: FakeProvider
) -> None:
    body = _chat(TEXT * 40)  # about 4 KB of English (some 700 tokens), and 100 of output
    limit = 3000
    assert len(body) + 100 > limit  # held at the byte bound, it could never fit
    tollgate: Tollgate = tollgate_factory(PRICES + _tokens_per_minute(limit))
    provider.answer("POST", CHAT, json_answer(chat_completion(model="gpt-4o-mini", prompt_tokens=700)))
    statuses = [tollgate.client.post(CHAT, content=body, headers={"x-user-id": "alice"}).status_code for _ in range(6)]
    o200k = encoding("o200k_base")
    assert o200k is not None
    hold = count_openai(orjson.loads(body), len(body), o200k, 3000).tokens + 100
    used = 700 + 5  # what each answer reports: its hold is settled to it
    admitted = next(n for n in range(6) if used * n + hold > limit)
    assert admitted >= 3
    assert statuses == [200] * admitted + [429] * (6 - admitted)
    assert [r.body for r in provider.requests] == [body] * admitted  # forwarded byte for byte


def test_a_prompt_that_does_not_fit_even_counted_is_refused_by_its_tokens_per_minute_limit(
    tollgate_factory: Any, provider: FakeProvider
) -> None:
    tollgate: Tollgate = tollgate_factory(PRICES + _tokens_per_minute(500))
    response = tollgate.client.post(CHAT, content=_chat(TEXT * 40), headers={"x-user-id": "alice"})
    error = response.json()["error"]
    assert (response.status_code, error["type"]) == (429, "tokens")
    assert provider.requests == []


def test_claude_code_on_a_tokens_per_minute_limit_is_held_at_anthropics_count(
    tollgate_factory: Any, provider: FakeProvider
) -> None:
    # 87 KB of body and a 32,000-token cap: some 120,000 tokens by bytes, more than the limit, and fewer counted.
    # The spend limit's byte bound ($0.81) does not fit in $0.70 either; its counted bound does.
    tollgate, body, counted = _claude_code(tollgate_factory, provider, "")
    tollgate = tollgate_factory(_limit("0.7") + _tokens_per_minute(100_000), provider_kinds(provider))
    assert len(body) + 32000 > 100_000 > counted + 32000
    assert SONNET is not None and bound_cost(SONNET, len(body), 32000) > Decimal("0.7")
    response = _send(tollgate, body)
    assert response.status_code == 200, response.text
    paths = [r.path for r in provider.requests]
    assert paths == [f"{MESSAGES}/count_tokens", MESSAGES]  # counted once, for the token hold and the spend bound
