"""The machine the bench runs on: are the tools there, and is anything else busy?

Other processes on the two cores (a test suite, a build) skew every number,
so the run records how busy the CPUs were just before it started and warns.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

BUSY_WARNING = 0.10  # fraction of all CPU time used by others before the run
_TOOLS = ("nginx", "wrk", "taskset")


def missing_tools() -> list[str]:
    # Debian puts nginx in /usr/sbin, which is not on a non-root user's PATH.
    return [tool for tool in _TOOLS if not shutil.which(tool) and not Path("/usr/sbin", tool).exists()]


def busy_fraction(interval_s: float = 0.5) -> float:
    """Share of CPU time not idle over `interval_s`, from /proc/stat (all CPUs)."""
    before = _cpu_times()
    time.sleep(interval_s)
    after = _cpu_times()
    total = sum(after) - sum(before)
    idle = (after[3] + after[4]) - (before[3] + before[4])  # idle + iowait
    return 0.0 if total <= 0 else 1 - idle / total


def describe(busy: float) -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "wrk": _first_line(["wrk", "-v"]),
        "nginx": _first_line([shutil.which("nginx") or "/usr/sbin/nginx", "-v"]),
        "busy_before_run": round(busy, 3),
        "load_average": os.getloadavg(),
    }


def _cpu_times() -> list[int]:
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    return [int(value) for value in fields]


def _first_line(argv: list[str]) -> str:
    try:
        completed = subprocess.run(argv, capture_output=True, text=True, timeout=5, check=False)
    except OSError as exc:
        return f"unavailable: {exc}"
    output = (completed.stdout + completed.stderr).strip()
    return output.splitlines()[0] if output else ""
