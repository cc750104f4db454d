"""An alert handler for tests: collects every alert it is called with."""

from __future__ import annotations

from proxy.limits.alerts import Alert

RECEIVED: list[Alert] = []


def collect(alert: Alert) -> None:
    RECEIVED.append(alert)
