"""`python -m tests.bench.inprocess`: what the in-process meter costs, in one run.

- ``import proxy.inprocess``: its cumulative time from ``python -X importtime`` (best of 5);
- CPU per call: the official openai SDK against a fake provider on loopback (another process,
  so that its CPU is not counted), once through a plain ``httpx.Client`` and once through
  ``meter.httpx_client()``, in alternating rounds. CPU is the whole client process's
  (``time.process_time``), so the meter's own thread and its database writes count too;
- per stream chunk: streams of 10 and of 200 chunks; the difference of their overheads,
  divided by 190, is what each chunk adds, and what a call adds besides.

Prints one table; ``--calls`` sets calls per round (default 400), ``--rounds`` the rounds (default 5).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson

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
    return b"".join(events) + b"data: [DONE]\n\n"


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
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: "
                + kind
                + b"\r\ncontent-length: "
                + str(len(content)).encode()
                + b"\r\n\r\n"
                + content
            )
            await writer.drain()
        writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", port)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


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


def _cpu_per_call(call: Callable[[], None], calls: int) -> float:
    started = time.process_time()
    for _ in range(calls):
        call()
    return (time.process_time() - started) / calls * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    from proxy.config import parse_config
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
        config = parse_config(
            f'[database]\nurl = "sqlite:///{Path(folder) / "bench.db"}"\n'
            f'[recorder]\njournal_dir = "{Path(folder) / "journal"}"\n',
            "bench.toml",
        )
        meter = Meter(config, load_prices=True)
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
        results: dict[tuple[str, str], list[float]] = {(c, k): [] for c in clients for k in kinds}
        for client in clients.values():  # warm up: connections, the price map, the first rows
            for call in calls(client).values():
                _cpu_per_call(call, 50)
        for round_ in range(args.rounds):
            order = list(clients.items()) if round_ % 2 == 0 else list(reversed(clients.items()))
            for name, client in order:
                for kind, call in calls(client).items():
                    calls_in_round = args.calls if kind != "stream200" else max(args.calls // 8, 10)
                    results[(name, kind)].append(_cpu_per_call(call, calls_in_round))
        assert meter.flush()
        meter.close()
        for client in clients.values():
            client.close()
    server.terminate()

    median = {key: statistics.median(values) for key, values in results.items()}
    overhead = {kind: median[("meter", kind)] - median[("plain", kind)] for kind in kinds}
    low, high = _SIZES
    per_chunk = (overhead[f"stream{high}"] - overhead[f"stream{low}"]) / (high - low)
    stream_call = overhead[f"stream{low}"] - low * per_chunk
    print(f"python -X importtime -c 'import proxy.inprocess': {_import_ms():.0f} ms (best of 5)")
    print(f"CPU per call, median of {args.rounds} rounds (µs):")
    print(f"  {'':<14}{'plain httpx':>12}{'meter':>10}{'overhead':>10}")
    for kind in kinds:
        print(f"  {kind:<14}{median[('plain', kind)]:>12.0f}{median[('meter', kind)]:>10.0f}{overhead[kind]:>10.1f}")
    print(f"meter overhead per non-streamed call: {overhead['json']:.1f} µs CPU")
    print(f"meter overhead per stream chunk: {per_chunk:.2f} µs CPU (and {stream_call:.1f} µs per streamed call)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
