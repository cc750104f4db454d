"""``MeteringTransport`` and ``AsyncMeteringTransport``: httpx transports that meter what passes through them.

Each wraps an inner transport (httpx's own by default), so what the client configures on
it (proxies, TLS, connection limits, retries of connects) keeps working. Every request
goes through the meter's front door (``proxy.inprocess.door``); one to a URL no provider
dialect speaks goes to the inner transport untouched.

Light to import: the meter's core is imported when the ``Meter`` starts, not here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from types import TracebackType

    from proxy.inprocess.meter import Meter


class MeteringTransport(httpx.BaseTransport):
    """Meters every provider call of a sync ``httpx.Client`` (``OpenAI(http_client=...)``)."""

    def __init__(self, meter: Meter, transport: httpx.BaseTransport | None = None) -> None:
        self.meter = meter
        self.inner = transport if transport is not None else httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self.meter.sync_door().handle(request, self.inner)

    def close(self) -> None:
        self.inner.close()

    def __exit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        self.inner.__exit__(exc_type, exc_value, traceback)


class AsyncMeteringTransport(httpx.AsyncBaseTransport):
    """Meters every provider call of an ``httpx.AsyncClient`` (``AsyncOpenAI(http_client=...)``)."""

    def __init__(self, meter: Meter, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.meter = meter
        self.inner = transport if transport is not None else httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self.meter.async_door().handle(request, self.inner)

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        await self.inner.__aexit__(exc_type, exc_value, traceback)
