"""The proxy path with hand-made requests: what goes upstream, what comes back, what is recorded."""

from __future__ import annotations

import time
from decimal import Decimal

import orjson
import pytest

from proxy.keys import hash_key
from tests.conftest import Tollgate, chat_chunks, chat_completion, json_answer, sse
from tests.fakeprovider import Canned, FakeProvider

CHAT = "/v1/chat/completions"
BODY = b'{"model": "gpt-4o-mini",  "messages": [{"role": "user", "content": "hi"}]}'


def test_json_response_is_byte_identical_and_request_body_goes_upstream_unchanged(
    tollgate: Tollgate, provider: FakeProvider
) -> None:
    upstream_body = chat_completion()
    provider.answer("POST", CHAT, json_answer(upstream_body))
    response = tollgate.client.post(CHAT, content=BODY, headers={"content-type": "application/json"})
    assert response.status_code == 200
    assert response.content == upstream_body
    assert provider.requests[0].body == BODY
    assert response.headers["x-tollgate-request-id"]


def test_json_usage_is_recorded_with_tokens_cost_and_attribution(tollgate: Tollgate, provider: FakeProvider) -> None:
    provider.answer(
        "POST", CHAT, json_answer(chat_completion(prompt_tokens=1000, completion_tokens=500, cached_tokens=400))
    )
    headers = {"x-user-id": "alice", "x-team-id": "research", "x-thread-id": "t-1", "x-agent-name": "planner"}
    response = tollgate.client.post(CHAT, content=BODY, headers={**headers, "x-tollgate-tag-env": "prod"})
    [row] = tollgate.rows()
    assert row["request_id"] == response.headers["x-tollgate-request-id"]
    assert (row["user_id"], row["team_id"], row["thread_id"], row["agent"]) == ("alice", "research", "t-1", "planner")
    assert orjson.loads(row["tags"]) == {"env": "prod"}
    assert (row["input_tokens"], row["cached_input_tokens"], row["output_tokens"]) == (1000, 400, 500)
    # gpt-4o-mini: $0.15/M input, $0.075/M cached input, $0.60/M output
    expected = Decimal("600") * Decimal("0.15") + Decimal("400") * Decimal("0.075") + Decimal("500") * Decimal("0.6")
    assert Decimal(row["cost_pico"]) / 10**12 == expected / 10**6
    assert (row["usage_source"], row["model_served"], row["provider"]) == ("reported", "gpt-4o-mini-2024-07-18", "fake")


def test_attribution_headers_are_stripped_before_forwarding(tollgate: Tollgate, provider: FakeProvider) -> None:
    provider.answer("POST", CHAT, json_answer(chat_completion()))
    tollgate.client.post(
        CHAT, content=BODY, headers={"x-user-id": "alice", "x-tollgate-tag-env": "prod", "x-other": "1"}
    )
    sent = provider.requests[0]
    assert sent.header(b"x-user-id") is None and sent.header(b"x-tollgate-tag-env") is None
    assert sent.header(b"x-other") == b"1"


def test_body_user_is_the_fallback_user(tollgate: Tollgate, provider: FakeProvider) -> None:
    provider.answer("POST", CHAT, json_answer(chat_completion()))
    tollgate.client.post(CHAT, content=b'{"model": "gpt-4o-mini", "messages": [], "user": "bob"}')
    assert tollgate.rows()[0]["user_id"] == "bob"


def test_stream_without_include_usage_is_metered_and_hidden(tollgate: Tollgate, provider: FakeProvider) -> None:
    provider.answer("POST", CHAT, sse(chat_chunks(include_usage=True, prompt_tokens=21, completion_tokens=3)))
    body = b'{"model":"gpt-4o-mini","stream":true,"messages":[]}'
    response = tollgate.client.post(CHAT, content=body)
    assert response.content == b"".join(chat_chunks(include_usage=False))
    assert provider.requests[0].body == b'{"stream_options":{"include_usage":true},' + body[1:]
    [row] = tollgate.rows()
    assert (row["stream"], row["input_tokens"], row["output_tokens"], row["usage_source"]) == (True, 21, 3, "reported")


def test_stream_that_asked_for_usage_gets_it_unchanged(tollgate: Tollgate, provider: FakeProvider) -> None:
    upstream = chat_chunks(include_usage=True)
    provider.answer("POST", CHAT, sse(upstream))
    body = b'{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":[]}'
    response = tollgate.client.post(CHAT, content=body)
    assert response.content == b"".join(upstream)
    assert provider.requests[0].body == body
    assert tollgate.rows()[0]["output_tokens"] == 3


def test_stream_options_without_include_usage_is_completed(tollgate: Tollgate, provider: FakeProvider) -> None:
    provider.answer("POST", CHAT, sse(chat_chunks(include_usage=True)))
    body = b'{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_obfuscation":false},"messages":[]}'
    tollgate.client.post(CHAT, content=body)
    sent = orjson.loads(provider.requests[0].body)
    assert sent["stream_options"] == {"include_obfuscation": False, "include_usage": True}


@pytest.mark.parametrize("status", [400, 401, 429, 500])
def test_upstream_errors_pass_through_unchanged(tollgate: Tollgate, provider: FakeProvider, status: int) -> None:
    error = b'{"error": {"message": "nope", "type": "invalid_request_error", "param": null, "code": "x"}}'
    provider.answer("POST", CHAT, json_answer(error, status=status))
    response = tollgate.client.post(CHAT, content=BODY)
    assert (response.status_code, response.content) == (status, error)
    [row] = tollgate.rows()
    assert (row["status"], row["input_tokens"], row["cost_pico"]) == (status, 0, None)


def test_unknown_model_gets_404_and_is_not_forwarded(tollgate: Tollgate, provider: FakeProvider) -> None:
    response = tollgate.client.post(CHAT, content=b'{"model": "claude-unserved", "messages": []}')
    assert response.status_code == 404
    assert response.json() == {
        "error": {
            "message": "The model 'claude-unserved' is not served by any provider configured in Tollgate.",
            "type": "invalid_request_error",
            "param": "model",
            "code": "model_not_found",
        }
    }
    assert provider.requests == []
    assert tollgate.rows()[0]["error_type"] == "model_not_found"


def test_model_without_price_is_recorded_unpriced(tollgate: Tollgate, provider: FakeProvider) -> None:
    provider.answer("POST", CHAT, json_answer(chat_completion(model="my-private-model")))
    tollgate.client.post(CHAT, content=b'{"model": "my-private-model", "messages": []}')
    [row] = tollgate.rows()
    assert (row["unpriced"], row["cost_pico"], row["input_tokens"]) == (True, None, 12)


def test_config_price_prices_a_custom_model(tollgate_factory: object, provider: FakeProvider) -> None:
    tollgate: Tollgate = tollgate_factory('[pricing.models."my-private-model"]\ninput = 2\noutput = "4.5"\n')  # type: ignore[operator]
    provider.answer(
        "POST", CHAT, json_answer(chat_completion(model="my-private-model", prompt_tokens=10, completion_tokens=2))
    )
    tollgate.client.post(CHAT, content=b'{"model": "my-private-model", "messages": []}')
    [row] = tollgate.rows()
    assert Decimal(row["cost_pico"]) / 10**12 == (10 * Decimal(2) + 2 * Decimal("4.5")) / 10**6


def test_models_list_is_forwarded_and_recorded_without_tokens(tollgate: Tollgate, provider: FakeProvider) -> None:
    models = b'{"object": "list", "data": [{"id": "gpt-4o-mini", "object": "model"}]}'
    provider.answer("GET", "/v1/models", json_answer(models))
    response = tollgate.client.get("/v1/models?limit=5")
    assert response.content == models
    assert provider.requests[0].query == b"limit=5"
    [row] = tollgate.rows()
    assert (row["endpoint"], row["usage_source"], row["method"]) == ("/v1/models", "none", "GET")


def test_managed_key_is_replaced_by_the_provider_key_and_wins_over_headers(
    tollgate_factory: object, provider: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_PROVIDER_KEY", "sk-provider-secret")
    keys = (
        f'[auth]\nmode = "managed"\n[[keys]]\nname = "alice-key"\nsha256 = "{hash_key("tg-alice")}"\n'
        'user = "alice"\nteam = "research"\n'
    )
    tollgate: Tollgate = tollgate_factory(keys, 'api_key_env = "FAKE_PROVIDER_KEY"')  # type: ignore[operator]
    provider.answer("POST", CHAT, json_answer(chat_completion()))
    spoof = {"authorization": "Bearer tg-alice", "x-user-id": "mallory", "x-team-id": "finance"}
    assert tollgate.client.post(CHAT, content=BODY, headers=spoof).status_code == 200
    assert provider.requests[0].header(b"authorization") == b"Bearer sk-provider-secret"
    [row] = tollgate.rows()
    assert (row["user_id"], row["team_id"], row["key_name"]) == ("alice", "research", "alice-key")


def test_managed_mode_refuses_requests_without_a_tollgate_key(tollgate_factory: object, provider: FakeProvider) -> None:
    keys = f'[auth]\nmode = "managed"\n[[keys]]\nname = "k"\nsha256 = "{hash_key("tg-right")}"\n'
    tollgate: Tollgate = tollgate_factory(keys)  # type: ignore[operator]
    response = tollgate.client.post(CHAT, content=BODY, headers={"authorization": "Bearer sk-wrong"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"
    assert b"sk-wrong" not in response.content
    assert provider.requests == []


def test_key_with_trust_headers_lets_a_backend_attribute_its_users(
    tollgate_factory: object, provider: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_PROVIDER_KEY", "sk-provider-secret")
    keys = f'[[keys]]\nname = "backend"\nsha256 = "{hash_key("tg-backend")}"\nuser = "svc"\ntrust_headers = true\n'
    tollgate: Tollgate = tollgate_factory(keys, 'api_key_env = "FAKE_PROVIDER_KEY"')  # type: ignore[operator]
    provider.answer("POST", CHAT, json_answer(chat_completion()))
    tollgate.client.post(CHAT, content=BODY, headers={"authorization": "Bearer tg-backend", "x-user-id": "end-user-7"})
    assert tollgate.rows()[0]["user_id"] == "end-user-7"


def test_managed_key_without_provider_key_in_environment_is_a_clear_error(
    tollgate_factory: object, provider: FakeProvider
) -> None:
    keys = f'[[keys]]\nname = "k"\nsha256 = "{hash_key("tg-k")}"\n'
    tollgate: Tollgate = tollgate_factory(keys, 'api_key_env = "FAKE_PROVIDER_KEY_UNSET"')  # type: ignore[operator]
    response = tollgate.client.post(CHAT, content=BODY, headers={"authorization": "Bearer tg-k"})
    assert response.status_code == 503  # not a 500, which the SDKs would retry
    assert response.headers["x-should-retry"] == "false"
    assert "$FAKE_PROVIDER_KEY_UNSET" in response.json()["error"]["message"]
    assert provider.requests == []


def test_retryable_statuses_are_retried_before_any_byte_reaches_the_client(
    tollgate: Tollgate, provider: FakeProvider
) -> None:
    busy = json_answer(b'{"error": {"message": "busy"}}', status=503)
    provider.answer("POST", CHAT, busy, json_answer(chat_completion()))
    response = tollgate.client.post(CHAT, content=BODY)
    assert (response.status_code, response.content) == (200, chat_completion())
    assert len(provider.requests) == 2
    assert len(tollgate.rows()) == 1


def test_retries_run_out_and_the_last_answer_passes_through(tollgate: Tollgate, provider: FakeProvider) -> None:
    error = b'{"error": {"message": "still down"}}'
    provider.answer("POST", CHAT, json_answer(error, status=500))
    response = tollgate.client.post(CHAT, content=BODY)
    assert (response.status_code, response.content) == (500, error)
    assert len(provider.requests) == 2  # retries = 1 in the test config
    assert tollgate.rows()[0]["status"] == 500


def test_retry_after_is_honoured(tollgate: Tollgate, provider: FakeProvider) -> None:
    limited = Canned(status=429, body=b"{}", headers=((b"content-type", b"application/json"), (b"retry-after", b"1")))
    provider.answer("POST", CHAT, limited, json_answer(chat_completion()))
    started = time.monotonic()
    assert tollgate.client.post(CHAT, content=BODY).status_code == 200
    assert time.monotonic() - started >= 1


@pytest.mark.parametrize("status", [400, 404, 422])
def test_other_client_errors_are_not_retried(tollgate: Tollgate, provider: FakeProvider, status: int) -> None:
    provider.answer("POST", CHAT, json_answer(b"{}", status=status))
    assert tollgate.client.post(CHAT, content=BODY).status_code == status
    assert len(provider.requests) == 1
