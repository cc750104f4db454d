"""The hourly rollup and the per-minute thread counts, kept in step with the raw rows.

Anomaly detection (``proxy.insight.anomalies``) reads these two small tables on a timer, never the
raw rows. ``apply_hourly`` runs inside the recorder's transaction, beside the daily and monthly
rollups, so the three never disagree with the rows.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from proxy.recording.records import UsageRecord
from proxy.recording.tables import HOURLY_TABLE, THREAD_MINUTES_TABLE, USAGE_TABLE

SCOPES = ("user", "team", "agent", "thread")
_MINUTE_SUMS = ("requests", "tokens", "cost_pico")
_ATTRIBUTES = {"user": "user_id", "team": "team_id", "agent": "agent", "thread": "thread_id"}
_ENTITIES = operator.attrgetter(*(_ATTRIBUTES[scope] for scope in SCOPES))  # a row's names, in SCOPES order
_THREAD = SCOPES.index("thread")
K = TypeVar("K")


def hour_label(when: datetime) -> str:
    """``2026-11-25T14``: the UTC hour ``when`` falls in, as the hourly rollup keys it."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H")


def minute_label(when: datetime) -> str:
    """``2026-11-25T14:03``: the UTC minute ``when`` falls in."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M")


def hourly_increments(
    records: Iterable[UsageRecord], *, count_requests: bool = True
) -> tuple[dict[tuple[str, str, str], list[int]], dict[tuple[str, str], list[int]]]:
    """What ``records`` add: per (hour, scope, entity) [requests, tokens, cost]; per (minute, thread) the same."""
    request = 1 if count_requests else 0
    hours: dict[tuple[str, str, str], list[int]] = {}
    minutes: dict[tuple[str, str], list[int]] = {}
    # A batch's rows share few minutes and few names: summed per (minute, names) first, then spread.
    labels: dict[datetime, tuple[str, str]] = {}  # each minute formatted once
    gathered: dict[tuple[str, str, tuple[str | None, ...]], list[int]] = {}
    for r in records:
        minute_start = r.started_at.astimezone(UTC).replace(second=0, microsecond=0)
        found = labels.get(minute_start)
        if found is None:
            found = labels[minute_start] = (hour_label(minute_start), minute_label(minute_start))
        key = (*found, _ENTITIES(r))
        sums = gathered.get(key)
        if sums is None:
            gathered[key] = [request, r.input_tokens + r.output_tokens, r.cost_pico or 0]
        else:
            sums[0] += request
            sums[1] += r.input_tokens + r.output_tokens
            sums[2] += r.cost_pico or 0
    for (hour, minute, entities), (requests, tokens, cost) in gathered.items():
        for scope, entity in zip(SCOPES, entities, strict=True):
            if entity:
                _add(hours, (hour, scope, entity), requests, tokens, cost)
        thread = entities[_THREAD]
        if thread:
            _add(minutes, (minute, thread), requests, tokens, cost)
    return hours, minutes


def _add(sums: dict[K, list[int]], key: K, requests: int, tokens: int, cost: int) -> None:
    kept = sums.get(key)
    if kept is None:
        sums[key] = [requests, tokens, cost]
    else:
        kept[0] += requests
        kept[1] += tokens
        kept[2] += cost


def apply_hourly(
    conn: sa.Connection, dialect: str, records: Iterable[UsageRecord], *, count_requests: bool = True
) -> None:
    """Add ``records`` to the hourly rollup and the thread minutes, inside the caller's transaction."""
    hours, minutes = hourly_increments(records, count_requests=count_requests)
    if hours:
        conn.execute(
            _hours_upsert(dialect),
            # Sorted, so that concurrent recorders lock rows in the same order.
            [
                {"hour": h, "scope": s, "entity_id": e, "requests": v[0], "tokens": v[1], "cost_pico": v[2]}
                for (h, s, e), v in sorted(hours.items())
            ],
        )
    if minutes:
        conn.execute(
            _minutes_upsert(dialect),
            [
                {"minute": m, "thread_id": t, **dict(zip(_MINUTE_SUMS, v, strict=True))}
                for (m, t), v in sorted(minutes.items())
            ],
        )


# Built once per dialect: building one (its ``excluded`` columns above all) cost more than the rows it writes.
@functools.cache
def _hours_upsert(dialect: str) -> sa.Executable:
    statement = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(HOURLY_TABLE)
    return statement.on_conflict_do_update(
        index_elements=["hour", "scope", "entity_id"],
        set_={c: HOURLY_TABLE.c[c] + statement.excluded[c] for c in ("requests", "tokens", "cost_pico")},
    )


@functools.cache
def _minutes_upsert(dialect: str) -> sa.Executable:
    statement = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(THREAD_MINUTES_TABLE)
    return statement.on_conflict_do_update(
        index_elements=["minute", "thread_id"],
        set_={c: THREAD_MINUTES_TABLE.c[c] + statement.excluded[c] for c in _MINUTE_SUMS},
    )


def rebuild_hourly(conn: sa.Connection, dialect: str, since: datetime) -> None:
    """Recompute the hourly rollup from the raw rows started at or after ``since`` (``tollgate rollups rebuild``)."""
    t = USAGE_TABLE.c
    if dialect == "postgresql":
        hour = sa.func.to_char(sa.func.timezone("UTC", t.started_at), 'YYYY-MM-DD"T"HH24')
    else:
        hour = sa.func.strftime("%Y-%m-%dT%H", t.started_at)
    conn.execute(HOURLY_TABLE.delete())
    conn.execute(THREAD_MINUTES_TABLE.delete())
    for scope in SCOPES:
        column = t[_ATTRIBUTES[scope]]
        select = (
            sa.select(
                hour,
                sa.literal(scope),
                column,
                sa.func.count(),
                sa.func.coalesce(sa.func.sum(t.input_tokens + t.output_tokens), 0),
                sa.func.coalesce(sa.func.sum(t.cost_pico), 0),
            )
            .where(t.started_at >= since, column.is_not(None), column != "")
            .group_by(hour, column)
        )
        conn.execute(
            HOURLY_TABLE.insert().from_select(["hour", "scope", "entity_id", "requests", "tokens", "cost_pico"], select)
        )


def prune_hourly(conn: sa.Connection, hours_before: datetime, minutes_before: datetime) -> None:
    """Forget hourly rows older than ``hours_before`` and thread minutes older than ``minutes_before``."""
    conn.execute(HOURLY_TABLE.delete().where(HOURLY_TABLE.c.hour < hour_label(hours_before)))
    conn.execute(THREAD_MINUTES_TABLE.delete().where(THREAD_MINUTES_TABLE.c.minute < minute_label(minutes_before)))
