"""Which rate limits apply to a request, and the counters they are kept on.

Pure: config, attribution and model in, ``RateCounter`` objects out; the time is passed in.

A rate counter is one kind of rate (``requests`` or ``tokens`` per calendar minute, or
``concurrent`` requests in flight) of one subject (user ``alice``, model ``gpt-5``, the
value ``checkout`` of tag ``project``, everything for ``global``). Per-minute counters are
keyed by their minute, so a new minute starts from nothing; a concurrency counter has
no window. Several rules on the same counter keep the tightest limit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from proxy.attribution import Attribution
from proxy.config import RateLimitConfig

REQUESTS, TOKENS, CONCURRENT = "requests", "tokens", "concurrent"
KINDS = (REQUESTS, TOKENS, CONCURRENT)
WINDOW_SECONDS = 60
GLOBAL_ID = "all"
_MEMO_MAX = 100_000  # subjects come from clients: the memo is bounded


@dataclass(frozen=True, slots=True)
class RateRule:
    scope: str
    id: str
    tag: str | None
    kind: str
    limit: int


@dataclass(frozen=True, slots=True)
class RateCounter:
    key: str
    kind: str
    scope: str
    subject: str
    limit: int
    resets_at: float | None
    """When the counter's minute ends (epoch seconds); None for a concurrency counter."""

    @property
    def windowed(self) -> bool:
        return self.resets_at is not None

    def describe(self) -> str:
        """'user alice', 'tag project=checkout', 'all requests', for messages."""
        if self.scope == "global":
            return "all requests"
        if self.scope.startswith("tag:"):
            return f"tag {self.scope[4:]}={self.subject!r}"
        return f"{self.scope} {self.subject!r}"


def compile_rate_rules(limits: Sequence[RateLimitConfig]) -> tuple[RateRule, ...]:
    rules: list[RateRule] = []
    for limit in limits:
        for kind, value in (
            (REQUESTS, limit.requests_per_minute),
            (TOKENS, limit.tokens_per_minute),
            (CONCURRENT, limit.max_concurrent),
        ):
            if value is not None:
                rules.append(RateRule(limit.scope, limit.id, limit.tag, kind, value))
    return tuple(rules)


def rate_subject(rule: RateRule, attribution: Attribution, model: str | None) -> str | None:
    """The id a request has in ``rule``'s scope, or None when it has none (the rule then does not apply)."""
    scope = rule.scope
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
    if scope == "model":
        return model
    if scope == "tag":
        assert rule.tag is not None
        return attribution.tags.get(rule.tag)
    raise ValueError(f"unknown rate limit scope {scope!r}")


class RateBook:
    """The configured rate limits; ``counters`` says which apply to a request, now."""

    def __init__(self, rules: Sequence[RateRule]) -> None:
        self.rules = tuple(rules)
        self._memo: dict[tuple[str, str, str, int], RateCounter] = {}

    def __bool__(self) -> bool:
        return bool(self.rules)

    def counters(self, attribution: Attribution, model: str | None, now: float) -> tuple[RateCounter, ...]:
        """The counters of every rate limit that applies to a request at ``now`` (epoch seconds)."""
        if not self.rules:
            return ()
        minute = int(now // WINDOW_SECONDS)
        tightest: dict[tuple[str, str, str], int] = {}
        for rule in self.rules:
            subject = rate_subject(rule, attribution, model)
            if subject is None or (rule.id != "*" and rule.id != subject):
                continue
            scope = f"tag:{rule.tag}" if rule.scope == "tag" else rule.scope
            slot = (rule.kind, scope, subject)
            tightest[slot] = min(rule.limit, tightest.get(slot, rule.limit))
        return tuple(self._counter(*slot, limit, minute) for slot, limit in tightest.items())

    def _counter(self, kind: str, scope: str, subject: str, limit: int, minute: int) -> RateCounter:
        windowed = kind != CONCURRENT
        memo_key = (kind, scope, subject, minute if windowed else -1)
        counter = self._memo.get(memo_key)
        if counter is not None and counter.limit == limit:
            return counter
        if len(self._memo) > _MEMO_MAX:
            self._memo.clear()
        key = f"{kind}:{scope}:{subject}" + (f"@{minute}" if windowed else "")
        resets_at = float((minute + 1) * WINDOW_SECONDS) if windowed else None
        counter = self._memo[memo_key] = RateCounter(key, kind, scope, subject, limit, resets_at)
        return counter
