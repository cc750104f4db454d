"""The upstream client: one seam, ``Upstream``, and its aiohttp implementation.

The forwarding path is the product, so it uses aiohttp directly: built per
request, httpx objects cost about half the throughput on this path (see the
README's Performance section). The app receives an ``Upstream`` when it is
built; tests pass the same ``AiohttpUpstream`` pointed at a fake provider on
loopback, so the real client is what gets exercised.

One retry policy (tenacity): a request whose *connection* failed never reached
the provider, so it is retried with exponential backoff and jitter. Nothing is
retried once the provider may have seen the request.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from typing import Protocol

import aiohttp
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from proxy.errors import UpstreamTimeout, UpstreamUnavailable

logger = logging.getLogger("tollgate.forward")


class UpstreamResponse(Protocol):
    status: int
    headers: Sequence[tuple[bytes, bytes]]
    """Raw response headers, names lower-cased."""

    async def read(self) -> bytes: ...

    def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives; raises ``UpstreamUnavailable`` if the provider drops it."""
        ...

    def release(self) -> None: ...


class Upstream(Protocol):
    async def send(
        self,
        method: str,
        url: str,
        headers: Sequence[tuple[str, str]],
        body: bytes,
        *,
        connect_timeout: float,
        read_timeout: float,
        retries: int,
    ) -> UpstreamResponse: ...

    async def close(self) -> None: ...


class _AiohttpResponse:
    __slots__ = ("status", "headers", "_response")

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self.status = response.status
        self.headers: Sequence[tuple[bytes, bytes]] = [(name.lower(), value) for name, value in response.raw_headers]

    async def read(self) -> bytes:
        try:
            return await self._response.read()
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise UpstreamUnavailable(f"the provider dropped the response: {type(exc).__name__}") from exc
        finally:
            self._response.release()

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise UpstreamUnavailable(f"the provider dropped the stream: {type(exc).__name__}") from exc

    def release(self) -> None:
        self._response.release()


class AiohttpUpstream:
    """``Upstream`` over one long-lived aiohttp session with a warm connection pool."""

    def __init__(self, retry_wait: float = 0.2) -> None:
        self._retry_wait = retry_wait
        self._timeouts: dict[tuple[float, float], aiohttp.ClientTimeout] = {}
        # No automatic decompression and no headers of aiohttp's own: bytes go through as the provider sent them.
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, keepalive_timeout=30),
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
            cookie_jar=aiohttp.DummyCookieJar(),
        )

    async def send(
        self,
        method: str,
        url: str,
        headers: Sequence[tuple[str, str]],
        body: bytes,
        *,
        connect_timeout: float,
        read_timeout: float,
        retries: int,
    ) -> UpstreamResponse:
        timeout = self._timeouts.get((connect_timeout, read_timeout))
        if timeout is None:
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout, sock_read=read_timeout)
            self._timeouts[(connect_timeout, read_timeout)] = timeout
        try:
            return await self._send_once(method, url, headers, body, timeout)
        except aiohttp.ClientConnectorError:
            if retries <= 0:
                raise UpstreamUnavailable(f"could not connect to the provider at {_origin(url)}") from None
        # The common path above stays free of the retry machinery; only failures pay for it.
        retrying = AsyncRetrying(
            stop=stop_after_attempt(retries),
            wait=wait_exponential_jitter(
                multiplier=self._retry_wait, max=self._retry_wait * 10, jitter=self._retry_wait
            ),
            retry=retry_if_exception_type(aiohttp.ClientConnectorError),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    logger.warning("retrying %s %s after a connection failure", method, _origin(url))
                    return await self._send_once(method, url, headers, body, timeout)
        except aiohttp.ClientConnectorError:
            pass
        raise UpstreamUnavailable(f"could not connect to the provider at {_origin(url)} after {retries + 1} attempts")

    async def _send_once(
        self, method: str, url: str, headers: Sequence[tuple[str, str]], body: bytes, timeout: aiohttp.ClientTimeout
    ) -> UpstreamResponse:
        try:
            response = await self._session.request(
                method, url, data=body or None, headers=list(headers), timeout=timeout, allow_redirects=False
            )
        except aiohttp.ClientConnectorError:
            raise
        except TimeoutError:
            raise UpstreamTimeout(f"the provider at {_origin(url)} did not answer in time") from None
        except aiohttp.ClientError as exc:
            raise UpstreamUnavailable(f"the provider at {_origin(url)} failed: {type(exc).__name__}") from None
        return _AiohttpResponse(response)

    async def close(self) -> None:
        await self._session.close()


def _origin(url: str) -> str:
    """Scheme and host of ``url``: enough to act on, never a path or query that might hold a secret."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}"
