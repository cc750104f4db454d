"""The bounded soak: many requests through a real ``tollgate serve``, with faults, then the books are checked.

``python -m tests.bench.soak [--requests N] [--concurrency C] [--database sqlite|postgres]``

Everything listens on 127.0.0.1. The fake provider (``soak_provider``) answers
each request as its ``x-soak-kind`` header says; the mix (``soak_load``) is about
half JSON and half SSE, with 5% upstream 500s, 2% streams the provider drops
midway and 5% streams the client walks away from after the first chunk.
Tollgate has a blocking per-user daily limit, tight for one user, so refusals
(429) happen. While the load runs:

- at 20% of the requests, the database is unavailable for ``--outage-seconds``;
- at 60%, Tollgate is killed with SIGKILL and restarted on the same port, and
  nothing new is sent until it is ready again.

Requests past 50% and 80% wait for each fault to be over, so that both happen
under load whatever the speed. Then the rows are left to drain, Tollgate is
stopped, and ``soak_checks`` judges. Figures go to stdout; the exit status is 1
when a check fails. Every phase is bounded; ``--timeout`` bounds the whole load.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import uvloop

from proxy.config import parse_config
from proxy.limits.rules import LimitBook, compile_rules
from tests.bench.processes import Spawned, free_port, spawn
from tests.bench.soak_checks import judge, owing_rows
from tests.bench.soak_database import PostgresDatabase, SoakDatabase, SqliteDatabase, count_rows, read_back
from tests.bench.soak_load import LoadDriver, Outcome, plan_requests

logger = logging.getLogger("tests.bench.soak")

POSTGRES_URL_ENV = "TOLLGATE_TEST_POSTGRES_URL"
REPO_ROOT = Path(__file__).resolve().parents[2]
USERS = tuple(f"soak-user-{i}" for i in range(7)) + ("soak-capped",)
CAPPED_USER = USERS[-1]
# The capped user's daily limit per planned request: about a third of what its requests would cost,
# so that it is reached partway through a run of any size.
CAP_USD_PER_REQUEST = Decimal("0.00000015")
READY_TIMEOUT = 30.0  # seconds for a child to start listening
DRAIN_TIMEOUT = 60.0  # seconds for the rows to reach the database after the load
_STILL_FOR = 5.0  # seconds without a new row after which the rows are taken as drained
# Settings of the caller's shell that would quietly change what Tollgate runs.
_SCRUBBED_ENV = ("TOLLGATE_CONFIG", "TOLLGATE_DATABASE_URL", "PGOPTIONS")

_CONFIG = """\
[database]
url = "{database_url}"

[recorder]
journal_dir = "{journal_dir}"

[[providers]]
name = "soak"
base_url = "http://127.0.0.1:{provider_port}/v1"
models = ["*"]
# No retries: each upstream 500 of the mix then reaches the client as it is.
retries = 0
read_timeout = 30

[[limits]]
scope = "user"
window = "day"
max_usd = "1000"

[[limits]]
scope = "user"
id = "{capped_user}"
window = "day"
max_usd = "{cap_usd}"
"""


@dataclass(frozen=True, slots=True)
class Settings:
    requests: int = 100_000
    concurrency: int = 64
    database: str = "postgres"
    outage_seconds: float = 5.0
    timeout: float = 0.0  # seconds for the load and its faults; 0: 120 plus 10 ms a request

    @property
    def load_timeout(self) -> float:
        return self.timeout or 120 + self.requests / 100


@dataclass(slots=True)
class Timeline:
    """Moments of the run, as time.monotonic() readings (the load's outcomes use the same clock)."""

    start: float = field(default_factory=time.monotonic)
    outage: tuple[float, float] | None = None
    kill: float | None = None
    ready_again: float | None = None
    load_done: float | None = None
    drained: float | None = None


@dataclass(slots=True)
class SoakResult:
    figures: dict[str, object] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    kill_race: list[str] = field(default_factory=list)
    """Rows missing for requests answered in the instant of the kill; a failure too, told apart."""

    @property
    def passed(self) -> bool:
        return not self.failures and not self.kill_race

    def render(self) -> str:
        width = max(len(name) for name in self.figures)
        lines = [f"{name:<{width}}  {value}" for name, value in self.figures.items()]
        lines += [f"FAILED: {failure}" for failure in self.failures + self.kill_race]
        lines.append("soak: passed" if self.passed else "soak: FAILED")
        return "\n".join(lines) + "\n"


def run_soak(settings: Settings) -> SoakResult:
    """Run the whole soak and judge it; the figures and failures are returned, not printed."""
    workdir = Path(tempfile.mkdtemp(prefix="tollgate-soak-"))
    server_url = os.environ.get(POSTGRES_URL_ENV, "")
    if settings.database == "postgres" and not server_url:
        raise SystemExit(f"--database postgres needs ${POSTGRES_URL_ENV}")
    database: SoakDatabase = (
        PostgresDatabase(server_url) if settings.database == "postgres" else SqliteDatabase(workdir)
    )
    try:
        result = _run(settings, database, workdir)
    except BaseException:
        logger.error("the soak stopped short; its logs are kept in %s", workdir)
        raise
    finally:
        database.drop()
    if not result.passed:
        logger.error("the soak failed; its logs are kept in %s", workdir)
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return result


def _run(settings: Settings, database: SoakDatabase, workdir: Path) -> SoakResult:
    provider_port, port = free_port(), free_port()
    config_text = _CONFIG.format(
        database_url=database.url,
        journal_dir=workdir / "journal",
        provider_port=provider_port,
        capped_user=CAPPED_USER,
        cap_usd=CAP_USD_PER_REQUEST * settings.requests,
    )
    (workdir / "config.toml").write_text(config_text)
    book = LimitBook(compile_rules(parse_config(config_text, "soak-config.toml").limits))
    provider_argv = [sys.executable, "-m", "tests.bench.soak_provider", str(provider_port)]
    servers: list[Spawned] = []
    try:
        servers.append(spawn(provider_argv, cpus="0-1", log_path=workdir / "provider.log", cwd=REPO_ROOT))
        _wait_listening(servers[-1], provider_port)
        servers.append(_spawn_tollgate(workdir, port, 1))
        _wait_listening(servers[-1], port)
        timeline = Timeline()
        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
        with runner:
            outcomes = runner.run(_load_with_faults(settings, database, workdir, port, servers, timeline))
        timeline.load_done = time.monotonic()
        _wait_drained(database.url, len(owing_rows(outcomes, timeline.kill)))
        timeline.drained = time.monotonic()
        servers[-1].stop()  # a graceful stop: the recorder writes what it still holds
    finally:
        for server in servers:
            server.stop()
    rows, counters = read_back(database.url)
    verdict = judge(outcomes, rows, counters, book, capped_user=CAPPED_USER, killed_at=timeline.kill)
    result = SoakResult(failures=verdict.failures, kill_race=verdict.kill_race)
    result.figures.update(_run_figures(settings, database, outcomes, timeline))
    result.figures.update(verdict.figures)
    result.figures.update(_journal_figures(workdir))
    return result


async def _load_with_faults(
    settings: Settings, database: SoakDatabase, workdir: Path, port: int, servers: list[Spawned], timeline: Timeline
) -> list[Outcome]:
    n = settings.requests
    driver = LoadDriver(f"http://127.0.0.1:{port}", plan_requests(n, USERS), settings.concurrency, timeout=30)
    outage_over, restarted = driver.hold_from(n // 2), driver.hold_from(n * 4 // 5)

    async def faults() -> None:
        await driver.reached(n // 5)
        logger.info("database unavailable for %.1f s (after %d requests)", settings.outage_seconds, driver.started)
        began = time.monotonic()
        await database.unavailable(settings.outage_seconds)
        timeline.outage = (began, time.monotonic())
        outage_over.set()
        await driver.reached(n * 3 // 5)
        driver.open.clear()
        logger.info("kill -9 of tollgate (after %d requests)", driver.started)
        timeline.kill = time.monotonic()
        os.killpg(servers[-1].pid, signal.SIGKILL)
        await asyncio.to_thread(servers[-1].popen.wait)
        # Spawned here, waited for in a thread: were the load cancelled meanwhile, the new process is in
        # ``servers`` already, and is stopped with the others.
        servers.append(_spawn_tollgate(workdir, port, 2))
        await asyncio.to_thread(_wait_listening, servers[-1], port)
        timeline.ready_again = time.monotonic()
        logger.info("tollgate restarted in %.2f s", timeline.ready_again - timeline.kill)
        restarted.set()
        driver.open.set()

    # A TaskGroup: if a fault cannot be staged (Tollgate does not come back), the load is cancelled too.
    async with asyncio.timeout(settings.load_timeout), asyncio.TaskGroup() as group:
        group.create_task(faults())
        load = group.create_task(driver.run())
    return load.result()


def _spawn_tollgate(workdir: Path, port: int, generation: int) -> Spawned:
    env = {name: value for name, value in os.environ.items() if name not in _SCRUBBED_ENV}
    env["TOLLGATE_LOG_LEVEL"] = "warning"
    argv = [sys.executable, "-m", "proxy.cli", "serve", "--config", str(workdir / "config.toml"), "--port", str(port)]
    return spawn(argv, cpus="0-1", log_path=workdir / f"tollgate-{generation}.log", env=env, cwd=REPO_ROOT)


def _wait_listening(server: Spawned, port: int) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        if not server.is_running():
            raise RuntimeError(f"pid {server.pid} exited before listening: {server.log_tail()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"nothing listens on port {port} after {READY_TIMEOUT:.0f} s") from None
            time.sleep(0.02)


def _wait_drained(url: str, owed: int) -> None:
    """Until the row count reaches the rows owed and holds still, or holds still for a while, or DRAIN_TIMEOUT.

    Holding still alone ends the wait too: when rows are missing, the count never reaches what is owed.
    """
    deadline = time.monotonic() + DRAIN_TIMEOUT
    last, still_since = -1, time.monotonic()
    while time.monotonic() < deadline:
        found = count_rows(url)
        if found != last:
            last, still_since = found, time.monotonic()
        elif found >= owed or time.monotonic() - still_since > _STILL_FOR:
            return
        time.sleep(0.5)
    logger.warning("rows still arriving after %.0f s", DRAIN_TIMEOUT)


def _run_figures(
    settings: Settings, database: SoakDatabase, outcomes: Sequence[Outcome], timeline: Timeline
) -> dict[str, object]:
    def at(moment: float | None) -> str:
        return f"{moment - timeline.start:.2f}" if moment is not None else "-"

    elapsed = (timeline.load_done or timeline.start) - timeline.start
    figures: dict[str, object] = {
        "database": database.kind,
        "requests sent": len(outcomes),
        "concurrency": settings.concurrency,
        "load elapsed (s)": f"{elapsed:.1f}",
        "throughput (req/s)": f"{len(outcomes) / elapsed:.0f}" if elapsed else "-",
        "database unavailable (s from start)": " to ".join(at(m) for m in timeline.outage or (None, None)),
        "kill -9 at (s from start)": f"{at(timeline.kill)}, ready again at {at(timeline.ready_again)}",
        "rows drained at (s from start)": at(timeline.drained),
    }
    return figures


_REPLAYED = re.compile(rb"replayed (\d+) journaled usage records")
_WRITE_FAILED = re.compile(rb"writing (\d+) usage records failed")


def _journal_figures(workdir: Path) -> dict[str, object]:
    logs = b"".join(p.read_bytes() for p in sorted(workdir.glob("tollgate-*.log")))
    replays = [int(m) for m in _REPLAYED.findall(logs)]
    return {
        "journal replays (records)": f"{len(replays)} ({sum(replays)})",
        "failed batch writes": len(_WRITE_FAILED.findall(logs)),
        "journal segments left": len(list((workdir / "journal").glob("*.jsonl"))),
    }


def main(argv: Sequence[str] | None = None) -> int:
    defaults = Settings()
    parser = argparse.ArgumentParser(prog="python -m tests.bench.soak", description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=defaults.requests)
    parser.add_argument("--concurrency", type=int, default=defaults.concurrency)
    parser.add_argument("--database", choices=("sqlite", "postgres"), default=None, help="default: postgres if set")
    parser.add_argument("--outage-seconds", type=float, default=defaults.outage_seconds)
    parser.add_argument("--timeout", type=float, default=0.0, help="seconds for the load (default: by size)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    database = args.database or ("postgres" if os.environ.get(POSTGRES_URL_ENV) else "sqlite")
    settings = Settings(args.requests, args.concurrency, database, args.outage_seconds, args.timeout)
    started = time.perf_counter()
    result = run_soak(settings)
    result.figures["soak run time (s)"] = f"{time.perf_counter() - started:.1f}"
    sys.stdout.write(result.render())
    return 0 if result.passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
