"""Spend alerts, delivered off the request path.

``AlertDispatcher.emit`` logs the alert at once (one WARNING line on
``tollgate.alerts``, the alert's JSON in ``extra``) and queues it; it never
blocks and never raises, and may be called from any thread. A background task
then POSTs each alert to the webhook, retrying transport errors and 5xx/429
answers, and calls the configured handlers. An email outbox, when configured,
gets each alert as it is queued and sends it on its own tasks, so a slow or
failing mail server delays neither the webhook nor other alerts. An alert that
still fails is logged and dropped: alerts inform, and must never hold up or fail
a request.

Any ``Notice`` can be dispatched: a threshold ``Alert`` (here) or an anomaly
(``proxy.insight.anomalies.Anomaly``).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Protocol

import httpx
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential, wait_random

from pricing import decimal_text
from proxy.hooks import load_hooks

logger = logging.getLogger("tollgate.alerts")


class Notice(Protocol):
    """Anything the dispatcher delivers: who it is about, when, its JSON body and its words for people."""

    @property
    def scope(self) -> str: ...
    @property
    def scope_id(self) -> str: ...
    @property
    def time(self) -> datetime: ...
    def as_json(self) -> dict[str, object]: ...
    def describe(self) -> str: ...
    def subject(self) -> str: ...
    def facts(self) -> list[tuple[str, str]]:
        """(label, text) lines for an email: who, what, how much, since when."""
        ...


class Outbox(Protocol):
    """Another destination, handed each notice as it is queued (``proxy.insight.email.EmailOutbox``)."""

    def submit(self, notice: Notice) -> None: ...


AlertHandler = Callable[[Notice], object]


def utc_text(when: datetime) -> str:
    """``2026-11-25 14:03 UTC``: a time as an alert's reader sees it."""
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


@dataclass(frozen=True, slots=True)
class Alert:
    """Spend in one limit's window crossed ``threshold`` (a fraction of ``limit_usd``)."""

    scope: str  # user, team, key, agent, thread or global
    scope_id: str
    window: str  # day, week, month or total
    window_label: str  # e.g. "2026-11-25", "2026-W48", "2026-11", "total"
    spent_usd: Decimal
    limit_usd: Decimal
    threshold: Decimal  # e.g. Decimal("0.8")
    action: str  # block or warn
    time: datetime
    window_start: datetime | None = None

    def __post_init__(self) -> None:
        if self.time.tzinfo is None or self.time.utcoffset() is None:
            raise ValueError(f"Alert.time must be an aware datetime, got naive {self.time.isoformat()}")

    def as_json(self) -> dict[str, object]:
        """The webhook body: money and threshold as decimal strings, time as ISO 8601 in UTC."""
        return {
            "kind": "threshold",
            "scope": self.scope,
            "id": self.scope_id,
            "window": self.window,
            "window_label": self.window_label,
            # Strings, not floats, so that no receiver sees 0.30000000000000004 dollars.
            "spent_usd": decimal_text(self.spent_usd),
            "limit_usd": decimal_text(self.limit_usd),
            "threshold": decimal_text(self.threshold),
            "action": self.action,
            "time": self.time.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        }

    def describe(self) -> str:
        """One line for logs, e.g. ``user alice day 2026-11-25 spent $8.00 of $10.00 (80%)``."""
        window = "total" if self.window == "total" else f"{self.window} {self.window_label}"
        percent = decimal_text((self.threshold * 100).normalize())
        return (
            f"{self.scope} {self.scope_id} {window} spent ${self.spent_usd:.2f} of ${self.limit_usd:.2f} ({percent}%)"
        )

    def subject(self) -> str:
        percent = decimal_text((self.threshold * 100).normalize())
        window = "total" if self.window == "total" else f"{self.window} ({self.window_label})"
        return f"Tollgate: {_who(self.scope, self.scope_id)} reached {percent}% of its {window} limit"

    def facts(self) -> list[tuple[str, str]]:
        percent = decimal_text((self.threshold * 100).normalize())
        window = "in total" if self.window == "total" else f"in the {self.window} {self.window_label}"
        consequence = (
            "requests that would pass the limit are refused with a 429"
            if self.action == "block"
            else "the limit only warns: requests go on"
        )
        since = f"window started {utc_text(self.window_start)}; " if self.window_start is not None else ""
        return [
            ("Who", _who(self.scope, self.scope_id)),
            ("What", f"spend reached {percent}% of its limit; {consequence}"),
            ("How much", f"${self.spent_usd:.2f} spent of ${self.limit_usd:.2f} {window}"),
            ("Since when", f"{since}alert raised {utc_text(self.time)}"),
        ]


def _who(scope: str, scope_id: str) -> str:
    return "all requests" if scope == "global" else f"{scope} {scope_id}"


def load_alert_handlers(specs: Sequence[str]) -> list[AlertHandler]:
    """Import each ``"pkg.module:function"`` of ``alerts.alert_handlers``; a bad spec raises ValueError naming it."""
    return load_hooks(specs, "alert_handlers")


class _RetryableAnswer(Exception):
    """The webhook answered with a status worth retrying (5xx or 429)."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


class AlertDispatcher:
    """Logs alerts at once and delivers them (webhook, then handlers) from a background task.

    ``start`` inside the running loop, ``close`` at shutdown. ``transport`` is the
    seam tests swap (``httpx.MockTransport``, or the default one under respx).
    """

    def __init__(
        self,
        webhook_url: str | None,
        handlers: Sequence[AlertHandler] = (),
        *,
        outbox: Outbox | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 5.0,
        attempts: int = 5,
        retry_wait: float = 0.5,
        max_queued: int = 10_000,
    ) -> None:
        self._webhook_url = webhook_url or None
        # Only scheme and host reach the logs: a webhook URL often carries its secret in the path or query.
        self._origin = _origin(webhook_url) if webhook_url else ""
        self._handlers = list(handlers)
        self._outbox = outbox
        self._transport = transport
        self._timeout = timeout
        self._attempts = max(1, attempts)
        self._retry_wait = retry_wait
        self._queue: asyncio.Queue[Notice] = asyncio.Queue(maxsize=max_queued)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._client: httpx.AsyncClient | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.delivered = 0  # alerts the webhook accepted (or all alerts, without a webhook)
        self.dropped = 0  # alerts lost: queue full, webhook gave up, or still queued at close

    def start(self) -> None:
        """Start delivering; call inside the running event loop."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        if self._webhook_url is not None:
            self._client = httpx.AsyncClient(transport=self._transport, timeout=self._timeout)
        self._task = self._loop.create_task(self._run(), name="tollgate-alerts")

    def emit(self, alert: Notice) -> None:
        """Log ``alert`` now and queue it for delivery. Never blocks and never raises."""
        try:
            logger.warning("spend alert: %s", alert.describe(), extra={"alert": alert.as_json()})
            loop = self._loop
            if loop is not None and threading.get_ident() != self._loop_thread:
                # asyncio.Queue is not thread-safe; alerts found on a worker thread hop to the loop.
                loop.call_soon_threadsafe(self._enqueue, alert)
            else:
                self._enqueue(alert)
        except Exception:
            logger.exception("could not queue spend alert for %s %s", alert.scope, alert.scope_id)

    async def close(self) -> None:
        """Deliver what is queued, waiting at most ``timeout * attempts`` seconds in all, then stop."""
        self._closed = True
        if self._task is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._timeout * self._attempts):
                    await self._queue.join()
            self._task.cancel()
            # wait(), not a bare await: the task's CancelledError is expected, but a cancel of close() itself
            # must still propagate.
            await asyncio.wait([self._task])
            self._task = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        left = self._queue.qsize()
        if left:
            self.dropped += left
            logger.error("shutdown dropped %d spend alerts still queued for delivery", left)

    def _enqueue(self, alert: Notice) -> None:
        if self._closed:
            self.dropped += 1
            logger.error("spend alert for %s %s arrived after shutdown; dropped", alert.scope, alert.scope_id)
            return
        if self._outbox is not None:
            try:
                self._outbox.submit(alert)
            except Exception:
                logger.exception("could not queue the email for the alert on %s %s", alert.scope, alert.scope_id)
        try:
            self._queue.put_nowait(alert)
        except asyncio.QueueFull:
            self.dropped += 1
            logger.error(
                "spend alert queue is full (%d waiting); dropped alert for %s %s",
                self._queue.maxsize,
                alert.scope,
                alert.scope_id,
            )

    async def _run(self) -> None:
        while True:
            alert = await self._queue.get()
            try:
                await self._deliver(alert)
            except asyncio.CancelledError:
                self.dropped += 1
                logger.error("shutdown cut short the delivery of the alert for %s %s", alert.scope, alert.scope_id)
                raise
            except Exception:
                logger.exception("delivering spend alert for %s %s failed", alert.scope, alert.scope_id)
            finally:
                self._queue.task_done()

    async def _deliver(self, alert: Notice) -> None:
        accepted = await self._post(alert) if self._client is not None else True
        if accepted:
            self.delivered += 1
        else:
            self.dropped += 1
        # Handlers run even when the webhook failed: they are separate destinations.
        for handler in self._handlers:
            await self._call(handler, alert)

    async def _post(self, alert: Notice) -> bool:
        """POST ``alert`` to the webhook with retries; False (and logged) if it never got through."""
        assert self._client is not None and self._webhook_url is not None
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._attempts),
            # Exponential backoff plus jitter, spelt so that every tenacity release reads it the same way
            # (wait_exponential_jitter renamed its first argument; google-genai holds tenacity below 9.2).
            wait=wait_exponential(multiplier=self._retry_wait, max=self._retry_wait * 20)
            + wait_random(0, self._retry_wait),
            retry=retry_if_exception_type((httpx.TransportError, _RetryableAnswer)),
            reraise=True,
        )
        body = alert.as_json()
        try:
            async for attempt in retrying:
                with attempt:
                    response = await self._client.post(self._webhook_url, json=body)
                    if response.status_code == 429 or response.status_code >= 500:
                        raise _RetryableAnswer(response.status_code)
                    if response.is_error:
                        # Any other 4xx will not change on a retry: the URL or the receiver is wrong.
                        logger.error(
                            "alert webhook at %s refused the alert with HTTP %d; dropped",
                            self._origin,
                            response.status_code,
                        )
                        return False
                    return True
        except (httpx.TransportError, _RetryableAnswer) as exc:
            reason = str(exc) if isinstance(exc, _RetryableAnswer) else type(exc).__name__
            logger.error(
                "alert webhook at %s failed %d times (last: %s); alert for %s %s dropped",
                self._origin,
                self._attempts,
                reason,
                alert.scope,
                alert.scope_id,
            )
        return False

    async def _call(self, handler: AlertHandler, alert: Notice) -> None:
        try:
            # Kept in a bool: narrowing on iscoroutinefunction would confuse mypy about to_thread below.
            is_async = inspect.iscoroutinefunction(handler)
            if is_async:
                result = handler(alert)
            else:
                # A slow synchronous handler must not stall the loop that serves requests.
                result = await asyncio.to_thread(handler, alert)
            if inspect.isawaitable(result):
                await result
        except Exception:
            logger.exception("alert handler %s failed on alert for %s %s", _name(handler), alert.scope, alert.scope_id)


def _origin(url: str) -> str:
    parsed = httpx.URL(url)
    return f"{parsed.scheme}://{parsed.host}"


def _name(handler: AlertHandler) -> str:
    return f"{getattr(handler, '__module__', '?')}:{getattr(handler, '__qualname__', repr(handler))}"
