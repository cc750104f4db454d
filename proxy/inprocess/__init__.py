"""Metering inside the app: the proxy's meter as an httpx transport, with no network hop.

    from proxy.inprocess import Meter

    meter = Meter.from_config("config.toml")
    client = OpenAI(http_client=meter.httpx_client())     # AsyncOpenAI: meter.async_httpx_client()
    with meter.attribute(user="alice", team="research"):
        client.chat.completions.create(...)
    meter.close()

Each provider call runs through ``proxy.core`` and ``proxy.dialects`` as it would through the
proxy, and its row lands in the same table, marked ``front_door = "inprocess"``. Modules:

- ``meter``: ``Meter``, its clients, scopes, handlers and life (exit, fork);
- ``transport``: ``MeteringTransport`` and ``AsyncMeteringTransport``, the httpx seam;
- ``scope``: attribution scopes, in a ``contextvars`` variable;
- ``door``: a request through the core's steps (imported when a meter starts);
- ``runtime``: the services, on the meter's own thread (imported when a meter starts).
- ``streams``: a metered stream, and the httpx byte streams the app reads (imported when a meter starts).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from proxy.inprocess.meter import Meter, MeterClosed

if TYPE_CHECKING:
    from proxy.inprocess.transport import AsyncMeteringTransport, MeteringTransport

__all__ = ["AsyncMeteringTransport", "Meter", "MeterClosed", "MeteringTransport"]


def __getattr__(name: str) -> Any:
    # The transports import httpx, which a ``Meter`` needs only when it hands out a client.
    if name in ("MeteringTransport", "AsyncMeteringTransport"):
        from proxy.inprocess import transport

        return getattr(transport, name)
    raise AttributeError(f"module 'proxy.inprocess' has no attribute {name!r}")
