"""A background Response is one row, completed when its usage arrives, however often it is fetched."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import openai
import orjson
import sqlalchemy as sa

from pricing import TokenCounts
from proxy.recording.deferred import Deferred, Finished, Queued, apply_deferred
from proxy.recording.store import Store
from proxy.recording.tables import BACKGROUND_TABLE, COUNTERS_TABLE, ROLLUPS_TABLE, USAGE_TABLE
from tests.conftest import Tollgate, json_answer
from tests.fakeprovider import FakeProvider
from tests.recording.test_store import _BASE

LIMIT = '[[limits]]\nscope = "user"\nmax_usd = "1"\n'
USAGE = {"input_tokens": 400, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 60,
         "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 460}  # fmt: skip
# gpt-4o-mini: 400 * $0.15/M + 60 * $0.60/M
COST = (400 * Decimal("0.15") + 60 * Decimal("0.6")) / 10**6


def _response(status: str, usage: dict[str, Any] | None) -> bytes:
    return orjson.dumps(
        {
            "id": "resp_bg1",
            "object": "response",
            "created_at": 1732550400,
            "model": "gpt-4o-mini-2024-07-18",
            "status": status,
            "background": True,
            "output": [],
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": [],
            "usage": usage,
        }
    )


def _client(tollgate: Tollgate) -> openai.OpenAI:
    return openai.OpenAI(
        base_url="http://tollgate.test/v1",
        api_key="sk",
        http_client=tollgate.client,
        default_headers={"X-User-Id": "alice"},
        max_retries=0,
    )


def _counter_spent(tollgate: Tollgate) -> Decimal:
    with tollgate.store.engine.connect() as conn:
        return Decimal(int(conn.execute(sa.select(sa.func.sum(COUNTERS_TABLE.c.spent_pico))).scalar_one())) / 10**12


def test_a_background_response_is_completed_by_its_fetch_once(tollgate_factory: Any, provider: FakeProvider) -> None:
    tollgate: Tollgate = tollgate_factory(LIMIT)
    provider.answer("POST", "/v1/responses", json_answer(_response("queued", None)))
    provider.answer("GET", "/v1/responses/resp_bg1", json_answer(_response("completed", USAGE)))
    client = _client(tollgate)
    created = client.responses.create(model="gpt-4o-mini", input="a long job", background=True, max_output_tokens=100)
    assert created.status == "queued"
    [pending] = tollgate.rows(1)
    assert (pending["usage_source"], pending["cost_pico"]) == ("pending", None)
    assert _counter_spent(tollgate) > COST  # the bound is held until the usage is known
    for _ in range(2):  # the client polls twice; the usage counts once
        assert client.responses.retrieve("resp_bg1").status == "completed"
    create, *fetches = tollgate.rows(3)
    assert (create["usage_source"], create["input_tokens"], create["output_tokens"]) == ("reported", 400, 60)
    assert Decimal(create["cost_pico"]) / 10**12 == COST
    assert [(f["method"], f["usage_source"], f["cost_pico"]) for f in fetches] == [("GET", "none", None)] * 2
    assert _counter_spent(tollgate) == COST
    with tollgate.store.engine.connect() as conn:
        rollup_cost = conn.execute(
            sa.select(sa.func.sum(ROLLUPS_TABLE.c.cost_pico)).where(ROLLUPS_TABLE.c.period == "day")
        ).scalar_one()
        waiting = conn.execute(
            sa.select(sa.func.count()).select_from(BACKGROUND_TABLE).where(BACKGROUND_TABLE.c.completed.is_(False))
        ).scalar_one()
    assert (Decimal(rollup_cost) / 10**12, waiting) == (COST, 0)


def test_a_cancelled_background_response_is_completed_by_the_cancel(
    tollgate_factory: Any, provider: FakeProvider
) -> None:
    tollgate: Tollgate = tollgate_factory(LIMIT)
    provider.answer("POST", "/v1/responses", json_answer(_response("queued", None)))
    provider.answer("POST", "/v1/responses/resp_bg1/cancel", json_answer(_response("cancelled", None)))
    client = _client(tollgate)
    client.responses.create(model="gpt-4o-mini", input="never mind", background=True, max_output_tokens=100)
    assert client.responses.cancel("resp_bg1").status == "cancelled"
    create, _ = tollgate.rows(2)
    assert (create["usage_source"], create["cost_pico"]) == ("reported", 0)
    assert _counter_spent(tollgate) == 0  # the provisional bound is given back


def test_the_two_halves_complete_the_row_in_either_order_on_any_database(any_db_url: str) -> None:
    """The fetch may reach the database first (another instance), and the create after it."""
    store = Store(any_db_url)
    store.create_tables()
    pending = dataclasses.replace(_BASE, request_id="bg", usage_source="pending", cost_pico=None, input_tokens=0)
    finished = Finished("resp_x", TokenCounts(input=400, output=60), "gpt-4o-mini", None, 96_000_000, False)
    queued = Queued("resp_x", "bg", 500_000_000, ("user:alice:total:total",))
    with store.write_engine.begin() as conn:
        conn.execute(COUNTERS_TABLE.insert().values(counter_key="user:alice:total:total", spent_pico=500_000_000))

    def after(events: list[Deferred]) -> Callable[[sa.Connection, set[str]], None]:
        return lambda conn, _: apply_deferred(conn, store.dialect, events)

    store.insert_records([], after([finished]))
    store.insert_records([pending], after([queued]))
    store.insert_records([], after([finished]))  # fetched again: nothing changes
    with store.engine.connect() as conn:
        row = conn.execute(sa.select(USAGE_TABLE).where(USAGE_TABLE.c.request_id == "bg")).one()
        spent = conn.execute(sa.select(COUNTERS_TABLE.c.spent_pico)).scalar_one()
    store.dispose()
    assert (row.usage_source, row.input_tokens, row.cost_pico, spent) == ("reported", 400, 96_000_000, 96_000_000)
