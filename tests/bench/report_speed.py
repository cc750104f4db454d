"""How fast a usage report answers over many raw rows: from the rollups, and from the raw rows.

    python -m tests.bench.report_speed [--rows 10000000] [--users 1000]

Fills a fresh SQLite file through ``Store.insert_records`` (which keeps the rollups,
as the recorder does), spread over 90 days and 1,000 users (each in one team, with two agents and two
of five models),
then times ``usage_report`` grouped by user, by model and by day, this month.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from proxy.recording.records import UsageRecord
from proxy.recording.reports import usage_report
from proxy.recording.store import Store

_START = datetime(2026, 9, 1, tzinfo=UTC)
_MODELS = ("gpt-4o", "gpt-4o-mini", "gpt-4.1", "o4-mini", "text-embedding-3-small")


def _record(i: int, rng: random.Random, users: int) -> UsageRecord:
    started = _START + timedelta(seconds=rng.randrange(90 * 86_400))
    # As in real use, each user belongs to one team and works with a couple of agents and models.
    user = rng.randrange(users)
    habit = rng.randrange(2)
    return UsageRecord(
        request_id=f"r{i:012d}",
        started_at=started,
        ended_at=started,
        method="POST",
        endpoint="/v1/chat/completions",
        provider="openai",
        model_requested=_MODELS[(user + habit) % len(_MODELS)],
        model_served=None,
        stream=False,
        status=200,
        user_id=f"user-{user}",
        team_id=f"team-{user % 17}",
        thread_id=None,
        agent=f"agent-{(user + rng.randrange(2)) % 20}",
        key_name=None,
        tags=None,
        input_tokens=rng.randrange(2_000),
        cached_input_tokens=0,
        cache_write_tokens=0,
        cache_write_1h_tokens=0,
        output_tokens=rng.randrange(500),
        reasoning_tokens=0,
        audio_input_tokens=0,
        audio_output_tokens=0,
        service_tier=None,
        cost_pico=rng.randrange(10**9),
        unpriced=False,
        usage_source="reported",
        latency_ms=1.0,
        ttfb_ms=1.0,
        error_type=None,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.report_speed")
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--users", type=int, default=1_000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tollgate-report-") as folder:
        store = Store(f"sqlite:///{Path(folder) / 'report.db'}")
        store.create_tables()
        rng = random.Random(7)
        started = time.perf_counter()
        batch: list[UsageRecord] = []
        for i in range(args.rows):
            batch.append(_record(i, rng, args.users))
            if len(batch) == 5_000:
                store.insert_records(batch)
                batch.clear()
        if batch:
            store.insert_records(batch)
        print(f"filled {args.rows:,} rows in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        month = datetime(2026, 11, 1, tzinfo=UTC)
        print(f"{'report':<28} {'rollups s':>10} {'raw rows s':>11}")
        for name, group, since in (
            ("by user, all time", "user", None),
            ("by model, this month", "model", month),
            ("by day, all time", "day", None),
        ):
            timings = []
            for use_rollups in (True, False):
                t = time.perf_counter()
                rows = usage_report(store, group, since=since, use_rollups=use_rollups)
                timings.append(time.perf_counter() - t)
                assert rows
            print(f"{name:<28} {timings[0]:>10.3f} {timings[1]:>11.3f}")
        store.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
