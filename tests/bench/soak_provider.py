"""The soak's fake provider: one answer per request, picked by the ``x-soak-kind`` header.

``tests.fakeprovider.FakeProvider`` answers from per-path queues, which cannot say
which of thousands of concurrent requests gets which answer. Here the client names
the answer itself, so the soak knows what every request was meant to meet.

It runs as its own process (``python -m tests.bench.soak_provider PORT``) under
uvicorn with uvloop and httptools: in the soak's process it would share a GIL with
the load generator, and the two cores are needed for Tollgate.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson
import uvicorn

from tests.conftest import chat_chunks, chat_completion

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# Kinds of answer; the client sends one of these names in ``x-soak-kind``.
JSON, SSE, ERROR_500, DROP, SLOW = "json", "sse", "error500", "drop", "slow"
KINDS = (JSON, SSE, ERROR_500, DROP, SLOW)

DROP_AFTER = 2  # chunks sent before a "drop" stream loses its connection
SLOW_DELAY = 0.05  # seconds between the chunks of a "slow" stream, which clients abort

_JSON_HEADERS = [(b"content-type", b"application/json")]
_SSE_HEADERS = [(b"content-type", b"text/event-stream; charset=utf-8")]
_COMPLETION = chat_completion()
_CHUNKS = chat_chunks(words=("Hello", " from", " the", " soak"))
_ERROR = orjson.dumps(
    {"error": {"message": "The soak's provider failed on purpose.", "type": "server_error", "code": None}}
)


class ProviderDroppedStream(ConnectionAbortedError):
    """Raised inside the app: uvicorn then closes the connection without ending the chunked body."""


async def soak_provider(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    more = True
    while more:  # the body is not needed, but it must be read before answering
        more = bool((await receive()).get("more_body"))
    kind = next((v.decode() for k, v in scope["headers"] if k == b"x-soak-kind"), JSON)
    if kind == ERROR_500:
        await _whole(send, 500, _ERROR)
    elif kind in (SSE, DROP, SLOW):
        await _stream(send, drop_after=DROP_AFTER if kind == DROP else None, delay=SLOW_DELAY if kind == SLOW else 0)
    else:
        await _whole(send, 200, _COMPLETION)


async def _whole(send: Send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": _JSON_HEADERS})
    await send({"type": "http.response.body", "body": body})


async def _stream(send: Send, *, drop_after: int | None, delay: float) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS})
    for sent, chunk in enumerate(_CHUNKS):
        if drop_after is not None and sent >= drop_after:
            raise ProviderDroppedStream("the soak's provider drops the stream")
        if delay and sent:
            await asyncio.sleep(delay)
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


def main(argv: list[str]) -> None:
    port = int(argv[0])
    # log_level critical: every dropped stream is an "Exception in ASGI application" that nobody needs to read.
    uvicorn.run(
        soak_provider,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        log_level="critical",
        access_log=False,
        backlog=4096,
    )


if __name__ == "__main__":
    main(sys.argv[1:])
