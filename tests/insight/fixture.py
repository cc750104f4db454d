"""The fixture database the README's examples of ``usage --forecast``, ``advise`` and ``alerts`` come from.

A month of two teams' usage, priced with the bundled price map, up to 2026-11-25 12:00 UTC:
alice's planner agent sends long, poorly cached prompts to gpt-4o for short answers; bob writes
long answers on gpt-4.1 and meets his limit; carol's spend jumps in the last hour; dan's thread
loops. ``tests/insight/test_readme_examples.py`` runs each command on it and checks that the
README shows exactly what it printed.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta
from typing import Any

from pricing import Catalog, TokenCounts, cost_to_pico, price_tokens
from proxy.config import AnomaliesConfig
from proxy.insight.monitor import AnomalyMonitor
from proxy.recording.records import UsageRecord
from proxy.recording.store import Store
from tests.insight.history import row, write

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
SINCE = datetime(2026, 11, 1, tzinfo=UTC)
LIMITS = """
[[limits]]
scope = "user"
id = "alice"
window = "month"
max_usd = "150"

[[limits]]
scope = "team"
id = "writers"
window = "month"
max_usd = "20"
"""


@functools.cache
def _catalog() -> Catalog:
    return Catalog.load()


def priced(at: datetime, model: str, prompt: int, cached: int, output: int, **fields: Any) -> UsageRecord:
    """A request of ``model`` at ``at``, costing what the bundled price map says those tokens cost."""
    card = _catalog().lookup(model)
    assert card is not None
    cost = price_tokens(card, TokenCounts(input=prompt, cached_input=cached, output=output)).total
    tokens = {"input_tokens": prompt, "cached_input_tokens": cached, "output_tokens": output, "reasoning_tokens": 0}
    record = row(at, None, model_requested=model, **tokens, **fields)
    return _with_cost(record, cost_to_pico(cost))


def _with_cost(record: UsageRecord, pico: int) -> UsageRecord:
    import dataclasses

    return dataclasses.replace(record, cost_pico=pico, unpriced=False)


def _days() -> list[datetime]:
    return [SINCE + timedelta(days=d) for d in range((NOW - SINCE).days + 1)]


def fixture_rows() -> list[UsageRecord]:
    rows: list[UsageRecord] = []
    alice = {"user_id": "alice", "team_id": "research", "agent": "planner"}
    bob = {"user_id": "bob", "team_id": "writers", "agent": "writer"}
    for day in _days():
        hours = range(9, 12) if day.date() == NOW.date() else range(9, 17)
        for hour in hours:
            at = day + timedelta(hours=hour)
            rows += [priced(at + timedelta(minutes=12 * i), "gpt-4o", 60_000, 10_000, 150, **alice) for i in range(5)]
            rows += [priced(at + timedelta(minutes=20 * i), "gpt-4.1", 3_000, 0, 1_200, **bob) for i in range(3)]
    # carol: one small request an hour for two weeks, then 30 large ones in the last hour.
    carol = {"user_id": "carol", "team_id": "ops", "agent": "triage"}
    rows += [priced(NOW - timedelta(hours=h), "gpt-4o-mini", 2_000, 0, 300, **carol) for h in range(2, 14 * 24)]
    rows += [priced(NOW - timedelta(minutes=50 - i), "gpt-4o", 60_000, 0, 150, **carol) for i in range(30)]
    # dan's agent loops on one thread: 70 requests in the minute before noon.
    dan = {"user_id": "dan", "team_id": "ops", "agent": "fixer", "thread_id": "t-loop"}
    rows += [priced(NOW - timedelta(seconds=58 - 0.8 * i), "gpt-4o-mini", 4_000, 0, 200, **dan) for i in range(70)]
    # Streams cut off after billing, each retried 20 seconds later on the same thread.
    for n in range(4):
        at = SINCE + timedelta(days=3 * n + 1, hours=10)
        thread = {**bob, "thread_id": f"t-{n}"}
        cut = priced(at, "gpt-4.1", 3_000, 0, 900, **thread)
        rows.append(_failed(cut))
        rows.append(priced(at + timedelta(seconds=20), "gpt-4.1", 3_000, 0, 1_200, **thread))
    # bob's requests refused by his team's limit this week: no max_tokens, so bounded by the model's maximum.
    rows += [_refused(row(NOW - timedelta(hours=h), None, model_requested="gpt-4.1", **bob)) for h in range(1, 7)]
    return rows


def _failed(record: UsageRecord) -> UsageRecord:
    import dataclasses

    return dataclasses.replace(record, status=502, error_type="upstream_error")


def _refused(record: UsageRecord) -> UsageRecord:
    import dataclasses

    return dataclasses.replace(
        record, status=429, error_type="spend_limit_exceeded", input_tokens=0, output_tokens=0, cached_input_tokens=0
    )


def build_fixture(url: str) -> Store:
    """The fixture rows, written, and the anomalies the monitor finds in them at NOW claimed."""
    store = write(url, fixture_rows())
    AnomalyMonitor(store, AnomaliesConfig(enabled=True), lambda notice: None).check(NOW)
    return store
