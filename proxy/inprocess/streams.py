"""The in-process door's streams: what a metered stream has read, and the httpx byte streams the app reads.

A stream the app reads to its end is recorded with the usage it reported; one the app closes or
drops part-way is recorded at once with what it read (``DISCONNECTED``), as the proxy does with
``on_client_disconnect = "cancel"``. Its last events wait until its row is recorded.

The streams are httpx's and httpx2's at once, so that the clients of both packages read them;
``wire_of`` gives the classes of the package a request came in.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any

import httpx
import httpx2

from proxy.core import MeteredCall
from proxy.errors import UpstreamUnavailable
from proxy.inprocess.runtime import Runtime
from proxy.sse import StreamMeter

DISCONNECTED = "client_disconnected"


async def on_meter_loop(runtime: Runtime, coroutine: Any) -> Any:
    """Run a coroutine of the meter's services on their loop, without blocking the app's."""
    return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coroutine, runtime.loop))


class StreamState:
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
        call, meter, decoder = self.call, self.meter, self.decoder
        if call.ttfb is None:
            call.ttfb = time.perf_counter() - call.started
        if decoder is None:
            out = meter.feed(chunk)
        else:
            out = meter.feed(decoder.decompress(chunk))
            if not call.hide_usage:
                out = chunk
        if self.held or meter.reader.finished:
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


class SyncMeteredStream(httpx.SyncByteStream, httpx2.SyncByteStream):
    def __init__(self, state: StreamState, response: httpx.Response, runtime: Runtime) -> None:
        self._state = state
        self._response = response
        self._runtime = runtime
        self._read_already = response.is_stream_consumed

    def __iter__(self) -> Iterator[bytes]:
        state, error = self._state, None
        feed = state.feed
        try:
            try:
                for chunk in _raw_chunks(self._response, self._read_already):
                    out = feed(chunk)
                    if out:
                        yield out
            except TRANSPORT_ERRORS as dropped:
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
            state.end(DISCONNECTED)
            self._response.close()

    def close(self) -> None:
        self._state.end(DISCONNECTED)
        self._response.close()

    def __del__(self) -> None:
        state = getattr(self, "_state", None)
        if state is not None and not state.ended:
            state.end(DISCONNECTED)


class AsyncMeteredStream(httpx.AsyncByteStream, httpx2.AsyncByteStream):
    def __init__(self, state: StreamState, response: httpx.Response, runtime: Runtime) -> None:
        self._state = state
        self._response = response
        self._runtime = runtime
        self._read_already = response.is_stream_consumed

    async def __aiter__(self) -> AsyncIterator[bytes]:
        state, error = self._state, None
        feed = state.feed
        try:
            try:
                async for chunk in _async_raw_chunks(self._response, self._read_already):
                    out = feed(chunk)
                    if out:
                        yield out
            except TRANSPORT_ERRORS as dropped:
                state.finish(UpstreamUnavailable.code)
                raise dropped
            tail, durable = state.finish(error)
            if not durable:
                await on_meter_loop(self._runtime, self._runtime.recorder.write_through())
            if tail:
                yield tail
        finally:
            state.end(DISCONNECTED)
            await self._response.aclose()

    async def aclose(self) -> None:
        self._state.end(DISCONNECTED)
        await self._response.aclose()

    def __del__(self) -> None:
        state = getattr(self, "_state", None)
        if state is not None and not state.ended:
            state.end(DISCONNECTED)


class _Wire:
    """The classes of one httpx package: httpx, or httpx2, its fork, which the newer SDKs are built on.

    A request is answered in the package it came in, so the door serves the clients of both.
    """

    __slots__ = ("Request", "Response", "Headers", "ByteStream")

    def __init__(self, package: Any) -> None:
        # Typed as httpx's: httpx2's classes are the same, under another name.
        self.Request: type[httpx.Request] = package.Request
        self.Response: type[httpx.Response] = package.Response
        self.Headers: type[httpx.Headers] = package.Headers
        self.ByteStream: type[httpx.ByteStream] = package.ByteStream


_HTTPX, _HTTPX2 = _Wire(httpx), _Wire(httpx2)
TRANSPORT_ERRORS = (httpx.TransportError, httpx2.TransportError)
TIMEOUTS = (httpx.TimeoutException, httpx2.TimeoutException)


def wire_of(message: httpx.Request | httpx.Response) -> _Wire:
    return _HTTPX2 if isinstance(message, httpx2.Request | httpx2.Response) else _HTTPX


def _raw_chunks(response: httpx.Response, read_already: bool) -> Iterable[bytes]:
    # The inner response's own stream, not its ``iter_raw()``: the app's response counts and chunks the bytes
    # once already, and the inner transport's stream maps its own errors to httpx's.
    if read_already:
        return (response.content,)
    assert isinstance(response.stream, httpx.SyncByteStream | httpx2.SyncByteStream)
    return response.stream


def _async_raw_chunks(response: httpx.Response, read_already: bool) -> AsyncIterator[bytes]:
    if read_already:
        return _one_chunk(response.content)
    assert isinstance(response.stream, httpx.AsyncByteStream | httpx2.AsyncByteStream)
    return response.stream.__aiter__()


async def _one_chunk(content: bytes) -> AsyncIterator[bytes]:
    yield content
