"""Price versions in the database: import one, list them, and read them all back as a ``PriceHistory``.

Read at start and on reload only (``proxy.app``), never per request: a request finds its version
in the history already in memory.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import orjson
import sqlalchemy as sa

from pricing import Catalog, PriceFile, PriceHistory, PriceVersion, decimal_text
from pricing.sheets import MAP, sheet_rates_from_json
from proxy.recording.store import Store
from proxy.recording.tables import PRICE_VERSIONS_TABLE


@dataclass(frozen=True, slots=True)
class VersionSummary:
    """One version as ``tollgate prices versions`` lists it."""

    id: int
    effective_at: datetime
    imported_at: datetime
    kind: str
    source: str
    models: int


def import_version(store: Store, prices: PriceFile, source: str, effective_at: datetime, now: datetime) -> int:
    """Store ``prices`` as a new version in force from ``effective_at``; returns its id."""
    if prices.kind == MAP:
        entries = orjson.dumps(prices.entries)
    else:  # a sheet's rates are Decimals: stored as decimal strings, exact
        entries = orjson.dumps(
            {
                name: {key: decimal_text(_decimal(v)) for key, v in rates.items()}
                for name, rates in prices.entries.items()
            }
        )
    row = {
        "effective_at": effective_at.astimezone(UTC),
        "imported_at": now.astimezone(UTC),
        "kind": prices.kind,
        "source": source[-512:],
        "models": len(prices.entries),
        "entries": entries.decode(),
    }
    with store.write_engine.begin() as conn:
        result = conn.execute(sa.insert(PRICE_VERSIONS_TABLE).values(row).returning(PRICE_VERSIONS_TABLE.c.id))
        return int(result.scalar_one())


def list_versions(store: Store) -> list[VersionSummary]:
    """Every version, oldest import first, without its entries."""
    v = PRICE_VERSIONS_TABLE.c
    query = sa.select(v.id, v.effective_at, v.imported_at, v.kind, v.source, v.models).order_by(v.id)
    with store.engine.connect() as conn:
        return [
            VersionSummary(row.id, _utc(row.effective_at), _utc(row.imported_at), row.kind, row.source, row.models)
            for row in conn.execute(query)
        ]


def load_history(store: Store, base: Catalog) -> PriceHistory:
    """Every version over ``base`` (the config's catalog): one query, at start or reload."""
    return PriceHistory(base, load_versions(store))


def load_versions(store: Store) -> list[PriceVersion]:
    """Every imported version with its entries, in import order."""
    v = PRICE_VERSIONS_TABLE.c
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(PRICE_VERSIONS_TABLE).order_by(v.id)).all()
    versions = []
    for row in rows:
        stored = orjson.loads(row.entries)
        entries: Mapping[str, Mapping[str, object]] = stored if row.kind == MAP else sheet_rates_from_json(stored)
        versions.append(
            PriceVersion(row.id, _utc(row.effective_at), _utc(row.imported_at), row.kind, row.source, entries)
        )
    return versions


def _decimal(value: object) -> Decimal:
    assert isinstance(value, Decimal), "a sheet's rates are Decimals (pricing.sheets)"
    return value


def _utc(value: datetime) -> datetime:
    # SQLite has no time zones: it returns the UTC time it was given, without one.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
