"""The leanest Python passthrough: raw ASGI, one aiohttp session, no framework, no metering.

The floor a Python proxy on uvicorn can reach: the request body is read whole and
sent upstream through one long-lived session; the answer goes back in one message
(JSON) or chunk by chunk as ``iter_any()`` yields it (SSE). Nothing is parsed and no
router runs, so Tollgate's ratio against it is the honest one (the Starlette-routed
``bare`` baseline pays for routing and Request objects, which flatters the ratio).
Run as ``python -m tests.bench.lean --port P --upstream URL``.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import aiohttp
import uvicorn

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]

# RFC 9110 section 7.6.1, plus the framing headers each side sets for itself.
_HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"host",
        b"content-length",
    }
)


class LeanProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.session: aiohttp.ClientSession | None = None

    async def __call__(
        self, scope: Scope, receive: Callable[[], Awaitable[Message]], send: Callable[[Message], Awaitable[None]]
    ) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"] if k not in _HOP_BY_HOP]
        query = scope["query_string"]
        url = self.upstream + scope["path"] + (f"?{query.decode('latin-1')}" if query else "")
        assert self.session is not None
        async with self.session.request(scope["method"], url, data=body or None, headers=headers) as response:
            out = [(k.lower(), v) for k, v in response.raw_headers if k.lower() not in _HOP_BY_HOP]
            if response.content_type == "text/event-stream":
                await send({"type": "http.response.start", "status": response.status, "headers": out})
                async for chunk in response.content.iter_any():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b""})
                return
            data = await response.read()
            out.append((b"content-length", str(len(data)).encode()))
            await send({"type": "http.response.start", "status": response.status, "headers": out})
            await send({"type": "http.response.body", "body": data})

    async def _lifespan(
        self, receive: Callable[[], Awaitable[Message]], send: Callable[[Message], Awaitable[None]]
    ) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                # No connection cap: a pool smaller than wrk's 32 connections would queue requests.
                connector = aiohttp.TCPConnector(limit=0)
                self.session = aiohttp.ClientSession(connector=connector, auto_decompress=False)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.session is not None:
                    await self.session.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="base URL; the request path is appended")
    args = parser.parse_args()
    uvicorn.run(
        LeanProxy(args.upstream),
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
        workers=1,
        server_header=False,
        date_header=False,
    )


if __name__ == "__main__":
    main()
