"""Billing periods: UTC calendar months written ``YYYY-MM``, and which one is due for invoicing."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from proxy.billing.settings import BillingSettings

_PERIOD = re.compile(r"(\d{4})-(0[1-9]|1[0-2])")


def parse_period(period: str) -> tuple[datetime, datetime]:
    """The UTC bounds ``[start, end)`` of a ``YYYY-MM`` period; ``ValueError`` for anything else."""
    match = _PERIOD.fullmatch(period)
    if match is None:
        raise ValueError(f"period must be YYYY-MM, e.g. 2026-11, not {period!r}")
    year, month = int(match[1]), int(match[2])
    return datetime(year, month, 1, tzinfo=UTC), datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)


def due_period(now: datetime, settings: BillingSettings) -> str | None:
    """The period the scheduler should generate at ``now``: last month, once this month's generate time passed."""
    now = now.astimezone(UTC)
    due = now.replace(day=settings.generate_day, hour=settings.generate_hour_utc, minute=0, second=0, microsecond=0)
    return None if now < due else previous_period(now)


def previous_period(now: datetime) -> str:
    """The calendar month before ``now``'s (UTC), as ``YYYY-MM``."""
    return f"{now.astimezone(UTC).replace(day=1) - timedelta(days=1):%Y-%m}"
