"""Billing periods: which month is due for invoicing, and when."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from proxy.billing.periods import due_period
from proxy.billing.settings import BillingSettings


@pytest.mark.parametrize(
    ("now", "day", "hour", "expected"),
    [
        (datetime(2026, 12, 1, 23, tzinfo=UTC), 2, 0, None),
        (datetime(2026, 12, 2, 0, tzinfo=UTC), 2, 0, "2026-11"),
        (datetime(2026, 12, 31, 23, tzinfo=UTC), 2, 0, "2026-11"),
        (datetime(2027, 1, 2, 5, 59, tzinfo=UTC), 2, 6, None),
        (datetime(2027, 1, 2, 6, tzinfo=UTC), 2, 6, "2026-12"),
        (datetime(2027, 1, 1, tzinfo=UTC), 1, 0, "2026-12"),
    ],
)
def test_due_period(now: datetime, day: int, hour: int, expected: str | None) -> None:
    assert due_period(now, BillingSettings(generate_day=day, generate_hour_utc=hour)) == expected
