"""The queries behind anomaly detection and ``tollgate alerts``: the hourly rollup, thread minutes, claims.

Detection reads only ``usage_hourly`` and ``thread_minutes`` (``proxy.recording.hourly``), never
the raw rows. ``claim_anomaly`` is the once-only claim: the row's primary key (kind, scope,
entity, window) lets exactly one worker of one instance insert it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from pricing import cost_to_pico, decimal_text, pico_to_usd
from proxy.insight.anomalies import Anomaly, Figures
from proxy.recording.store import Store
from proxy.recording.tables import ALERTS_TABLE, ANOMALIES_TABLE, HOURLY_TABLE, THREAD_MINUTES_TABLE

EntityKey = tuple[str, str]  # (scope, entity id)


def hourly_history(
    conn: sa.Connection, since_hour: str, until_hour: str, scopes: Sequence[str]
) -> dict[EntityKey, list[Figures]]:
    """Each entity's active hours from ``since_hour`` (inclusive) to ``until_hour`` (exclusive)."""
    h = HOURLY_TABLE.c
    query = sa.select(h.scope, h.entity_id, h.requests, h.tokens, h.cost_pico).where(
        h.hour >= since_hour, h.hour < until_hour, h.scope.in_(scopes)
    )
    history: dict[EntityKey, list[Figures]] = {}
    for scope, entity, requests, tokens, cost in conn.execute(query):
        history.setdefault((scope, entity), []).append(Figures(int(requests), int(tokens), int(cost)))
    return history


def hour_figures(conn: sa.Connection, hour: str, scopes: Sequence[str]) -> dict[EntityKey, Figures]:
    """What each entity did in ``hour`` so far."""
    h = HOURLY_TABLE.c
    query = sa.select(h.scope, h.entity_id, h.requests, h.tokens, h.cost_pico).where(
        h.hour == hour, h.scope.in_(scopes)
    )
    return {(s, e): Figures(int(r), int(t), int(c)) for s, e, r, t, c in conn.execute(query)}


def busy_minutes(
    conn: sa.Connection, since_minute: str, requests_over: int, tokens_over: int
) -> list[tuple[str, str, Figures]]:
    """(minute, thread, figures) of each thread minute since ``since_minute`` past either bound."""
    m = THREAD_MINUTES_TABLE.c
    query = sa.select(m.minute, m.thread_id, m.requests, m.tokens, m.cost_pico).where(
        m.minute >= since_minute, sa.or_(m.requests > requests_over, m.tokens > tokens_over)
    )
    return [(minute, thread, Figures(int(r), int(t), int(c))) for minute, thread, r, t, c in conn.execute(query)]


def claim_anomaly(conn: sa.Connection, dialect: str, anomaly: Anomaly) -> bool:
    """Record ``anomaly``; False if some worker already did (for the same kind, entity and window)."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    result = conn.execute(
        insert(ANOMALIES_TABLE)
        .values(
            kind=anomaly.kind,
            scope=anomaly.scope,
            entity_id=anomaly.scope_id,
            window=anomaly.window,
            detected_at=anomaly.time,
            observed_pico=cost_to_pico(anomaly.cost_usd),
            baseline_pico=None if anomaly.baseline_usd is None else cost_to_pico(anomaly.baseline_usd),
            requests=anomaly.requests,
            tokens=anomaly.tokens,
            detail=anomaly.detail,
        )
        .on_conflict_do_nothing()
        # RETURNING, not rowcount: the PostgreSQL driver may report -1 rows for an INSERT ... ON CONFLICT.
        .returning(ANOMALIES_TABLE.c.kind)
    )
    return result.first() is not None


def recorded_alerts(store: Store, since: datetime | None = None, kind: str | None = None) -> list[dict[str, Any]]:
    """Every alert sent (anomalies and threshold alerts), newest first, as JSON-ready dicts."""
    items: list[dict[str, Any]] = []
    with store.engine.connect() as conn:
        if kind != "threshold":
            a = ANOMALIES_TABLE.c
            query = sa.select(ANOMALIES_TABLE)
            if since is not None:
                query = query.where(a.detected_at >= since)
            if kind is not None:
                query = query.where(a.kind == kind)
            items += [_anomaly_json(row._mapping) for row in conn.execute(query)]
        if kind in (None, "threshold"):
            t = ALERTS_TABLE.c
            query = sa.select(ALERTS_TABLE)
            if since is not None:
                query = query.where(t.sent_at >= since)
            items += [_threshold_json(row._mapping) for row in conn.execute(query)]
    return sorted(items, key=lambda item: (item["time"], item["kind"], item["id"]), reverse=True)


def _utc(when: datetime) -> str:
    aware = when if when.tzinfo is not None else when.replace(tzinfo=UTC)  # SQLite hands back naive UTC
    return aware.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _anomaly_json(row: Any) -> dict[str, Any]:
    baseline = row["baseline_pico"]
    return {
        "kind": row["kind"],
        "scope": row["scope"],
        "id": row["entity_id"],
        "window": row["window"],
        "time": _utc(row["detected_at"]),
        "cost_usd": decimal_text(pico_to_usd(int(row["observed_pico"]))),
        "baseline_usd": None if baseline is None else decimal_text(pico_to_usd(int(baseline))),
        "requests": int(row["requests"]),
        "tokens": int(row["tokens"]),
        "detail": row["detail"],
    }


def _threshold_json(row: Any) -> dict[str, Any]:
    head, window, label = str(row["counter_key"]).rsplit(":", 2)
    scope, _, subject = head.partition(":")
    limit = pico_to_usd(int(row["limit_pico"]))
    threshold = Decimal(row["threshold"])
    return {
        "kind": "threshold",
        "scope": scope,
        "id": subject,
        "window": f"{window.partition('@')[0]} {label}",
        "time": _utc(row["sent_at"]),
        "cost_usd": decimal_text((limit * threshold).normalize()),
        "baseline_usd": None,
        "requests": None,
        "tokens": None,
        "detail": f"spend reached {decimal_text((threshold * 100).normalize())}% of the ${limit:.2f} limit",
    }
