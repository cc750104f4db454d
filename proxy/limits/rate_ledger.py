"""Rate-limit leases in the database: what makes rate limits hold across workers and instances.

The invariant, kept by ``lease`` under a lock on the counter, is::

    (every live lease on a rate counter) <= its limit

A worker admits a request only inside room it leased, so no more requests (or tokens)
are admitted in a minute, nor held in flight at once, than the limit allows, whichever
process admits them. Room used in a minute stays in its lease until the minute is over
(a per-minute counter's leases live until then); only room never used is given back.
A concurrency counter's leases live ``lease_ttl`` unless renewed, so a crashed worker's
requests in flight stop counting after it.

The lock: SQLite's ``BEGIN IMMEDIATE`` (``Store.write_engine``) serialises writers;
PostgreSQL takes a transaction-scoped advisory lock on the counter's key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from proxy.recording.store import Store
from proxy.recording.tables import RATE_LEASES_TABLE

# A per-minute counter's rows are kept this long past their minute, then deleted.
_EXPIRED_GRACE_S = 5.0


@dataclass(frozen=True, slots=True)
class RateGrant:
    granted: int
    """Added to this worker's lease (0: refused)."""
    free: int
    """What the limit left before the grant, across every worker."""
    taken_back: int = 0
    """Room taken out of this worker's expired lease because other workers leased it meanwhile."""


class RateLedger:
    def __init__(self, store: Store, holder: str) -> None:
        self.store = store
        self.holder = holder
        self._postgres = store.dialect == "postgresql"

    def _insert(self) -> sqlite.Insert | postgresql.Insert:
        return postgresql.insert(RATE_LEASES_TABLE) if self._postgres else sqlite.insert(RATE_LEASES_TABLE)

    def lease(
        self, key: str, limit: int, need: int, want: int, expires_at: float, now: float, held: int = 0
    ) -> RateGrant:
        """Add between ``need`` and ``want`` to this worker's lease on ``key``, if the limit leaves ``need``.

        Never more than half of what is free, and only ``need`` when little is, so that near a
        limit one worker does not sit on room another needs.

        ``held`` is what this worker's requests hold of the lease now. A lease of ours that expired
        (its renewals failed) is taken up again as it was, less what other workers leased while it
        was expired, but never below ``held``: those requests are running.
        """
        t = RATE_LEASES_TABLE.c
        with self.store.write_engine.begin() as conn:
            if self._postgres:
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtextextended(key, 0))))
            rows = conn.execute(
                sa.select(t.holder, t.amount, t.expires_at).where(
                    t.counter_key == key, sa.or_(t.expires_at > now, t.holder == self.holder)
                )
            ).all()
            others = sum(int(amount) for holder, amount, _ in rows if holder != self.holder)
            own = next(((int(amount), float(until)) for holder, amount, until in rows if holder == self.holder), None)
            mine = own[0] if own is not None else 0
            free = limit - others - mine
            expired = own is not None and own[1] <= now
            taken_back = 0
            if expired and free < 0:  # other workers counted it as free, and leased some of it
                taken_back = min(-free, max(mine - held, 0))
                mine -= taken_back
                free += taken_back
            if free < need:
                grant = 0
            elif free < 8 * want:
                grant = need
            else:
                grant = min(want, free // 2)
            if grant or expired:
                insert = self._insert().values(counter_key=key, holder=self.holder, amount=mine + grant)
                conn.execute(
                    insert.values(expires_at=expires_at).on_conflict_do_update(
                        index_elements=[t.counter_key, t.holder],
                        set_={"amount": mine + grant, "expires_at": expires_at},
                    )
                )
        return RateGrant(granted=grant, free=free, taken_back=taken_back)

    def give_back(self, returns: Mapping[str, int]) -> None:
        """Return room this worker leased and did not use."""
        if not returns:
            return
        t = RATE_LEASES_TABLE.c
        with self.store.write_engine.begin() as conn:
            for key in sorted(returns):
                left = t.amount - returns[key]
                conn.execute(
                    RATE_LEASES_TABLE.update()
                    .where(t.counter_key == key, t.holder == self.holder)
                    .values(amount=sa.case((left < 0, 0), else_=left))
                )

    def renew(self, keys: list[str], expires_at: float, now: float) -> None:
        """Keep this worker's concurrency leases alive; delete empty leases and minutes long over."""
        t = RATE_LEASES_TABLE.c
        with self.store.write_engine.begin() as conn:
            if keys:
                conn.execute(  # not an expired one: other workers may have leased its room (see ``lease``)
                    RATE_LEASES_TABLE.update()
                    .where(t.holder == self.holder, t.counter_key.in_(keys), t.expires_at > now)
                    .values(expires_at=expires_at)
                )
            conn.execute(RATE_LEASES_TABLE.delete().where(t.holder == self.holder, t.amount <= 0))
            conn.execute(RATE_LEASES_TABLE.delete().where(t.expires_at < now - _EXPIRED_GRACE_S))

    def taken(self, key: str, now: float) -> int:
        """The room every worker holds on ``key`` now (for tests and ``tollgate limits``)."""
        t = RATE_LEASES_TABLE.c
        with self.store.engine.connect() as conn:
            total = conn.execute(
                sa.select(sa.func.coalesce(sa.func.sum(t.amount), 0)).where(t.counter_key == key, t.expires_at > now)
            ).scalar_one()
        return int(total)
