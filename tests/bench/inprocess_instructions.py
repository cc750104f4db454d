"""`python -m tests.bench.inprocess_instructions`: what the in-process meter adds on the app's thread, counted.

CPU times of the meter's overhead (``tests.bench.inprocess``) are small differences of large
figures, and these shared machines make them wander by more than the overhead per stream chunk.
Instructions on the app's thread, counted by callgrind (``--separate-threads=yes``), do not:

- the ``openai`` SDK calls a ``httpx.MockTransport`` (no network, no other process), once through a
  plain ``httpx.Client`` and once through ``meter.httpx_client(transport=...)``;
- per non-streamed call: (Ir(600 calls) - Ir(100 calls)) / 500, so that start-up cancels out;
- per stream chunk: 20 streams of 200 chunks against 20 of 10, one SSE event per chunk as OpenAI
  sends them: (Ir(200) - Ir(10)) / (20 * 190).

Only the app's thread is counted: the meter's own threads (the recorder's SQLite writes, its event
loop) wait on timers, which callgrind's slowdown would make fire fifty times as often as in a real run.
Prints one table. Each figure needs two callgrind runs of about a minute; they run two at a time.
"""

from __future__ import annotations

import argparse
import gc
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import orjson

from tests.bench.inprocess import meter_config

_BASE = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini-2024-07-18"}
_ANSWER = orjson.dumps(
    {
        **_BASE,
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello!"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 6, "total_tokens": 18},
    }
)


def _events(chunks: int, include_usage: bool) -> list[bytes]:
    """A chat stream of ``chunks`` content events as OpenAI writes it, ``"usage":null`` in each when asked."""
    usage: dict[str, object] = {"usage": None} if include_usage else {}
    delta = {**_BASE, "choices": [{"index": 0, "delta": {"content": "word "}, "finish_reason": None}], **usage}
    events = [b"data: " + orjson.dumps(delta) + b"\n\n" for _ in range(chunks)]
    if include_usage:
        total = {"prompt_tokens": 12, "completion_tokens": chunks, "total_tokens": 12 + chunks}
        events.append(b"data: " + orjson.dumps({**_BASE, "choices": [], "usage": total}) + b"\n\n")
    return [*events, b"data: [DONE]\n\n"]


class _Chunks(httpx.SyncByteStream):
    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._chunks)


def _answer(request: httpx.Request) -> httpx.Response:
    body = request.content
    if b'"stream":true' not in body:
        return httpx.Response(200, headers={"content-type": "application/json"}, content=_ANSWER)
    chunks = int(body.split(b'"content":"', 1)[1].split(b'"', 1)[0])
    events = _events(chunks, include_usage=b'"include_usage":true' in body)
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=_Chunks(events))


def _run(client_kind: str, chunks: int, calls: int) -> None:
    """The measured program: ``calls`` calls (streams of ``chunks`` chunks, or JSON when 0) after a warm-up."""
    import openai

    from proxy.inprocess import Meter

    with tempfile.TemporaryDirectory() as folder:
        meter = Meter(meter_config(Path(folder)), load_prices=True)
        inner = httpx.MockTransport(_answer)
        # openai 3 annotates httpx2's clients, and takes httpx's too.
        http: Any = meter.httpx_client(transport=inner) if client_kind == "meter" else httpx.Client(transport=inner)
        client = openai.OpenAI(base_url="https://api.openai.com/v1", api_key="k", http_client=http, max_retries=0)

        def call() -> None:
            messages: list[openai.types.chat.ChatCompletionMessageParam] = [{"role": "user", "content": str(chunks)}]
            if not chunks:
                client.chat.completions.create(model="gpt-4o-mini", messages=messages)
                return
            for _ in client.chat.completions.create(model="gpt-4o-mini", messages=messages, stream=True):
                pass

        for _ in range(20):
            call()
        assert meter.flush()
        gc.collect()
        gc.freeze()  # as the README tells a long-running app to do: see tests.bench.inprocess
        for _ in range(calls):
            call()
        assert meter.flush()
        meter.close()


def _app_thread_instructions(client_kind: str, chunks: int, calls: int, folder: Path) -> int:
    out = folder / f"callgrind.{client_kind}.{chunks}.{calls}"
    subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--separate-threads=yes",
            f"--callgrind-out-file={out}",
            sys.executable,
            "-m",
            "tests.bench.inprocess_instructions",
            "--run",
            client_kind,
            str(chunks),
            str(calls),
        ],
        check=True,
        capture_output=True,
    )
    main_thread = next(folder.glob(f"{out.name}-01"))  # callgrind numbers threads from 1, the main one first
    summary = re.search(r"^summary: (\d+)", main_thread.read_text(), re.MULTILINE)
    assert summary is not None, f"no summary line in {main_thread}"
    return int(summary.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", nargs=3, metavar=("CLIENT", "CHUNKS", "CALLS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        client_kind, chunks, calls = args.run
        _run(client_kind, int(chunks), int(calls))
        return 0
    sizes = ((0, 100), (0, 600), (10, 20), (200, 20))  # (chunks, calls): JSON calls, then streams
    runs: list[tuple[str, int, int]] = [(client, *size) for client in ("plain", "meter") for size in sizes]
    with tempfile.TemporaryDirectory() as folder, ThreadPoolExecutor(2) as pool:
        counted = pool.map(lambda run: _app_thread_instructions(run[0], run[1], run[2], Path(folder)), runs)
        counts = dict(zip(runs, counted, strict=True))
    print("Instructions on the app's thread (callgrind):")
    print(f"  {'':<26}{'plain httpx':>12}{'meter':>12}{'added':>10}")
    for label, plain, metered in (
        (
            "per non-streamed call",
            (counts[("plain", 0, 600)] - counts[("plain", 0, 100)]) / 500,
            (counts[("meter", 0, 600)] - counts[("meter", 0, 100)]) / 500,
        ),
        (
            "per stream chunk",
            (counts[("plain", 200, 20)] - counts[("plain", 10, 20)]) / (20 * 190),
            (counts[("meter", 200, 20)] - counts[("meter", 10, 20)]) / (20 * 190),
        ),
    ):
        added = metered - plain
        print(f"  {label:<26}{plain:>12,.0f}{metered:>12,.0f}{added:>10,.0f}  ({added / plain:.1%} of plain)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
