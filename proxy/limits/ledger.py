"""The spend ledger in the database: counters, budget leases and sent alerts.

These statements are what makes blocking limits hard across processes and
machines. The invariant, kept by ``lease`` under a lock on the counter, is::

    spent + (every live lease on the counter) <= the tightest blocking limit

A worker admits a request only inside budget it leased, and a request's cost
never exceeds the bound it was admitted with, so the recorded spend cannot pass
the limit. When the recorder writes a request's cost it moves that amount from
the worker's lease into ``spent`` in the same transaction as the usage row.

A counter counts what its window's rows cost, not only what was charged since the
limit existed: the first time a worker meets a counter (a new limit, a reload, a
restart), it brings ``spent`` up to the sum of the costs of the window's rows, under
the counter's lock. Batches still being written add their own costs once they
commit, so nothing is counted twice, and ``spent`` never goes down.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from proxy.limits.rules import Counter, CounterWindow, counter_window, counter_window_of
from proxy.recording.store import Store
from proxy.recording.tables import ALERTS_TABLE, COUNTERS_TABLE, LEASES_TABLE, USAGE_TABLE

# The usage_records column each limit scope counts by; "global" counts every row.
_SCOPE_COLUMNS = {"user": "user_id", "team": "team_id", "key": "key_name", "agent": "agent", "thread": "thread_id"}


@dataclass(frozen=True, slots=True)
class LeaseGrant:
    granted: int
    """Picodollars added to this worker's lease (0: refused)."""
    spent: int
    """The counter's recorded spend."""
    others: int
    """Live leases of the other workers on the counter."""
    mine: int
    """This worker's lease after the grant."""
    taken_back: int = 0
    """Picodollars taken out of this worker's expired lease because other workers leased them meanwhile."""


@dataclass(frozen=True, slots=True)
class Charge:
    """One request's cost against one counter; ``leased`` if it was admitted inside this worker's lease."""

    counter_key: str
    pico: int
    leased: bool
    counter: Counter | None = None
    """The counter itself, for alerts; absent when the charge was read back from the journal."""


class Ledger:
    def __init__(self, store: Store, holder: str) -> None:
        self.store = store
        self.holder = holder
        self._dialect = store.dialect
        self._synced: set[str] = set()  # counters this worker has brought up to their rows
        self._syncing: set[str] = set()  # ... in a recorder transaction not yet committed

    def rows_spent(self, conn: sa.Connection, window: CounterWindow) -> int:
        """What the rows in a counter's window cost, in picodollars."""
        t = USAGE_TABLE.c
        query = sa.select(sa.func.coalesce(sa.func.sum(t.cost_pico), 0)).where(t.started_at >= window.start)
        if window.end is not None:
            query = query.where(t.started_at < window.end)
        column = _SCOPE_COLUMNS.get(window.scope)
        if column is not None:
            query = query.where(t[column] == window.scope_id)
        if window.scope == "tag" and window.tag is not None:
            query = query.where(self._tag_is(window.tag, window.scope_id))
        if window.models:
            query = query.where(sa.or_(*(self._model_is(pattern) for pattern in window.models)))
        return int(conn.execute(query).scalar_one())

    def _tag_is(self, tag: str, value: str) -> sa.ColumnElement[bool]:
        """Rows whose ``tags`` (a JSON object of strings) give ``tag`` the value ``value``."""
        tags = USAGE_TABLE.c.tags
        if self._dialect == "postgresql":
            field: sa.ColumnElement[str] = sa.cast(tags, postgresql.JSONB)[tag].astext
            return field == value
        # A tag name holds no quote (it is a header name's tail), so it can sit inside the JSON path.
        extracted: sa.ColumnElement[str] = sa.func.json_extract(tags, f'$."{tag}"')
        return extracted == value

    def _model_is(self, pattern: str) -> sa.ColumnElement[bool]:
        """Rows whose requested model matches a limit's ``models`` glob, case-sensitive as ``fnmatchcase`` is."""
        model = USAGE_TABLE.c.model_requested
        if "*" not in pattern and "?" not in pattern:
            return model == pattern
        if self._dialect == "postgresql":
            escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            return model.like(escaped.replace("*", "%").replace("?", "_"), escape="\\")
        return model.op("GLOB")(pattern)  # SQLite's LIKE ignores case; GLOB does not, and speaks * and ?

    def _bring_up_to_rows(self, conn: sa.Connection, key: str, window: CounterWindow, adding: int) -> None:
        """Set ``spent`` to the larger of (spent + adding) and what the window's rows cost.

        The counter is locked before its rows are summed: a batch that commits meanwhile is then either in
        the sum and in ``spent`` alike, or waits for the lock and adds its cost after.
        """
        c = COUNTERS_TABLE.c
        if self._dialect == "postgresql":
            conn.execute(sa.select(c.spent_pico).where(c.counter_key == key).with_for_update())
        rows = self.rows_spent(conn, window)
        conn.execute(
            COUNTERS_TABLE.update()
            .where(c.counter_key == key)
            .values(spent_pico=sa.case((c.spent_pico + adding > rows, c.spent_pico + adding), else_=rows))
        )

    def _insert(self, table: sa.Table) -> sqlite.Insert | postgresql.Insert:
        return postgresql.insert(table) if self._dialect == "postgresql" else sqlite.insert(table)

    def lease(
        self, counter_key: str, limit: int, need: int, want: int, now: float, ttl: float, held: int = 0
    ) -> LeaseGrant:
        """Add between ``need`` and ``want`` to this worker's lease, if the limit leaves room for ``need``.

        Never more than half of what the limit still leaves, and only ``need`` when
        little is left, so that near a limit one worker does not hold budget another needs.

        ``held`` is what this worker's requests hold of the lease now (bounds in flight, costs not
        yet written). A lease of ours that expired (its renewals failed for ``ttl``) is taken up
        again as it was, less what other workers leased while it was expired, but never below
        ``held``: those requests are already on their way, and their charges come out of it.
        """
        c, lease = COUNTERS_TABLE.c, LEASES_TABLE.c
        syncing = counter_key not in self._synced
        with self.store.write_engine.begin() as conn:
            conn.execute(
                self._insert(COUNTERS_TABLE).values(counter_key=counter_key, spent_pico=0).on_conflict_do_nothing()
            )
            locked = sa.select(c.spent_pico).where(c.counter_key == counter_key)
            if self._dialect == "postgresql":
                locked = locked.with_for_update()
            spent = int(conn.execute(locked).scalar_one())
            if syncing:
                self._bring_up_to_rows(conn, counter_key, counter_window(counter_key), 0)
                spent = int(conn.execute(locked).scalar_one())
            others = int(
                conn.execute(
                    sa.select(sa.func.coalesce(sa.func.sum(lease.amount_pico), 0)).where(
                        lease.counter_key == counter_key, lease.holder != self.holder, lease.expires_at > now
                    )
                ).scalar_one()
            )
            mine_row = conn.execute(
                sa.select(lease.amount_pico, lease.expires_at).where(
                    lease.counter_key == counter_key, lease.holder == self.holder
                )
            ).first()
            mine = int(mine_row[0]) if mine_row is not None else 0
            free = limit - spent - others - mine
            taken_back = 0
            if mine_row is not None and mine_row[1] <= now and free < 0:
                # Expired, so other workers counted it as free, and leased some of it: that part is theirs now.
                taken_back = min(-free, max(mine - held, 0))
                mine -= taken_back
                free += taken_back
            if free < need:
                grant = 0
            elif free < 8 * want:
                # Near the limit, lease only what this request needs: budget leased ahead could sit unused
                # in this worker while another one refuses requests that would fit.
                grant = need
            else:
                grant = min(want, free // 2)
            values = {
                "counter_key": counter_key,
                "holder": self.holder,
                "amount_pico": mine + grant,
                "expires_at": now + ttl,
            }
            conn.execute(
                self._insert(LEASES_TABLE)
                .values(**values)
                .on_conflict_do_update(
                    index_elements=[lease.counter_key, lease.holder],
                    set_={"amount_pico": mine + grant, "expires_at": now + ttl},
                )
            )
        if syncing:
            self._synced.add(counter_key)
        return LeaseGrant(granted=grant, spent=spent, others=others, mine=mine + grant, taken_back=taken_back)

    def give_back(self, returns: Mapping[str, int]) -> None:
        """Return unused budget from this worker's leases."""
        if not returns:
            return
        lease = LEASES_TABLE.c
        with self.store.write_engine.begin() as conn:
            for key in sorted(returns):
                conn.execute(
                    LEASES_TABLE.update()
                    .where(lease.counter_key == key, lease.holder == self.holder)
                    .values(amount_pico=_floor_zero(lease.amount_pico - returns[key]))
                )

    def renew(self, now: float, ttl: float) -> None:
        """Keep this worker's live leases alive; drop the empty ones.

        An expired lease stays expired: other workers may have leased its budget, so it is taken
        up again only through ``lease``, which sees what they took.
        """
        lease = LEASES_TABLE.c
        with self.store.write_engine.begin() as conn:
            conn.execute(LEASES_TABLE.delete().where(lease.holder == self.holder, lease.amount_pico <= 0))
            conn.execute(
                LEASES_TABLE.update()
                .where(lease.holder == self.holder, lease.expires_at > now)
                .values(expires_at=now + ttl)
            )

    def charge(self, conn: sa.Connection, charges: Iterable[Charge]) -> dict[str, int]:
        """Add costs to counters inside the recorder's transaction; returns each counter's new spend."""
        totals: dict[str, int] = {}
        leased: dict[str, int] = {}
        for charge in charges:
            totals[charge.counter_key] = totals.get(charge.counter_key, 0) + charge.pico
            if charge.leased:
                leased[charge.counter_key] = leased.get(charge.counter_key, 0) + charge.pico
        c, lease = COUNTERS_TABLE.c, LEASES_TABLE.c
        windows = {charge.counter_key: charge.counter for charge in charges if charge.counter is not None}
        # Sorted, so that two recorders lock counters in the same order and never deadlock.
        for key in sorted(totals):
            if key in self._synced:
                insert = self._insert(COUNTERS_TABLE).values(counter_key=key, spent_pico=totals[key])
                conn.execute(
                    insert.on_conflict_do_update(
                        index_elements=[c.counter_key], set_={"spent_pico": c.spent_pico + insert.excluded.spent_pico}
                    )
                )
            else:
                # First met here: the rows summed include this batch's, written earlier in this transaction.
                insert = self._insert(COUNTERS_TABLE).values(counter_key=key, spent_pico=0)
                conn.execute(insert.on_conflict_do_nothing())
                known = windows.get(key)
                window = counter_window_of(known) if known is not None else counter_window(key)
                self._bring_up_to_rows(conn, key, window, totals[key])
                self._syncing.add(key)
            if key in leased:
                conn.execute(
                    LEASES_TABLE.update()
                    .where(lease.counter_key == key, lease.holder == self.holder)
                    .values(amount_pico=_floor_zero(lease.amount_pico - leased[key]))
                )
        if not totals:
            return {}
        rows = conn.execute(sa.select(c.counter_key, c.spent_pico).where(c.counter_key.in_(sorted(totals))))
        return {key: int(spent) for key, spent in rows}

    def committed(self, ok: bool) -> None:
        """The recorder's transaction that called ``charge`` committed (or not): remember what it brought up."""
        if ok:
            self._synced.update(self._syncing)
        self._syncing.clear()

    def claim_alert(
        self, conn: sa.Connection, counter_key: str, limit_pico: int, threshold: Decimal, now: datetime
    ) -> bool:
        """Record that an alert is sent; False if some worker already sent it."""
        result = conn.execute(
            self._insert(ALERTS_TABLE)
            .values(counter_key=counter_key, limit_pico=limit_pico, threshold=str(threshold), sent_at=now)
            .on_conflict_do_nothing()
            # RETURNING, not rowcount: through SQLAlchemy, psycopg reports -1 rows for this INSERT ... ON
            # CONFLICT, which read as "already sent" and silenced every threshold alert on PostgreSQL.
            .returning(ALERTS_TABLE.c.counter_key)
        )
        return result.first() is not None

    def status(self, counter_keys: Sequence[str], now: float) -> dict[str, tuple[int, int]]:
        """(spent, held in live leases) of each counter; spent is at least what its window's rows cost."""
        if not counter_keys:
            return {}
        c, lease = COUNTERS_TABLE.c, LEASES_TABLE.c
        with self.store.engine.connect() as conn:
            spent = dict(
                conn.execute(sa.select(c.counter_key, c.spent_pico).where(c.counter_key.in_(counter_keys))).all()
            )
            for key in counter_keys:
                spent[key] = max(int(spent.get(key, 0)), self.rows_spent(conn, counter_window(key)))
            held = dict(
                conn.execute(
                    sa.select(lease.counter_key, sa.func.sum(lease.amount_pico))
                    .where(lease.counter_key.in_(counter_keys), lease.expires_at > now)
                    .group_by(lease.counter_key)
                ).all()
            )
        return {key: (int(spent.get(key, 0)), int(held.get(key) or 0)) for key in counter_keys}


def _floor_zero(expression: sa.ColumnElement[int]) -> sa.ColumnElement[int]:
    return sa.case((expression < 0, 0), else_=expression)
