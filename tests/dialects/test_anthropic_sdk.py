"""The official anthropic SDK, pointed at Tollgate's root, behaves as against Anthropic, and each call is one row."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import anthropic
import httpx
import orjson
import pytest

from proxy.keys import hash_key
from tests.conftest import json_answer, sse
from tests.dialects.conftest import LiveTollgate
from tests.fakeprovider import FakeProvider

MESSAGES = "/v1/messages"
MODEL = "claude-sonnet-4-5"
# claude-sonnet-4-5 in the price map, USD per million: input 3, cache read 0.30, 5-minute write 3.75, 1-hour 6.
RATES = {"input": Decimal(3), "read": Decimal("0.3"), "write_5m": Decimal("3.75"), "write_1h": Decimal(6)}
OUTPUT_RATE = Decimal(15)


_OPEN: list[anthropic.Anthropic] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _OPEN:
        _OPEN.pop().close()


def _client(
    live: LiveTollgate, *, max_retries: int = 0, api_key: str = "sk-ant-client", user: str | None = None
) -> anthropic.Anthropic:
    headers = {"X-User-Id": user} if user else {}
    client = anthropic.Anthropic(base_url=live.url, api_key=api_key, default_headers=headers, max_retries=max_retries)
    _OPEN.append(client)
    return client


def _message(usage: dict[str, Any], text: str = "Hello!", model: str = "claude-sonnet-4-5-20250929") -> bytes:
    return orjson.dumps(
        {
            "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": usage,
        }
    )


def _stream_events(final_output: int = 12, cache_read: int = 0) -> list[bytes]:
    """A Messages stream as Anthropic sends it, one event per item."""
    start_usage = {
        "input_tokens": 20,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cache_read,
        "output_tokens": 1,
        "service_tier": "standard",
    }
    message: dict[str, Any] = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5-20250929",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": start_usage,
    }

    def event(kind: str, data: dict[str, Any]) -> bytes:
        return f"event: {kind}\ndata: ".encode() + orjson.dumps({"type": kind, **data}) + b"\n\n"

    return [
        event("message_start", {"message": message}),
        event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
        event("ping", {}),
        event("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": "Hel"}}),
        event("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": "lo"}}),
        event("content_block_stop", {"index": 0}),
        event(
            "message_delta",
            {"delta": {"stop_reason": "end_turn", "stop_sequence": None}, "usage": {"output_tokens": final_output}},
        ),
        event("message_stop", {}),
    ]


def _cost(tokens: dict[str, int], output: int) -> Decimal:
    return (sum(RATES[k] * n for k, n in tokens.items()) + OUTPUT_RATE * output) / 10**6


def test_message_with_cache_writes_and_reads_is_priced_exactly(live: LiveTollgate, provider: FakeProvider) -> None:
    usage = {
        "input_tokens": 50,
        "cache_creation_input_tokens": 3000,
        "cache_read_input_tokens": 10000,
        "cache_creation": {"ephemeral_5m_input_tokens": 1000, "ephemeral_1h_input_tokens": 2000},
        "output_tokens": 100,
        "service_tier": "standard",
    }
    provider.answer("POST", MESSAGES, json_answer(_message(usage, text="Bonjour")))
    client = _client(live, user="alice")
    message = client.messages.create(model=MODEL, max_tokens=1024, messages=[{"role": "user", "content": "hi"}])
    assert message.content[0].text == "Bonjour"  # type: ignore[union-attr]
    [row] = live.rows()
    assert (row["provider"], row["provider_kind"], row["user_id"]) == ("fake-anthropic", "anthropic", "alice")
    assert (row["input_tokens"], row["cached_input_tokens"]) == (13050, 10000)
    assert (row["cache_write_tokens"], row["cache_write_1h_tokens"], row["output_tokens"]) == (1000, 2000, 100)
    expected = _cost({"input": 50, "read": 10000, "write_5m": 1000, "write_1h": 2000}, 100)
    assert Decimal(row["cost_pico"]) / 10**12 == expected
    assert orjson.loads(row["provider_usage"]) == usage


def test_headers_key_and_beta_query_go_upstream_as_sent(live: LiveTollgate, provider: FakeProvider) -> None:
    provider.answer("POST", MESSAGES, json_answer(_message({"input_tokens": 1, "output_tokens": 1})))
    client = _client(live, user="bob")
    client.beta.messages.create(
        model=MODEL,
        max_tokens=10,
        messages=[{"role": "user", "content": "hi"}],
        betas=["context-1m-2025-08-07"],
        extra_query={"beta": "true"},  # as Claude Code sends it
    )
    [sent] = provider.requests
    assert (sent.path, sent.query) == (MESSAGES, b"beta=true")
    assert sent.header(b"authorization") == b"Bearer sk-ant-client"  # how this SDK sends api_key
    assert sent.header(b"anthropic-version") is not None
    assert sent.header(b"anthropic-beta") == b"context-1m-2025-08-07"
    assert sent.header(b"x-user-id") is None  # attribution stripped
    assert live.rows()[0]["user_id"] == "bob"


def test_x_api_key_goes_upstream_in_passthrough(live: LiveTollgate, provider: FakeProvider) -> None:
    provider.answer("POST", MESSAGES, json_answer(_message({"input_tokens": 1, "output_tokens": 1})))
    body = {"model": MODEL, "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    headers = {"x-api-key": "sk-ant-own", "anthropic-version": "2023-06-01"}
    assert httpx.post(f"{live.url}{MESSAGES}", json=body, headers=headers).status_code == 200
    assert provider.requests[0].header(b"x-api-key") == b"sk-ant-own"


def test_stream_takes_the_last_cumulative_output_count(live: LiveTollgate, provider: FakeProvider) -> None:
    provider.answer("POST", MESSAGES, sse(tuple(_stream_events(final_output=12, cache_read=400))))
    with _client(live).messages.stream(model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "hi"}]) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert (text, final.usage.output_tokens) == ("Hello", 12)
    [row] = live.rows()
    assert (row["input_tokens"], row["cached_input_tokens"], row["output_tokens"]) == (420, 400, 12)
    assert (row["stream"], row["usage_source"]) == (True, "reported")
    assert Decimal(row["cost_pico"]) / 10**12 == _cost({"input": 20, "read": 400}, 12)


def _crlf(events: list[bytes]) -> tuple[bytes, ...]:
    return tuple(e.replace(b"\n", b"\r\n") for e in events)


def _no_space(events: list[bytes]) -> tuple[bytes, ...]:
    return tuple(e.replace(b"data: ", b"data:").replace(b"event: ", b"event:") for e in events)


def _split(events: list[bytes]) -> tuple[bytes, ...]:
    """Every event cut in three writes, mid-line and mid-JSON."""
    out: list[bytes] = []
    for e in events:
        out += [e[:7], e[7 : len(e) // 2], e[len(e) // 2 :]]
    return tuple(out)


def _spaced(events: list[bytes]) -> tuple[bytes, ...]:
    """JSON written with spaces after colons and commas, as some servers do."""
    return tuple(e.replace(b'":', b'": ').replace(b',"', b', "') for e in events)


@pytest.mark.parametrize("framing", [_crlf, _no_space, _split, _spaced])
def test_odd_sse_framing_is_read_and_relayed(live: LiveTollgate, provider: FakeProvider, framing: Any) -> None:
    provider.answer("POST", MESSAGES, sse(framing(_stream_events(final_output=33)), delay=0.001))
    with _client(live).messages.stream(model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "hi"}]) as s:
        assert "".join(s.text_stream) == "Hello"
    [row] = live.rows()
    assert (row["input_tokens"], row["output_tokens"], row["usage_source"]) == (20, 33, "reported")


def test_a_client_that_leaves_mid_stream_still_gets_its_row(live: LiveTollgate, provider: FakeProvider) -> None:
    provider.answer("POST", MESSAGES, sse(tuple(_stream_events(final_output=7)), delay=0.05))
    stream = _client(live).messages.create(
        model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "hi"}], stream=True
    )
    next(iter(stream))
    stream.close()
    [row] = live.rows()
    # Drained to the end by default: the provider's own counts.
    assert (row["output_tokens"], row["usage_source"]) == (7, "reported")


@pytest.mark.parametrize(
    ("status", "error_type", "exception"),
    [
        (400, "invalid_request_error", anthropic.BadRequestError),
        (404, "not_found_error", anthropic.NotFoundError),
        (529, "overloaded_error", anthropic.InternalServerError),
    ],
)
def test_upstream_errors_pass_through_as_the_sdk_error(
    live: LiveTollgate, provider: FakeProvider, status: int, error_type: str, exception: type[Exception]
) -> None:
    body = orjson.dumps({"type": "error", "error": {"type": error_type, "message": "upstream says no"}})
    provider.answer("POST", MESSAGES, json_answer(body, status=status))
    with pytest.raises(exception, match="upstream says no"):
        _client(live).messages.create(model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    [row] = live.rows()
    assert (row["status"], row["input_tokens"], row["provider_kind"]) == (status, 0, "anthropic")


def test_upstream_5xx_is_retried_by_tollgate_then_answered(live: LiveTollgate, provider: FakeProvider) -> None:
    body = orjson.dumps({"type": "error", "error": {"type": "api_error", "message": "boom"}})
    ok = _message({"input_tokens": 3, "output_tokens": 2})
    provider.answer("POST", MESSAGES, json_answer(body, status=500), json_answer(ok))
    message = _client(live).messages.create(model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "x"}])
    assert message.usage.output_tokens == 2 and len(provider.requests) == 2
    assert live.rows()[0]["output_tokens"] == 2


def test_count_tokens_and_models_are_forwarded_to_the_anthropic_provider(
    live: LiveTollgate, provider: FakeProvider
) -> None:
    provider.answer("POST", "/v1/messages/count_tokens", json_answer(b'{"input_tokens": 14}'))
    model = {"type": "model", "id": "claude-sonnet-4-5", "display_name": "S", "created_at": "2025-09-29T00:00:00Z"}
    models = orjson.dumps({"data": [model], "has_more": False, "first_id": None, "last_id": None})
    provider.answer("GET", "/v1/models", json_answer(models))
    client = _client(live)
    counted = client.messages.count_tokens(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    listed = client.models.list()
    assert counted.input_tokens == 14 and listed.data[0].id == "claude-sonnet-4-5"
    rows = live.rows(2)
    assert [(r["endpoint"], r["provider"], r["usage_source"]) for r in rows] == [
        ("/v1/messages/count_tokens", "fake-anthropic", "none"),
        ("/v1/models", "fake-anthropic", "none"),
    ]


def test_models_without_anthropic_version_go_to_openai(live: LiveTollgate, provider: FakeProvider) -> None:
    provider.answer("GET", "/v1/models", json_answer(b'{"object": "list", "data": []}'))
    assert httpx.get(f"{live.url}/v1/models").status_code == 200
    assert live.rows()[0]["provider"] == "fake"


def test_spend_limit_refusal_is_anthropics_error_and_not_retried(
    live_tollgate_factory: Any, provider: FakeProvider
) -> None:
    limits = '[[limits]]\nscope = "user"\nwindow = "day"\nmax_usd = "0.000001"\n'
    live: LiveTollgate = live_tollgate_factory(limits)
    with pytest.raises(anthropic.RateLimitError) as raised:
        _client(live, max_retries=3, user="carol").messages.create(
            model=MODEL, max_tokens=1000, messages=[{"role": "user", "content": "hi"}]
        )
    assert raised.value.response.headers["x-should-retry"] == "false"
    body = raised.value.response.json()
    assert body["type"] == "error" and body["error"]["type"] == "rate_limit_error"
    assert "limit" in body["error"]["message"]
    assert provider.requests == []
    [row] = live.rows()  # one refusal, not four: the SDK did not retry
    assert (row["status"], row["provider_kind"]) == (429, "anthropic")


def test_managed_key_in_either_header_is_swapped_for_the_provider_key(
    live_tollgate_factory: Any, provider: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_PROVIDER_KEY", "sk-ant-provider")
    keys = f'[auth]\nmode = "managed"\n[[keys]]\nname = "dev"\nsha256 = "{hash_key("tg-dev")}"\nuser = "dev"\n'
    live: LiveTollgate = live_tollgate_factory(keys, {"anthropic": 'api_key_env = "ANTHROPIC_PROVIDER_KEY"'})
    provider.answer("POST", MESSAGES, json_answer(_message({"input_tokens": 1, "output_tokens": 1})))
    args: dict[str, Any] = {"model": MODEL, "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    _client(live, api_key="tg-dev").messages.create(**args)
    headers = {"x-api-key": "tg-dev", "anthropic-version": "2023-06-01"}  # as Claude Code sends ANTHROPIC_API_KEY
    assert httpx.post(f"{live.url}{MESSAGES}", json=args, headers=headers).status_code == 200
    for sent in provider.requests:
        assert sent.header(b"x-api-key") == b"sk-ant-provider" and sent.header(b"authorization") is None
    assert [r["user_id"] for r in live.rows(2)] == ["dev", "dev"]
    with pytest.raises(anthropic.AuthenticationError) as raised:
        _client(live, api_key="wrong").messages.create(**args)
    assert raised.value.response.json()["error"]["type"] == "authentication_error"
