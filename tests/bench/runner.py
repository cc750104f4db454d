"""Measuring one target in one mode: start, warm up, latency, throughput, drain.

The order matters: latency at one connection comes right after the warm-up,
and the throughput run comes last so the drain measured after it is the one
after full load. RSS is read just before the server is stopped, so VmHWM
covers the whole of its work.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from tests.bench.processes import ProcessFailed, Spawned
from tests.bench.recording import Database, open_database, settle_rows, wait_for_rows
from tests.bench.results import Measurement, Recording
from tests.bench.targets import Target, launch, wait_ready
from tests.bench.upstream import Mode, Upstream
from tests.bench.wrk import WrkResult, render_script, run_wrk

logger = logging.getLogger("tests.bench.runner")

SERVER_CPUS = {0}
LOAD_CPUS = {1}  # wrk, and nginx when it is not the target


@dataclass(frozen=True)
class Settings:
    duration_s: float = 10.0
    warmup_s: float = 2.0
    connections: int = 32
    ready_timeout_s: float = 30.0
    drain_timeout_s: float = 10.0


def measure(target: Target, mode: Mode, upstream: Upstream, settings: Settings, workdir: Path) -> Measurement:
    """Everything about one (target, mode); failures land in `Measurement.error`, Ctrl-C propagates."""
    result = Measurement(target.name, mode, workers=target.workers, skipped=target.skip)
    if target.skip:
        logger.info("%s %s: skipped (%s)", target.name, mode, target.skip)
        return result
    workdir.mkdir(parents=True)
    try:
        with contextlib.ExitStack() as stack:
            _measure(target, mode, upstream, settings, workdir, result, stack)
    except ProcessFailed as exc:
        logger.error("%s %s: %s; its last output:\n%s", target.name, mode, exc, exc.log_tail)
        result.error = str(exc)
    except Exception as exc:  # one broken target must not lose the other rows
        logger.error("%s %s: %s", target.name, mode, exc)
        result.error = f"{type(exc).__name__}: {exc}"
    return result


def _measure(
    target: Target,
    mode: Mode,
    upstream: Upstream,
    settings: Settings,
    workdir: Path,
    result: Measurement,
    stack: contextlib.ExitStack,
) -> None:
    database: Database | None = None
    if target.database:
        database = open_database(target.database, workdir)
        stack.callback(database.close)
    if target.command:
        upstream.pin(LOAD_CPUS)
        server, url = launch(target, upstream=upstream.base_url(mode), workdir=workdir, database=database)
        stack.enter_context(server)
        result.ready_s = wait_ready(target, server, url, timeout_s=settings.ready_timeout_s)
        logger.info("%s %s: ready in %.3f s", target.name, mode, result.ready_s)
    else:
        upstream.pin(SERVER_CPUS)
        server, url = upstream.process, upstream.base_url(mode)

    script = workdir / f"{mode}.lua"
    script.write_text(render_script(mode))
    runs: list[WrkResult] = []

    def drive(label: str, connections: int, duration_s: float, latency: bool = False) -> WrkResult:
        logger.info("%s %s: %s, %d connection(s), %g s", target.name, mode, label, connections, duration_s)
        run = run_wrk(url, script, connections=connections, duration_s=duration_s, latency=latency)
        runs.append(run)
        return run

    drive("warm-up", settings.connections, settings.warmup_s)
    result.latency_ms = drive("latency", 1, settings.duration_s, latency=True).latency_ms
    cpu_before = server.cpu_seconds()
    throughput = drive("throughput", settings.connections, settings.duration_s)
    if throughput.responses:
        result.cpu_us_per_request = (server.cpu_seconds() - cpu_before) / throughput.responses * 1e6
    stopped_at = time.perf_counter()
    if not server.is_running():
        raise ProcessFailed(f"{target.name} exited during the run", server)
    result.requests_per_s = throughput.requests_per_s
    result.non_2xx = sum(run.non_2xx for run in runs)
    result.socket_errors = sum(run.socket_errors for run in runs)
    if database is not None:
        result.recording = _check_recording(database, runs, since=stopped_at, timeout_s=settings.drain_timeout_s)
    result.peak_rss_mib = _peak_rss_mib(server)


def _check_recording(database: Database, runs: list[WrkResult], *, since: float, timeout_s: float) -> Recording:
    responses = sum(run.responses for run in runs)
    sent = sum(run.sent if run.sent is not None else run.responses for run in runs)
    caught_up_s = wait_for_rows(database, responses, since=since, timeout_s=timeout_s)
    rows, last_row_s = settle_rows(database, since=since)
    drain_s = None if caught_up_s is None else max(caught_up_s, last_row_s)
    logger.info("recording: %d rows for %d responses (%d sent), drain %s", rows, responses, sent, _seconds(drain_s))
    return Recording(database.kind, rows, responses, sent, drain_s)


def _peak_rss_mib(process: Spawned) -> float:
    return process.peak_rss_bytes() / 2**20


def _seconds(value: float | None) -> str:
    return "never" if value is None else f"{value:.3f} s"
