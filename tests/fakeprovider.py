"""A fake OpenAI-compatible provider listening on loopback, for tests.

It is a real HTTP server (uvicorn, in a thread), so Tollgate's real upstream
client is exercised end to end. Tests queue canned answers per path and read
back exactly what the provider received.

It also speaks the providers' free token counts when asked to (``speak_counts``):
Anthropic's ``POST /v1/messages/count_tokens`` answers ``{"input_tokens": N}`` and
Gemini's ``POST .../models/{model}:countTokens`` answers ``{"totalTokens": N}``, N
being what the test's function makes of the request it was sent.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import uvicorn

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]


@dataclass(frozen=True)
class Canned:
    """One answer: a whole body, or ``chunks`` sent one by one (``delay`` seconds apart)."""

    status: int = 200
    body: bytes = b""
    headers: tuple[tuple[bytes, bytes], ...] = ((b"content-type", b"application/json"),)
    chunks: tuple[bytes, ...] | None = None
    delay: float = 0.0
    drop_after: int | None = None  # drop the connection after this many chunks
    gate: threading.Event | None = None  # after ``gate_after`` chunks, wait (up to 10 s) for it to be set
    gate_after: int = 1


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    query: bytes
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes
    raw_path: bytes = b""

    def header(self, name: bytes) -> bytes | None:
        return next((v for k, v in self.headers if k == name), None)


@dataclass
class FakeProvider:
    host: str = "127.0.0.1"
    port: int = 0
    requests: list[Received] = field(default_factory=list)
    _answers: dict[tuple[str, str], list[Canned]] = field(default_factory=dict)
    _fallback: Canned | None = None
    _count: Callable[[dict[str, Any]], int] | None = None
    _computed: dict[tuple[str, str], Callable[[Received], Canned]] = field(default_factory=dict)

    def answer_computed(self, method: str, path: str, answer: Callable[[Received], Canned]) -> None:
        """Answer ``method path`` with what ``answer`` makes of each request (an answer that follows its request)."""
        self._computed[(method, path)] = answer

    def speak_counts(self, tokens: Callable[[dict[str, Any]], int]) -> None:
        """Answer Anthropic's and Gemini's token count endpoints with ``tokens(request body)``."""
        self._count = tokens

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def answer(self, method: str, path: str, *canned: Canned) -> None:
        """Queue answers for ``method path``; the last one repeats."""
        self._answers[(method, path)] = list(canned)

    def answer_any(self, canned: Canned) -> None:
        """Answer every request that has no answer queued for its method and path with ``canned``."""
        self._fallback = canned

    def reset(self) -> None:
        self.requests.clear()
        self._answers.clear()
        self._fallback = None
        self._count = None
        self._computed.clear()

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Message]], send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.requests.append(
            Received(
                scope["method"],
                scope["path"],
                scope["query_string"],
                tuple(scope["headers"]),
                body,
                scope.get("raw_path") or b"",
            )
        )
        counted = self._counted(scope["path"], body)
        if counted is not None:
            await send(
                {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}
            )
            await send({"type": "http.response.body", "body": counted})
            return
        queue = self._answers.get((scope["method"], scope["path"]))
        computed = self._computed.get((scope["method"], scope["path"]))
        if computed is not None:
            queue = [computed(self.requests[-1])]
        if not queue and self._fallback is not None:
            queue = [self._fallback]
        if not queue:
            await send({"type": "http.response.start", "status": 599, "headers": []})
            await send({"type": "http.response.body", "body": b"fake provider: no answer queued"})
            return
        canned = queue.pop(0) if len(queue) > 1 else queue[0]
        await send({"type": "http.response.start", "status": canned.status, "headers": list(canned.headers)})
        if canned.chunks is None:
            await send({"type": "http.response.body", "body": canned.body})
            return
        for i, chunk in enumerate(canned.chunks):
            if canned.drop_after is not None and i >= canned.drop_after:
                raise ConnectionAbortedError("fake provider drops the stream")
            if canned.delay:
                await asyncio.sleep(canned.delay)
            if canned.gate is not None and i == canned.gate_after:
                await asyncio.to_thread(canned.gate.wait, 10)
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    def _counted(self, path: str, body: bytes) -> bytes | None:
        if self._count is None:
            return None
        if path.endswith("/v1/messages/count_tokens"):
            return json.dumps({"input_tokens": self._count(json.loads(body))}).encode()
        if path.endswith(":countTokens"):
            request = json.loads(body).get("generateContentRequest", {})
            return json.dumps({"totalTokens": self._count(request)}).encode()
        return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerThread:
    """Runs an ASGI app under uvicorn on a loopback port, in a background thread."""

    def __init__(self, app: Any, port: int | None = None, **options: Any) -> None:
        self.port = port or free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", access_log=False, **options)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("test server did not start")
            time.sleep(0.005)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
