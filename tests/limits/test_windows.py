from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from proxy.limits.windows import WINDOWS, seconds_until, window_bounds, window_label

NEW_YORK = ZoneInfo("America/New_York")
TOKYO = ZoneInfo("Asia/Tokyo")


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("window", "now", "start", "end", "label"),
    [
        # days
        ("day", "2026-11-25T00:00:00", "2026-11-25T00:00:00", "2026-11-26T00:00:00", "2026-11-25"),
        ("day", "2026-11-25T23:59:59.999999", "2026-11-25T00:00:00", "2026-11-26T00:00:00", "2026-11-25"),
        ("day", "2026-12-31T12:00:00", "2026-12-31T00:00:00", "2027-01-01T00:00:00", "2026-12-31"),
        ("day", "2028-02-29T08:00:00", "2028-02-29T00:00:00", "2028-03-01T00:00:00", "2028-02-29"),
        ("day", "2027-02-28T08:00:00", "2027-02-28T00:00:00", "2027-03-01T00:00:00", "2027-02-28"),
        # weeks: Monday to Monday, labelled by ISO week
        ("week", "2026-11-29T23:59:59", "2026-11-23T00:00:00", "2026-11-30T00:00:00", "2026-W48"),
        ("week", "2026-11-30T00:00:00", "2026-11-30T00:00:00", "2026-12-07T00:00:00", "2026-W49"),
        ("week", "2027-01-01T10:00:00", "2026-12-28T00:00:00", "2027-01-04T00:00:00", "2026-W53"),
        # months
        ("month", "2026-01-31T23:59:59", "2026-01-01T00:00:00", "2026-02-01T00:00:00", "2026-01"),
        ("month", "2026-02-01T00:00:00", "2026-02-01T00:00:00", "2026-03-01T00:00:00", "2026-02"),
        ("month", "2026-12-15T00:00:00", "2026-12-01T00:00:00", "2027-01-01T00:00:00", "2026-12"),
        ("month", "2028-02-29T23:00:00", "2028-02-01T00:00:00", "2028-03-01T00:00:00", "2028-02"),
        ("month", "2027-02-28T23:00:00", "2027-02-01T00:00:00", "2027-03-01T00:00:00", "2027-02"),
    ],
)
def test_utc_windows(window: str, now: str, start: str, end: str, label: str) -> None:
    bounds = window_bounds(window, utc(now), UTC)
    assert bounds == (utc(start), utc(end))
    assert window_label(window, bounds[0], UTC) == label


@pytest.mark.parametrize(
    ("window", "now", "start", "end", "label", "hours"),
    [
        # Spring forward: 2026-03-08 has no 02:00-03:00 and lasts 23 hours.
        ("day", "2026-03-08T12:00:00", "2026-03-08T05:00:00", "2026-03-09T04:00:00", "2026-03-08", 23),
        # Fall back: 2026-11-01 repeats 01:00-02:00 and lasts 25 hours.
        ("day", "2026-11-01T12:00:00", "2026-11-01T04:00:00", "2026-11-02T05:00:00", "2026-11-01", 25),
        # 03:00Z on Nov 2 is still 22:00 on Nov 1 in New York.
        ("day", "2026-11-02T03:00:00", "2026-11-01T04:00:00", "2026-11-02T05:00:00", "2026-11-01", 25),
        ("week", "2026-03-10T12:00:00", "2026-03-09T04:00:00", "2026-03-16T04:00:00", "2026-W11", 168),
        ("week", "2026-03-08T12:00:00", "2026-03-02T05:00:00", "2026-03-09T04:00:00", "2026-W10", 167),
        ("month", "2026-11-15T12:00:00", "2026-11-01T04:00:00", "2026-12-01T05:00:00", "2026-11", 30 * 24 + 1),
    ],
)
def test_new_york_windows_follow_dst(window: str, now: str, start: str, end: str, label: str, hours: int) -> None:
    lo, hi = window_bounds(window, utc(now), NEW_YORK)
    assert (lo, hi) == (utc(start), utc(end))
    assert hi is not None
    assert hi - lo == timedelta(hours=hours)
    assert window_label(window, lo, NEW_YORK) == label


@pytest.mark.parametrize(
    ("window", "now", "start", "end", "label"),
    [
        # 16:00Z is 01:00 the next day in Tokyo (UTC+9).
        ("day", "2026-11-25T16:00:00", "2026-11-25T15:00:00", "2026-11-26T15:00:00", "2026-11-26"),
        ("day", "2026-11-25T14:59:59", "2026-11-24T15:00:00", "2026-11-25T15:00:00", "2026-11-25"),
        ("month", "2026-11-30T15:00:00", "2026-11-30T15:00:00", "2026-12-31T15:00:00", "2026-12"),
        ("week", "2026-11-29T15:00:00", "2026-11-29T15:00:00", "2026-12-06T15:00:00", "2026-W49"),
    ],
)
def test_tokyo_windows_start_before_utc_midnight(window: str, now: str, start: str, end: str, label: str) -> None:
    lo, hi = window_bounds(window, utc(now), TOKYO)
    assert (lo, hi) == (utc(start), utc(end))
    assert window_label(window, lo, TOKYO) == label


def test_day_whose_midnight_is_skipped_starts_when_clocks_jump() -> None:
    # Sao Paulo went from 00:00 -03 straight to 01:00 -02 on 2018-11-04.
    zone = ZoneInfo("America/Sao_Paulo")
    lo, hi = window_bounds("day", utc("2018-11-04T12:00:00"), zone)
    assert (lo, hi) == (utc("2018-11-04T03:00:00"), utc("2018-11-05T02:00:00"))
    assert window_label("day", lo, zone) == "2018-11-04"


def test_fixed_offset_timezone_is_accepted() -> None:
    zone = timezone(timedelta(hours=-5))
    assert window_bounds("day", utc("2026-11-25T03:00:00"), zone) == (
        utc("2026-11-24T05:00:00"),
        utc("2026-11-25T05:00:00"),
    )


def test_now_in_another_zone_gives_the_same_window() -> None:
    now = datetime(2026, 11, 25, 20, 0, tzinfo=TOKYO)
    assert window_bounds("day", now, UTC) == window_bounds("day", now.astimezone(UTC), UTC)


def test_bounds_are_utc_and_contain_now() -> None:
    now = utc("2026-11-01T06:30:00")
    for window in ("day", "week", "month"):
        lo, hi = window_bounds(window, now, NEW_YORK)
        assert hi is not None
        assert lo.tzinfo is UTC and hi.tzinfo is UTC
        assert lo <= now < hi


@pytest.mark.parametrize("tz", [UTC, NEW_YORK, TOKYO])
def test_total_starts_at_epoch_and_never_ends(tz: ZoneInfo | timezone) -> None:
    lo, hi = window_bounds("total", utc("2026-11-25T12:00:00"), tz)
    assert (lo, hi) == (datetime(1970, 1, 1, tzinfo=UTC), None)
    assert window_label("total", lo, tz) == "total"


def test_naive_datetime_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        window_bounds("day", datetime(2026, 11, 25, 12, 0), UTC)
    with pytest.raises(ValueError, match="aware"):
        window_label("day", datetime(2026, 11, 25), UTC)


def test_unknown_window_names_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="'year'.*day, week, month, total"):
        window_bounds("year", utc("2026-11-25T12:00:00"), UTC)
    with pytest.raises(ValueError, match="'hour'"):
        window_label("hour", utc("2026-11-25T12:00:00"), UTC)
    assert WINDOWS == ("day", "week", "month", "total")


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        ("2026-11-25T00:00:00", 86400),
        ("2026-11-25T23:59:59", 1),
        ("2026-11-25T23:59:58.000001", 2),
        ("2026-11-25T23:59:59.999999", 1),
        ("2026-11-25T12:00:00.5", 43200),
        ("2026-11-26T00:00:00", 1),  # already at the reset: still at least 1
        ("2026-11-26T00:00:05", 1),  # a stale end never gives 0 or less
    ],
)
def test_seconds_until_rounds_up_to_at_least_one(now: str, expected: int) -> None:
    assert seconds_until(utc("2026-11-26T00:00:00"), utc(now)) == expected


def test_seconds_until_total_is_none() -> None:
    assert seconds_until(None, utc("2026-11-25T12:00:00")) is None


def test_seconds_until_across_a_25_hour_day() -> None:
    lo, hi = window_bounds("day", utc("2026-11-01T04:00:00"), NEW_YORK)
    assert seconds_until(hi, lo) == 25 * 3600
