"""The targets: what is measured, as (name, command, config) records.

A target's command and config are templates filled in at launch:

- `{python}`, `{tollgate}`: this interpreter and the `tollgate` next to it;
- `{port}`: a free port on 127.0.0.1;
- `{upstream}`: the nginx base URL (JSON or SSE server, by mode);
- `{config}`: the path of the rendered config file;
- `{database_url}`: the usage store's URL (config only).

Literal braces in a template are doubled, as for `str.format`. To add a row,
add a `Target` to `lineup()`; `goals.py` says which rows are judged and how.
"""

from __future__ import annotations

import http.client
import os
import shutil
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tests.bench.processes import ProcessFailed, Spawned, free_port, spawn
from tests.bench.recording import POSTGRES_URL_ENV, Database

REPO_ROOT = Path(__file__).resolve().parents[2]

TOLLGATE_CONFIG_WITHOUT_LIMITS = """\
[database]
url = "{database_url}"

[recorder]
journal_dir = "{journal_dir}"

[[providers]]
name = "bench"
base_url = "{upstream}/v1"
models = ["*"]

# Only the anthropic-sse mode's requests (POST /v1/messages) go here.
[[providers]]
name = "bench-anthropic"
kind = "anthropic"
base_url = "{upstream}"
models = ["*"]
"""
# A blocking limit on the bench's user that is never reached: every request pays
# for reserving and settling, none is refused.
TOLLGATE_CONFIG = (
    TOLLGATE_CONFIG_WITHOUT_LIMITS
    + """
[[limits]]
scope = "user"
id = "*"
window = "day"
max_usd = "1000000"
action = "block"
"""
)

# Settings of the caller's shell that would quietly change what Tollgate runs.
_SCRUBBED_ENV = ("TOLLGATE_CONFIG", "TOLLGATE_DATABASE_URL", "PGOPTIONS")
_POLL_S = 0.01


@dataclass(frozen=True)
class Target:
    name: str
    command: tuple[str, ...]  # empty: the target is the nginx upstream itself
    config: str | None = None
    database: str | None = None  # "sqlite" or "postgres": rows are counted against responses
    cpus: str = "0"
    workers: int = 1
    ready_path: str = "/readyz"
    ready_on_any_status: bool = False
    skip: str | None = None  # why the row is not measured in this environment


def lineup(environ: Mapping[str, str]) -> list[Target]:
    serve = ("{tollgate}", "serve", "--config", "{config}", "--host", "127.0.0.1", "--port", "{port}")
    bare = ("{python}", "-m", "tests.bench.bare", "--port", "{port}", "--upstream", "{upstream}")
    lean = ("{python}", "-m", "tests.bench.lean", "--port", "{port}", "--upstream", "{upstream}")
    no_postgres = None if environ.get(POSTGRES_URL_ENV) else f"${POSTGRES_URL_ENV} is not set"
    return [
        Target("direct", command=()),
        # Any answer means uvicorn is up; GET / is relayed to nginx.
        Target("lean", lean, ready_path="/", ready_on_any_status=True),
        Target("bare", bare, ready_path="/", ready_on_any_status=True),
        Target("tollgate", serve, TOLLGATE_CONFIG, database="sqlite"),
        Target("tollgate-nolimits", serve, TOLLGATE_CONFIG_WITHOUT_LIMITS, database="sqlite"),
        # Two workers need two cores, so they share core 1 with wrk and nginx: wrk may be the ceiling.
        Target("tollgate-w2", (*serve, "--workers", "2"), TOLLGATE_CONFIG, database="sqlite", cpus="0,1", workers=2),
        Target("tollgate-pg", serve, TOLLGATE_CONFIG, database="postgres", skip=no_postgres),
    ]


def launch(target: Target, *, upstream: str, workdir: Path, database: Database | None) -> tuple[Spawned, str]:
    """Start the target's server; returns the process and its base URL (not yet ready)."""
    port = free_port()
    fields = {
        "python": sys.executable,
        "tollgate": _tollgate_executable() if any("{tollgate}" in part for part in target.command) else "",
        "port": str(port),
        "upstream": upstream,
        "config": str(workdir / "config.toml"),
        "database_url": database.url if database else "",
        "journal_dir": str(workdir / "journal"),
    }
    if target.config is not None:
        (workdir / "config.toml").write_text(target.config.format_map(fields))
    argv = [part.format_map(fields) for part in target.command]
    env = {name: value for name, value in os.environ.items() if name not in _SCRUBBED_ENV}
    env.update(database.env if database else {})
    process = spawn(argv, cpus=target.cpus, log_path=workdir / "server.log", env=env, cwd=REPO_ROOT)
    return process, f"http://127.0.0.1:{port}"


def wait_ready(target: Target, process: Spawned, url: str, *, timeout_s: float) -> float:
    """Poll the ready path every 10 ms; seconds from spawn to the first good answer."""
    host, port = url.removeprefix("http://").split(":")
    while True:
        if not process.is_running():
            raise ProcessFailed(f"{target.name} exited with {process.popen.returncode}", process)
        elapsed = time.perf_counter() - process.started_at
        if elapsed > timeout_s:
            raise ProcessFailed(f"{target.name} not ready after {timeout_s:.0f} s", process)
        connection = http.client.HTTPConnection(host, int(port), timeout=1)
        try:
            connection.request("GET", target.ready_path)
            status = connection.getresponse().status
            if status == 200 or target.ready_on_any_status:
                return time.perf_counter() - process.started_at
        except OSError:
            pass  # not listening yet
        finally:
            connection.close()
        time.sleep(_POLL_S)


def _tollgate_executable() -> str:
    beside_python = Path(sys.executable).parent / "tollgate"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("tollgate")
    if found is None:
        raise RuntimeError("no `tollgate` executable beside this Python or on PATH (pip install -e .)")
    return found
