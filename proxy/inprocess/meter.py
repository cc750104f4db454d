"""``Meter``: the proxy's meter inside the app, handed to the SDKs as an httpx client.

A ``Meter`` starts the services the proxy runs (store, journal, recorder, budget leases,
alerts, usage handlers; see ``proxy.inprocess.runtime``) from the same config, and gives
out httpx clients whose transports run each provider call through the proxy's core.

It is safe to leave running: ``close()`` (or the ``with`` block, or the interpreter's
exit) writes what is queued; a forked child starts services of its own on its first
call and leaves the parent's alone; a database outage leaves records in the journal.

Light to import: the core is imported when a ``Meter`` is made, and httpx when it makes a client.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from proxy.inprocess.scope import attribution_scope

if TYPE_CHECKING:
    from types import TracebackType

    import httpx
    import httpx2

    from proxy.attribution import Attribution
    from proxy.clock import Clock
    from proxy.config import Config
    from proxy.inprocess.door import AsyncDoor, Exchange, SyncDoor
    from proxy.inprocess.runtime import Runtime
    from proxy.recording.records import UsageRecord

logger = logging.getLogger("tollgate.inprocess")

UsageCallback = Callable[["UsageRecord"], Any]
# The SDKs set a timeout on each request; this is for other calls through the client (httpx's own is 5 s).
_TIMEOUT_S, _CONNECT_TIMEOUT_S = 600.0, 10.0


class MeterClosed(RuntimeError):
    """A call went through a client of a meter that was closed."""


class Meter:
    """The in-process meter. ``Meter(config)`` or ``Meter.from_config("config.toml")``.

    ``load_prices=True`` reads the price map now rather than on the first priced call;
    ``clock`` is the one source of "now", as for the proxy.
    """

    def __init__(self, config: Config | None = None, *, load_prices: bool = False, clock: Clock | None = None) -> None:
        from pricing import Catalog
        from proxy.clock import system_clock
        from proxy.config import load_config
        from proxy.inprocess.runtime import LazyCatalog

        self.config = config if config is not None else load_config()
        prices = self.config.pricing_models
        self._catalog = Catalog.load(prices) if load_prices else LazyCatalog(prices)
        self._clock = clock if clock is not None else system_clock
        self._handlers: list[UsageCallback] = []
        self._lock = threading.Lock()
        self._runtime: Runtime | None = None
        self._exchange: Exchange | None = None
        self._sync: SyncDoor | None = None
        self._async: AsyncDoor | None = None
        self._closed = False
        self._start()
        _close_at_exit(self)
        _start_anew_after_fork(self)

    @classmethod
    def from_config(cls, path: str | os.PathLike[str], **options: Any) -> Meter:
        """The meter for a config file; its relative paths mean its folder, as for the proxy."""
        from proxy.config import load_config

        return cls(load_config(path), **options)

    # The clients.

    def httpx_client(self, **options: Any) -> httpx.Client:
        """An ``httpx.Client`` (taking httpx's own arguments) whose every transport is metered.

        ``transport=`` is the inner transport; proxies and mounts the client sets up are metered too.
        """
        import httpx

        from proxy.inprocess.transport import MeteringTransport

        options.setdefault("timeout", httpx.Timeout(_TIMEOUT_S, connect=_CONNECT_TIMEOUT_S))
        client = httpx.Client(**options)
        _wrap_transports(client, lambda inner: MeteringTransport(self, inner))
        return client

    def async_httpx_client(self, **options: Any) -> httpx.AsyncClient:
        """An ``httpx.AsyncClient`` whose every transport is metered (see ``httpx_client``)."""
        import httpx

        from proxy.inprocess.transport import AsyncMeteringTransport

        options.setdefault("timeout", httpx.Timeout(_TIMEOUT_S, connect=_CONNECT_TIMEOUT_S))
        client = httpx.AsyncClient(**options)
        _wrap_transports(client, lambda inner: AsyncMeteringTransport(self, inner))
        return client

    def httpx2_client(self, **options: Any) -> httpx2.Client:
        """An ``httpx2.Client``, metered as ``httpx_client``'s, for the SDKs built on httpx's fork, httpx2.

        ``anthropic`` 2 takes only these; ``openai`` 3 and ``google-genai`` take either.
        """
        import httpx2

        from proxy.inprocess.transport import MeteringTransport

        options.setdefault("timeout", httpx2.Timeout(_TIMEOUT_S, connect=_CONNECT_TIMEOUT_S))
        client = httpx2.Client(**options)
        _wrap_transports(client, lambda inner: MeteringTransport(self, inner))
        return client

    def async_httpx2_client(self, **options: Any) -> httpx2.AsyncClient:
        """An ``httpx2.AsyncClient`` whose every transport is metered (see ``httpx2_client``)."""
        import httpx2

        from proxy.inprocess.transport import AsyncMeteringTransport

        options.setdefault("timeout", httpx2.Timeout(_TIMEOUT_S, connect=_CONNECT_TIMEOUT_S))
        client = httpx2.AsyncClient(**options)
        _wrap_transports(client, lambda inner: AsyncMeteringTransport(self, inner))
        return client

    # Attribution and handlers.

    def attribute(
        self,
        user: str | None = None,
        team: str | None = None,
        thread: str | None = None,
        agent: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> AbstractContextManager[Attribution]:
        """A scope whose calls are attributed to these (see ``proxy.inprocess.scope``); headers on a call win."""
        return attribution_scope(user=user, team=team, thread=thread, agent=agent, tags=tags)

    def on_usage(self, handler: UsageCallback) -> UsageCallback:
        """Call ``handler`` (sync or async) with each finished ``UsageRecord``, off the app's path.

        It runs once the record is written, on the meter's thread; an exception it raises is logged.
        Returns ``handler``, so this works as a decorator.
        """
        with self._lock:
            self._handlers.append(handler)
            if self._runtime is not None:
                self._runtime.recorder.add_handler(handler)
        return handler

    # Life.

    def flush(self, timeout: float | None = 30.0) -> bool:
        """Write every finished record now; False if the database refused them (they wait in the journal)."""
        runtime = self._runtime
        return runtime.flush(timeout) if runtime is not None else True

    def close(self) -> None:
        """Record streams still open, write everything queued, give back leases and stop. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            runtime, exchange = self._runtime, self._exchange
            self._runtime = self._exchange = self._sync = self._async = None
        if exchange is not None:
            exchange.end_open_streams()
        if runtime is not None:
            runtime.close()

    def __enter__(self) -> Meter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def metrics_text(self) -> bytes:
        """The meter's Prometheus metrics, as the proxy's ``/metrics`` renders them."""
        return self._started().metering.metrics.render()

    # The doors the transports call: the services of this process, started on first use after a fork.

    def sync_door(self) -> SyncDoor:
        door = self._sync
        return door if door is not None else self._start()[0]

    def async_door(self) -> AsyncDoor:
        door = self._async
        return door if door is not None else self._start()[1]

    def _started(self) -> Runtime:
        self._start()
        assert self._runtime is not None
        return self._runtime

    def _start(self) -> tuple[SyncDoor, AsyncDoor]:
        from proxy.inprocess.door import AsyncDoor, Exchange, SyncDoor
        from proxy.inprocess.runtime import Runtime

        with self._lock:
            if self._closed:
                raise MeterClosed("this Tollgate meter was closed: make a new Meter to meter more calls")
            if self._sync is None or self._async is None or self._runtime is None:
                self._runtime = Runtime(self.config, self._catalog, list(self._handlers), self._clock)
                self._exchange = Exchange(self._runtime)
                self._sync, self._async = SyncDoor(self._exchange), AsyncDoor(self._exchange)
            return self._sync, self._async

    def _after_fork(self) -> None:
        """In a forked child: the parent's services are the parent's; this process starts its own when used."""
        self._lock = threading.Lock()  # another thread may have held it at the fork
        runtime = self._runtime
        self._runtime = self._exchange = self._sync = self._async = None
        if runtime is not None:
            runtime.abandon_after_fork()

    def _at_exit(self) -> None:
        try:
            self.close()
        except Exception:
            logger.exception("the meter did not close cleanly at exit; its journal keeps what was not written")


def _wrap_transports(client: Any, wrap: Callable[[Any], Any]) -> None:
    """Meter the client's transport and every transport mounted on it (proxies from the environment included).

    httpx (and httpx2) builds those from the client's own arguments, so they are wrapped once built;
    it keeps them in ``_transport`` and ``_mounts`` (a ``None`` mount means the client's transport).
    """
    client._transport = wrap(client._transport)
    client._mounts = {pattern: None if inner is None else wrap(inner) for pattern, inner in client._mounts.items()}


def _close_at_exit(meter: Meter) -> None:
    """Close ``meter`` when the interpreter exits, unless it was closed or collected before.

    Registered where ``concurrent.futures`` registers its own exit: those callbacks run last
    registered first, so the meter's writes still find their worker threads running (an
    ``atexit`` callback would run after they stopped taking work).
    """
    ref = weakref.ref(meter)

    def close() -> None:
        found = ref()
        if found is not None:
            found._at_exit()

    register = getattr(threading, "_register_atexit", None)
    if register is not None:
        register(close)
    else:  # pragma: no cover - every CPython this supports has it
        import atexit

        atexit.register(close)


def _start_anew_after_fork(meter: Meter) -> None:
    ref = weakref.ref(meter)

    def after_in_child() -> None:
        found = ref()
        if found is not None:
            found._after_fork()

    os.register_at_fork(after_in_child=after_in_child)
