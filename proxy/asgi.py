"""The HTTP proxy's front door: an ASGI app that drives one ``MeteredCall`` per request.

It is plain ASGI (no Request or Response objects) because it is the hot path. What is
here is what only an HTTP front door has: reading the body within its size limit,
sending the answer as ASGI messages, and a client that leaves mid-stream. Everything
the request *means* is in ``proxy.core``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from proxy.core import MeteredCall, Metering
from proxy.errors import PayloadTooLarge, TollgateError
from proxy.forward import Upstream, UpstreamResponse

logger = logging.getLogger("tollgate.asgi")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class ProxyEndpoint:
    """Every request to a provider API: ``/v1/...`` for OpenAI's."""

    def __init__(self, metering: Metering, upstream: Upstream, *, cancel_on_disconnect: bool) -> None:
        self.metering = metering
        self.upstream = upstream
        self.cancel_on_disconnect = cancel_on_disconnect

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = scope["headers"]
        call = self.metering.call(scope["method"], scope.get("raw_path"), scope["path"], scope["query_string"], headers)
        try:
            call.begin()
            call.read(await self._receive_body(receive, headers))
            await call.admit(call.provider_count(self.upstream))
            response = await call.forward(self.upstream)
        except TollgateError as error:
            await self._refuse(send, call, error)
            return
        except Exception:
            logger.exception("request %s failed inside Tollgate", call.request_id)
            await self._refuse(send, call, TollgateError("Tollgate failed to handle the request; see its log."))
            return
        if response.headers and call.streams(response.status, response.headers):
            await self._relay_stream(receive, send, call, response)
            return
        try:
            await self._relay_body(send, call, response)
        except Exception:
            # Nothing was sent yet: the client gets an error in the API's shape, never a bare 500.
            logger.exception("request %s failed inside Tollgate after the provider answered", call.request_id)
            await self._refuse(send, call, TollgateError("Tollgate failed to relay the answer; see its log."))

    async def _receive_body(self, receive: Receive, headers: list[tuple[bytes, bytes]]) -> bytes:
        limit = self.metering.max_body_bytes
        declared = next((value for name, value in headers if name == b"content-length"), b"")
        if declared.isdigit() and int(declared) > limit:
            raise PayloadTooLarge(f"The request body is {int(declared)} bytes; this Tollgate accepts at most {limit}.")
        message = await receive()
        body: bytes = message.get("body", b"")
        if not message.get("more_body", False):
            return body
        parts = [body]
        size = len(body)
        while message.get("more_body", False):
            message = await receive()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"The request body exceeds {limit} bytes, the most this Tollgate accepts.")
            parts.append(chunk)
        return b"".join(parts)

    async def _relay_body(self, send: Send, call: MeteredCall, response: UpstreamResponse) -> None:
        try:
            body = await response.read()
        except TollgateError as error:
            await self._refuse(send, call, error)
            return
        headers, durable = call.answer(response.status, response.headers, body)
        if not durable:
            await self.metering.recorder.write_through()
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _relay_stream(self, receive: Receive, send: Send, call: MeteredCall, response: UpstreamResponse) -> None:
        meter, decoder, headers = call.stream(response.headers)
        hide = call.hide_usage
        error: str | None = None
        recorded = False
        held = b""  # the stream's last events wait until the request is recorded
        # By default a stream is read to its end even when the client has gone, so that its usage arrives;
        # "cancel" stops at once, and the usage is then estimated from what was streamed.
        gone = asyncio.ensure_future(receive()) if self.cancel_on_disconnect else None
        try:
            await send({"type": "http.response.start", "status": response.status, "headers": headers})
            try:
                async for chunk in response.chunks():
                    if call.ttfb is None:
                        call.ttfb = time.perf_counter() - call.started
                    out = meter.feed(decoder.decompress(chunk) if decoder is not None else chunk)
                    if decoder is not None and not hide:
                        out = chunk
                    if held or meter.finished:
                        held += out
                    elif out:
                        await send({"type": "http.response.body", "body": out, "more_body": True})
                    if gone is not None and gone.done():
                        error = "client_disconnected"
                        break
            except TollgateError as dropped:
                # The provider dropped the stream: the client keeps what arrived, and the stream ends cleanly.
                logger.warning("request %s: %s", call.request_id, dropped.message)
                error = dropped.code
            held += meter.finish()
            response.release()
            durable = call.end_stream(response.status, meter, error)
            recorded = True
            if not durable:
                await self.metering.recorder.write_through()
            await send({"type": "http.response.body", "body": held})
        except BaseException:
            # The client went away (or the server is stopping): the request is still recorded.
            if not recorded:
                call.end_stream(response.status, meter, error or "client_disconnected")
            raise
        finally:
            if gone is not None:
                gone.cancel()
            response.release()

    async def _refuse(self, send: Send, call: MeteredCall, error: TollgateError) -> None:
        refusal, durable = call.refuse(error)
        if not durable:
            await self.metering.recorder.write_through()
        await send({"type": "http.response.start", "status": refusal.status, "headers": refusal.headers})
        await send({"type": "http.response.body", "body": refusal.body})
