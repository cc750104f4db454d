"""Which spend limits apply to a request, and the counters they are kept on.

Pure: config and attribution in, ``Counter`` objects out; the clock is passed in.

A *counter* is the spend of one subject (user ``alice``, team ``research``, the
value ``acme`` of tag ``project``, everything for ``global``) in one calendar window
(``day 2026-11-25``), on every model or on those a limit's ``models`` name. Several
limits can share a counter: a warn limit at $5 and a block limit at $10 on the
same user, window and models count the same spend.

A counter's key says all of that, so that any worker can sum its rows from the key
alone: ``scope[=tag][+models]:subject:window[@zone]:label``, where ``models`` are the
patterns percent-encoded and joined by commas (``user+gpt-5%2A:alice:day:2026-11-25``).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from urllib.parse import quote, unquote
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
    tag: str | None = None
    models: tuple[str, ...] = ()
    start_day: int = 1
    on_exceed: str = "refuse"
    min_output_tokens: int = 256

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
    tag: str | None = None
    models: tuple[str, ...] = ()
    clamp_min_output: int | None = None
    """When the tightest blocking limit clamps (``on_exceed = "clamp"``): its ``min_output_tokens``."""

    def describe(self) -> str:
        """'user alice, day 2026-11-25', for messages."""
        if self.scope == "global":
            subject = "all requests"
        elif self.scope == "tag":
            subject = f"tag {self.tag} '{self.scope_id}'"
        else:
            subject = f"{self.scope} '{self.scope_id}'"
        if self.models:
            subject += f" on {', '.join(self.models)}"
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
            tag=limit.tag.lower() if limit.tag is not None else None,  # header names arrive lower-cased
            models=limit.models,
            start_day=limit.start_day,
            on_exceed=limit.on_exceed,
            min_output_tokens=limit.min_output_tokens,
        )
        for i, limit in enumerate((*limits, *runtime))
    )


def subject_of(scope: str, attribution: Attribution, tag: str | None = None) -> str | None:
    """The id a request has in ``scope``, or None when it has none (the limit then does not apply)."""
    if scope == "tag":
        return attribution.tags.get(tag or "") if attribution.tags else None
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


_Grouping = tuple[str, str | None, tuple[str, ...], str, str, int]


def _grouping(rule: LimitRule) -> _Grouping:
    """What limits must have in common to count the same spend."""
    return (rule.scope, rule.tag, rule.models, rule.window, rule.timezone, rule.start_day)


def scope_part(scope: str, tag: str | None, models: tuple[str, ...]) -> str:
    """The first part of a counter key: the scope, its tag, its models (see the module docstring)."""
    part = scope if tag is None else f"{scope}={tag}"
    if models:
        part += "+" + ",".join(quote(model, safe="") for model in models)
    return part


class LimitBook:
    """The configured limits; ``counters`` says which apply to a request, now."""

    def __init__(self, rules: Sequence[LimitRule]) -> None:
        self.rules = tuple(rules)
        self._zones = {rule.timezone: ZoneInfo(rule.timezone) for rule in self.rules}
        self._subjects = tuple(dict.fromkeys((rule.scope, rule.tag) for rule in self.rules))
        # Window bounds are recomputed only when a window ends: (window, zone, start day) -> (label, start, end).
        self._windows: dict[tuple[str, str, int], tuple[str, datetime, datetime | None]] = {}
        self._counters: dict[tuple[_Grouping, str, str], Counter] = {}
        self._model_matches: dict[tuple[tuple[str, ...], str | None], bool] = {}

    def __bool__(self) -> bool:
        return bool(self.rules)

    def counters(
        self, attribution: Attribution, now: datetime, model: str | None = None, *, any_model: bool = False
    ) -> tuple[Counter, ...]:
        """The counters of every limit that applies to a request for ``model`` with ``attribution`` at ``now``.

        ``any_model`` keeps the limits restricted to some models too, whatever ``model`` is (for listings).
        """
        if not self.rules:
            return ()
        found: dict[str, Counter] = {}
        subjects = {key: subject_of(key[0], attribution, key[1]) for key in self._subjects}
        for rule in self.rules:
            subject = subjects[(rule.scope, rule.tag)]
            if subject is None or (rule.id != "*" and rule.id != subject):
                continue
            if rule.models and not any_model and not self._matches(rule.models, model):
                continue
            counter = self._counter(rule, subject, now)
            found.setdefault(counter.key, counter)
        return tuple(found.values())

    def counter_for(self, rule: LimitRule, subject: str, now: datetime) -> Counter:
        """The counter ``rule`` keeps for ``subject`` at ``now``."""
        return self._counter(rule, subject, now)

    def _matches(self, models: tuple[str, ...], model: str | None) -> bool:
        memo = (models, model)
        hit = self._model_matches.get(memo)
        if hit is None:
            hit = model is not None and any(fnmatch.fnmatchcase(model, pattern) for pattern in models)
            if len(self._model_matches) > 10_000:  # models come from clients: bound the memo
                self._model_matches.clear()
            self._model_matches[memo] = hit
        return hit

    def _window(self, rule: LimitRule, now: datetime) -> tuple[str, datetime, datetime | None]:
        memo = (rule.window, rule.timezone, rule.start_day)
        cached = self._windows.get(memo)
        if cached is not None and cached[1] <= now and (cached[2] is None or now < cached[2]):
            return cached
        zone = self._zones[rule.timezone]
        start, end = window_bounds(rule.window, now, zone, rule.start_day)
        fresh = (window_label(rule.window, start, zone), start, end)
        self._windows[memo] = fresh
        return fresh

    def _counter(self, rule: LimitRule, subject: str, now: datetime) -> Counter:
        label, start, end = self._window(rule, now)
        grouping = _grouping(rule)
        memo_key = (grouping, subject, label)
        counter = self._counters.get(memo_key)
        if counter is not None:
            return counter
        zone_tag = "" if rule.timezone == "UTC" else f"@{rule.timezone}"
        rules = tuple(r for r in self.rules if _grouping(r) == grouping and (r.id == "*" or r.id == subject))
        blocking = [r.max_pico for r in rules if r.blocks]
        block_pico = min(blocking) if blocking else None
        tightest = [r for r in rules if r.blocks and r.max_pico == block_pico]
        clamps = bool(tightest) and all(r.on_exceed == "clamp" for r in tightest)
        counter = Counter(
            key=f"{scope_part(rule.scope, rule.tag, rule.models)}:{subject}:{rule.window}{zone_tag}:{label}",
            scope=rule.scope,
            scope_id=subject,
            window=rule.window,
            window_label=label,
            start=start,
            end=end,
            rules=rules,
            block_pico=block_pico,
            tag=rule.tag,
            models=rule.models,
            clamp_min_output=max(r.min_output_tokens for r in tightest) if clamps else None,
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
    tag: str | None = None
    models: tuple[str, ...] = ()


def counter_window(key: str) -> CounterWindow:
    """The subject and window of a counter key (see the module docstring; a subject may hold colons)."""
    head, window_and_zone, label = key.rsplit(":", 2)
    part, _, subject = head.partition(":")
    part, plus, models = part.partition("+")
    scope, equals, tag = part.partition("=")
    window, _, zone = window_and_zone.partition("@")
    start, end = window_of_label(window, label, ZoneInfo(zone or "UTC"))
    patterns = tuple(unquote(model) for model in models.split(",")) if plus else ()
    return CounterWindow(scope, subject, start, end, tag if equals else None, patterns)


def counter_window_of(counter: Counter) -> CounterWindow:
    return CounterWindow(counter.scope, counter.scope_id, counter.start, counter.end, counter.tag, counter.models)


def crossed_thresholds(counter: Counter, spent_pico: int) -> list[tuple[LimitRule, Decimal]]:
    """Every (limit, alert fraction) of ``counter`` that a spend of ``spent_pico`` has reached."""
    return [
        (rule, threshold)
        for rule in counter.rules
        for threshold in rule.alert_at
        if spent_pico >= threshold * rule.max_pico
    ]
