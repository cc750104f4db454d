"""The daily vector storage job: one usage row per vector store per day, at the GB-day price.

Per-request metering never sees storage: a store is billed for every day it holds bytes. Once a day
(``tollgate storage run``, from cron or a scheduler) this job, for each OpenAI provider with a managed
key (``api_key_env`` set):

1. lists the vector stores the key can see (``GET /vector_stores``, every page);
2. reads each store's ``usage_bytes``;
3. gives the free allowance (``ToolPrices.vector_storage_free_gb``, per organisation, that is per key)
   to the stores in id order, and prices the rest at ``ToolPrices.vector_storage_gb_day``;
4. records one row per store, attributed to whoever created it through Tollgate (the row of its
   ``POST /v1/vector_stores``, whose ``resource_id`` is the store's id), else to the key's provider.

Rows have the id ``storage:<provider>:<store>:<day>``, so running the job twice for a day records it
once. The day is passed in (the caller's clock), never read from the system here.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any, Final

import httpx
import sqlalchemy as sa

from pricing import BYTES_PER_GB, ToolPrices, UnitCounts, cost_to_pico, price_units, unit_columns
from proxy.providers import Provider, ProviderRouter
from proxy.recording.records import UsageRecord
from proxy.recording.store import Store
from proxy.recording.tables import USAGE_TABLE

logger = logging.getLogger("tollgate.storage")

_PAGE: Final = 100
_MAX_PAGES: Final = 10_000
_CREATE_PATH: Final = "/v1/vector_stores"


@dataclass(frozen=True, slots=True)
class Owner:
    user_id: str | None
    team_id: str | None
    key_name: str | None


def run_storage(
    providers: ProviderRouter,
    store: Store,
    day: date,
    tools: ToolPrices,
    *,
    transport: httpx.BaseTransport | None = None,
) -> list[UsageRecord]:
    """List, price and record one day of vector storage for every managed OpenAI key; the rows written."""
    recorded: list[UsageRecord] = []
    with httpx.Client(transport=transport, timeout=30.0) as client:
        for provider in _managed(providers):
            stores = list(_list_stores(client, provider))
            owners = _owners(store, [store_id for store_id, _ in stores])
            records = _records(provider, stores, owners, day, tools)
            inserted = store.insert_records(records)
            recorded.extend(record for record in records if record.request_id in inserted)
            logger.info(
                "provider %s: %d vector stores, %d new storage rows for %s",
                provider.name,
                len(stores),
                len(inserted),
                day.isoformat(),
            )
    return recorded


def _managed(providers: ProviderRouter) -> Iterator[Provider]:
    for _, provider in providers.providers:
        if provider.kind == "openai" and provider.api_key is not None:
            yield provider


def _list_stores(client: httpx.Client, provider: Provider) -> Iterator[tuple[str, int]]:
    """(store id, usage_bytes) of every store the provider's key can see."""
    after: str | None = None
    headers = {"authorization": f"Bearer {provider.api_key}", **dict(provider.extra_headers)}
    for _ in range(_MAX_PAGES):
        params: dict[str, str | int] = {"limit": _PAGE, "order": "asc"}
        if after is not None:
            params["after"] = after
        response = client.get(f"{provider.base_url}/vector_stores", params=params, headers=headers)
        response.raise_for_status()
        page: Any = response.json()
        data = page.get("data") if isinstance(page, dict) else None
        for item in data if isinstance(data, list) else ():
            if isinstance(item, dict) and isinstance(item.get("id"), str):
                size = item.get("usage_bytes")
                yield item["id"], size if isinstance(size, int) and not isinstance(size, bool) and size > 0 else 0
        if not (isinstance(page, dict) and page.get("has_more") is True and data):
            return
        after = page.get("last_id") or data[-1].get("id")


def _owners(store: Store, store_ids: list[str]) -> Mapping[str, Owner]:
    """Who created each store through Tollgate, from the rows of its creation."""
    if not store_ids:
        return {}
    table = USAGE_TABLE.c
    query = (
        sa.select(table.resource_id, table.user_id, table.team_id, table.key_name)
        .where(table.endpoint == _CREATE_PATH, table.resource_id.in_(store_ids), table.status < 300)
        .order_by(table.started_at)
    )
    with store.engine.connect() as conn:
        return {row.resource_id: Owner(row.user_id, row.team_id, row.key_name) for row in conn.execute(query)}


def _records(
    provider: Provider, stores: list[tuple[str, int]], owners: Mapping[str, Owner], day: date, tools: ToolPrices
) -> list[UsageRecord]:
    free_left = int(tools.vector_storage_free_gb * BYTES_PER_GB)
    at = datetime.combine(day, time(0), tzinfo=UTC)
    records: list[UsageRecord] = []
    for store_id, size in sorted(stores):
        free = min(size, free_left)
        free_left -= free
        units = UnitCounts(storage_bytes=size, storage_free_bytes=free)
        cost = cost_to_pico(price_units(None, units, tools=tools).total) if size else 0
        owner = owners.get(store_id, Owner(None, None, None))
        records.append(
            UsageRecord(
                request_id=f"storage:{provider.name}:{store_id}:{day.isoformat()}"[:64],
                started_at=at,
                ended_at=at,
                method="JOB",
                endpoint=f"/v1/vector_stores/{store_id}",
                provider=provider.name,
                model_requested=None,
                model_served=None,
                stream=False,
                status=200,
                user_id=owner.user_id,
                team_id=owner.team_id,
                thread_id=None,
                agent=None,
                key_name=owner.key_name,
                tags=None,
                input_tokens=0,
                cached_input_tokens=0,
                cache_write_tokens=0,
                cache_write_1h_tokens=0,
                output_tokens=0,
                reasoning_tokens=0,
                audio_input_tokens=0,
                audio_output_tokens=0,
                service_tier=None,
                cost_pico=cost,
                unpriced=False,
                usage_source="reported",
                latency_ms=0.0,
                ttfb_ms=None,
                error_type=None,
                provider_kind=provider.kind,
                **unit_columns(units),
                unit_cost_pico=cost,
                resource_id=store_id,
            )
        )
    return records
