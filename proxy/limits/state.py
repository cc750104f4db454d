"""The state of spend limits now: spent, held, limit and remaining, per counter.

Shared by ``tollgate limits`` and ``GET /admin/limits``, so both say the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from pricing import decimal_text, pico_to_usd
from proxy.attribution import Attribution
from proxy.limits.ledger import Ledger
from proxy.limits.rules import GLOBAL_ID, LimitBook, LimitRule
from proxy.recording.tables import COUNTERS_TABLE, LEASES_TABLE


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

    @property
    def remaining(self) -> Decimal:
        return max(self.limit - self.spent - self.held, Decimal(0))

    def as_json(self) -> dict[str, Any]:
        """JSON-ready, money as decimal strings."""
        return {
            "scope": self.scope,
            "id": self.id,
            "window": self.window,
            "window_label": self.window_label,
            "action": self.action,
            "resets_at": self.resets_at.isoformat().replace("+00:00", "Z") if self.resets_at else None,
            "spent_usd": decimal_text(self.spent),
            "held_usd": decimal_text(self.held),
            "limit_usd": decimal_text(self.limit),
            "remaining_usd": decimal_text(self.remaining),
        }


def limit_states(
    book: LimitBook, ledger: Ledger, now: datetime, user: str | None = None, team: str | None = None
) -> list[LimitState]:
    """Each limit's state now: for ``user`` and ``team`` if given, else for every subject with spend this window."""
    if user is not None or team is not None:
        counters = book.counters(Attribution(user=user, team=team), now)
        wanted = [(c, r) for c in counters for r in c.rules if r.scope in ("user", "team", "global")]
    else:
        wanted = []
        keys = _keys_with_spend(ledger)
        for rule in book.rules:
            subjects = {GLOBAL_ID} if rule.scope == "global" else _subjects(keys, rule)
            for subject in sorted(subjects):
                attribution = _attribution_for(rule.scope, subject)
                counter = next(c for c in book.counters(attribution, now) if c.scope == rule.scope and rule in c.rules)
                wanted.append((counter, rule))
    status = ledger.status(sorted({c.key for c, _ in wanted}), now.timestamp())
    states = []
    for counter, rule in wanted:
        spent, held = status[counter.key]
        states.append(
            LimitState(
                scope=counter.scope,
                id=counter.scope_id,
                window=counter.window,
                window_label=counter.window_label,
                action=rule.action,
                resets_at=counter.end,
                spent=pico_to_usd(spent),
                held=pico_to_usd(held),
                limit=rule.max_usd,
            )
        )
    return states


def _keys_with_spend(ledger: Ledger) -> list[str]:
    with ledger.store.engine.connect() as conn:
        spent = conn.execute(sa.select(COUNTERS_TABLE.c.counter_key)).scalars().all()
        held = conn.execute(sa.select(LEASES_TABLE.c.counter_key)).scalars().all()
    return sorted(set(spent) | set(held))


def _subjects(keys: list[str], rule: LimitRule) -> set[str]:
    if rule.id != "*":
        return {rule.id}
    prefix = f"{rule.scope}:"
    # Keys are scope:subject:window[@zone]:label; a subject may itself hold colons.
    return {key[len(prefix) :].rsplit(":", 2)[0] for key in keys if key.startswith(prefix)}


def _attribution_for(scope: str, subject: str) -> Attribution:
    return Attribution(
        user=subject if scope == "user" else None,
        team=subject if scope == "team" else None,
        thread=subject if scope == "thread" else None,
        agent=subject if scope == "agent" else None,
        key=subject if scope == "key" else None,
    )
