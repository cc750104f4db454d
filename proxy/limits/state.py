"""The state of spend limits now: spent, held, limit and remaining, per counter, with source and state.

Shared by ``tollgate limits``, ``GET /admin/limits`` and the dashboard, so all say the same.

Each row says where its limit comes from (``source``):

- ``config``: a ``[[limits]]`` entry naming this very id;
- ``wildcard``: a ``[[limits]]`` entry with ``id = "*"``, applied to this id;
- ``team``: a team limit that applies to a user through ``[teams.<id>] members``;
- ``runtime``: a limit set while the server runs rather than in the file (reserved for that source:
  ``rule_source`` is the one place that tells it).

and what it is doing now (``state``): ``refusing`` (a blocking limit with nothing left, or one this process refused a
request on in the last five minutes: what is left is too little for the requests that come), ``alerting``
(past one of its ``alert_at`` fractions, or a warn limit past its amount) or ``ok``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from pricing import pico_to_usd
from proxy.attribution import Attribution
from proxy.limits.ledger import Ledger
from proxy.limits.rules import GLOBAL_ID, Counter, LimitBook, LimitRule, scope_part
from proxy.money import money_text
from proxy.recording.tables import COUNTERS_TABLE, LEASES_TABLE

SOURCES = ("config", "wildcard", "team", "runtime")
STATES = ("ok", "alerting", "refusing")
WILDCARD = "*"
REFUSING_SECONDS = 300


@dataclass(frozen=True, slots=True)
class LimitState:
    scope: str
    id: str
    window: str
    window_label: str
    action: str
    resets_at: datetime | None
    spent: Decimal
    held: Decimal
    limit: Decimal
    source: str = "config"
    alert_at: tuple[Decimal, ...] = ()
    refused_lately: bool = False
    """A worker of this process refused a request on it in the last ``REFUSING_SECONDS``."""
    tag: str | None = None
    models: tuple[str, ...] = ()
    start_day: int = 1
    on_exceed: str = "refuse"
    min_output_tokens: int = 256

    @property
    def remaining(self) -> Decimal:
        return max(self.limit - self.spent - self.held, Decimal(0))

    @property
    def state(self) -> str:
        """``refusing``, ``alerting`` or ``ok`` (see the module docstring)."""
        if self.action == "block" and (self.remaining <= 0 or self.refused_lately):
            return "refusing"
        if self.spent >= self.limit or any(self.spent >= t * self.limit for t in self.alert_at):
            return "alerting"
        return "ok"

    def as_json(self) -> dict[str, Any]:
        """JSON-ready, money as decimal strings."""
        return {
            "scope": self.scope,
            "tag": self.tag,
            "id": self.id,
            "models": list(self.models),
            "window": self.window,
            "window_label": self.window_label,
            "start_day": self.start_day,
            "action": self.action,
            "on_exceed": self.on_exceed,
            "min_output_tokens": self.min_output_tokens,
            "source": self.source,
            "state": self.state,
            "resets_at": self.resets_at.isoformat().replace("+00:00", "Z") if self.resets_at else None,
            "spent_usd": money_text(self.spent),
            "held_usd": money_text(self.held),
            "limit_usd": money_text(self.limit),
            "remaining_usd": money_text(self.remaining),
        }


@dataclass(frozen=True, slots=True)
class Subject:
    """Whom to show the limits of; all None shows every limit and every id with spend."""

    user: str | None = None
    team: str | None = None
    thread: str | None = None
    agent: str | None = None
    key: str | None = None

    def __bool__(self) -> bool:
        return any((self.user, self.team, self.thread, self.agent, self.key))


def rule_source(rule: LimitRule, via_team: bool = False) -> str:
    """Where ``rule`` comes from, for a subject it applies to (see the module docstring)."""
    if rule.runtime:
        return "runtime"
    if via_team:
        return "team"
    return "wildcard" if rule.id == WILDCARD else "config"


def limit_states(
    book: LimitBook,
    ledger: Ledger,
    now: datetime,
    user: str | None = None,
    team: str | None = None,
    *,
    subject: Subject | None = None,
    team_of: Mapping[str, str] | None = None,
    refused: Mapping[str, float] | None = None,
) -> list[LimitState]:
    """Each limit's state now: for the subject if one is given, else for every limit.

    ``refused`` maps a counter key to when it last refused a request (``BudgetKeeper.last_refused``).
    ``team_of`` maps a user to the team ``[teams]`` puts them in, so a user's team limits show too.
    Without a subject, a wildcard limit shows one row per id with spend this window, or one row
    for ``*`` itself while none has any: a configured limit is never hidden.
    """
    asked = subject or Subject(user=user, team=team)
    wanted: list[tuple[Counter, LimitRule, str]] = []
    if asked:
        via_team = asked.team is None and asked.user is not None and asked.user in (team_of or {})
        attribution = Attribution(
            user=asked.user,
            team=asked.team if not via_team else (team_of or {})[asked.user or ""],
            thread=asked.thread,
            agent=asked.agent,
            key=asked.key,
        )
        for counter in book.counters(attribution, now, any_model=True):
            for rule in counter.rules:
                wanted.append((counter, rule, rule_source(rule, via_team and rule.scope == "team")))
    else:
        keys = _keys_with_spend(ledger)
        for rule in book.rules:
            subjects = {GLOBAL_ID} if rule.scope == "global" else _subjects(keys, rule) or {rule.id}
            for name in sorted(subjects):
                wanted.append((book.counter_for(rule, name, now), rule, rule_source(rule)))
    status = ledger.status(sorted({c.key for c, _, _ in wanted if c.scope_id != WILDCARD}), now.timestamp())
    return [
        LimitState(
            scope=counter.scope,
            id=counter.scope_id,
            window=counter.window,
            window_label=counter.window_label,
            action=rule.action,
            resets_at=counter.end,
            spent=pico_to_usd(status.get(counter.key, (0, 0))[0]),
            held=pico_to_usd(status.get(counter.key, (0, 0))[1]),
            limit=rule.max_usd,
            source=source,
            alert_at=rule.alert_at,
            refused_lately=rule.max_pico == counter.block_pico
            and now.timestamp() - (refused or {}).get(counter.key, float("-inf")) < REFUSING_SECONDS,
            tag=rule.tag,
            models=rule.models,
            start_day=rule.start_day,
            on_exceed=rule.on_exceed,
            min_output_tokens=rule.min_output_tokens,
        )
        for counter, rule, source in wanted
    ]


def _keys_with_spend(ledger: Ledger) -> list[str]:
    with ledger.store.engine.connect() as conn:
        spent = conn.execute(sa.select(COUNTERS_TABLE.c.counter_key)).scalars().all()
        held = conn.execute(sa.select(LEASES_TABLE.c.counter_key)).scalars().all()
    return sorted(set(spent) | set(held))


def _subjects(keys: list[str], rule: LimitRule) -> set[str]:
    if rule.id != WILDCARD:
        return {rule.id}
    prefix = f"{scope_part(rule.scope, rule.tag, rule.models)}:"
    # Keys are scope:subject:window[@zone]:label; a subject may itself hold colons.
    return {key[len(prefix) :].rsplit(":", 2)[0] for key in keys if key.startswith(prefix)}
