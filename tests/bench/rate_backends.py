"""What a rate-limit check costs on each backend Tollgate could keep it in: the measurement behind the choice.

Two figures per backend, on loopback:

- one *round trip* that takes room on a counter atomically, median and 99th percentile over ``--trips``:
  SQLite and PostgreSQL run ``RateLedger.lease`` (a locked read and an upsert); Redis runs the one
  Lua script a Redis backend would need (``INCRBY`` unless it would pass the limit, with the minute's
  expiry), over a bare RESP connection;
- the *request path* with leases: two keepers (two workers) sharing the database admit ``--admissions``
  requests under a large limit; how many of them waited for the database, and the mean cost of one.

Run: ``python -m tests.bench.rate_backends`` (PostgreSQL from ``$TOLLGATE_TEST_POSTGRES_URL``; Redis on
127.0.0.1:6379).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import tempfile
import time
from collections.abc import Callable

from proxy.attribution import Attribution
from proxy.config import BudgetConfig, parse_config
from proxy.limits.rate_keeper import RateKeeper
from proxy.limits.rate_ledger import RateLedger
from proxy.limits.rates import RateBook, compile_rate_rules
from proxy.recording.store import Store
from tests.limits.rate_burst import postgres_schema

_TAKE = (
    "local v = redis.call('INCRBY', KEYS[1], ARGV[1]) "
    "if v > tonumber(ARGV[2]) then redis.call('DECRBY', KEYS[1], ARGV[1]) return 0 end "
    "redis.call('EXPIRE', KEYS[1], 70) return 1"
)


class _Resp:
    """Just enough of the Redis protocol for EVAL and DEL."""

    def __init__(self, host: str = "127.0.0.1", port: int = 6379) -> None:
        self.sock = socket.create_connection((host, port))
        self.file = self.sock.makefile("rb")

    def call(self, *args: str) -> bytes:
        out = f"*{len(args)}\r\n" + "".join(f"${len(a.encode())}\r\n{a}\r\n" for a in args)
        self.sock.sendall(out.encode())
        line = self.file.readline()
        if line.startswith(b"-"):
            raise RuntimeError(line.decode().strip())
        return line

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def _timed(trips: int, one: Callable[[int], object]) -> tuple[float, float]:
    times = []
    for i in range(trips):
        started = time.perf_counter()
        one(i)
        times.append((time.perf_counter() - started) * 1e6)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.99) - 1]


def _ledger_trips(url: str, trips: int) -> tuple[float, float]:
    store = Store(url)
    store.create_tables()
    ledger = RateLedger(store, "bench")
    now = time.time()
    try:
        return _timed(trips, lambda i: ledger.lease(f"requests:user:u{i % 50}@1", 10**9, 1, 1, now + 60, now))
    finally:
        store.dispose()


def _redis_trips(trips: int) -> tuple[float, float]:
    redis = _Resp()
    try:
        result = _timed(trips, lambda i: redis.call("EVAL", _TAKE, "1", f"tollgate:bench:u{i % 50}", "1", "1000000000"))
        redis.call("DEL", *(f"tollgate:bench:u{i}" for i in range(50)))
        return result
    finally:
        redis.close()


def _request_path(url: str, admissions: int) -> tuple[int, float]:
    """(admissions that waited for the database, mean microseconds per admission) with two keepers."""
    store = Store(url)
    store.create_tables()
    book = RateBook(
        compile_rate_rules(
            parse_config('[[rate_limits]]\nscope = "user"\nrequests_per_minute = 100000000\n').rate_limits
        )
    )
    keepers = [RateKeeper(RateLedger(store, f"worker-{i}"), BudgetConfig()) for i in range(2)]

    async def admit_all() -> float:
        started = time.perf_counter()
        for i in range(admissions):
            keeper = keepers[i % 2]
            counters = book.counters(Attribution(user="alice"), None, time.time())
            hold = keeper.admit_now(counters, 0) or await keeper.admit(counters, 0, "openai")
            keeper.settle(hold, 0)
            if i % 2000 == 1999:
                await asyncio.gather(*(k.sync() for k in keepers))  # what the background task does
        return time.perf_counter() - started

    try:
        elapsed = asyncio.run(admit_all())
        return sum(k.extensions for k in keepers), elapsed / admissions * 1e6
    finally:
        store.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trips", type=int, default=1000)
    parser.add_argument("--admissions", type=int, default=20000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder, postgres_schema(os.environ["TOLLGATE_TEST_POSTGRES_URL"]) as pg:
        sqlite_url = f"sqlite:///{folder}/bench.db"
        print(f"one atomic take on a counter, {args.trips} round trips (median / p99 microseconds):")
        trips: list[tuple[str, Callable[[], tuple[float, float]]]] = [
            ("sqlite", lambda: _ledger_trips(sqlite_url, args.trips)),
            ("postgres", lambda: _ledger_trips(pg, args.trips)),
            ("redis", lambda: _redis_trips(args.trips)),
        ]
        for name, trip in trips:
            median, p99 = trip()
            print(f"  {name:9} {median:8.0f} / {p99:8.0f}")
        print(f"request path with leases, two workers, {args.admissions} admissions:")
        for name, url in (("sqlite", sqlite_url), ("postgres", pg)):
            waited, mean = _request_path(url, args.admissions)
            print(f"  {name:9} {waited} waited for the database ({waited / args.admissions:.3%}), {mean:.1f} us each")


if __name__ == "__main__":
    main()
