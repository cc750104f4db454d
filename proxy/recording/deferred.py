"""Usage that arrives after the answer: background Responses.

``POST /v1/responses`` with ``"background": true`` answers at once with a
``queued`` response and no usage; the usage arrives later, in the finished
response that the client fetches with ``GET /v1/responses/{id}`` (or gets back
from ``POST /v1/responses/{id}/cancel``). Tollgate keeps one row per request:

- the create is recorded with ``usage_source = "pending"`` and no cost, and its
  spend limits are charged its bound, provisionally (a hard limit must hold the
  request's largest cost until its real cost is known);
- when a fetch or cancel carries the finished response, Tollgate completes that
  row: tokens, cost, ``usage_source = "reported"``, the rollups, and the
  counters, which trade the provisional bound for the real cost. The fetch's own
  row carries no usage, so the usage is counted once, however often it is fetched.

The two halves meet in ``background_responses``, whichever reaches the database
first, on any worker or instance; the row is marked completed once the usage is
in, so that a second fetch changes nothing.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from pricing import TokenCounts, token_columns
from proxy.recording.records import UsageRecord
from proxy.recording.tables import BACKGROUND_TABLE, COUNTERS_TABLE, USAGE_TABLE
from proxy.usage import PENDING


@dataclass(frozen=True, slots=True)
class Queued:
    """A background create was answered: its row waits for its usage."""

    response_id: str
    request_id: str
    provisional_pico: int
    counter_keys: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Finished:
    """A fetch or cancel carried a finished background response, with its usage priced."""

    response_id: str
    tokens: TokenCounts
    model_served: str | None
    service_tier: str | None
    cost_pico: int | None
    unpriced: bool


Deferred = Queued | Finished


def as_json(event: Deferred) -> dict[str, Any]:
    """For the journal."""
    return {"kind": type(event).__name__, **dataclasses.asdict(event)}


def from_json(data: dict[str, Any]) -> Deferred:
    kind = data.pop("kind")
    if kind == "Queued":
        return Queued(**{**data, "counter_keys": tuple(data["counter_keys"])})
    return Finished(**{**data, "tokens": TokenCounts(**data["tokens"])})


def apply_deferred(conn: sa.Connection, dialect: str, events: list[Deferred]) -> None:
    """Record each half in ``background_responses`` and complete the rows whose two halves are in."""
    insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(BACKGROUND_TABLE)
    b = BACKGROUND_TABLE.c
    for event in events:
        if isinstance(event, Queued):
            values: dict[str, Any] = {
                "request_id": event.request_id,
                "provisional_pico": event.provisional_pico,
                "counter_keys": orjson.dumps(event.counter_keys).decode(),
            }
        else:
            values = {"finished": orjson.dumps(as_json(event)).decode()}
        conn.execute(
            insert.values(response_id=event.response_id, **values).on_conflict_do_update(
                index_elements=[b.response_id], set_=values, where=b.completed.is_(False)
            )
        )
        both = conn.execute(
            sa.select(b.request_id, b.provisional_pico, b.counter_keys, b.finished).where(
                b.response_id == event.response_id,
                b.request_id.is_not(None),
                b.finished.is_not(None),
                b.completed.is_(False),
            )
        ).first()
        if both is not None:
            finished = from_json(orjson.loads(both.finished))
            assert isinstance(finished, Finished)
            keys = orjson.loads(both.counter_keys)
            _complete(conn, dialect, both.request_id, int(both.provisional_pico), keys, finished)
            conn.execute(BACKGROUND_TABLE.update().where(b.response_id == event.response_id).values(completed=True))


def _complete(
    conn: sa.Connection, dialect: str, request_id: str, provisional: int, keys: list[str], done: Finished
) -> None:
    from proxy.recording.rollups import apply_rollups

    u = USAGE_TABLE.c
    tokens = done.tokens
    row = conn.execute(sa.select(USAGE_TABLE).where(u.request_id == request_id, u.usage_source == PENDING)).first()
    if row is None:
        return  # completed already, or its row was set aside
    update = {
        **token_columns(tokens),
        "model_served": done.model_served,
        "service_tier": done.service_tier,
        "cost_pico": done.cost_pico,
        "unpriced": done.unpriced,
        "usage_source": "reported",
    }
    conn.execute(USAGE_TABLE.update().where(u.request_id == request_id).values(**update))
    # The rollups already count the request; they gain its tokens and cost now.
    fields = {**row._mapping, **update}
    if fields["started_at"].tzinfo is None:  # SQLite keeps UTC without an offset
        fields["started_at"] = fields["started_at"].replace(tzinfo=UTC)
    apply_rollups(conn, dialect, [UsageRecord(**fields)], count_requests=False)
    c = COUNTERS_TABLE.c
    change = (done.cost_pico or 0) - provisional
    for key in sorted(keys):
        conn.execute(COUNTERS_TABLE.update().where(c.counter_key == key).values(spent_pico=c.spent_pico + change))
