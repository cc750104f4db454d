"""The app's one clock: every "now" that decides something (windows, invoices, rows) comes from it.

A clock is a function returning an aware UTC ``datetime``. ``create_app`` takes one
(``system_clock`` by default) and hands it to everything that reads the time, so
tests pin it with ``fixed_clock`` instead of depending on today's date.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    """The wall clock, in UTC."""
    return datetime.now(UTC)


def fixed_clock(moment: datetime) -> Clock:
    """A clock stopped at ``moment`` (aware), for tests."""
    if moment.tzinfo is None:
        raise ValueError(f"a clock reads aware times, got naive {moment.isoformat()}")
    return lambda: moment
