"""The admin usage API, the cost header, and /metrics, on the running app."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from starlette.testclient import TestClient

from proxy.app import create_app
from tests.conftest import Tollgate, chat_completion, json_answer, make_config
from tests.fakeprovider import FakeProvider

CHAT = "/v1/chat/completions"
BODY = b'{"model": "gpt-4o-mini", "messages": []}'
ADMIN = {"authorization": "Bearer s3cret"}
# gpt-4o-mini, 12 prompt and 5 completion tokens: 12 * $0.15/M + 5 * $0.60/M
COST = (12 * Decimal("0.15") + 5 * Decimal("0.6")) / 10**6


def test_non_streamed_responses_carry_their_cost(tollgate: Tollgate, provider: FakeProvider) -> None:
    provider.answer("POST", CHAT, json_answer(chat_completion()))
    response = tollgate.client.post(CHAT, content=BODY)
    assert Decimal(response.headers["x-tollgate-cost-usd"]) == COST
    assert response.content == chat_completion()


def test_cost_header_can_be_switched_off(tollgate_factory: object, provider: FakeProvider) -> None:
    tollgate: Tollgate = tollgate_factory("[server]\ncost_header = false\n")  # type: ignore[operator]
    provider.answer("POST", CHAT, json_answer(chat_completion()))
    assert "x-tollgate-cost-usd" not in tollgate.client.post(CHAT, content=BODY).headers


@pytest.fixture
def admin_client(provider: FakeProvider, db_url: str) -> TestClient:
    return TestClient(create_app(make_config(provider, db_url), admin_key="s3cret"))


def test_admin_usage_answers_like_the_cli(admin_client: TestClient, provider: FakeProvider) -> None:
    provider.answer("POST", CHAT, json_answer(chat_completion()))
    with admin_client as client:
        for user in ("alice", "alice", "bob"):
            client.post(CHAT, content=BODY, headers={"x-user-id": user})
        client.portal.call(client.app_state["recorder"].flush)  # type: ignore[union-attr]
        assert client.get("/admin/usage?group_by=user").status_code == 401
        rows = client.get("/admin/usage?group_by=user", headers=ADMIN).json()["rows"]
        summary = client.get("/admin/users/alice/summary", headers=ADMIN).json()
        bad = client.get("/admin/usage?group_by=colour", headers=ADMIN)
    assert {r["group"]: (r["requests"], Decimal(r["cost_usd"])) for r in rows} == {
        "alice": (2, 2 * COST),
        "bob": (1, COST),
    }
    assert Decimal(summary["all_time"]["cost_usd"]) == 2 * COST
    assert Decimal(summary["this_month"]["cost_usd"]) == 2 * COST
    days = datetime.now(UTC).day
    assert Decimal(summary["average_daily_cost_usd_this_month"]) == (2 * COST / days).quantize(Decimal("1e-12"))
    assert bad.status_code == 400 and bad.json()["error"]["type"] == "invalid_request_error"


def test_metrics_count_requests_tokens_cost_and_refusals(tollgate_factory: object, provider: FakeProvider) -> None:
    limit = '[[limits]]\nscope = "user"\nmax_usd = "0.0000001"\n'
    tollgate: Tollgate = tollgate_factory(limit)  # type: ignore[operator]
    provider.answer("POST", CHAT, json_answer(chat_completion()))
    tollgate.client.post(CHAT, content=BODY)  # no user: no user limit applies
    tollgate.client.post(CHAT, content=BODY, headers={"x-user-id": "alice"})  # refused
    text = tollgate.client.get("/metrics").text
    assert (
        'tollgate_requests_total{endpoint="/v1/chat/completions",provider="fake",model="gpt-4o-mini-2024-07-18",'
        'status="200"} 1' in text
    )
    assert 'tollgate_limit_refusals_total{scope="user",code="spend_limit_exceeded"} 1' in text
    assert "tollgate_cost_usd_total" in text and "tollgate_upstream_latency_seconds_bucket" in text
    assert "alice" not in text  # user ids are not labels by default
