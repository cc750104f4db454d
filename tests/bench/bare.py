"""The Python baseline: a passthrough with no metering at all.

What Tollgate would cost if it did nothing but relay: read the body, forward
it through one long-lived aiohttp session, relay status, headers and body
(SSE chunk by chunk, as `resp.content.iter_any()` yields them).
Run as `python -m tests.bench.bare --port P --upstream URL`.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import AsyncIterator, Iterable

import aiohttp
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

# RFC 9110 section 7.6.1, plus the framing headers each side sets for itself.
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)
_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


def create_app(upstream: str) -> Starlette:
    upstream = upstream.rstrip("/")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, aiohttp.ClientSession]]:
        # No connection cap: a pool smaller than wrk's 32 connections would queue requests.
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as session:
            yield {"session": session}

    async def forward(request: Request) -> Response:
        session: aiohttp.ClientSession = request.state.session
        url = upstream + request.url.path + (f"?{request.url.query}" if request.url.query else "")
        upstream_response = await session.request(
            request.method, url, data=await request.body(), headers=_end_to_end(request.headers.items())
        )
        status, headers = upstream_response.status, _end_to_end(upstream_response.headers.items())
        if upstream_response.content_type == "text/event-stream":
            return _RelayedStream(upstream_response, status, headers)
        async with upstream_response:
            body = await upstream_response.read()
        return Response(body, status_code=status, headers=headers)

    return Starlette(routes=[Route("/{path:path}", forward, methods=_METHODS)], lifespan=lifespan)


class _RelayedStream(Response):
    """Sends upstream chunks as they arrive.

    Starlette's StreamingResponse runs an anyio task group per response to
    watch for disconnects (uvicorn speaks ASGI 2.3); a minimal relay skips it,
    so the baseline is not slower than a careful proxy could be.
    """

    def __init__(self, upstream: aiohttp.ClientResponse, status: int, headers: dict[str, str]) -> None:
        self.upstream = upstream
        super().__init__(status_code=status, headers=headers)
        # Response adds content-length for an empty body; this one is chunked.
        self.raw_headers = [(k, v) for k, v in self.raw_headers if k != b"content-length"]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            async for chunk in self.upstream.content.iter_any():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            self.upstream.release()


def _end_to_end(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    return {name: value for name, value in headers if name.lower() not in _HOP_BY_HOP}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="base URL; the request path is appended")
    args = parser.parse_args()
    uvicorn.run(
        create_app(args.upstream),
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
        workers=1,
        # Relay the upstream's Date and Server rather than adding a second of each.
        server_header=False,
        date_header=False,
    )


if __name__ == "__main__":
    main()
