"""Which spend limits apply to a request, and the counters they are kept on.

Pure: config and attribution in, ``Counter`` objects out; the clock is passed in.

A *counter* is the spend of one subject (user ``alice``, team ``research``,
everything for ``global``) in one calendar window (``day 2026-11-25``). Several
limits can share a counter: a warn limit at $5 and a block limit at $10 on the
same user and window count the same spend.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from pricing import cost_to_pico, pico_to_usd
from proxy.attribution import Attribution
from proxy.config import LimitConfig
from proxy.limits.windows import window_bounds, window_label, window_of_label

GLOBAL_ID = "all"


@dataclass(frozen=True, slots=True)
class LimitRule:
    index: int
    scope: str
    id: str
    window: str
    max_pico: int
    action: str
    alert_at: tuple[Decimal, ...]
    timezone: str
    runtime: bool = False
    """Set while the server runs (``proxy.limits.runtime``), not in the config file."""

    @property
    def max_usd(self) -> Decimal:
        return pico_to_usd(self.max_pico)

    @property
    def blocks(self) -> bool:
        return self.action == "block"


@dataclass(frozen=True, slots=True)
class Counter:
    key: str
    scope: str
    scope_id: str
    window: str
    window_label: str
    start: datetime
    end: datetime | None
    rules: tuple[LimitRule, ...]
    block_pico: int | None
    """The tightest blocking limit on this counter, or None if it only warns."""

    def describe(self) -> str:
        """'user alice, day 2026-11-25', for messages."""
        subject = "all requests" if self.scope == "global" else f"{self.scope} '{self.scope_id}'"
        return f"{subject}, {self.window} {self.window_label}" if self.window != "total" else f"{subject}, in total"


def compile_rules(limits: Sequence[LimitConfig], runtime: Sequence[LimitConfig] = ()) -> tuple[LimitRule, ...]:
    """The rules of ``limits`` (from the file) and ``runtime`` (set while the server runs), in that order."""
    return tuple(
        LimitRule(
            index=i,
            scope=limit.scope,
            id=limit.id,
            window=limit.window,
            max_pico=cost_to_pico(limit.max_usd),
            action=limit.action,
            alert_at=tuple(sorted(limit.alert_at)),
            timezone=limit.timezone,
            runtime=i >= len(limits),
        )
        for i, limit in enumerate((*limits, *runtime))
    )


def subject_of(scope: str, attribution: Attribution) -> str | None:
    """The id a request has in ``scope``, or None when it has none (the limit then does not apply)."""
    if scope == "global":
        return GLOBAL_ID
    if scope == "user":
        return attribution.user
    if scope == "team":
        return attribution.team
    if scope == "key":
        return attribution.key
    if scope == "agent":
        return attribution.agent
    if scope == "thread":
        return attribution.thread
    raise ValueError(f"unknown limit scope {scope!r}")


class LimitBook:
    """The configured limits; ``counters`` says which apply to a request, now."""

    def __init__(self, rules: Sequence[LimitRule]) -> None:
        self.rules = tuple(rules)
        self._zones = {rule.timezone: ZoneInfo(rule.timezone) for rule in self.rules}
        self._scopes = tuple(dict.fromkeys(rule.scope for rule in self.rules))
        # Window bounds are recomputed only when a window ends: (window, zone) -> (label, start, end).
        self._windows: dict[tuple[str, str], tuple[str, datetime, datetime | None]] = {}
        self._counters: dict[tuple[str, str, str, str, str], Counter] = {}

    def __bool__(self) -> bool:
        return bool(self.rules)

    def counters(self, attribution: Attribution, now: datetime) -> tuple[Counter, ...]:
        """The counters of every limit that applies to a request with ``attribution`` at ``now``."""
        if not self.rules:
            return ()
        found: dict[str, Counter] = {}
        subjects = {scope: subject_of(scope, attribution) for scope in self._scopes}
        for rule in self.rules:
            subject = subjects[rule.scope]
            if subject is None or (rule.id != "*" and rule.id != subject):
                continue
            counter = self._counter(rule, subject, now)
            found.setdefault(counter.key, counter)
        return tuple(found.values())

    def _window(self, window: str, zone_name: str, now: datetime) -> tuple[str, datetime, datetime | None]:
        cached = self._windows.get((window, zone_name))
        if cached is not None and cached[1] <= now and (cached[2] is None or now < cached[2]):
            return cached
        zone = self._zones[zone_name]
        start, end = window_bounds(window, now, zone)
        fresh = (window_label(window, start, zone), start, end)
        self._windows[(window, zone_name)] = fresh
        return fresh

    def _counter(self, rule: LimitRule, subject: str, now: datetime) -> Counter:
        label, start, end = self._window(rule.window, rule.timezone, now)
        memo_key = (rule.scope, subject, rule.window, rule.timezone, label)
        counter = self._counters.get(memo_key)
        if counter is not None:
            return counter
        zone_tag = "" if rule.timezone == "UTC" else f"@{rule.timezone}"
        rules = tuple(
            r
            for r in self.rules
            if r.scope == rule.scope
            and r.window == rule.window
            and r.timezone == rule.timezone
            and (r.id == "*" or r.id == subject)
        )
        blocking = [r.max_pico for r in rules if r.blocks]
        counter = Counter(
            key=f"{rule.scope}:{subject}:{rule.window}{zone_tag}:{label}",
            scope=rule.scope,
            scope_id=subject,
            window=rule.window,
            window_label=label,
            start=start,
            end=end,
            rules=rules,
            block_pico=min(blocking) if blocking else None,
        )
        if len(self._counters) > 100_000:  # ids come from clients: bound the memo
            self._counters.clear()
        self._counters[memo_key] = counter
        return counter


@dataclass(frozen=True, slots=True)
class CounterWindow:
    """What a counter key names: a subject and a window, enough to sum its rows."""

    scope: str
    scope_id: str
    start: datetime
    end: datetime | None


def counter_window(key: str) -> CounterWindow:
    """The subject and window of a counter key (``scope:subject:window[@zone]:label``; a subject may hold colons)."""
    head, window_and_zone, label = key.rsplit(":", 2)
    scope, _, subject = head.partition(":")
    window, _, zone = window_and_zone.partition("@")
    start, end = window_of_label(window, label, ZoneInfo(zone or "UTC"))
    return CounterWindow(scope, subject, start, end)


def crossed_thresholds(counter: Counter, spent_pico: int) -> list[tuple[LimitRule, Decimal]]:
    """Every (limit, alert fraction) of ``counter`` that a spend of ``spent_pico`` has reached."""
    return [
        (rule, threshold)
        for rule in counter.rules
        for threshold in rule.alert_at
        if spent_pico >= threshold * rule.max_pico
    ]
