"""``tollgate reprice``: price a window's rows again, on purpose, with an audit entry.

``reprice`` reads the rows of a window and prices each again from its own token counts, with the
price version asked for (or, by default, the version in force at the row's start: the one a row
would get now that every import is known). Without ``apply`` it changes nothing and returns what
would change, per user and model. With ``apply`` it does it in one transaction:

- the rows' ``cost_pico``, ``unpriced`` and ``price_version``;
- the daily and monthly rollups, the hourly rollup and the thread minutes, by each row's difference;
- every spend counter whose window and subject hold a changed row, by the sum of their differences;
- one ``reprice_audit`` entry: the window, the version, and the per user and model changes.

So rollups and counters stay what a rebuild from the raw rows would make. A row whose cost would not
change is left as it is (its version too). Rows whose cost the
provider reported (``cost_source = "provider"``) keep it: that cost never came from a price list.
Invoices are never touched: an issued invoice stays as issued (see ``proxy.billing``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson
import sqlalchemy as sa

from pricing import TOKEN_KINDS, PriceHistory, TokenCounts, cost_to_pico, lookup_for_kind, price_tokens
from proxy.limits.rules import counter_window
from proxy.recording.hourly import SCOPES, hour_label, minute_label
from proxy.recording.store import Store
from proxy.recording.tables import (
    COUNTERS_TABLE,
    HOURLY_TABLE,
    REPRICE_AUDIT_TABLE,
    ROLLUPS_TABLE,
    THREAD_MINUTES_TABLE,
    USAGE_TABLE,
)

# Rows that carry usage to price (the others have no tokens: refusals, listings, jobs still pending).
_PRICED_SOURCES = ("reported", "estimated", "clamped")
_SCOPE_ATTRIBUTES = {"user": "user_id", "team": "team_id", "key": "key_name", "agent": "agent", "thread": "thread_id"}
_HOURLY_ATTRIBUTES = {"user": "user_id", "team": "team_id", "agent": "agent", "thread": "thread_id"}


@dataclass(slots=True)
class GroupChange:
    """What repricing changes for one user and model."""

    user: str
    model: str
    rows: int = 0
    before_pico: int = 0
    after_pico: int = 0
    unpriced_before: int = 0
    unpriced_after: int = 0

    def as_json(self) -> dict[str, object]:
        return {
            "user": self.user,
            "model": self.model,
            "rows": self.rows,
            "before_pico": self.before_pico,
            "after_pico": self.after_pico,
            "unpriced_before": self.unpriced_before,
            "unpriced_after": self.unpriced_after,
        }


@dataclass(frozen=True, slots=True)
class Repricing:
    """The outcome: the changes per (user, model), and the audit entry's id once applied."""

    since: datetime
    until: datetime
    version: int | None
    rows_read: int
    groups: tuple[GroupChange, ...] = field(default=())
    audit_id: int | None = None

    @property
    def rows_changed(self) -> int:
        return sum(g.rows for g in self.groups)

    @property
    def before_pico(self) -> int:
        return sum(g.before_pico for g in self.groups)

    @property
    def after_pico(self) -> int:
        return sum(g.after_pico for g in self.groups)


@dataclass(frozen=True, slots=True)
class _Change:
    row: sa.Row[tuple[object, ...]]
    cost_pico: int | None
    unpriced: bool
    version: int | None

    @property
    def delta(self) -> int:
        return (self.cost_pico or 0) - int(self.row.cost_pico or 0)


def reprice(
    store: Store,
    history: PriceHistory,
    since: datetime,
    until: datetime,
    *,
    version: int | None = None,
    apply: bool = False,
    now: datetime,
    deployments: Mapping[tuple[str, str], str] | None = None,
) -> Repricing:
    """Price the rows started in [since, until) again; change them (and what sums them) only if ``apply``.

    ``version`` is a version id, 0 for the config's catalog, or None for each row's version in force.
    ``deployments`` maps (provider, Azure deployment) to the model it runs, as ``[providers.deployments]``.
    Raises ``KeyError`` for a version never imported.
    """
    if version not in (None, 0) and version not in history:
        raise KeyError(version)
    engine = store.write_engine if apply else store.engine
    with engine.begin() as conn:
        rows = conn.execute(_window_query(since, until, lock=apply and store.dialect == "postgresql")).all()
        changes = [c for row in rows if (c := _priced_again(row, history, version, deployments or {})) is not None]
        groups = _groups(changes)
        audit_id = None
        if apply and changes:
            _update_rows(conn, changes)
            _update_rollups(conn, changes)
            _update_counters(conn, changes)
            audit_id = _audit(conn, since, until, version, groups, now)
    return Repricing(since, until, version, len(rows), tuple(groups), audit_id)


def _window_query(since: datetime, until: datetime, *, lock: bool) -> sa.Select[tuple[object, ...]]:
    t = USAGE_TABLE.c
    query = (
        sa.select(USAGE_TABLE)
        .where(
            t.started_at >= since,
            t.started_at < until,
            t.usage_source.in_(_PRICED_SOURCES),
            t.provider_cost_pico.is_(None),
        )
        .order_by(t.request_id)  # a fixed order: concurrent writers lock rows alike
    )
    return query.with_for_update() if lock else query


def _priced_again(
    row: sa.Row[tuple[object, ...]],
    history: PriceHistory,
    version: int | None,
    deployments: Mapping[tuple[str, str], str],
) -> _Change | None:
    started = _utc(row.started_at)
    if version is None:
        new_version, catalog = history.at(started)
    else:
        new_version, catalog = (version or None), history.catalog(version or None)
    kind = row.provider_kind
    requested = row.model_requested
    served = deployments.get((row.provider or "", requested or "")) or row.model_served or requested
    card = lookup_for_kind(catalog, served, kind) if served else None
    if card is None and requested and requested != served:
        card = lookup_for_kind(catalog, requested, kind)
    if card is None:
        cost, unpriced = None, served is not None
    else:
        tokens = TokenCounts(**{kind_: getattr(row, f"{kind_}_tokens") for kind_ in TOKEN_KINDS})
        cost, unpriced = cost_to_pico(price_tokens(card, tokens, row.service_tier).total), False
    if cost == row.cost_pico and unpriced == bool(row.unpriced):
        return None  # the same price under any version: the row is left as it is, its version too
    return _Change(row, cost, unpriced, new_version)


def _groups(changes: list[_Change]) -> list[GroupChange]:
    groups: dict[tuple[str, str], GroupChange] = {}
    for change in changes:
        row = change.row
        key = (str(row.user_id or ""), str(row.model_requested or ""))
        group = groups.setdefault(key, GroupChange(*key))
        group.rows += 1
        group.before_pico += int(row.cost_pico or 0)
        group.after_pico += change.cost_pico or 0
        group.unpriced_before += 1 if row.unpriced else 0
        group.unpriced_after += 1 if change.unpriced else 0
    return [groups[key] for key in sorted(groups)]


def _update_rows(conn: sa.Connection, changes: list[_Change]) -> None:
    t = USAGE_TABLE.c
    statement = (
        sa.update(USAGE_TABLE)
        .where(t.request_id == sa.bindparam("rid"))
        .values(cost_pico=sa.bindparam("cost"), unpriced=sa.bindparam("flag"), price_version=sa.bindparam("ver"))
    )
    conn.execute(
        statement,
        [{"rid": c.row.request_id, "cost": c.cost_pico, "flag": c.unpriced, "ver": c.version} for c in changes],
    )


def _update_rollups(conn: sa.Connection, changes: list[_Change]) -> None:
    """Each rollup by its rows' differences: the same keys ``proxy.recording.rollups`` sums them under."""
    rollups: dict[tuple[str, ...], list[int]] = {}
    hours: dict[tuple[str, str, str], int] = {}
    minutes: dict[tuple[str, str], int] = {}
    for change in changes:
        row, delta = change.row, change.delta
        unpriced = (1 if change.unpriced else 0) - (1 if row.unpriced else 0)
        started = _utc(row.started_at)
        day = started.date().isoformat()
        dims = tuple(str(getattr(row, name) or "") for name in ("user_id", "team_id", "agent", "model_requested"))
        dims += (str(row.provider or ""),)
        for key in (("day", day, *dims), ("month", day[:7], *dims)):
            sums = rollups.setdefault(key, [0, 0])
            sums[0] += delta
            sums[1] += unpriced
        for scope in SCOPES:
            entity = getattr(row, _HOURLY_ATTRIBUTES[scope])
            if entity:
                hour_key = (hour_label(started), scope, str(entity))
                hours[hour_key] = hours.get(hour_key, 0) + delta
        if row.thread_id:
            minute_key = (minute_label(started), str(row.thread_id))
            minutes[minute_key] = minutes.get(minute_key, 0) + delta
    r, h, m = ROLLUPS_TABLE.c, HOURLY_TABLE.c, THREAD_MINUTES_TABLE.c
    dimensions = ("period", "period_start", "user_id", "team_id", "agent", "model", "provider")
    where = sa.and_(*(r[name] == sa.bindparam(f"k_{name}") for name in dimensions))
    conn.execute(
        sa.update(ROLLUPS_TABLE)
        .where(where)
        .values(
            cost_pico=r.cost_pico + sa.bindparam("delta"),
            unpriced_requests=r.unpriced_requests + sa.bindparam("unpriced"),
        ),
        [
            {**{f"k_{name}": value for name, value in zip(dimensions, key, strict=True)}, "delta": d, "unpriced": u}
            for key, (d, u) in sorted(rollups.items())
        ],
    )
    if hours:  # pruned hours are gone, and stay gone: an update of no row
        conn.execute(
            sa.update(HOURLY_TABLE)
            .where(
                h.hour == sa.bindparam("k_hour"), h.scope == sa.bindparam("k_scope"), h.entity_id == sa.bindparam("k_e")
            )
            .values(cost_pico=h.cost_pico + sa.bindparam("delta")),
            [{"k_hour": k[0], "k_scope": k[1], "k_e": k[2], "delta": d} for k, d in sorted(hours.items())],
        )
    if minutes:
        conn.execute(
            sa.update(THREAD_MINUTES_TABLE)
            .where(m.minute == sa.bindparam("k_minute"), m.thread_id == sa.bindparam("k_thread"))
            .values(cost_pico=m.cost_pico + sa.bindparam("delta")),
            [{"k_minute": k[0], "k_thread": k[1], "delta": d} for k, d in sorted(minutes.items())],
        )


def _update_counters(conn: sa.Connection, changes: list[_Change]) -> None:
    """Every spend counter by the differences of the changed rows in its window and of its subject."""
    c = COUNTERS_TABLE.c
    deltas: dict[str, int] = {}
    for (key,) in conn.execute(sa.select(c.counter_key).order_by(c.counter_key)):
        window = counter_window(key)
        attribute = _SCOPE_ATTRIBUTES.get(window.scope)
        delta = 0
        for change in changes:
            row = change.row
            started = _utc(row.started_at)
            if started < window.start or (window.end is not None and started >= window.end):
                continue
            if attribute is not None and getattr(row, attribute) != window.scope_id:
                continue
            delta += change.delta
        if delta:
            deltas[key] = delta
    if deltas:
        conn.execute(
            sa.update(COUNTERS_TABLE)
            .where(c.counter_key == sa.bindparam("key"))
            .values(spent_pico=c.spent_pico + sa.bindparam("delta")),
            [{"key": key, "delta": delta} for key, delta in sorted(deltas.items())],
        )


def _audit(
    conn: sa.Connection, since: datetime, until: datetime, version: int | None, groups: list[GroupChange], now: datetime
) -> int:
    entry = {
        "applied_at": now.astimezone(UTC),
        "since": since.astimezone(UTC),
        "until": until.astimezone(UTC),
        "version": version,
        "rows_changed": sum(g.rows for g in groups),
        "before_pico": sum(g.before_pico for g in groups),
        "after_pico": sum(g.after_pico for g in groups),
        "detail": orjson.dumps([g.as_json() for g in groups]).decode(),
    }
    result = conn.execute(sa.insert(REPRICE_AUDIT_TABLE).values(entry).returning(REPRICE_AUDIT_TABLE.c.id))
    return int(result.scalar_one())


def _utc(value: datetime) -> datetime:
    # SQLite has no time zones: it returns the UTC time it was given, without one.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
