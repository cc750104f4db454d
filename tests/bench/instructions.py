"""Instructions per proxied JSON request, counted by callgrind: deterministic where wall-clock figures are not.

The harness builds the app with ``create_app(load_config(path))`` (the only two calls it makes into
Tollgate, the same on every commit since 1014bc6), with the bench's config: SQLite in a temporary
folder, one provider and one blocking spend limit that is never reached. It runs the app's lifespan and
sends N chat completions one after another straight into the ASGI app (a hand-made receive and send, no
HTTP client on Tollgate's side); the upstream call is real aiohttp to a fake OpenAI answering on loopback
from another process, which callgrind does not follow. The lifespan's shutdown writes every row, and the
rows in the database (answered 200, priced) are counted against the requests.

Start-up costs cancel out of the difference of two runs: per request is (Ir(1600) - Ir(600)) / 1000.
The commit measured is the one on ``PYTHONPATH`` (printed as ``proxy.__file__``)::

    PYTHONPATH=/path/to/worktree .venv/bin/python -P tests/bench/instructions.py --callgrind --out-dir DIR

runs valgrind twice (``--repeat`` times each) and prints the counts. One run without callgrind::

    python -P tests/bench/instructions.py --requests 600          # prints the row count only
    python -P tests/bench/instructions.py --requests 1000 --warmup 200 --profile OUT.pstats

``--profile`` enables cProfile around the measured requests only (the event loop's thread; the
recorder's thread is not profiled). The config sets every timer past the end of a run (see ``CONFIG``),
so that a count does not follow the wall clock: the rows are written at shutdown in one transaction, so a
transaction's own cost (some hundreds of rows share one on a busy server) is not in the per-request figure.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

Message = MutableMapping[str, Any]
App = Callable[[MutableMapping[str, Any], Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Any]

_USAGE = {
    "prompt_tokens": 1536,
    "completion_tokens": 12,
    "total_tokens": 1548,
    "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
    "completion_tokens_details": {
        "reasoning_tokens": 0,
        "audio_tokens": 0,
        "accepted_prediction_tokens": 0,
        "rejected_prediction_tokens": 0,
    },
}
# The bench's canned answer (tests/bench/upstream.py), written out so that the harness runs on old commits too.
ANSWER = json.dumps(
    {
        "id": "chatcmpl-bench0000000000000000000001",
        "object": "chat.completion",
        "created": 1732550400,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello! How can I help you today?", "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": _USAGE,
        "service_tier": "default",
        "system_fingerprint": "fp_0ba0d124f1",
    },
    separators=(",", ":"),
).encode()
REQUEST = json.dumps(
    {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}, separators=(",", ":")
).encode()
HEADERS = [
    (b"host", b"127.0.0.1:8000"),
    (b"content-type", b"application/json"),
    (b"authorization", b"Bearer sk-bench"),
    (b"x-user-id", b"bench-user"),
    (b"x-team-id", b"bench-team"),
    (b"x-thread-id", b"bench-thread"),
    (b"x-agent-name", b"bench-agent"),
    (b"content-length", str(len(REQUEST)).encode()),
]
# tests/bench/targets.py's TOLLGATE_CONFIG (a blocking limit on every user that is never reached), with every
# timer set past the end of a run: callgrind slows the program some fifty times but not the clock, so timed work
# (lease syncs every 0.5 s, a recorder batch every 0.2 s) would be counted fifty times too often per request,
# and would follow the machine's load. So every row is written at shutdown, in one transaction: a batch that
# started while requests still came would split on timing, and each new split parses new INSERT statements.
CONFIG = """\
[database]
url = "sqlite:///{folder}/usage.db"

[recorder]
journal_dir = "{folder}/journal"
flush_interval = 86400
batch_size = 1000000

[budget]
sync_interval = 86400
lease_seconds = 3600
lease_ttl = 86400

[[providers]]
name = "bench"
base_url = "{upstream}/v1"
models = ["*"]

[[limits]]
scope = "user"
id = "*"
window = "day"
max_usd = "1000000"
action = "block"
"""
# Commits since the anomaly monitor (not 1014bc6) look at the rollups every check_interval seconds.
ANOMALIES = """
[anomalies]
check_interval = 86400
"""
# Both sizes write 500- and 100-row INSERT statements (Store._STATEMENT_SIZES), so their parsing cancels too.
SIZES = (600, 1600)
_TOTALS = re.compile(rb"^(?:summary|totals): (\d+)", re.MULTILINE)


def serve_upstream() -> None:
    """The fake OpenAI: every POST gets the canned chat completion, on a kept-alive connection."""
    from aiohttp import web

    async def answer(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=ANSWER, content_type="application/json")

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/{tail:.*}", answer)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        print(port, flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


class _Exchange:
    """One request's receive and send: the body at once, then a disconnect only once the answer is sent."""

    def __init__(self) -> None:
        self.status = 0
        self.body = b""
        self._received = False
        self._done = asyncio.get_running_loop().create_future()

    async def receive(self) -> Message:
        if not self._received:
            self._received = True
            return {"type": "http.request", "body": REQUEST, "more_body": False}
        await self._done
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        elif message["type"] == "http.response.body":
            self.body += message.get("body", b"")
            if not message.get("more_body", False) and not self._done.done():
                self._done.set_result(None)


async def _lifespan(app: App, state: dict[str, Any], started: asyncio.Event, stop: asyncio.Event) -> None:
    events = [{"type": "lifespan.startup"}]

    async def receive() -> Message:
        if events:
            return events.pop()
        await stop.wait()
        return {"type": "lifespan.shutdown"}

    async def send(message: Message) -> None:
        if message["type"].endswith(".failed"):
            raise RuntimeError(f"lifespan: {message}")
        if message["type"] == "lifespan.startup.complete":
            started.set()

    scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": state}
    await app(scope, receive, send)


async def _request(app: App, state: dict[str, Any]) -> None:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/chat/completions",
        "raw_path": b"/v1/chat/completions",
        "query_string": b"",
        "root_path": "",
        "headers": HEADERS,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": state.copy(),  # as uvicorn does: each request gets a shallow copy of the lifespan's state
    }
    exchange = _Exchange()
    await app(scope, exchange.receive, exchange.send)
    if exchange.status != 200:
        raise RuntimeError(f"request answered {exchange.status}: {exchange.body[:500]!r}")


async def drive(app: App, requests: int, warmup: int, profile: cProfile.Profile | None) -> None:
    state: dict[str, Any] = {}
    started, stop = asyncio.Event(), asyncio.Event()
    lifespan = asyncio.create_task(_lifespan(app, state, started, stop))
    await asyncio.wait([lifespan, asyncio.create_task(started.wait())], return_when=asyncio.FIRST_COMPLETED)
    if lifespan.done():
        lifespan.result()  # the start failed: raise its error
    for _ in range(warmup):
        await _request(app, state)
    if profile is not None:
        profile.enable()
    for _ in range(requests):
        await _request(app, state)
    if profile is not None:
        profile.disable()
    stop.set()
    await lifespan  # the shutdown writes every row


def run_once(requests: int, warmup: int, profile_path: str | None) -> None:
    import proxy
    from proxy.app import create_app
    from proxy.config import Config, load_config

    print(f"proxy: {proxy.__file__}", file=sys.stderr)
    upstream = subprocess.Popen([sys.executable, "-P", __file__, "--serve-upstream"], stdout=subprocess.PIPE, text=True)
    try:
        assert upstream.stdout is not None
        port = int(upstream.stdout.readline())
        with tempfile.TemporaryDirectory(prefix="tollgate-instructions-") as folder:
            path = Path(folder) / "config.toml"
            text = CONFIG.format(folder=folder, upstream=f"http://127.0.0.1:{port}")
            if _has_field(Config, "anomalies"):
                text += ANOMALIES
            path.write_text(text)
            app = create_app(load_config(path, environ={}))
            profile = cProfile.Profile() if profile_path else None
            asyncio.run(drive(app, requests, warmup, profile))
            if profile is not None and profile_path:
                profile.dump_stats(profile_path)
            with sqlite3.connect(Path(folder) / "usage.db") as db:
                (rows,) = db.execute(
                    "SELECT count(*) FROM usage_records WHERE status = 200 AND cost_pico > 0"
                ).fetchone()
                (spent,) = db.execute("SELECT coalesce(sum(spent_pico), 0) FROM spend_counters").fetchone()
    finally:
        upstream.terminate()
        upstream.wait()
    print(json.dumps({"requests": warmup + requests, "rows": rows, "spent_pico": spent}))
    if rows != warmup + requests:
        sys.exit(f"{rows} rows for {warmup + requests} requests")


def _has_field(model: type, name: str) -> bool:
    """A config field on either shape: pydantic models (HEAD) or dataclasses (1014bc6)."""
    return name in getattr(model, "model_fields", {}) or name in getattr(model, "__dataclass_fields__", {})


def run_callgrind(out_dir: Path, repeat: int, label: str) -> None:
    """Each size under callgrind ``repeat`` times; prints each run's total and the per-request differences."""
    out_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    for run in range(1, repeat + 1):
        totals: dict[int, int] = {}
        for size in SIZES:
            out = out_dir / f"callgrind.{label}.{size}.{run}.%p"
            argv = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
            argv += [sys.executable, "-P", __file__, "--requests", str(size)]
            started = time.perf_counter()
            child = subprocess.run(argv, env=env, capture_output=True, text=True)
            if child.returncode != 0:
                sys.exit(f"{' '.join(argv)} failed:\n{child.stderr[-3000:]}")
            counted = json.loads(child.stdout.strip().splitlines()[-1])
            file = out_dir / f"callgrind.{label}.{size}.{run}.{_pid_of(child.stderr)}"
            totals[size] = int(_TOTALS.findall(file.read_bytes())[-1])
            print(
                f"{label} run {run} N={size}: Ir {totals[size]:,}  rows {counted['rows']}/{counted['requests']}  "
                f"{time.perf_counter() - started:.0f} s  ({file.name})",
                flush=True,
            )
        small, large = SIZES
        per_request = (totals[large] - totals[small]) / (large - small)
        print(f"{label} run {run}: {per_request:,.0f} instructions per request", flush=True)


def _pid_of(valgrind_stderr: str) -> str:
    found = re.search(r"^==(\d+)== Callgrind", valgrind_stderr, re.MULTILINE)
    if found is None:
        raise RuntimeError(f"no pid in valgrind's output:\n{valgrind_stderr[-2000:]}")
    return found.group(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=600, help="requests measured (default 600)")
    parser.add_argument("--warmup", type=int, default=0, help="requests sent before the measured ones")
    parser.add_argument("--profile", metavar="PATH", help="write cProfile stats of the measured requests here")
    parser.add_argument("--callgrind", action="store_true", help=f"run each of N={SIZES} under callgrind")
    parser.add_argument("--out-dir", type=Path, default=Path("callgrind-out"), help="where callgrind writes")
    parser.add_argument("--repeat", type=int, default=1, help="callgrind runs of each size (default 1)")
    parser.add_argument("--label", default="tollgate", help="names the callgrind files")
    parser.add_argument("--serve-upstream", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_upstream:
        serve_upstream()
    elif args.callgrind:
        run_callgrind(args.out_dir, args.repeat, args.label)
    else:
        run_once(args.requests, args.warmup, args.profile)


if __name__ == "__main__":
    main()
