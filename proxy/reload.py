"""Config reload without a restart: on SIGHUP, and when the config file changes.

A new config is validated whole (the file, the price overrides) before anything
changes. An invalid one is refused with an error naming the key and the file,
and the old config stays in force. The app's ``apply`` hands the rest to the
running server: ``Metering.configure`` rebuilds providers, keys, attribution,
teams, limits, prices (for metering and for the unit prices on new invoices),
``auth.mode`` and the per-request settings of ``[server]`` and ``[budget]``, and
the billing holder that the invoice routes and the scheduler read takes
``[billing]``. ``RESTART_ONLY`` lists what is read once, at start; a reload that
changes one of those says that it waits for a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Callable
from operator import attrgetter
from pathlib import Path

from pricing import Catalog, PricingConfigError
from proxy.config import Config, ConfigError, load_config

logger = logging.getLogger("tollgate.reload")

# Config parts that proxy/app.py reads once, when the server starts: the listening socket, the store, the
# recorder and journal, the budget keeper, the alert dispatcher, the metrics and the hooks it imports.
RESTART_ONLY = (
    "server.host",
    "server.port",
    "server.workers",
    "server.metrics_user_labels",
    "database",
    "recorder",
    "budget.lease_seconds",
    "budget.lease_ttl",
    "budget.sync_interval",
    "budget.limits_when_db_down",
    "alerts",
    "anomalies",
    "usage_handlers",
)


class ConfigReloader:
    def __init__(self, config: Config, apply: Callable[[Config, Catalog], None], interval: float = 2.0) -> None:
        self.config = config
        self._apply = apply
        self._interval = interval
        self._path = Path(config.source) if Path(config.source).is_file() else None
        self._mtime = self._stat()
        self._task: asyncio.Task[None] | None = None

    def _stat(self) -> float | None:
        try:
            return os.stat(self._path).st_mtime if self._path else None
        except OSError:
            return None

    def reload(self) -> bool:
        """Read the file again and apply it; False (the old config stays) if it is invalid."""
        if self._path is None:
            logger.warning("no config file to reload")
            return False
        try:
            config = load_config(self._path)
            catalog = Catalog.load(config.pricing_models)
        except (ConfigError, PricingConfigError) as exc:
            logger.error("config reload refused, the old config stays in force: %s", exc)
            return False
        changed = [name for name in RESTART_ONLY if attrgetter(name)(config) != attrgetter(name)(self.config)]
        if changed:
            logger.warning("config reloaded, but %s take effect only after a restart", ", ".join(changed))
        self._apply(config, catalog)
        self.config = config
        logger.info("config reloaded from %s", self._path)
        return True

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        # Signals reach only the main thread's loop; elsewhere (tests, embedding) the file watch still works.
        with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
            loop.add_signal_handler(signal.SIGHUP, self.reload)
        if self._path is not None and self._interval > 0:
            self._task = loop.create_task(self._watch(), name="tollgate-config-watch")

    async def close(self) -> None:
        with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            mtime = self._stat()
            if mtime != self._mtime:
                self._mtime = mtime
                self.reload()
