"""Leases of room on limit counters, taken from the database and kept fresh.

What the spend budget (``proxy.limits.budget``) and the rate limits (``proxy.limits.rate_keeper``)
share. Each worker process keeps a *lease* per counter: room it took from the database. A
request is admitted against the lease locally, so most requests cost no database round trip.

- **Growing.** A lease short of room grows by one visit to the database (``LeaseKeeper._extend``),
  sized to the worker's recent traffic (``budget.lease_seconds``). A refused visit made while a
  give-back of the same counter is being written asks once more when it is written.
- **Giving back and renewing.** A background task (each keeper's ``sync``, every
  ``budget.sync_interval``) gives back room that sits idle, so that other workers can use it,
  and renews the leases that live by renewals.
- **Freshness.** Other workers count a lease as expired, and free, ``budget.lease_ttl`` after its
  last renewal. A lease admits nothing once it is older than two thirds of that, as this
  worker's clock counts: a worker whose renewals fail (its database is unreachable, its syncer
  starved) stops spending it, and its next request takes it up again through the database,
  which sees what others leased meanwhile.
- **The database down.** A visit that fails refuses the request with ``LimitsUnavailable``
  (503), unless ``limits_when_db_down = "allow"`` admits it on trust.

Threads: the keeper's tasks run on the event loop that started it, and so does every
extension. Its admissions and settlements may come from any thread (the in-process meter
calls them from the app's threads); ``_mutex`` keeps each change to the leases' figures whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import sqlalchemy as sa

from proxy.config import BudgetConfig
from proxy.errors import LimitsUnavailable, TollgateError
from proxy.limits.give_backs import GiveBacks
from proxy.threads import background_thread


@dataclass(slots=True)
class Lease:
    counter: Any
    granted: int = 0  # room this worker holds on the counter in the database
    in_flight: int = 0  # holds of admitted requests still running
    admitted: int = 0  # holds admitted since the last sync, to size the next lease
    renewed_at: float = float("-inf")  # when the database last renewed it: its expiry counts from then
    seen_at: float = float("-inf")  # when the counter's figures were last read from the database
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def held(self) -> int:
        """What admitted requests hold of it: what it cannot lend to the next request."""
        return self.in_flight

    @property
    def available(self) -> int:
        return self.granted - self.held


class Grant(Protocol):
    @property
    def granted(self) -> int: ...

    @property
    def taken_back(self) -> int: ...


L = TypeVar("L", bound=Lease)
G = TypeVar("G", bound=Grant)


class LeaseKeeper(Generic[L, G]):
    """The leases of one worker on one kind of limit; a subclass says how to ask, and how to refuse."""

    what = "spend"  # in messages: "spend limits", "rate limits"

    def __init__(self, config: BudgetConfig, clock: Callable[[], float], name: str, logger: logging.Logger) -> None:
        self.config = config
        self.clock = clock
        self.extensions = 0  # database round trips taken on the request path, for the log and the benchmark
        self._leases: dict[str, L] = {}
        self._task: asyncio.Task[None] | None = None
        self._last_sync = clock()
        self._mutex = threading.Lock()
        self._syncer = background_thread(name)  # renewals and give-backs, which no request waits for
        self._giving_back = GiveBacks()
        # A third of a lease's time to live is left for the clocks of other instances, which judge its expiry,
        # to run ahead of this one's.
        self._fresh_for = config.lease_ttl * 2 / 3
        self._name = name
        self._logger = logger

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._sync_forever(), name=self._name)

    async def sync(self) -> None:
        raise NotImplementedError

    async def _sync_forever(self) -> None:
        while True:
            await asyncio.sleep(self.config.sync_interval)
            try:
                await self.sync()
            except sa.exc.SQLAlchemyError as exc:
                self._logger.warning("%s lease sync failed: %s", self.what, type(exc).__name__)

    async def _stop_syncing(self) -> None:
        # For maintainers and the benchmark: how often a request waited for the database to extend a lease.
        self._logger.debug("%d %s lease extensions waited for on the request path", self.extensions, self.what)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _stale(self, lease: L, now: float) -> bool:
        """Whether ``lease`` is too old to admit from without the database (see the module docstring)."""
        return lease.renewed_at <= now - self._fresh_for

    def _renewed(self, now: float, keys: Iterable[str] | None = None) -> None:
        """A sync renewed this worker's leases (those of ``keys``, else all) at ``now``: those still live then.

        An expired lease stays expired: other workers may have leased its room, and only ``_extend`` sees that.
        """
        alive = now - self.config.lease_ttl
        with self._mutex:
            leases = list(self._leases.values()) if keys is None else [self._leases.get(key) for key in keys]
            for lease in leases:
                if lease is not None and lease.renewed_at > alive:
                    lease.renewed_at = max(lease.renewed_at, now)

    async def _extend(self, lease: L, need: int, context: str, *, look: bool = False) -> None:
        """Grow ``lease`` to hold ``need`` (or take a stale one up again), or raise the refusal.

        ``look``: visit the database to read the counter's figures again, unless done within ``sync_interval``.
        ``context`` is the subclass's, for its refusal.
        """
        async with lease.lock:
            with self._mutex:
                if self._leases.setdefault(lease.counter.key, lease) is not lease:
                    return  # a sync forgot this lease meanwhile, and a newer one took its place: the caller asks again
                now = self.clock()
                short = need - lease.available
                rate = lease.admitted / max(now - self._last_sync, 0.05)  # holds per second lately
                held = lease.held
                stale = self._stale(lease, now)
                look = look and lease.seen_at <= now - self.config.sync_interval
            if short <= 0 and not stale and not look:
                return
            short = max(short, 0)
            self._check(lease, need, now, context)
            want = max(short, int(rate * self.config.lease_seconds), need * 4)
            self.extensions += 1
            try:
                grant = await asyncio.to_thread(self._ask, lease, short, want, now, held)
                if not grant.granted and short and await self._giving_back.wait_for(lease.counter.key):
                    now = self.clock()
                    grant = await asyncio.to_thread(self._ask, lease, short, want, now, held)
            except sa.exc.SQLAlchemyError as exc:
                if self.config.limits_when_db_down != "allow":
                    raise LimitsUnavailable(
                        f"Tollgate cannot check {self.what} limits because its database is unreachable; "
                        "try again shortly.",
                        scope=lease.counter.scope,
                    ) from None
                unreachable = type(exc).__name__
                self._logger.error("%s limits unchecked: the database is unreachable (%s)", self.what, unreachable)
                with self._mutex:
                    lease.granted += short  # admitted on trust; never written to the database
                    lease.renewed_at = now
                return
            # Add the grant rather than copy the database's figure: a recorder batch or a give-back may be
            # committing right now, and each is applied to the local figure by its own path exactly once.
            with self._mutex:
                lease.granted += grant.granted - grant.taken_back
                lease.renewed_at = lease.seen_at = max(lease.renewed_at, now)
                self._saw(lease, grant)
                refusal = self._refused(lease, need, grant, now, context) if short and not grant.granted else None
            if grant.taken_back:
                self._logger.warning(
                    "%s lease on %s had expired and other workers leased %s of it meanwhile: its renewals failed "
                    "for longer than budget.lease_ttl",
                    self.what,
                    lease.counter.key,
                    self._amount(grant.taken_back),
                )
            if refusal is not None:
                raise refusal

    # What a subclass says.

    def _ask(self, lease: L, short: int, want: int, now: float, held: int) -> G:
        """Ask the database for between ``short`` and ``want`` more (in a thread of its own)."""
        raise NotImplementedError

    def _check(self, lease: L, need: int, now: float, context: str) -> None:
        """Refuse before asking, when no answer could admit ``need``."""

    def _saw(self, lease: L, grant: G) -> None:
        """Keep what the visit read of the counter (under ``_mutex``)."""

    def _refused(self, lease: L, need: int, grant: G, now: float, context: str) -> TollgateError:
        """The refusal of a request needing ``need`` that the database could not grant (under ``_mutex``)."""
        raise NotImplementedError

    def _amount(self, amount: int) -> str:
        return f"{amount:,}"
