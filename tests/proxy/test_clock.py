"""The app reads "now" from the clock it is given: rows, invoices and summaries follow a pinned clock."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from starlette.testclient import TestClient

from proxy.app import create_app
from proxy.clock import fixed_clock
from tests.conftest import chat_completion, json_answer, make_config
from tests.fakeprovider import FakeProvider

ADMIN = {"authorization": "Bearer s3cret"}
PINNED = datetime(2031, 3, 15, 9, 30, tzinfo=UTC)


def test_rows_invoices_and_summaries_follow_the_app_clock(provider: FakeProvider, db_url: str) -> None:
    app = create_app(make_config(provider, db_url), admin_key="s3cret", clock=fixed_clock(PINNED))
    provider.answer("POST", "/v1/chat/completions", json_answer(chat_completion()))
    with TestClient(app) as client:
        client.post("/v1/chat/completions", content=b'{"model": "gpt-4o-mini"}', headers={"x-user-id": "alice"})
        client.portal.call(client.app_state["recorder"].flush)  # type: ignore[union-attr]
        summary = client.get("/admin/users/alice/summary", headers=ADMIN).json()
        running = client.post("/admin/invoices/generate", params={"period": "2031-03"}, headers=ADMIN)
        default = client.post("/admin/invoices/generate", headers=ADMIN).json()
    assert summary["this_month"]["requests"] == 1  # the row is dated by the pinned clock: March 2031
    assert running.status_code == 400 and "has not ended" in running.json()["error"]["message"]
    assert default["period"] == "2031-02"  # "last month" of the pinned clock


def test_a_clock_reads_aware_times_only() -> None:
    with pytest.raises(ValueError, match="aware"):
        fixed_clock(datetime(2031, 3, 15))
