"""`python -m tests.bench.inprocess`: what the in-process meter costs, in one run.

- ``import proxy.inprocess``: its cumulative time from ``python -X importtime`` (best of 5);
- CPU per call: the official openai SDK against a fake provider on loopback (another process,
  so that its CPU is not counted), once through a plain ``httpx.Client`` and once through
  ``meter.httpx_client()``, in alternating rounds. CPU is the whole client process's
  (``time.process_time``), so the meter's own thread and its database writes count too;
- per stream chunk: streams of 10 and of 200 chunks; the difference of their overheads,
  divided by 190, is what each chunk adds, and what a call adds besides. The fake sends a
  stream as OpenAI does, with chunked transfer encoding, one SSE event per HTTP chunk, so
  that the client reads each event as its own chunk;
- the app's own thread is also timed alone (``time.thread_time``): what the meter adds there is
  what the app's call waits for, the rest runs on the meter's threads.

After the warm-up the heap is frozen (``gc.collect()``, ``gc.freeze()``), as the README tells a
long-running app to do: otherwise the collector's full walks of the price map land in random
rounds and swamp the difference being measured.

Prints one table; ``--calls`` sets calls per round (default 400), ``--rounds`` the rounds (default 5).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import multiprocessing
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import openai
import orjson

if TYPE_CHECKING:
    from proxy.config import Config

_SIZES = (10, 200)


def _chat_completion() -> bytes:
    return orjson.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": 1732550400,
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "Hello! How can I help?"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": 12,
                "completion_tokens": 6,
                "total_tokens": 18,
                "prompt_tokens_details": {"cached_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0},
            },
        }
    )


def _chat_stream(chunks: int, include_usage: bool) -> bytes:
    """A chat completion stream of ``chunks`` content chunks, in chunked transfer encoding: one event per chunk."""

    def event(choices: list[object], usage: object = None) -> bytes:
        chunk: dict[str, object] = {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": 1732550400,
            "model": "gpt-4o-mini-2024-07-18",
            "choices": choices,
        }
        if include_usage:
            chunk["usage"] = usage
        return b"data: " + orjson.dumps(chunk) + b"\n\n"

    events = [event([{"index": 0, "delta": {"content": "word "}, "finish_reason": None}]) for _ in range(chunks - 1)]
    events.append(event([{"index": 0, "delta": {}, "finish_reason": "stop"}]))
    if include_usage:
        events.append(event([], {"prompt_tokens": 12, "completion_tokens": chunks, "total_tokens": 12 + chunks}))
    events.append(b"data: [DONE]\n\n")
    return b"".join(b"%x\r\n%s\r\n" % (len(event), event) for event in events) + b"0\r\n\r\n"


def _serve(port: int) -> None:
    """The fake provider: HTTP/1.1 with keep-alive, a chat completion or a stream whose size the prompt names."""
    answers = {
        b"json": _chat_completion(),
        **{str(n).encode(): _chat_stream(n, include_usage=False) for n in _SIZES},
        **{b"u" + str(n).encode(): _chat_stream(n, include_usage=True) for n in _SIZES},
    }

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                break
            length = next(
                (
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                ),
                0,
            )
            body = await reader.readexactly(length)
            if b'"stream":true' not in body:
                kind, content = b"application/json", answers[b"json"]
            else:
                size = body.split(b'"content":"', 1)[1].split(b'"', 1)[0]
                asked = b'"include_usage":true' in body
                kind, content = b"text/event-stream", answers[(b"u" if asked else b"") + size]
            framing = (
                b"transfer-encoding: chunked" if kind == b"text/event-stream" else b"content-length: %d" % len(content)
            )
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: " + kind + b"\r\n" + framing + b"\r\n\r\n" + content)
            await writer.drain()
        writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", port)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def meter_config(folder: Path) -> Config:
    """The in-process benches' config: SQLite and the journal in ``folder``, everything else as it comes."""
    from proxy.config import parse_config

    return parse_config(
        f'[database]\nurl = "sqlite:///{folder / "bench.db"}"\n[recorder]\njournal_dir = "{folder / "journal"}"\n',
        "bench.toml",
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _import_ms() -> float:
    best = float("inf")
    for _ in range(5):
        report = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", "import proxy.inprocess"], capture_output=True, text=True
        ).stderr
        line = next(line for line in report.splitlines() if line.rstrip().endswith("| proxy.inprocess"))
        best = min(best, int(line.split("|")[1]) / 1000)
    return best


def _cpu_per_call(call: Callable[[], None], calls: int, settle: Callable[[], object]) -> tuple[float, float]:
    """(CPU µs per call of the whole process, of this thread alone); ``settle`` waits for the meter's writes."""
    started, started_here = time.process_time(), time.thread_time()
    for _ in range(calls):
        call()
    here = time.thread_time() - started_here
    settle()
    return (time.process_time() - started) / calls * 1e6, here / calls * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    from proxy.inprocess import Meter

    port = _free_port()
    server = multiprocessing.get_context("spawn").Process(target=_serve, args=(port,), daemon=True)
    server.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    base_url = f"http://127.0.0.1:{port}/v1"
    with tempfile.TemporaryDirectory() as folder:
        meter = Meter(meter_config(Path(folder)), load_prices=True)
        # openai 3 annotates httpx2's clients, and takes httpx's too.
        http_clients: dict[str, Any] = {"plain": httpx.Client(), "meter": meter.httpx_client()}
        clients = {
            name: openai.OpenAI(base_url=base_url, api_key="k", http_client=http_client, max_retries=0)
            for name, http_client in http_clients.items()
        }

        def calls(client: openai.OpenAI) -> dict[str, Callable[[], None]]:
            def chat() -> None:
                client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])

            def stream(size: int) -> Callable[[], None]:
                def run() -> None:
                    for _ in client.chat.completions.create(
                        model="gpt-4o-mini", messages=[{"role": "user", "content": str(size)}], stream=True
                    ):
                        pass

                return run

            return {"json": chat, **{f"stream{n}": stream(n) for n in _SIZES}}

        kinds = ("json", *(f"stream{n}" for n in _SIZES))
        results: dict[tuple[str, str], list[tuple[float, float]]] = {(c, k): [] for c in clients for k in kinds}
        settle: dict[str, Callable[[], object]] = {"plain": lambda: None, "meter": meter.flush}
        for name, client in clients.items():  # warm up: connections, the price map, the first rows
            for call in calls(client).values():
                _cpu_per_call(call, 50, settle[name])
        gc.collect()
        gc.freeze()
        for round_ in range(args.rounds):
            order = list(clients.items()) if round_ % 2 == 0 else list(reversed(clients.items()))
            for name, client in order:
                for kind, call in calls(client).items():
                    calls_in_round = args.calls if kind != "stream200" else max(args.calls // 8, 10)
                    results[(name, kind)].append(_cpu_per_call(call, calls_in_round, settle[name]))
        assert meter.flush()
        meter.close()
        for client in clients.values():
            client.close()
    server.terminate()

    def median(key: tuple[str, str], which: int) -> float:
        return statistics.median(result[which] for result in results[key])

    low, high = _SIZES
    print(f"python -X importtime -c 'import proxy.inprocess': {_import_ms():.0f} ms (best of 5)")
    print(f"CPU per call, median of {args.rounds} rounds (µs):")
    print(f"  {'':<11}{'plain httpx':>12}{'meter':>8}{'overhead':>10}{'on the app thread':>19}")
    overhead: dict[tuple[str, int], float] = {}
    for kind in kinds:
        for which in (0, 1):
            overhead[(kind, which)] = median(("meter", kind), which) - median(("plain", kind), which)
        plain, metered = median(("plain", kind), 0), median(("meter", kind), 0)
        print(f"  {kind:<11}{plain:>12.0f}{metered:>8.0f}{overhead[(kind, 0)]:>10.1f}{overhead[(kind, 1)]:>19.1f}")
    for which, where in ((0, "all threads"), (1, "the app's thread")):
        per_chunk = (overhead[(f"stream{high}", which)] - overhead[(f"stream{low}", which)]) / (high - low)
        stream_call = overhead[(f"stream{low}", which)] - low * per_chunk
        print(
            f"meter overhead, {where}: {overhead[('json', which)]:.1f} µs CPU per non-streamed call, "
            f"{per_chunk:.2f} µs per stream chunk (and {stream_call:.1f} µs per streamed call)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
