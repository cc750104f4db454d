"""Unusual spend, found by comparing an entity's hour with its own history: pure functions.

The method, kept simple so that a person can check an alert by hand:

- An entity (a user, team, agent or thread) has one hourly figure per UTC hour in which it
  made requests: its spend and its tokens (input + output), from the hourly rollup.
- Its **baseline** is the ``percentile`` (95 by default) of those figures over the
  ``baseline_days`` before the hour judged, taking only the hours in which it was active, so
  that a user who works a few hours a day is compared with their working hours. The
  percentile is the nearest-rank one: the value at rank ceil(p/100 x n) of the n sorted hours.
- An hour is a **spike** when its spend is above ``factor`` x the spend baseline and above
  ``min_usd``; or when its tokens are above ``factor`` x the token baseline and above ``min_tokens``.
- An entity with no active hour in the baseline window is **new**: it is judged the same way
  against its scope's median baseline (the median of the baselines of the scope's other
  entities). With no other entity in the scope there is nothing to compare with, and it is not judged.
- A **runaway** thread sent more than ``runaway_requests_per_minute`` requests, or used more
  than ``runaway_tokens_per_minute`` tokens, in one UTC minute.

Each finding is an ``Anomaly``; ``proxy.insight.monitor`` claims it once (per kind, entity and
hour) across every worker, and hands it to the alert dispatcher.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from pricing import decimal_text, pico_to_usd
from proxy.limits.alerts import utc_text

KINDS = ("spike", "new", "runaway", "forecast")


@dataclass(frozen=True, slots=True)
class Figures:
    """What an entity did in one hour (or one minute)."""

    requests: int
    tokens: int
    cost_pico: int


@dataclass(frozen=True, slots=True)
class Baseline:
    """An entity's usual hour: the percentile of its active hours' spend and tokens."""

    cost_pico: int
    tokens: int
    hours: int  # active hours it was taken from


@dataclass(frozen=True, slots=True)
class Rules:
    """The ``[anomalies]`` settings the detection needs, in the units it compares."""

    percentile: int = 95
    factor: Decimal = Decimal(5)
    min_pico: int = 10**12
    min_tokens: int = 1_000_000
    runaway_requests: int = 60
    runaway_tokens: int = 2_000_000


@dataclass(frozen=True, slots=True)
class Anomaly:
    """Unusual use by one entity in one window (an hour), or a limit projected to be reached early."""

    kind: str  # spike, new, runaway or forecast
    scope: str
    scope_id: str
    window: str  # "2026-11-25T14", or a limit's window label for a forecast
    since: datetime  # when the window began
    time: datetime  # when it was found
    cost_usd: Decimal
    baseline_usd: Decimal | None
    requests: int
    tokens: int
    detail: str  # one sentence: what was seen, against what

    def as_json(self) -> dict[str, object]:
        """The webhook body and the admin API's item: money as decimal strings, times in UTC."""
        return {
            "kind": self.kind,
            "scope": self.scope,
            "id": self.scope_id,
            "window": self.window,
            "since": _iso(self.since),
            "time": _iso(self.time),
            "cost_usd": decimal_text(self.cost_usd),
            "baseline_usd": None if self.baseline_usd is None else decimal_text(self.baseline_usd),
            "requests": self.requests,
            "tokens": self.tokens,
            "detail": self.detail,
        }

    def describe(self) -> str:
        """One line for logs, e.g. ``anomaly spike: user alice 2026-11-25T14 ...``."""
        return f"anomaly {self.kind}: {self.scope} {self.scope_id} {self.window}: {self.detail}"

    def subject(self) -> str:
        what = {
            "spike": "unusual spend",
            "new": "unusual spend by a new",
            "runaway": "a runaway",
            "forecast": "a limit projected to be reached",
        }[self.kind]
        if self.kind in ("new", "runaway"):
            return f"Tollgate: {what} {self.scope} {self.scope_id}"
        return f"Tollgate: {what} for {self.scope} {self.scope_id}"

    def facts(self) -> list[tuple[str, str]]:
        usual = "" if self.baseline_usd is None else f" (usual: ${self.baseline_usd:.2f})"
        return [
            ("Who", f"{self.scope} {self.scope_id}"),
            ("What", self.detail),
            ("How much", f"${self.cost_usd:.2f}{usual}, {self.tokens:,} tokens, {self.requests:,} requests"),
            ("Since when", f"since {utc_text(self.since)}; found {utc_text(self.time)}"),
        ]


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def nearest_rank(values: Iterable[int], percentile: int) -> int:
    """The nearest-rank percentile: the value at rank ceil(p/100 x n) of the sorted values (0 for none)."""
    ordered = sorted(values)
    if not ordered:
        return 0
    rank = max(1, math.ceil(percentile * len(ordered) / 100))
    return ordered[rank - 1]


def baseline_of(hours: Iterable[Figures], percentile: int) -> Baseline:
    """An entity's baseline from its active hours in the baseline window."""
    active = [h for h in hours if h.requests > 0 or h.tokens > 0 or h.cost_pico > 0]
    return Baseline(
        cost_pico=nearest_rank((h.cost_pico for h in active), percentile),
        tokens=nearest_rank((h.tokens for h in active), percentile),
        hours=len(active),
    )


def scope_medians(baselines: Mapping[tuple[str, str], Baseline]) -> dict[str, Baseline]:
    """Per scope, the median of its entities' baselines (the lower middle one of an even count)."""
    by_scope: dict[str, list[Baseline]] = {}
    for (scope, _), baseline in baselines.items():
        if baseline.hours:
            by_scope.setdefault(scope, []).append(baseline)
    medians = {}
    for scope, found in by_scope.items():
        middle = (len(found) - 1) // 2
        medians[scope] = Baseline(
            cost_pico=sorted(b.cost_pico for b in found)[middle],
            tokens=sorted(b.tokens for b in found)[middle],
            hours=len(found),
        )
    return medians


def judge_hour(
    figures: Figures, baseline: Baseline | None, median: Baseline | None, rules: Rules
) -> tuple[str, Baseline] | None:
    """("spike" or "new", the baseline it was judged against) if the hour is unusual, else None."""
    if baseline is not None and baseline.hours:
        kind, against = "spike", baseline
    elif median is not None:
        kind, against = "new", median
    else:
        return None
    spend = figures.cost_pico > rules.factor * against.cost_pico and figures.cost_pico > rules.min_pico
    tokens = figures.tokens > rules.factor * against.tokens and figures.tokens > rules.min_tokens
    return (kind, against) if spend or tokens else None


def explain(kind: str, scope: str, figures: Figures, against: Baseline, rules: Rules, days: int) -> str:
    """The sentence an alert carries for a spike or a new entity."""
    spend = f"${pico_to_usd(figures.cost_pico):.2f} and {figures.tokens:,} tokens this hour"
    usual = f"${pico_to_usd(against.cost_pico):.2f} and {against.tokens:,} tokens"
    if kind == "spike":
        return (
            f"{spend}, above {rules.factor}x its usual hour ({usual}: the {rules.percentile}th percentile of its "
            f"{against.hours} active hours in the last {days} days)"
        )
    return (
        f"{spend} with no history, above {rules.factor}x the median {scope}'s usual hour ({usual}, "
        f"over {against.hours} {scope}s)"
    )


def is_runaway(minute: Figures, rules: Rules) -> bool:
    """Whether one thread's minute is an agent loop: too many requests or tokens."""
    return minute.requests > rules.runaway_requests or minute.tokens > rules.runaway_tokens


def explain_runaway(minute_label: str, minute: Figures, rules: Rules) -> str:
    return (
        f"{minute.requests:,} requests and {minute.tokens:,} tokens in the minute {minute_label} UTC "
        f"(runaway past {rules.runaway_requests:,} requests or {rules.runaway_tokens:,} tokens a minute)"
    )
