"""Seconds from ``tollgate serve`` to its first 200 on ``/readyz``, on a database that is already current.

``python -m tests.recording.migrations.start_time [--runs N] [--postgres URL]`` (from the repository root) prints
the median and the range over N starts, and the median CPU time the server used until then (Linux):
on a shared machine the CPU time moves far less than the wall time. The first start, which creates
the database, is not counted.
"""

from __future__ import annotations

import argparse
import http.client
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.fakeprovider import free_port


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def measure_start(config: Path) -> tuple[float, float]:
    """Wall and CPU seconds until ``/readyz`` answers 200; the server is stopped afterwards."""
    port = free_port()
    started = time.perf_counter()
    env = {**os.environ, "TOLLGATE_LOG_LEVEL": "warning"}
    command = [sys.executable, "-m", "proxy.cli", "serve", "--config", str(config), "--port", str(port)]
    with subprocess.Popen(command, env=env) as process:
        try:
            while time.perf_counter() - started < 30:
                if process.poll() is not None:
                    raise RuntimeError(f"tollgate serve exited with {process.returncode}")
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
                try:
                    connection.request("GET", "/readyz")
                    if connection.getresponse().status == 200:
                        return time.perf_counter() - started, _cpu_seconds(process.pid)
                except OSError:
                    pass
                finally:
                    connection.close()
                time.sleep(0.005)
            raise RuntimeError("tollgate serve not ready after 30 s")
        finally:
            process.terminate()
            process.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--postgres", help="a PostgreSQL URL to start against instead of a fresh SQLite file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url = args.postgres or f"sqlite:///{folder}/tollgate.db"
        config = Path(folder) / "config.toml"
        config.write_text(
            f'[database]\nurl = "{url}"\n[recorder]\njournal_dir = "{folder}/journal"\n'
            '[[providers]]\nname = "fake"\nbase_url = "http://127.0.0.1:9/v1"\n'
        )
        measure_start(config)  # creates (or upgrades) the database
        starts = [measure_start(config) for _ in range(args.runs)]
    times = sorted(wall for wall, _ in starts)
    cpu = statistics.median(cpu for _, cpu in starts)
    sys.stdout.write(
        f"ready in {statistics.median(times):.3f} s median ({times[0]:.3f} to {times[-1]:.3f}, {args.runs} starts), "
        f"{cpu:.3f} s of CPU\n"
    )


if __name__ == "__main__":
    main()
