"""The goals each target is judged against, and judging them.

A goal belongs to one target and is checked in each mode (JSON, SSE),
optionally against a baseline target measured in the same run: ratios and
differences come from one run on one machine, never from numbers noted down
earlier. A goal whose target or baseline was not measured is SKIP; one whose
target failed is ERROR.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tests.bench.results import Measurement

Metric = Callable[[Measurement], float | None]


@dataclass(frozen=True)
class Outcome:
    value: str
    passed: bool


Check = Callable[[Measurement, Measurement | None], Outcome]


@dataclass(frozen=True)
class Rule:
    limit: str  # the rule as shown in the report, e.g. "<= 1 ms"
    check: Check


@dataclass(frozen=True)
class Goal:
    target: str
    label: str
    rule: Rule
    baseline: str | None = None


@dataclass(frozen=True)
class Verdict:
    target: str
    mode: str
    goal: str
    value: str
    limit: str
    result: str  # PASS, FAIL, ERROR (the target could not be measured) or SKIP
    note: str = ""


def default_goals() -> list[Goal]:
    single_worker = ("tollgate", "tollgate-pg")
    recording = ("tollgate", "tollgate-nolimits", "tollgate-w2", "tollgate-pg")
    baselines = ("direct", "lean", "bare")
    goals = [Goal(name, "errors (non-2xx + socket)", at_most(errors, 0)) for name in (*baselines, *recording)]
    for name in single_worker:
        goals += [
            Goal(name, "throughput / bare", ratio_at_least(requests_per_s, 0.70), baseline="bare"),
            # The honest ratio: against raw ASGI with no framework. 0.42 is where it stood before the
            # metering core was split out of the ASGI handler; the split must not make it worse.
            Goal(name, "throughput / lean", ratio_at_least(requests_per_s, 0.42), baseline="lean"),
            Goal(name, "p50 over direct", excess_at_most(p50_ms, 1.0, "ms"), baseline="direct"),
            Goal(name, "p99 over direct", excess_at_most(p99_ms, 3.0, "ms"), baseline="direct"),
            Goal(name, "peak RSS", at_most(peak_rss_mib, 120.0, "MiB")),
        ]
    for name in recording:
        goals += [
            Goal(name, "ready", at_most(ready_s, 1.5, "s")),
            Goal(name, "rows == responses", ROWS_MATCH),
            Goal(name, "drain", at_most(drain_s, 1.0, "s")),
        ]
    goals.append(Goal("tollgate-w2", "throughput / 1 worker", ratio_at_least(requests_per_s, 1.5), "tollgate"))
    # Limits on vs off: checking a blocking limit may cost at most 15% of throughput.
    goals.append(Goal("tollgate", "throughput / no limits", ratio_at_least(requests_per_s, 0.85), "tollgate-nolimits"))
    return goals


def judge(goals: Sequence[Goal], measurements: Sequence[Measurement]) -> list[Verdict]:
    """One verdict per goal of each measured (target, mode), in measurement order."""
    by_key = {(m.target, m.mode): m for m in measurements}
    verdicts = []
    for measurement in measurements:
        for goal in goals:
            if goal.target == measurement.target:
                baseline = by_key.get((goal.baseline, measurement.mode)) if goal.baseline else None
                verdicts.append(_judge_one(goal, measurement, baseline))
    return verdicts


def _judge_one(goal: Goal, measurement: Measurement, baseline: Measurement | None) -> Verdict:
    def verdict(value: str, result: str, note: str = "") -> Verdict:
        return Verdict(goal.target, measurement.mode, goal.label, value, goal.rule.limit, result, note)

    if measurement.skipped:
        return verdict("-", "SKIP", measurement.skipped)
    if measurement.error:
        return verdict("-", "ERROR", "target failed")
    if goal.baseline:
        if baseline is None or baseline.skipped or baseline.error:
            return verdict("-", "SKIP", f"baseline {goal.baseline} not measured")
    outcome = goal.rule.check(measurement, baseline)
    return verdict(outcome.value, "PASS" if outcome.passed else "FAIL")


# Metrics: one number of a measurement, or None when it was not measured.


def requests_per_s(m: Measurement) -> float | None:
    return m.requests_per_s


def p50_ms(m: Measurement) -> float | None:
    return m.p50_ms


def p99_ms(m: Measurement) -> float | None:
    return m.p99_ms


def peak_rss_mib(m: Measurement) -> float | None:
    return m.peak_rss_mib


def ready_s(m: Measurement) -> float | None:
    return m.ready_s


def drain_s(m: Measurement) -> float | None:
    return m.recording.drain_s if m.recording else None


def errors(m: Measurement) -> float | None:
    return m.non_2xx + m.socket_errors


# Rules: a limit on a metric of the target, or on how it compares with its baseline's.


def at_most(metric: Metric, limit: float, unit: str = "") -> Rule:
    def check(m: Measurement, _baseline: Measurement | None) -> Outcome:
        value = metric(m)
        if value is None:
            return Outcome("not measured", False)
        return Outcome(f"{value:.3g} {unit}" if unit else f"{value:g}", value <= limit)

    return Rule(f"<= {limit:g} {unit}".rstrip(), check)


def ratio_at_least(metric: Metric, limit: float) -> Rule:
    def check(m: Measurement, baseline: Measurement | None) -> Outcome:
        value, base = metric(m), metric(baseline) if baseline else None
        if value is None or not base:
            return Outcome("not measured", False)
        return Outcome(f"{value / base:.2f}", value / base >= limit)

    return Rule(f">= {limit:.2f}", check)


def excess_at_most(metric: Metric, limit: float, unit: str) -> Rule:
    def check(m: Measurement, baseline: Measurement | None) -> Outcome:
        value, base = metric(m), metric(baseline) if baseline else None
        if value is None or base is None:
            return Outcome("not measured", False)
        return Outcome(f"{value - base:+.3f} {unit}", value - base <= limit)

    return Rule(f"<= +{limit:g} {unit}", check)


def _rows_match(m: Measurement, _baseline: Measurement | None) -> Outcome:
    r = m.recording
    if r is None:
        return Outcome("not measured", False)
    return Outcome(f"{r.rows} rows / {r.responses} responses ({r.sent} sent)", r.rows_match)


ROWS_MATCH = Rule("responses <= rows <= sent", _rows_match)
