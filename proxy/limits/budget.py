"""Admission against blocking spend limits: reserve before forwarding, settle after.

Each worker process keeps a *lease* per counter: budget it took from the database
(``proxy.limits.ledger``), kept as ``proxy.limits.leases`` describes. A request is admitted
when every blocking counter it touches has room in the lease for the request's cost bound;
that check is local, so most requests cost no database round trip. When a lease runs short
the worker asks the database for more, sized to its recent traffic and never more than half
of what the limit still leaves. Budget taken from a lease but for a request's bound is never
lent twice: its cost stays held (``unwritten``) until the recorder has written it.

Refusals are ``SpendLimitExceeded`` (429, an OpenAI quota error that the SDKs do not retry).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from pricing import pico_to_usd
from proxy.config import BudgetConfig
from proxy.errors import SpendLimitExceeded
from proxy.limits.leases import Lease, LeaseKeeper
from proxy.limits.ledger import Charge, LeaseGrant, Ledger
from proxy.limits.rules import Counter
from proxy.limits.windows import seconds_until

logger = logging.getLogger("tollgate.budget")


@dataclass(slots=True)
class _Lease(Lease):
    """Picodollars: ``granted`` on the counter, ``in_flight`` the bounds of admitted requests still running."""

    counter: Counter
    unwritten: int = 0  # costs of finished requests the recorder has not written yet
    spent_seen: int = 0  # the counter's spend at the last visit to the database
    others_seen: int = 0  # other workers' leases at that visit

    @property
    def held(self) -> int:
        return self.in_flight + self.unwritten

    @property
    def remaining(self) -> int:
        """What the limit still leaves, as far as this worker knows."""
        assert self.counter.block_pico is not None
        return self.counter.block_pico - self.spent_seen - self.others_seen - self.in_flight - self.unwritten


@dataclass(frozen=True, slots=True)
class Admission:
    """What a request was admitted with; settled once its cost is known."""

    counters: tuple[Counter, ...]
    bound: int
    leased: tuple[str, ...]
    """Keys of the counters whose leases hold ``bound`` for this request."""
    remaining_pico: int | None
    """Budget left on the tightest blocking limit, or None when no blocking limit applies."""


UNLIMITED = Admission(counters=(), bound=0, leased=(), remaining_pico=None)


class BudgetKeeper(LeaseKeeper[_Lease, LeaseGrant]):
    what = "spend"

    def __init__(self, ledger: Ledger, config: BudgetConfig, clock: Callable[[], float] = time.time) -> None:
        super().__init__(config, clock, "tollgate-budget", logger)
        self.ledger = ledger
        # Counter key -> when this worker last refused a request on it: the admin API shows such a limit
        # as refusing even while some budget is left (too little for the requests that come).
        self.last_refused: dict[str, float] = {}
        self._returns: dict[str, int] = {}  # budget taken out of leases under a lowered limit, for the next sync

    async def close(self) -> None:
        await self._stop_syncing()
        returns = {key: lease.available for key, lease in self._leases.items() if lease.available > 0}
        for key, amount in self._returns.items():
            returns[key] = returns.get(key, 0) + amount
        with contextlib.suppress(sa.exc.SQLAlchemyError):
            await asyncio.to_thread(self.ledger.give_back, returns)
        self._syncer.shutdown()

    def admit_now(self, counters: Sequence[Counter], bound: int) -> Admission | None:
        """Reserve ``bound`` on every blocking counter from the leases in hand; None if one must grow first."""
        blocking = [c for c in counters if c.block_pico is not None]
        if not blocking:
            return Admission(tuple(counters), bound, (), None)
        # A request that costs nothing (a model listing) still needs the limit not to be spent: past a limit,
        # everything is refused.
        need = max(bound, 1)
        now = self.clock()
        with self._mutex:
            leases = [self._lease(c) for c in blocking]
            if any(lease.available < need or self._stale(lease, now) for lease in leases):
                return None
            # Reserved on all of them at once, under the lock: no other request can take the room meanwhile.
            for lease in leases:
                lease.in_flight += bound
                lease.admitted += bound
            remaining = min(lease.remaining for lease in leases)
        return Admission(tuple(counters), bound, tuple(lease.counter.key for lease in leases), remaining)

    async def admit(self, counters: Sequence[Counter], bound: int, explain_bound: str) -> Admission:
        """Reserve ``bound`` on every blocking counter, growing leases as needed, or raise ``SpendLimitExceeded``.

        Runs on the keeper's event loop (its leases' locks belong to it).
        """
        need = max(bound, 1)
        while True:
            admission = self.admit_now(counters, bound)
            if admission is not None:
                return admission
            # Grow every lease short of room (or renew a stale one); then try again, for a concurrent request
            # may have taken the room.
            now = self.clock()
            with self._mutex:
                leases = [self._lease(c) for c in counters if c.block_pico is not None]
                short = [lease for lease in leases if lease.available < need or self._stale(lease, now)]
            for lease in short:
                await self._extend(lease, need, explain_bound)

    def held_back(self, counters: Sequence[Counter], bound: int) -> bool:
        """Whether ``bound`` would fit on every blocking counter once the requests in flight are settled.

        A request of a burst can be refused only because others hold their bounds for a moment; it
        is worth waiting for them rather than refusing while the budget covers it.
        """
        with self._mutex:
            for counter in counters:
                if counter.block_pico is None:
                    continue
                lease = self._leases.get(counter.key)
                # Not spent_seen + unwritten: for a moment after a batch commits, both hold its costs.
                spent = lease.spent_seen if lease is not None else 0
                if counter.block_pico - spent < bound:
                    return False
        return True

    async def look_again(self, counters: Sequence[Counter]) -> None:
        """Read again what the blocking limits on ``counters`` have spent and what other workers hold.

        For a request waiting for budget to come back (``proxy.second_look``): at most one visit to
        the database per counter and ``sync_interval``, however many requests wait.
        """
        for counter in counters:
            if counter.block_pico is None:
                continue
            with self._mutex:
                lease = self._lease(counter)
            await self._extend(lease, 0, "", look=True)

    def least_room(self, counters: Sequence[Counter]) -> int:
        """What the tightest blocking limit among ``counters`` leaves, as this worker knows it (no database)."""
        rooms = [self.room(c) for c in counters if c.block_pico is not None]
        return min(rooms) if rooms else 1 << 62

    def room(self, counter: Counter) -> int:
        """What the blocking limit on ``counter`` leaves, as this worker last saw it (fresh after a refusal)."""
        assert counter.block_pico is not None
        with self._mutex:
            lease = self._leases.get(counter.key)
            return lease.remaining if lease is not None else counter.block_pico

    def remaining(self, admission: Admission) -> int | None:
        """What the tightest blocking limit of ``admission`` leaves now, as this worker knows it."""
        if admission.remaining_pico is None:
            return None
        known = [lease.remaining for key in admission.leased if (lease := self._leases.get(key)) is not None]
        return min(known) if known else admission.remaining_pico

    def settle(self, admission: Admission, cost_pico: int) -> tuple[Charge, ...]:
        """The request is done: free its hold, and return the charges for the recorder to write."""
        with self._mutex:
            for key in admission.leased:
                lease = self._leases.get(key)
                if lease is not None:
                    lease.in_flight -= admission.bound
                    lease.unwritten += cost_pico
        leased = set(admission.leased)
        return tuple(Charge(c.key, cost_pico, c.key in leased, c) for c in admission.counters)

    def written(self, charges: Sequence[Charge], spent: dict[str, int]) -> None:
        """The recorder wrote ``charges``: the database moved them from this worker's leases into spend."""
        with self._mutex:
            for charge in charges:
                lease = self._leases.get(charge.counter_key)
                if lease is None:
                    continue
                if charge.leased:
                    lease.granted -= charge.pico
                    lease.unwritten -= charge.pico
                if charge.counter_key in spent:
                    lease.spent_seen = spent[charge.counter_key]

    def dropped(self, charges: Sequence[Charge]) -> None:
        """``charges`` will never be written (their record was set aside): stop holding their cost."""
        with self._mutex:
            for charge in charges:
                lease = self._leases.get(charge.counter_key)
                if lease is not None and charge.leased:
                    lease.unwritten -= charge.pico

    def _lease(self, counter: Counter) -> _Lease:
        lease = self._leases.get(counter.key)
        if lease is None:
            lease = self._leases[counter.key] = _Lease(counter)
        elif lease.counter is not counter:
            # The limits were rebuilt (a reload, a runtime limit): the limit on this counter may have changed.
            # Under a lower one, budget leased under the old one must not admit another request: it goes back.
            old, lease.counter = lease.counter.block_pico, counter
            if old is not None and counter.block_pico is not None and counter.block_pico < old and lease.available > 0:
                self._returns[counter.key] = self._returns.get(counter.key, 0) + lease.available
                lease.granted -= lease.available
        return lease

    def _ask(self, lease: _Lease, short: int, want: int, now: float, held: int) -> LeaseGrant:
        counter = lease.counter
        assert counter.block_pico is not None
        return self.ledger.lease(counter.key, counter.block_pico, short, want, now, self.config.lease_ttl, held)

    def _saw(self, lease: _Lease, grant: LeaseGrant) -> None:
        lease.spent_seen = grant.spent
        lease.others_seen = grant.others

    def _refused(self, lease: _Lease, need: int, grant: LeaseGrant, now: float, context: str) -> SpendLimitExceeded:
        return self._refusal(lease, need, context)

    def _amount(self, amount: int) -> str:
        return f"${pico_to_usd(amount)}"

    def _refusal(self, lease: _Lease, bound: int, explain_bound: str) -> SpendLimitExceeded:
        counter = lease.counter
        if len(self.last_refused) > 10_000:  # ids come from clients: bound the memory
            self.last_refused.clear()
        self.last_refused[counter.key] = self.clock()
        assert counter.block_pico is not None
        now = datetime.fromtimestamp(self.clock(), UTC)
        retry_after = seconds_until(counter.end, now)
        spent = pico_to_usd(lease.spent_seen + lease.in_flight + lease.unwritten)
        held = pico_to_usd(lease.others_seen)
        limit = pico_to_usd(counter.block_pico)
        remaining = max(lease.remaining, 0)
        resets = f"resets at {counter.end:%Y-%m-%dT%H:%M:%SZ}" if counter.end is not None else "never resets"
        message = (
            f"Spend limit reached for {counter.describe()}: ${_money(spent)} spent and ${_money(held)} held by "
            f"requests in flight, of a ${_money(limit)} limit; the window {resets}. This request could cost up to "
            f"${_money(pico_to_usd(bound))} ({explain_bound}), more than the ${_money(pico_to_usd(remaining))} left. "
            "Limits are hard, so a request is admitted only if its largest possible cost fits: "
            "set max_tokens (or max_completion_tokens / max_output_tokens) to lower the bound."
        )
        headers = {"x-should-retry": "false", "x-tollgate-limit-remaining-usd": _money(pico_to_usd(remaining))}
        if retry_after is not None:
            headers["retry-after"] = str(retry_after)
        return SpendLimitExceeded(message, headers=headers, scope=counter.scope)

    async def sync(self) -> None:
        """Renew leases, give back idle budget, forget leases of windows that ended."""
        now = self.clock()
        ended = datetime.fromtimestamp(now, UTC)
        with self._mutex:
            if not self._leases and not self._returns:
                self._last_sync = now
                return  # nothing leased: nothing to renew or give back, and no write to the database
            returns, self._returns = self._returns, {}
            for key, lease in list(self._leases.items()):
                idle = lease.admitted == 0
                target = int(lease.admitted / max(now - self._last_sync, 0.05) * self.config.lease_seconds)
                excess = lease.available if idle else lease.available - 2 * target
                if excess > 0 and lease.lock.locked() is False:
                    returns[key] = returns.get(key, 0) + excess
                    lease.granted -= excess
                lease.admitted = 0
                window_over = lease.counter.end is not None and lease.counter.end <= ended
                empty = lease.in_flight == 0 and lease.unwritten == 0 and lease.granted <= 0
                # Not while it is being extended: the grant would land in a lease no one holds, and the budget
                # it stands for would stay leased in the database, refusing requests that fit.
                if (window_over or idle) and empty and not lease.lock.locked():
                    del self._leases[key]
            self._last_sync = now
        await self._giving_back.write(self._syncer, self._write_sync, returns, now)
        self._renewed(now)

    def _write_sync(self, returns: dict[str, int], now: float) -> None:
        self.ledger.give_back(returns)
        self.ledger.renew(now, self.config.lease_ttl)


def _money(amount: object) -> str:
    """Dollars for messages: at least cents, more digits when the amount is smaller."""
    text = f"{amount:f}"
    whole, _, frac = text.partition(".")
    frac = frac.rstrip("0")
    return f"{whole}.{frac.ljust(2, '0')}" if frac else f"{whole}.00"
