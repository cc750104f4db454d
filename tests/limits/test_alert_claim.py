"""The once-only claim of a threshold alert holds on both engines."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from proxy.limits.ledger import Ledger
from proxy.recording.store import Store


def test_the_first_claim_wins_and_the_second_is_refused(any_db_url: str) -> None:
    store = Store(any_db_url)
    store.create_tables()
    ledger = Ledger(store, holder="w1")
    now = datetime(2026, 11, 25, 14, tzinfo=UTC)
    with store.write_engine.begin() as conn:
        first = ledger.claim_alert(conn, "user:alice:day:2026-11-25", 10**13, Decimal("0.8"), now)
    with store.write_engine.begin() as conn:
        second = ledger.claim_alert(conn, "user:alice:day:2026-11-25", 10**13, Decimal("0.8"), now)
    store.dispose()
    assert (first, second) == (True, False)
