"""Usage no model could have used is clamped and flagged: it cannot poison the journal, a batch or a limit."""

from __future__ import annotations

import asyncio
import dataclasses
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

from pricing import Catalog, TokenCounts
from proxy.attribution import Attribution
from proxy.config import BudgetConfig, LimitConfig
from proxy.limits.budget import BudgetKeeper
from proxy.limits.ledger import Ledger
from proxy.limits.rules import LimitBook, compile_rules
from proxy.recording.journal import Journal
from proxy.recording.recorder import Recorder
from proxy.recording.store import Store
from proxy.usage import MAX_TOKENS, Usage, clamp_usage
from tests.conftest import Tollgate, json_answer
from tests.fakeprovider import FakeProvider
from tests.recording.test_store import _BASE

_BASE_ATTRIBUTION = Attribution(user=_BASE.user_id)


def _limits() -> list[LimitConfig]:
    return [LimitConfig(scope="user", id="*", window="total", max_usd=Decimal(1))]


CHAT = "/v1/chat/completions"
BODY = b'{"model": "gpt-4o-mini", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}'
CARD = Catalog.from_entries({"m": {"input_cost_per_token": 1e-6, "max_input_tokens": 1000, "max_output_tokens": 100}})


def _answer(prompt_tokens: int) -> bytes:
    usage = {"prompt_tokens": prompt_tokens, "completion_tokens": 5, "total_tokens": prompt_tokens + 5}
    return orjson.dumps({"id": "x", "model": "gpt-4o-mini", "choices": [], "usage": usage})


@pytest.mark.parametrize(
    ("count", "card", "kept"),
    [(1_000, "m", 1_000), (5_500, "m", 5_500), (5_501, "m", 5_500), (10**17, None, MAX_TOKENS)],
)
def test_counts_beyond_what_a_model_can_use_are_clamped(count: int, card: str | None, kept: int) -> None:
    usage, clamped = clamp_usage(Usage(TokenCounts(input=count, output=3)), CARD.lookup(card) if card else None)
    assert (usage.tokens.input, usage.tokens.output, clamped) == (kept, 3, kept != count)


@pytest.mark.parametrize("prompt_tokens", [10**17, 3 * 10**9])
def test_absurd_usage_is_recorded_clamped_and_the_limit_keeps_working(
    tollgate_factory: Any, provider: FakeProvider, prompt_tokens: int
) -> None:
    tollgate: Tollgate = tollgate_factory('[[limits]]\nscope = "user"\nmax_usd = "100000"\n')
    provider.answer("POST", CHAT, json_answer(_answer(prompt_tokens)), json_answer(_answer(12)))
    first = tollgate.client.post(CHAT, content=BODY, headers={"x-user-id": "alice"})
    second = tollgate.client.post(CHAT, content=BODY, headers={"x-user-id": "alice"})
    assert (first.status_code, second.status_code) == (200, 200)
    rows = tollgate.rows(2)
    assert rows[0]["usage_source"] == "clamped" and rows[0]["input_tokens"] <= MAX_TOKENS
    assert Decimal(rows[0]["cost_pico"]) / 10**12 < 1000  # gpt-4o-mini's window at its dearest rate, not $15e9
    assert rows[1]["usage_source"] == "reported"


def test_a_record_the_database_refuses_releases_what_its_lease_held(tmp_path: Path, db_url: str) -> None:
    """A set-aside row's spend is never counted, so it must not stay held: it would refuse later requests."""
    store = Store(db_url)
    store.create_tables()
    config = BudgetConfig().model_copy(update={"sync_interval": 3600})
    [counter] = LimitBook(compile_rules(_limits())).counters(_BASE_ATTRIBUTION, _BASE.started_at)

    async def run() -> int:
        ledger = Ledger(store, holder="test")
        budget = BudgetKeeper(ledger, config)
        recorder = Recorder(
            store, journal=Journal(tmp_path / "j", 1 << 20), ledger=ledger, on_dropped=budget.dropped, flush_interval=60
        )
        admission = await budget.admit([counter], 10**9, "a test")
        charges = budget.settle(admission, 10**9)
        bad = dataclasses.replace(_BASE, request_id="bad", endpoint=None)  # type: ignore[arg-type]  # NOT NULL
        recorder.submit(bad, charges)
        await recorder.flush()
        await recorder.close()
        return budget.remaining(admission) or 0

    assert asyncio.run(run()) == 10**12  # the whole $1: nothing stays held for the refused row
    store.dispose()
