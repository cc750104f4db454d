"""A limit added in the middle of its window counts what was spent in that window before it existed."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from proxy.attribution import Attribution
from proxy.config import parse_config
from proxy.limits.ledger import Ledger
from proxy.limits.rules import LimitBook, compile_rules, counter_window
from proxy.limits.state import limit_states
from tests.conftest import Tollgate, chat_completion, json_answer
from tests.fakeprovider import FakeProvider

CHAT = "/v1/chat/completions"
BODY = b'{"model": "gpt-4o-mini", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}'
CAROL = {"x-user-id": "carol"}
# gpt-4o-mini, 12 prompt and 5 completion tokens: 12 * $0.15/M + 5 * $0.60/M
COST = (12 * Decimal("0.15") + 5 * Decimal("0.6")) / 10**6


def _limit(max_usd: Decimal) -> str:
    return f'[[limits]]\nscope = "user"\nid = "carol"\nwindow = "day"\nmax_usd = "{max_usd}"\n'


def test_a_new_limit_counts_the_spend_of_its_window_before_it(tollgate_factory: Any, provider: FakeProvider) -> None:
    provider.answer("POST", CHAT, json_answer(chat_completion()))
    before: Tollgate = tollgate_factory()
    for _ in range(3):
        assert before.client.post(CHAT, content=BODY, headers=CAROL).status_code == 200
    before.rows(3)
    # Her three requests cost 3 * COST, and a request's bound is about 3.4 * COST: a limit of 5 * COST admits
    # one more only if the limit forgets what she spent before it existed.
    after: Tollgate = tollgate_factory(_limit(COST * 5))
    response = after.client.post(CHAT, content=BODY, headers=CAROL)
    assert response.status_code == 429
    assert f"${COST * 3:f} spent" in response.json()["error"]["message"]
    book = LimitBook(compile_rules(after.config.limits))
    [state] = limit_states(book, Ledger(after.store, holder="cli"), datetime.now(UTC), "carol")
    assert state.spent == COST * 3  # was only what was spent after the limit appeared


@pytest.mark.parametrize(
    ("window", "zone"),
    [("day", "UTC"), ("day", "Asia/Tokyo"), ("week", "America/New_York"), ("month", "Europe/Paris"), ("total", "UTC")],
)
def test_a_counter_key_names_its_window(window: str, zone: str) -> None:
    config = parse_config(f'[[limits]]\nscope = "agent"\nwindow = "{window}"\nmax_usd = 1\ntimezone = "{zone}"\n')
    now = datetime(2026, 3, 29, 1, 30, tzinfo=UTC)  # a clock change in Europe, late in a week, month and day
    [counter] = LimitBook(compile_rules(config.limits)).counters(Attribution(agent="a:b"), now)
    parsed = counter_window(counter.key)
    assert (parsed.scope, parsed.scope_id, parsed.start, parsed.end) == ("agent", "a:b", counter.start, counter.end)
