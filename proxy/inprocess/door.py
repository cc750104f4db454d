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
through the inner transport, and wrap a stream's body in a metering stream.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import httpx

from proxy.core import MeteredCall
from proxy.dialects.base import Dialect
from proxy.errors import NotFound, TollgateError, UpstreamTimeout, UpstreamUnavailable
from proxy.inprocess.runtime import Runtime
from proxy.inprocess.scope import current_scope
from proxy.providers import Provider
from proxy.sse import StreamMeter

logger = logging.getLogger("tollgate.inprocess")

FRONT_DOOR = "inprocess"
_DISCONNECTED = "client_disconnected"
Headers = list[tuple[bytes, bytes]]


class Exchange:
    """The steps of a call that do no I/O, shared by the sync and async doors."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.metering = runtime.metering
        self._providers: dict[tuple[str, str, int | None, str], Provider] = {}
        self.open_streams: weakref.WeakSet[_StreamState] = weakref.WeakSet()

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
            return httpx.Request(
                request.method, request.url, headers=headers, stream=request.stream, extensions=request.extensions
            )
        assert call.provider is not None
        if call.body is not request.content:  # Tollgate asked a stream to report its usage
            return httpx.Request(
                request.method,
                request.url,
                headers=call.upstream_headers(call.provider),
                content=call.body,
                extensions=request.extensions,
            )
        # The common case, sent as it came but for its headers: building a new request costs 10 µs more.
        upstream = call.upstream_headers(call.provider)
        upstream.append(("host", request.headers["host"]))
        upstream.append(("content-length", str(len(call.body))))
        request.headers = httpx.Headers(upstream)
        return request

    def refusal(self, call: MeteredCall, error: TollgateError, request: httpx.Request) -> tuple[httpx.Response, bool]:
        """Tollgate's answer in the API's error shape, recorded; (it, whether the row is on disk)."""
        refusal, durable = call.refuse(error)
        return httpx.Response(refusal.status, headers=refusal.headers, content=refusal.body, request=request), durable

    def failed(self, call: MeteredCall, failure: httpx.TransportError) -> None:
        """The request never got an answer: recorded as the proxy records it, before the error is raised."""
        origin = f"{call.provider.base_url}" if call.provider is not None else "the provider"
        if isinstance(failure, httpx.TimeoutException):
            error: TollgateError = UpstreamTimeout(f"{origin} did not answer in time")
        else:
            error = UpstreamUnavailable(f"{origin} failed: {type(failure).__name__}")
        call.refuse(error)

    def answer(self, call: MeteredCall, response: httpx.Response, body: bytes) -> tuple[httpx.Response, bool]:
        headers = _headers_of(response)
        out, durable = call.answer(response.status_code, headers, body)
        return (
            httpx.Response(
                response.status_code, headers=out, stream=httpx.ByteStream(body), extensions=response.extensions
            ),
            durable,
        )

    def stream_state(self, call: MeteredCall, response: httpx.Response) -> tuple[_StreamState, Headers]:
        meter, decoder, out = call.stream(_headers_of(response))
        state = _StreamState(call, meter, decoder, response.status_code)
        self.open_streams.add(state)
        return state, out

    def end_open_streams(self) -> None:
        """The meter closes: streams the app still holds are recorded with what they read."""
        for state in list(self.open_streams):
            state.end(_DISCONNECTED)

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


class _StreamState:
    """One metered stream: what the app has read, and its one row, written once whichever way it ends."""

    __slots__ = ("call", "meter", "decoder", "status", "held", "ended", "__weakref__")

    def __init__(self, call: MeteredCall, meter: StreamMeter, decoder: Any, status: int) -> None:
        self.call = call
        self.meter = meter
        self.decoder = decoder
        self.status = status
        self.held = b""  # the stream's last events wait until the request is recorded
        self.ended = False

    def feed(self, chunk: bytes) -> bytes:
        """A chunk from the provider in; what the app gets now out."""
        call, meter = self.call, self.meter
        if call.ttfb is None:
            call.ttfb = time.perf_counter() - call.started
        decoder = self.decoder
        out = meter.feed(decoder.decompress(chunk) if decoder is not None else chunk)
        if decoder is not None and not call.hide_usage:
            out = chunk
        if self.held or meter.finished:
            self.held += out
            return b""
        return out

    def finish(self, error: str | None) -> tuple[bytes, bool]:
        """The provider's stream is over: the held tail, and whether the row is on disk."""
        self.held += self.meter.finish()
        durable = self.end(error)
        tail, self.held = self.held, b""
        return tail, durable

    def end(self, error: str | None) -> bool:
        if self.ended:
            return True
        self.ended = True
        return self.call.end_stream(self.status, self.meter, error)


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
        except httpx.TransportError as failure:
            exchange.failed(call, failure)
            raise
        if call.streams(response.status_code, _lower(response.headers.raw)):
            state, headers = exchange.stream_state(call, response)
            return httpx.Response(
                response.status_code,
                headers=headers,
                stream=_SyncMeteredStream(state, response, exchange.runtime),
                extensions=response.extensions,
            )
        try:
            body = response.content if response.is_stream_consumed else b"".join(response.iter_raw())
        except httpx.TransportError as failure:
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
        except httpx.TransportError as failure:
            exchange.failed(call, failure)
            raise
        if call.streams(response.status_code, _lower(response.headers.raw)):
            state, headers = exchange.stream_state(call, response)
            return httpx.Response(
                response.status_code,
                headers=headers,
                stream=_AsyncMeteredStream(state, response, self),
                extensions=response.extensions,
            )
        try:
            body = (
                response.content if response.is_stream_consumed else b"".join([c async for c in response.aiter_raw()])
            )
        except httpx.TransportError as failure:
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
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coroutine, self.exchange.runtime.loop))

    async def _refuse(self, call: MeteredCall, error: TollgateError, request: httpx.Request) -> httpx.Response:
        response, durable = self.exchange.refusal(call, error, request)
        if not durable:
            await self._on_meter_loop(self.exchange.runtime.recorder.write_through())
        return response


class _SyncMeteredStream(httpx.SyncByteStream):
    def __init__(self, state: _StreamState, response: httpx.Response, runtime: Runtime) -> None:
        self._state = state
        self._response = response
        self._runtime = runtime
        self._read_already = response.is_stream_consumed

    def __iter__(self) -> Iterator[bytes]:
        state, error = self._state, None
        try:
            try:
                for chunk in _raw_chunks(self._response, self._read_already):
                    out = state.feed(chunk)
                    if out:
                        yield out
            except httpx.TransportError as dropped:
                # The provider dropped the stream: recorded with what arrived, then raised as httpx raised it.
                state.finish(UpstreamUnavailable.code)
                raise dropped
            tail, durable = state.finish(error)
            if not durable:
                self._runtime.call(self._runtime.recorder.write_through())
            if tail:
                yield tail
        finally:
            # Closed or dropped part-way (GeneratorExit): recorded with what the app read.
            state.end(_DISCONNECTED)
            self._response.close()

    def close(self) -> None:
        self._state.end(_DISCONNECTED)
        self._response.close()

    def __del__(self) -> None:
        state = getattr(self, "_state", None)
        if state is not None and not state.ended:
            state.end(_DISCONNECTED)


class _AsyncMeteredStream(httpx.AsyncByteStream):
    def __init__(self, state: _StreamState, response: httpx.Response, door: AsyncDoor) -> None:
        self._state = state
        self._response = response
        self._door = door
        self._read_already = response.is_stream_consumed

    async def __aiter__(self) -> AsyncIterator[bytes]:
        state, error = self._state, None
        try:
            try:
                async for chunk in _async_raw_chunks(self._response, self._read_already):
                    out = state.feed(chunk)
                    if out:
                        yield out
            except httpx.TransportError as dropped:
                state.finish(UpstreamUnavailable.code)
                raise dropped
            tail, durable = state.finish(error)
            if not durable:
                await self._door._on_meter_loop(self._door.exchange.runtime.recorder.write_through())
            if tail:
                yield tail
        finally:
            state.end(_DISCONNECTED)
            await self._response.aclose()

    async def aclose(self) -> None:
        self._state.end(_DISCONNECTED)
        await self._response.aclose()

    def __del__(self) -> None:
        state = getattr(self, "_state", None)
        if state is not None and not state.ended:
            state.end(_DISCONNECTED)


def _lower(headers: Sequence[tuple[bytes, bytes]]) -> Headers:
    return [(name.lower(), value) for name, value in headers]


# An inner transport may answer with a response already read (httpx.MockTransport, respx): its body is then
# decoded already, so it is taken as it is, and a content-encoding it names no longer applies.


def _headers_of(response: httpx.Response) -> Headers:
    headers = _lower(response.headers.raw)
    if response.is_stream_consumed:
        return [(name, value) for name, value in headers if name != b"content-encoding"]
    return headers


def _raw_chunks(response: httpx.Response, read_already: bool) -> Iterator[bytes]:
    return iter((response.content,)) if read_already else response.iter_raw()


async def _async_raw_chunks(response: httpx.Response, read_already: bool) -> AsyncIterator[bytes]:
    if read_already:
        yield response.content
        return
    async for chunk in response.aiter_raw():
        yield chunk
