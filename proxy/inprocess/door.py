"""The in-process front door: one httpx request through the proxy's ``MeteredCall``, with no network hop.

What the ASGI front door (``proxy.asgi``) does with ASGI messages, this does with httpx
objects: the same steps of ``proxy.core`` in the same order, the same dialects, the
same recorder. What only this door has:

- a request is recognised by its URL's path (``proxy.dialects``); a URL no dialect
  speaks goes out untouched and unrecorded;
- no client key to check, and no routing: the app's SDK already chose the URL and the
  key. The row's provider is the configured ``[[providers]]`` entry whose ``base_url``
  the URL starts with, else the dialect's kind (``openai``);
- attribution comes from the headers (stripped before they go out), else the
  ``meter.attribute`` scope (``proxy.inprocess.scope``), else the body's ``user``;
- a refusal is a response in the provider's error shape, made without the network, so
  the SDK raises its own exception; a transport failure is recorded, then raised as it
  came, so the SDK retries and reports it as it always does;
- a stream the app stops reading (it closes the response, or drops it) is recorded at
  once with usage estimated from what it read, as the proxy does with
  ``on_client_disconnect = "cancel"``.

``Exchange`` holds the steps that do no I/O; ``SyncDoor`` and ``AsyncDoor`` do the I/O
through the inner transport, and wrap a stream's body in a metering stream
(``proxy.inprocess.streams``).
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Sequence
from typing import Any

import httpx

from proxy.core import MeteredCall
from proxy.dialects.base import Dialect
from proxy.errors import NotFound, TollgateError, UpstreamTimeout, UpstreamUnavailable
from proxy.headers import HOP_BY_HOP
from proxy.inprocess.runtime import Runtime
from proxy.inprocess.scope import current_scope
from proxy.inprocess.streams import (
    DISCONNECTED,
    TIMEOUTS,
    TRANSPORT_ERRORS,
    AsyncMeteredStream,
    StreamState,
    SyncMeteredStream,
    on_meter_loop,
    wire_of,
)
from proxy.providers import Provider

logger = logging.getLogger("tollgate.inprocess")

FRONT_DOOR = "inprocess"
Headers = list[tuple[bytes, bytes]]
# What ``MeteredCall.upstream_headers`` leaves out of a metered request, but for the host and the length, which
# this door keeps (the request keeps its URL and body): the headers of this hop, and the encodings asked for.
_NOT_FORWARDED = (HOP_BY_HOP - {b"host", b"content-length"}) | {b"accept-encoding"}


class Exchange:
    """The steps of a call that do no I/O, shared by the sync and async doors."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.metering = runtime.metering
        self._providers: dict[tuple[str, str, int | None, str], Provider] = {}
        self.open_streams: weakref.WeakSet[StreamState] = weakref.WeakSet()

    def begin(self, request: httpx.Request) -> MeteredCall | None:
        """The call for a request to a provider API, or None for any other URL."""
        url = request.url
        raw_path, _, query = url.raw_path.partition(b"?")
        headers = [(name.lower(), value) for name, value in request.headers.raw]
        call = self.metering.call(request.method, raw_path, url.path, query, headers, FRONT_DOOR)
        try:
            call.judge()
        except NotFound:
            return None
        return call

    def admit(self, call: MeteredCall, request: httpx.Request) -> bool:
        """Read the body, attribute, place; True when a lease must grow first (``call.reserve()``)."""
        if call.metered:
            call.read(request.content)
        attribution = self.metering.attribution.read(call.headers, call.facts.user, None, current_scope())
        call.place(attribution, self._provider(request.url, call.dialect))
        return not call.reserve_now()

    def outgoing(self, call: MeteredCall, request: httpx.Request) -> httpx.Request:
        """The request as it leaves the process."""
        if not call.metered:
            # Not read, so a streamed body (a file upload) streams out as it came; only attribution is taken off.
            reader = self.metering.attribution
            headers = [
                (name, value)
                for name, value in request.headers.raw
                if not (reader.strip and reader.is_attribution_header(name.lower()))
            ]
            return wire_of(request).Request(
                request.method, request.url, headers=headers, stream=request.stream, extensions=request.extensions
            )
        assert call.provider is not None
        if call.body is not request.content:  # Tollgate asked a stream to report its usage
            # A new request, so that the app's own still holds the body it sent. Built from a byte stream with
            # its host and length placed where httpx places them: from ``content=`` httpx would re-check every
            # header, which cost some 17 µs a call.
            wire = wire_of(request)
            upstream = [("host", request.headers["host"]), *call.upstream_headers(call.provider)]
            upstream.append(("content-length", str(len(call.body))))
            rewritten = wire.Request(
                request.method,
                request.url,
                headers=upstream,
                stream=wire.ByteStream(call.body),
                extensions=request.extensions,
            )
            rewritten.read()  # its content readable, as a request built from content is
            return rewritten
        if call.provider.extra_headers:
            upstream = call.upstream_headers(call.provider)
            upstream.append(("host", request.headers["host"]))
            upstream.append(("content-length", str(len(call.body))))
            request.headers = wire_of(request).Headers(upstream)
            return request
        # The common case: sent as it came, less the headers the proxy would not forward (those of this hop,
        # attribution) and with an uncompressed answer asked for, changed in place (a new request costs more).
        reader = self.metering.attribution
        strip = reader.strip
        sent = request.headers
        dropped = [n for n, _ in call.headers if n in _NOT_FORWARDED or (strip and reader.is_attribution_header(n))]
        for name in dropped:
            text = name.decode("latin-1")
            if text in sent:  # a header named twice is gone after its first
                del sent[text]
        sent["accept-encoding"] = "identity"
        return request

    def refusal(self, call: MeteredCall, error: TollgateError, request: httpx.Request) -> tuple[httpx.Response, bool]:
        """Tollgate's answer in the API's error shape, recorded; (it, whether the row is on disk)."""
        refusal, durable = call.refuse(error)
        answer = wire_of(request).Response(
            refusal.status, headers=refusal.headers, content=refusal.body, request=request
        )
        return answer, durable

    def failed(self, call: MeteredCall, failure: Exception) -> None:
        """The request never got an answer: recorded as the proxy records it, before the error is raised."""
        origin = f"{call.provider.base_url}" if call.provider is not None else "the provider"
        if isinstance(failure, TIMEOUTS):
            error: TollgateError = UpstreamTimeout(f"{origin} did not answer in time")
        else:
            error = UpstreamUnavailable(f"{origin} failed: {type(failure).__name__}")
        call.refuse(error)

    def answer(self, call: MeteredCall, response: httpx.Response, body: bytes) -> tuple[httpx.Response, bool]:
        headers = _headers_of(response)
        out, durable = call.answer(response.status_code, headers, body)
        wire = wire_of(response)
        answered = wire.Response(
            response.status_code, headers=out, stream=wire.ByteStream(body), extensions=response.extensions
        )
        return answered, durable

    def stream_state(self, call: MeteredCall, response: httpx.Response) -> tuple[StreamState, Headers]:
        meter, decoder, out = call.stream(_headers_of(response))
        state = StreamState(call, meter, decoder, response.status_code)
        self.open_streams.add(state)
        return state, out

    def end_open_streams(self) -> None:
        """The meter closes: streams the app still holds are recorded with what they read."""
        for state in list(self.open_streams):
            state.end(DISCONNECTED)

    def _provider(self, url: httpx.URL, dialect: Dialect) -> Provider:
        key = (url.scheme, url.host, url.port, dialect.kind)
        provider = self._providers.get(key)
        if provider is None:
            provider, shared = self._find_provider(str(url), dialect, f"{url.scheme}://{url.netloc.decode('ascii')}")
            if not shared and len(self._providers) < 1024:  # an origin that two providers share is matched each time
                self._providers[key] = provider
        return provider

    def _find_provider(self, url: str, dialect: Dialect, origin: str) -> tuple[Provider, bool]:
        configured = [
            p for _, p in self.metering.router.providers if p.base_url.startswith(origin) and p.kind == dialect.kind
        ]
        matches = [p for p in configured if url.startswith(p.base_url + "/") or url == p.base_url]
        if matches:
            return max(matches, key=lambda p: len(p.base_url)), len(configured) > 1
        return (
            Provider(
                name=dialect.kind,
                base_url=origin,
                api_key=None,
                api_key_env=None,
                extra_headers=(),
                connect_timeout=0.0,
                read_timeout=0.0,
                retries=0,
                retry_max_seconds=0.0,
                kind=dialect.kind,
            ),
            len(configured) > 1,
        )


class SyncDoor:
    def __init__(self, exchange: Exchange) -> None:
        self.exchange = exchange

    def handle(self, request: httpx.Request, inner: httpx.BaseTransport) -> httpx.Response:
        exchange = self.exchange
        call = exchange.begin(request)
        if call is None:
            return inner.handle_request(request)
        try:
            request.read()
            if exchange.admit(call, request):
                exchange.runtime.call(call.reserve())
            outgoing = exchange.outgoing(call, request)
        except TollgateError as error:
            return self._refuse(call, error, request)
        except Exception:
            logger.exception("request %s failed inside Tollgate's meter", call.request_id)
            return self._refuse(call, TollgateError("Tollgate failed to meter the request; see its log."), request)
        try:
            response = inner.handle_request(outgoing)
        except TRANSPORT_ERRORS as failure:
            exchange.failed(call, failure)
            raise
        if call.streams(response.status_code, _lower(response.headers.raw)):
            state, headers = exchange.stream_state(call, response)
            metered: httpx.Response = wire_of(response).Response(
                response.status_code,
                headers=headers,
                stream=SyncMeteredStream(state, response, exchange.runtime),
                extensions=response.extensions,
            )
            return metered
        try:
            body = response.content if response.is_stream_consumed else b"".join(response.iter_raw())
        except TRANSPORT_ERRORS as failure:
            exchange.failed(call, failure)
            raise
        finally:
            response.close()
        answered, durable = exchange.answer(call, response, body)
        if not durable:
            exchange.runtime.call(exchange.runtime.recorder.write_through())
        return answered

    def _refuse(self, call: MeteredCall, error: TollgateError, request: httpx.Request) -> httpx.Response:
        response, durable = self.exchange.refusal(call, error, request)
        if not durable:
            self.exchange.runtime.call(self.exchange.runtime.recorder.write_through())
        return response


class AsyncDoor:
    def __init__(self, exchange: Exchange) -> None:
        self.exchange = exchange

    async def handle(self, request: httpx.Request, inner: httpx.AsyncBaseTransport) -> httpx.Response:
        exchange = self.exchange
        call = exchange.begin(request)
        if call is None:
            return await inner.handle_async_request(request)
        try:
            await request.aread()
            if exchange.admit(call, request):
                await self._on_meter_loop(call.reserve())
            outgoing = exchange.outgoing(call, request)
        except TollgateError as error:
            return await self._refuse(call, error, request)
        except Exception:
            logger.exception("request %s failed inside Tollgate's meter", call.request_id)
            failure = TollgateError("Tollgate failed to meter the request; see its log.")
            return await self._refuse(call, failure, request)
        try:
            response = await inner.handle_async_request(outgoing)
        except TRANSPORT_ERRORS as failure:
            exchange.failed(call, failure)
            raise
        if call.streams(response.status_code, _lower(response.headers.raw)):
            state, headers = exchange.stream_state(call, response)
            metered: httpx.Response = wire_of(response).Response(
                response.status_code,
                headers=headers,
                stream=AsyncMeteredStream(state, response, self.exchange.runtime),
                extensions=response.extensions,
            )
            return metered
        try:
            body = (
                response.content if response.is_stream_consumed else b"".join([c async for c in response.aiter_raw()])
            )
        except TRANSPORT_ERRORS as failure:
            exchange.failed(call, failure)
            raise
        finally:
            await response.aclose()
        answered, durable = exchange.answer(call, response, body)
        if not durable:
            await self._on_meter_loop(exchange.runtime.recorder.write_through())
        return answered

    async def _on_meter_loop(self, coroutine: Any) -> Any:
        """Run a coroutine of the meter's services on their loop, without blocking the app's."""
        return await on_meter_loop(self.exchange.runtime, coroutine)

    async def _refuse(self, call: MeteredCall, error: TollgateError, request: httpx.Request) -> httpx.Response:
        response, durable = self.exchange.refusal(call, error, request)
        if not durable:
            await self._on_meter_loop(self.exchange.runtime.recorder.write_through())
        return response


def _lower(headers: Sequence[tuple[bytes, bytes]]) -> Headers:
    return [(name.lower(), value) for name, value in headers]


# An inner transport may answer with a response already read (httpx.MockTransport, respx): its body is then
# decoded already, so it is taken as it is, and a content-encoding it names no longer applies.


def _headers_of(response: httpx.Response) -> Headers:
    headers = _lower(response.headers.raw)
    if response.is_stream_consumed:
        return [(name, value) for name, value in headers if name != b"content-encoding"]
    return headers
