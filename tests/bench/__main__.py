"""`python -m tests.bench`: run every target in one go and print how they compare.

Progress goes to stderr, the tables to stdout, the full results to
`tests/bench/results/<timestamp>.json` (and `--json PATH`). Exits 1 when a
goal fails or its target could not be measured, 0 otherwise.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

from tests.bench.goals import default_goals, judge
from tests.bench.machine import BUSY_WARNING, busy_fraction, describe, missing_tools
from tests.bench.processes import ProcessFailed
from tests.bench.report import as_json, render_report, write_json
from tests.bench.runner import Settings, measure
from tests.bench.targets import lineup
from tests.bench.upstream import Mode, start_upstream

logger = logging.getLogger("tests.bench")

RESULTS_DIR = Path(__file__).parent / "results"
MODES: tuple[Mode, ...] = ("json", "sse", "anthropic-sse")
DEFAULT_MODES: tuple[Mode, ...] = ("json", "sse")  # anthropic-sse when asked for


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S", stream=sys.stderr)
    _check_machine()
    busy = busy_fraction()
    if busy > BUSY_WARNING:
        logger.warning("other processes use %.0f%% of the CPUs: expect noisy numbers", busy * 100)
    # SIGTERM unwinds like Ctrl-C, so every `finally` stops what it started.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    settings = Settings(duration_s=args.duration, warmup_s=args.warmup)
    targets = [t for t in lineup(os.environ) if not args.only or t.name in args.only]
    modes = [m for m in MODES if m in (args.modes or DEFAULT_MODES)]
    started_at, started = datetime.now(UTC), time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="tollgate-bench-"))
    try:
        (workdir / "nginx").mkdir()
        upstream = start_upstream(workdir / "nginx", cpus="1")
        with upstream.process:
            measurements = [
                measure(target, mode, upstream, settings, workdir / f"{target.name}-{mode}")
                for mode in modes
                for target in targets
            ]
    except KeyboardInterrupt:
        logger.error("interrupted; every process started was stopped")
        return 130
    except ProcessFailed as exc:  # nginx itself: nothing can be measured
        logger.error("%s\n%s", exc, exc.log_tail)
        return 2
    finally:
        if args.keep:
            logger.info("configs and server logs kept in %s", workdir)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    verdicts = judge(default_goals(), measurements)
    sys.stdout.write(render_report(measurements, verdicts, markdown=args.markdown))
    document = {
        "started_at": started_at.isoformat(),
        "run_s": round(time.perf_counter() - started, 1),
        "settings": {**dataclasses.asdict(settings), "modes": modes, "targets": [t.name for t in targets]},
        "machine": describe(busy),
        **as_json(measurements, verdicts),
    }
    paths = [RESULTS_DIR / f"{started_at:%Y%m%dT%H%M%SZ}.json", *([args.json] if args.json else [])]
    for path in paths:
        write_json(path, document)
    logger.info("run took %.0f s; results in %s", document["run_s"], ", ".join(map(str, paths)))
    return 1 if any(v.result in ("FAIL", "ERROR") for v in verdicts) else 0


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__)
    parser.add_argument("--duration", type=float, help="seconds per measured wrk run (default 10, --quick 3)")
    parser.add_argument("--warmup", type=float, help="seconds of warm-up per target (default 2, --quick 1)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: short runs, same checks")
    parser.add_argument("--only", type=_names, help="comma-separated targets, e.g. direct,bare,tollgate")
    parser.add_argument("--modes", type=_names, help="json, sse, anthropic-sse, comma-separated (default json,sse)")
    parser.add_argument("--markdown", action="store_true", help="print the tables as Markdown")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (configs, server logs)")
    args = parser.parse_args(argv)
    if args.duration is None:
        args.duration = 3.0 if args.quick else 10.0
    if args.warmup is None:
        args.warmup = 1.0 if args.quick else 2.0
    known = {t.name for t in lineup(os.environ)}
    for name in args.only or []:
        if name not in known:
            parser.error(f"unknown target {name!r}; known: {', '.join(sorted(known))}")
    for mode in args.modes or []:
        if mode not in MODES:
            parser.error(f"unknown mode {mode!r}; known: {', '.join(MODES)}")
    return args


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def _check_machine() -> None:
    missing = missing_tools()
    if missing:
        sys.exit(f"missing {', '.join(missing)}: apt-get install -y nginx-light wrk util-linux")
    if not {0, 1} <= os.sched_getaffinity(0):
        sys.exit("the bench pins servers to CPU 0 and wrk to CPU 1; this process may not use both")


def _exit_on_signal(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


if __name__ == "__main__":
    sys.exit(main())
