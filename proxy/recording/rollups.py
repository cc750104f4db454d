"""Daily and monthly rollups of usage, kept in step with the raw rows.

The recorder adds each batch's inserted rows to ``usage_rollups`` in the same
transaction as the rows themselves, so reports can answer from the rollups
without scanning millions of raw rows, and the two never disagree.
``rebuild_rollups`` recomputes them from the raw rows (``tollgate rollups rebuild``).
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from pricing import CACHE_WRITE_KINDS, TOKEN_COLUMNS, TOKEN_KINDS
from proxy.recording.hourly import apply_hourly, rebuild_hourly
from proxy.recording.records import UsageRecord
from proxy.recording.store import Store
from proxy.recording.tables import ROLLUPS_TABLE, USAGE_TABLE

_DIMENSIONS = ("user_id", "team_id", "agent", "model", "provider")
# Rollups keep one sum per token kind, but one for all cache write lifetimes (cache_write_tokens).
_GROUPS: dict[str, list[str]] = {}
for _kind, _column in zip(TOKEN_KINDS, TOKEN_COLUMNS, strict=True):
    _GROUPS.setdefault("cache_write_tokens" if _kind in CACHE_WRITE_KINDS else _column, []).append(_column)
ROLLUP_TOKEN_COLUMNS = tuple(_GROUPS)
_SUMS = ("requests", *ROLLUP_TOKEN_COLUMNS, "cost_pico", "unpriced_requests")
_ROW_TOKENS = operator.attrgetter(*TOKEN_COLUMNS)  # a row's counts in one call, built in C
_GROUP_INDEXES = tuple(tuple(TOKEN_COLUMNS.index(column) for column in group) for group in _GROUPS.values())
_Key = tuple[str, str, str, str, str, str, str]
K = TypeVar("K")


def rollup_increments(records: Iterable[UsageRecord], *, count_requests: bool = True) -> dict[_Key, list[int]]:
    """Per (period, start, user, team, agent, model, provider): what ``records`` add to each sum.

    ``count_requests=False`` adds their tokens and cost only: a row already counted, completed later.
    """
    request = 1 if count_requests else 0
    # Each row's counts are gathered per day, then summed a column at a time (in C): a batch has many rows
    # but few days and names. The months are then summed from the days.
    gathered: dict[tuple[date, str, str, str, str, str], list[tuple[int, ...]]] = {}
    for r in records:
        started = r.started_at if r.started_at.tzinfo is UTC else r.started_at.astimezone(UTC)
        day_key = (
            started.date(),
            r.user_id or "",
            r.team_id or "",
            r.agent or "",
            r.model_requested or "",
            r.provider or "",
        )
        rows = gathered.get(day_key)
        if rows is None:
            rows = gathered[day_key] = []
        rows.append((*_ROW_TOKENS(r), r.cost_pico or 0, 1 if r.unpriced else 0))
    days: dict[tuple[date, str, str, str, str, str], list[int]] = {}
    for day_key, rows in gathered.items():
        columns = list(map(sum, zip(*rows, strict=True)))
        days[day_key] = [
            request * len(rows),
            *(sum(columns[i] for i in group) for group in _GROUP_INDEXES),
            *columns[len(TOKEN_COLUMNS) :],
        ]
    totals: dict[_Key, list[int]] = {}
    for (day, user, team, agent, model, provider), day_sums in days.items():
        text = day.isoformat()
        for key in (
            ("day", text, user, team, agent, model, provider),
            ("month", text[:7], user, team, agent, model, provider),
        ):
            _add(totals, key, day_sums)
    return totals


def _add(sums: dict[K, list[int]], key: K, values: Sequence[int]) -> None:
    """Add ``values`` to the sums kept under ``key``, starting them if ``key`` is new."""
    kept = sums.get(key)
    if kept is None:
        sums[key] = list(values)
    else:
        for i, v in enumerate(values):
            kept[i] += v


def apply_rollups(
    conn: sa.Connection, dialect: str, records: Iterable[UsageRecord], *, count_requests: bool = True
) -> None:
    """Add ``records`` to the rollups (daily, monthly and hourly), inside the caller's transaction."""
    records = list(records)
    apply_hourly(conn, dialect, records, count_requests=count_requests)
    totals = rollup_increments(records, count_requests=count_requests)
    if not totals:
        return
    statement = _rollups_upsert(dialect)
    rows = [
        {
            "period": key[0],
            "period_start": key[1],
            **dict(zip(_DIMENSIONS, key[2:], strict=True)),
            **dict(zip(_SUMS, sums, strict=True)),
        }
        # Sorted, so that concurrent recorders lock rollup rows in the same order.
        for key, sums in sorted(totals.items())
    ]
    conn.execute(statement, rows)


@functools.cache  # built once per dialect: building one (its ``excluded`` columns) cost more than its rows
def _rollups_upsert(dialect: str) -> sa.Executable:
    insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(ROLLUPS_TABLE)
    return insert.on_conflict_do_update(
        index_elements=["period", "period_start", *_DIMENSIONS],
        set_={name: ROLLUPS_TABLE.c[name] + insert.excluded[name] for name in _SUMS},
    )


def rebuild_rollups(store: Store, *, hourly_since: datetime | None = None) -> int:
    """Recompute every rollup from the raw rows; returns the number of daily and monthly rollup rows.

    The hourly rollup is rebuilt from the rows started at or after ``hourly_since`` (default: the last
    35 days, more than anomaly detection's longest baseline needs).
    """
    t = USAGE_TABLE.c
    if store.dialect == "postgresql":
        day = sa.func.to_char(sa.func.timezone("UTC", t.started_at), "YYYY-MM-DD")
    else:
        day = sa.func.strftime("%Y-%m-%d", t.started_at)
    sums = [
        sa.func.count(),
        *(sa.func.sum(sum((t[column] for column in group[1:]), t[group[0]])) for group in _GROUPS.values()),
        sa.func.coalesce(sa.func.sum(t.cost_pico), 0),
        sa.func.sum(sa.case((t.unpriced, 1), else_=0)),
    ]
    dims = [
        sa.func.coalesce(t.user_id, ""),
        sa.func.coalesce(t.team_id, ""),
        sa.func.coalesce(t.agent, ""),
        sa.func.coalesce(t.model_requested, ""),
        sa.func.coalesce(t.provider, ""),
    ]
    columns = ["period", "period_start", *_DIMENSIONS, *_SUMS]
    with store.write_engine.begin() as conn:
        conn.execute(ROLLUPS_TABLE.delete())
        for period, start in (("day", day), ("month", sa.func.substr(day, 1, 7))):
            select = sa.select(sa.literal(period), start, *dims, *sums).group_by(start, *dims)
            conn.execute(ROLLUPS_TABLE.insert().from_select(columns, select))
        since = hourly_since or datetime.now(UTC) - timedelta(days=35)
        rebuild_hourly(conn, store.dialect, since)
        return int(conn.execute(sa.select(sa.func.count()).select_from(ROLLUPS_TABLE)).scalar_one())
