"""The in-process meter prices rows with the imported price version in force, as the proxy does."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from openai.types.chat import ChatCompletionMessageParam

from pricing import PriceFile
from proxy.recording.prices import import_version
from proxy.recording.store import Store
from tests.conftest import chat_completion, json_answer
from tests.fakeprovider import FakeProvider
from tests.inprocess.conftest import MeterFactory, rows, sync_client

_HI: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]
_LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)  # in force whatever today is


def test_a_row_is_priced_with_the_version_in_force(
    meter_factory: MeterFactory, provider: FakeProvider, db_url: str
) -> None:
    store = Store(db_url)
    store.create_tables()
    rates = {"input_cost_per_token": Decimal("1E-6"), "output_cost_per_token": Decimal("2E-6")}
    version = import_version(
        store, PriceFile("sheet", {"gpt-4o-mini-2024-07-18": rates}), "s.json", _LONG_AGO, _LONG_AGO
    )
    store.dispose()
    meter = meter_factory()
    provider.answer("POST", "/v1/chat/completions", json_answer(chat_completion()))
    sync_client(meter, provider).chat.completions.create(model="gpt-4o-mini", messages=_HI)
    [row] = rows(meter)
    assert (row["cost_pico"], row["price_version"]) == ((12 * 1 + 5 * 2) * 10**6, version)  # 12 in, 5 out
