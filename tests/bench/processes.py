"""Child processes of the benchmark: spawn pinned, measure, and always stop.

Every child gets its own session (so its process group can be signalled as a
whole, including uvicorn's worker processes) and is pinned to CPUs with
`taskset`, which execs the command so the pid we hold is the server's own.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

logger = logging.getLogger("tests.bench.processes")

_STOP_GRACE_S = 10.0


class ProcessFailed(RuntimeError):
    """A child exited or never got ready: the message ends with its last line of output, `log_tail` has more."""

    def __init__(self, what: str, process: Spawned) -> None:
        self.log_tail = process.log_tail()
        last_line = self.log_tail.splitlines()[-1].strip() if self.log_tail else "(no output)"
        super().__init__(f"{what}: {last_line}")


class Spawned:
    """A running child process group; a context manager that stops it on exit."""

    def __init__(self, popen: subprocess.Popen[bytes], log_path: Path, started_at: float) -> None:
        self.popen = popen
        self.log_path = log_path
        self.started_at = started_at

    @property
    def pid(self) -> int:
        return self.popen.pid

    def is_running(self) -> bool:
        return self.popen.poll() is None

    def peak_rss_bytes(self) -> int:
        """VmHWM summed over the process tree (a supervisor and its workers)."""
        return sum(_peak_rss_bytes(pid) for pid in process_tree(self.pid))

    def cpu_seconds(self) -> float:
        """User and system CPU time used so far, summed over the process tree (a supervisor and its workers)."""
        return sum(_cpu_seconds(pid) for pid in process_tree(self.pid))

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM the whole group, then SIGKILL what is left after a grace period."""
        if not _signal_group(self.pid, signal.SIGTERM):
            self.popen.wait()
            return
        try:
            self.popen.wait(timeout=_STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            logger.warning("pid %d ignored SIGTERM for %.0f s, killing it", self.pid, _STOP_GRACE_S)
        # Workers may outlive their supervisor; the group signal reaches them too.
        _signal_group(self.pid, signal.SIGKILL)
        self.popen.wait()

    def __enter__(self) -> Spawned:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def spawn(
    argv: Sequence[str], *, cpus: str, log_path: Path, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> Spawned:
    """Start `argv` pinned to `cpus` (taskset syntax), output to `log_path`."""
    full_env = {**os.environ, **(env or {})}
    with log_path.open("wb") as log:
        started_at = time.perf_counter()
        popen = subprocess.Popen(
            ["taskset", "-c", cpus, *argv],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=full_env,
            cwd=cwd,
            start_new_session=True,
        )
    logger.debug("spawned pid %d on cpus %s: %s", popen.pid, cpus, " ".join(argv))
    return Spawned(popen, log_path, started_at)


def process_tree(root: int) -> list[int]:
    """`root` and all its descendants, found by scanning /proc for parent pids."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # exited while we looked
        # The command name may contain spaces and parentheses: fields start after the last ')'.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    tree, pending = [], [root]
    while pending:
        pid = pending.pop()
        tree.append(pid)
        pending.extend(children.get(pid, []))
    return tree


def pin(pids: Sequence[int], cpus: set[int]) -> None:
    for pid in pids:
        os.sched_setaffinity(pid, cpus)


def free_port() -> int:
    """A port the kernel says is free now; a race with other programs is possible but rare on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _cpu_seconds(pid: int) -> float:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0  # exited while we looked
    fields = stat.rsplit(")", 1)[1].split()  # utime and stime are fields 14 and 15, in clock ticks
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _peak_rss_bytes(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024  # the kernel reports kB
    return 0  # kernel threads have no memory lines


def _signal_group(pgid: int, signum: signal.Signals) -> bool:
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        return False
    return True
