"""Unpriced means "it had usage and no price": failed requests and model listings are not unpriced."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from starlette.testclient import TestClient

from proxy.app import create_app
from proxy.billing.queries import generate_invoices
from proxy.billing.settings import BillingSettings
from proxy.clock import fixed_clock
from proxy.forward import AiohttpUpstream
from proxy.recording.reports import usage_report
from proxy.recording.store import Store
from tests.conftest import Tollgate, chat_completion, json_answer, make_config
from tests.fakeprovider import FakeProvider

CHAT = "/v1/chat/completions"
IN_OCTOBER = datetime(2026, 10, 15, 12, tzinfo=UTC)
CUSTOM_PRICE = '[pricing.models."my-finetune"]\ninput = 0.30\noutput = 1.20\n'
ALICE = {"x-user-id": "alice"}


@pytest.fixture
def october(provider: FakeProvider, any_db_url: str) -> Iterator[Store]:
    """The store after one request of each kind for alice in October: priced, custom-priced, unpriced,
    a 500, a 400 and a model listing."""
    provider.answer(
        "POST", CHAT, *(json_answer(chat_completion(model=m)) for m in ("gpt-4o-mini", "my-finetune", "my-unpriced"))
    )
    provider.answer("POST", "/v1/completions", json_answer(b'{"error": {"message": "boom"}}', status=500))
    provider.answer("POST", "/v1/embeddings", json_answer(b'{"error": {"message": "bad input"}}', status=400))
    provider.answer("GET", "/v1/models", json_answer(b'{"object": "list", "data": []}'))
    config = make_config(provider, any_db_url, CUSTOM_PRICE)
    app = create_app(config, lambda: AiohttpUpstream(retry_wait=0), clock=fixed_clock(IN_OCTOBER))
    with TestClient(app, base_url="http://tollgate.test") as client:
        for model in ("gpt-4o-mini", "my-finetune", "my-unpriced"):
            assert client.post(CHAT, json={"model": model, "messages": []}, headers=ALICE).status_code == 200
        assert client.post("/v1/completions", json={"model": "gpt-4o-mini"}, headers=ALICE).status_code == 500
        assert client.post("/v1/embeddings", json={"model": "text-embedding-3-small"}, headers=ALICE).status_code == 400
        assert client.get("/v1/models", headers=ALICE).status_code == 200
        tollgate = Tollgate(client, config)
        assert len(tollgate.rows(expected=6)) == 6
    yield tollgate.store
    tollgate.store.dispose()


def test_only_requests_with_usage_and_no_price_are_unpriced_on_invoices_and_reports(october: Store) -> None:
    [invoice] = generate_invoices(october, BillingSettings(), "2026-10", datetime(2026, 11, 2, tzinfo=UTC)).created
    assert (invoice.requests, invoice.unpriced_requests) == (6, 1)
    models = {line.key: line.unpriced_requests for line in invoice.lines if line.kind == "model"}
    assert models == {"gpt-4o-mini": 0, "my-finetune": 0, "my-unpriced": 1, "text-embedding-3-small": 0, "": 0}
    for use_rollups in (True, False):
        [report] = usage_report(october, "user", use_rollups=use_rollups)
        assert (report.requests, report.unpriced_requests) == (6, 1)
