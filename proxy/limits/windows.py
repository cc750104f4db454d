"""Calendar windows for spend limits: which day, week or month an instant falls in.

Pure: no I/O and no clock of its own; the caller passes ``now``. A window is a
half-open interval ``[start, end)`` of aware UTC datetimes, computed from local
midnights in the limit's time zone, so a day in a zone that changes clocks is 23
or 25 hours long. ``total`` starts at the epoch and never ends (``end`` is None).

A month may start on another day than the 1st (``start_day``, 1 to 28, so that every
month has it): a billing cycle from the 15th runs to the 14th of the next month, and its
label is its first day (``"2026-11-15"``) rather than the month (``"2026-11"``).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

WINDOWS = ("day", "week", "month", "total")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def window_bounds(
    window: str, now: datetime, tz: ZoneInfo | timezone, start_day: int = 1
) -> tuple[datetime, datetime | None]:
    """The window of kind ``window`` that contains ``now``, as (start inclusive, end exclusive) in UTC.

    ``now`` must be aware; a naive datetime is refused rather than guessed at.
    """
    _check_window(window)
    _check_aware(now, "now")
    if window == "total":
        return _EPOCH, None
    today = now.astimezone(tz).date()
    if window == "day":
        first, after = today, today + timedelta(days=1)
    elif window == "week":
        first = today - timedelta(days=today.weekday())
        after = first + timedelta(weeks=1)
    else:
        first = today.replace(day=start_day)
        if today.day < start_day:  # still in the cycle that began last month
            first = _next_month(first, -1)
        after = _next_month(first, 1)
    return _local_midnight(first, tz), _local_midnight(after, tz)


def _next_month(day: date, step: int) -> date:
    """The same day of the month ``step`` (1 or -1) months away; the day is at most 28, so it exists."""
    months = day.year * 12 + day.month - 1 + step
    return day.replace(year=months // 12, month=months % 12 + 1)


def window_label(window: str, start: datetime, tz: ZoneInfo | timezone) -> str:
    """A stable id of the window starting at ``start``, for database keys and messages.

    ``"2026-11-25"`` (local date) for a day, ``"2026-W48"`` (ISO week) for a week,
    ``"2026-11"`` for a month (its first day, ``"2026-11-15"``, for a month that does not
    start on the 1st) and ``"total"`` for total.
    """
    _check_window(window)
    _check_aware(start, "start")
    if window == "total":
        return "total"
    local = start.astimezone(tz).date()
    if window == "day":
        return local.isoformat()
    if window == "week":
        # The ISO year, not the calendar one: 2026-12-28 is in week 2026-W53, 2027-01-01 too.
        iso = local.isocalendar()
        return f"{iso.year}-W{iso.week:02d}"
    if local.day != 1:
        return local.isoformat()
    return f"{local.year}-{local.month:02d}"


def window_of_label(window: str, label: str, tz: ZoneInfo | timezone) -> tuple[datetime, datetime | None]:
    """The window a label names (the inverse of ``window_label``), as (start, end) in UTC."""
    _check_window(window)
    if window == "total":
        return _EPOCH, None
    if window == "day":
        first = date.fromisoformat(label)
    elif window == "week":
        year, week = label.split("-W")
        first = date.fromisocalendar(int(year), int(week), 1)
    elif label.count("-") == 2:  # a month from another day than the 1st
        first = date.fromisoformat(label)
    else:
        year, month = label.split("-")
        first = date(int(year), int(month), 1)
    # Noon of the window's first local day is inside it, whatever the zone's clock changes.
    noon = datetime(first.year, first.month, first.day, 12, tzinfo=tz)
    return window_bounds(window, noon.astimezone(UTC), tz, first.day if window == "month" else 1)


def seconds_until(end: datetime | None, now: datetime) -> int | None:
    """Whole seconds from ``now`` until the window resets at ``end``, rounded up and at least 1.

    None when the window never resets (``total``). Suited to a Retry-After header,
    where 0 would invite an immediate retry that is sure to be refused.
    """
    if end is None:
        return None
    _check_aware(now, "now")
    _check_aware(end, "end")
    # Integer microseconds: float seconds could round 3.000001 down to 3.
    micros = (end - now) // timedelta(microseconds=1)
    return max(1, -(-micros // 1_000_000))


def _local_midnight(day: date, tz: ZoneInfo | timezone) -> datetime:
    # Built in the zone, then converted: adding timedelta(days=1) to an aware local
    # datetime is wall-clock arithmetic and would be an hour off across a DST change.
    # Where midnight itself is skipped, fold=0 maps it to the instant the gap starts,
    # which is the first instant of that local day.
    return datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC)


def _check_window(window: str) -> None:
    if window not in WINDOWS:
        raise ValueError(f"unknown window {window!r}; valid windows: {', '.join(WINDOWS)}")


def _check_aware(moment: datetime, name: str) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be an aware datetime, got naive {moment.isoformat()}")
