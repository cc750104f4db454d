"""The upstream client: one seam, ``Upstream``, and its aiohttp implementation.

The forwarding path is the product, so it uses aiohttp directly: built per
request, httpx objects cost about half the throughput on this path (see the
README's Performance section). The app receives an ``Upstream`` when it is
built; tests pass the same ``AiohttpUpstream`` pointed at a fake provider on
loopback, so the real client is what gets exercised.

One retry policy (tenacity): a connection failure, a timeout before the answer
began, or a 429, 500, 502, 503 or 504 is tried again, with exponential backoff
and jitter, honouring the provider's ``Retry-After``, within the provider's
attempts and total time. All of these happen before any byte reaches the client;
nothing is retried after that. When the attempts run out, the provider's last
answer passes through as it is.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Protocol

import aiohttp
import yarl
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt, stop_after_delay

from proxy.errors import TollgateError, UpstreamTimeout, UpstreamUnavailable

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
        retry_max_seconds: float,
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
        except TimeoutError as exc:  # aiohttp's read timeouts are TimeoutErrors too
            raise UpstreamTimeout("the provider stopped sending its answer and did not finish it in time") from exc
        except aiohttp.ClientError as exc:
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
        retry_max_seconds: float = 30.0,
    ) -> UpstreamResponse:
        timeout = self._timeouts.get((connect_timeout, read_timeout))
        if timeout is None:
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout, sock_read=read_timeout)
            self._timeouts[(connect_timeout, read_timeout)] = timeout
        try:
            return await self._attempt(method, url, headers, body, timeout)
        except _Retryable as failure:
            first = failure
        if retries <= 0:
            return first.give_up()
        # The common path above stays free of the retry machinery; only failures pay for it.
        deadline = time.monotonic() + retry_max_seconds
        failures = [first]
        retrying = AsyncRetrying(
            stop=stop_after_attempt(retries) | stop_after_delay(retry_max_seconds),
            wait=lambda state: self._delay(_failure_of(state), state.attempt_number, deadline),
            retry=retry_if_exception_type(_Retryable),
            reraise=True,
        )
        await asyncio.sleep(self._delay(first, 1, deadline))
        try:
            async for attempt in retrying:
                with attempt:
                    last = failures.pop()
                    last.release()
                    logger.warning("retrying %s %s after %s", method, _origin(url), last.reason)
                    try:
                        return await self._attempt(method, url, headers, body, timeout)
                    except _Retryable as failure:
                        failures.append(failure)
                        raise
        except _Retryable:
            pass
        return failures[-1].give_up(retries + 1)

    def _delay(self, failure: _Retryable | None, attempt: int, deadline: float) -> float:
        """Seconds before the next attempt: the provider's Retry-After if it gave one, else exponential backoff."""
        if failure is not None and failure.retry_after is not None:
            delay = failure.retry_after
        else:
            delay = min(self._retry_wait * 2 ** (attempt - 1), self._retry_wait * 10) + random.uniform(
                0, self._retry_wait
            )
        return max(0.0, min(delay, deadline - time.monotonic()))

    async def _attempt(
        self, method: str, url: str, headers: Sequence[tuple[str, str]], body: bytes, timeout: aiohttp.ClientTimeout
    ) -> UpstreamResponse:
        """One try; raises ``_Retryable`` for a failure that happened before any byte reached the client."""
        try:
            # encoded=True: the path goes out byte for byte as the client sent it (see proxy.paths); yarl
            # would otherwise decode escapes such as %73 and re-encode others.
            response = await self._session.request(
                method,
                yarl.URL(url, encoded=True),
                data=body or None,
                headers=list(headers),
                timeout=timeout,
                allow_redirects=False,
            )
        except aiohttp.ClientConnectorError:
            raise _Retryable(
                "a connection failure",
                error=UpstreamUnavailable(f"could not connect to the provider at {_origin(url)}"),
            ) from None
        except TimeoutError:
            raise _Retryable(
                "a timeout", error=UpstreamTimeout(f"the provider at {_origin(url)} did not answer in time")
            ) from None
        except aiohttp.ClientError as exc:
            raise UpstreamUnavailable(f"the provider at {_origin(url)} failed: {type(exc).__name__}") from None
        if response.status in RETRY_STATUSES:
            raise _Retryable(
                f"status {response.status}",
                response=_AiohttpResponse(response),
                retry_after=_retry_after(response.headers.get("retry-after")),
            )
        return _AiohttpResponse(response)

    async def close(self) -> None:
        await self._session.close()


RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class _Retryable(Exception):
    """A failed attempt worth another: a connection failure, a timeout, or a retryable status."""

    def __init__(
        self,
        reason: str,
        *,
        response: UpstreamResponse | None = None,
        error: TollgateError | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.response = response
        self.error = error
        self.retry_after = retry_after

    def release(self) -> None:
        if self.response is not None:
            self.response.release()

    def give_up(self, attempts: int = 1) -> UpstreamResponse:
        """The last answer passes through as it is; a failure without one becomes an error."""
        if self.response is not None:
            return self.response
        assert self.error is not None
        if attempts > 1:
            self.error.message += f" after {attempts} attempts"
        # Tollgate has retried already: an SDK that retried too would multiply the attempts.
        self.error.headers["x-should-retry"] = "false"
        raise self.error


def _failure_of(state: RetryCallState) -> _Retryable | None:
    error = state.outcome.exception() if state.outcome is not None else None
    return error if isinstance(error, _Retryable) else None


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header: a number of seconds, or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError):
        return None


def _origin(url: str) -> str:
    """Scheme and host of ``url``: enough to act on, never a path or query that might hold a secret."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}"
