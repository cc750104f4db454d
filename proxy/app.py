"""The ASGI application: ``create_app(config)`` builds it, the lifespan opens what it needs.

Long-lived things (the upstream client, the database engine, the recorder and
the price catalog) are opened once in the lifespan and reach the request path
through lifespan state, never per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pricing import Catalog, PriceVersion
from proxy.admin.dashboard import dashboard_routes
from proxy.admin.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from proxy.admin.metrics import Metrics
from proxy.admin.routes import admin_routes, guarded
from proxy.asgi import ProxyEndpoint, Receive, Scope, Send
from proxy.billing.api import invoice_routes
from proxy.billing.scheduler import InvoiceScheduler
from proxy.billing.settings import CurrentBilling, settings_from_config
from proxy.clock import Clock, system_clock
from proxy.config import Config, TeamConfig, load_config
from proxy.core import Metering
from proxy.errors import BadRequest, NotFound, TollgateError, render_error
from proxy.forward import AiohttpUpstream, Upstream
from proxy.heap import settle_heap
from proxy.hooks import load_hooks
from proxy.insight.api import insight_routes
from proxy.insight.forecast import forecast_warnings
from proxy.insight.monitor import AnomalyMonitor
from proxy.limits import tokenizer
from proxy.limits.alerts import AlertDispatcher, load_alert_handlers
from proxy.limits.budget import BudgetKeeper
from proxy.limits.ledger import Ledger
from proxy.limits.rate_keeper import RateKeeper
from proxy.limits.rate_ledger import RateLedger
from proxy.limits.runtime import RuntimeLimits, RuntimeLimitWatcher
from proxy.limits.state import limit_states
from proxy.recording.journal import Journal
from proxy.recording.migrations import UpgradeRefused
from proxy.recording.prices import load_versions
from proxy.recording.recorder import Recorder
from proxy.recording.store import Store
from proxy.reload import ConfigReloader
from proxy.startup import start_warnings

if TYPE_CHECKING:
    from proxy.insight.email import EmailOutbox

logger = logging.getLogger("tollgate.app")
_SWITCH_INTERVAL_S = 0.0005

UpstreamFactory = Callable[[], Upstream]


class TollgateApp(Starlette):
    """Starlette for health, admin and errors; provider API paths (``/v1/...``) go straight to the proxy.

    The proxy path skips Starlette's routing and middleware: on this path they cost
    about a fifth of the request's CPU (see the README's Performance section).
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["state"]["metering"].serves(scope["path"]):
            await scope["state"]["proxy"](scope, receive, send)
            return
        await super().__call__(scope, receive, send)


async def _healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def _readyz(request: Request) -> Response:
    store: Store = request.state.store
    problem = store.file_problem()  # one os.stat: a deleted SQLite file still answers every query
    if problem is not None:
        return JSONResponse({"status": "database file lost", "reason": problem}, status_code=503)
    if await asyncio.to_thread(store.ping):
        return JSONResponse({"status": "ready"})
    return JSONResponse({"status": "database unreachable"}, status_code=503)


async def _metrics(request: Request) -> Response:
    metrics: Metrics = request.state.metrics
    return Response(metrics.render(), media_type=METRICS_CONTENT_TYPE)


class _MethodNotAllowed(TollgateError):
    status = 405
    type = "invalid_request_error"
    code = "method_not_allowed"


def _error_response(error: TollgateError, status: int, headers: Mapping[str, str] | None = None) -> Response:
    return Response(render_error(error), status_code=status, headers=headers, media_type="application/json")


async def _tollgate_error(request: Request, exc: Exception) -> Response:
    """A ``TollgateError`` raised by a route: its own status and headers (such as ``WWW-Authenticate``)."""
    assert isinstance(exc, TollgateError)
    return _error_response(exc, exc.status, exc.headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own errors (no route, a method the route does not take), with their status and headers."""
    assert isinstance(exc, HTTPException)
    where = f"{request.method} {request.url.path}"
    error: TollgateError
    if exc.status_code == 404:
        error = NotFound(f"Tollgate has no route {where}; the OpenAI API is under /v1.")
    elif exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "another method")
        error = _MethodNotAllowed(f"{request.url.path} does not answer {request.method}; it answers {allowed}.")
    elif exc.status_code < 500:
        error = BadRequest(f"{where}: {exc.detail}")
    else:
        error = TollgateError(f"{where}: {exc.detail}")
    return _error_response(error, exc.status_code, exc.headers)


async def _server_error(request: Request, exc: Exception) -> Response:
    """Any other exception: a 500 whose message points at the log line that holds the traceback."""
    incident = secrets.token_hex(4)
    where = f"{request.method} {request.url.path}"
    logger.error("error %s: %s failed (%s)", incident, where, type(exc).__name__, exc_info=exc)
    message = (
        f"Tollgate failed to answer {where} ({type(exc).__name__}). "
        f"The server log has the traceback, under 'error {incident}'."
    )
    return _error_response(TollgateError(message), 500)


def create_app(
    config: Config,
    upstream_factory: UpstreamFactory = AiohttpUpstream,
    admin_key: str | None = None,
    clock: Clock = system_clock,
    start_message: str | None = None,
    owns_process: bool = False,
) -> Starlette:
    """The Tollgate app for ``config``.

    ``upstream_factory`` makes the upstream client inside the lifespan; ``admin_key``
    (default ``$TOLLGATE_ADMIN_KEY``) opens the admin API; ``clock`` is the one source
    of "now" for rows, limit windows and invoices. ``start_message`` is logged once the
    app has started (``tollgate serve`` passes its start block). ``owns_process``: the app
    is the process's one job (``tollgate serve``), so its heap is frozen once started and
    after each reload (``proxy.heap``); an app embedded in another leaves that choice to it.
    """
    admin_key = admin_key if admin_key is not None else os.environ.get("TOLLGATE_ADMIN_KEY")
    catalog = Catalog.load(config.pricing_models)
    handlers = load_hooks(config.usage_handlers, "usage_handlers")
    alert_handlers = load_alert_handlers(config.alerts.alert_handlers)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        # The recorder's thread and the event loop share the GIL. A thread waiting for it forces a
        # hand-over only after the switch interval (5 ms by default), so every database write could
        # stall requests that long; 0.5 ms bounds that stall at a small cost in throughput.
        sys.setswitchinterval(_SWITCH_INTERVAL_S)
        # Each service is stopped by the stack as soon as it has started: a start that fails half-way
        # stops what it started, in the reverse order.
        async with contextlib.AsyncExitStack() as started:
            store = Store(config.database.url)
            started.callback(store.dispose)
            await _prepare_database(store)
            ledger = Ledger(store, holder=f"{socket.gethostname()[:40]}-{os.getpid()}-{secrets.token_hex(4)}")
            teams = [config.teams]  # the teams in force: a reload swaps them, and with them their alert_emails
            outbox = _email_outbox(config, lambda: teams[0])
            if outbox is not None:
                started.push_async_callback(outbox.close)  # after the dispatcher's: its last alerts reach it
            alerts = AlertDispatcher(config.alerts.webhook_url, alert_handlers, outbox=outbox)
            alerts.start()
            started.push_async_callback(alerts.close)
            budget = BudgetKeeper(ledger, config.budget, clock=lambda: clock().timestamp())
            metrics = Metrics(user_labels=config.server.metrics_user_labels)
            journal = Journal(Path(config.recorder.journal_dir), config.recorder.journal_max_bytes)
            recorder = Recorder(
                store,
                journal=journal,
                on_batch=lambda rows, seconds, ok: metrics.observe_batch(rows=rows, seconds=seconds, ok=ok),
                batch_size=config.recorder.batch_size,
                flush_interval=config.recorder.flush_interval,
                handlers=handlers,
                ledger=ledger,
                on_charged=budget.written,
                on_dropped=budget.dropped,
                on_alert=alerts.emit,
                clock=clock,
            )
            budget.start()
            started.push_async_callback(budget.close)
            rate_keeper = RateKeeper(RateLedger(store, ledger.holder), config.budget, clock=lambda: clock().timestamp())
            rate_keeper.start()
            started.push_async_callback(rate_keeper.close)
            if any(limit.action == "block" for limit in config.limits) and any(
                provider.kind in ("openai", "azure") for provider in config.providers
            ):
                # A refusal's second look counts OpenAI prompts; the encoding takes seconds to load, so not then.
                tokenizer.preload({"o200k_base"})
            await recorder.replay_orphans()
            recorder.start()
            started.push_async_callback(recorder.close)  # before the budget's: its last batches settle leases
            upstream = upstream_factory()
            started.push_async_callback(upstream.close)
            metrics.set_queue_depth(lambda: recorder.queued)
            metering = Metering(config, catalog, recorder, budget, metrics, clock, rate_keeper)
            # The imported price versions, read once here and on each reload: never per request.
            metering.configure(config, catalog, await asyncio.to_thread(load_versions, store))
            runtime_limits = RuntimeLimits(store)
            watcher = RuntimeLimitWatcher(runtime_limits, metering.apply_runtime_limits, config.budget.sync_interval)
            await watcher.refresh()  # in force from the first request
            watcher.start()
            started.push_async_callback(watcher.close)
            endpoint = ProxyEndpoint(
                metering, upstream, cancel_on_disconnect=config.server.on_client_disconnect == "cancel"
            )
            billing = CurrentBilling(settings_from_config(config))

            def reconfigure(new: Config, new_catalog: Catalog) -> None:
                metering.configure(new, new_catalog, _versions_now(store))
                endpoint.cancel_on_disconnect = new.server.on_client_disconnect == "cancel"
                billing.settings = settings_from_config(new)  # the admin routes and the scheduler share this holder
                teams[0] = new.teams
                if owns_process:
                    settle_heap()  # the old price map is collected; the new one joins the frozen heap

            extra = [forecast_warnings(store, lambda now: limit_states(metering.limits, ledger, now))]
            monitor = AnomalyMonitor(
                store, config.anomalies, alerts.emit, clock=clock, extra=extra if config.alerts.forecast_alert else ()
            )
            monitor.start()
            started.push_async_callback(monitor.close)
            reloader = ConfigReloader(config, reconfigure)
            reloader.start()
            started.push_async_callback(reloader.close)
            invoicing = InvoiceScheduler(store, billing, prices=lambda: metering.prices.at(clock())[1], clock=clock)
            invoicing.start()
            started.push_async_callback(invoicing.close)
            for warning in start_warnings(config, os.environ):
                logger.warning("%s", warning)
            if start_message is not None:
                logger.info("%s", start_message)
            else:
                logger.debug("worker %d started", os.getpid())
            if owns_process:
                settle_heap()  # everything made at start stays: full collections stop walking it
            yield {
                "proxy": endpoint,
                "metering": metering,
                "limits": lambda: metering.limits,  # the current book: a reload swaps it
                "ledger": ledger,
                "metrics": metrics,
                "store": store,
                "recorder": recorder,
                "budget": budget,
                "alerts": alerts,
                "anomalies": monitor,
                "reloader": reloader,
                "billing": billing,
                "invoicing": invoicing,
                "catalog": lambda: metering.prices.at(clock())[1],  # the prices in force: a reload swaps them
                "clock": clock,
                "runtime_limits": runtime_limits,
                "runtime_watcher": watcher,
            }

    app = TollgateApp(
        routes=[
            Route("/healthz", _healthz, methods=["GET"]),
            Route("/readyz", _readyz, methods=["GET"]),
            Route("/metrics", _metrics, methods=["GET"]),
            *admin_routes(admin_key),
            *invoice_routes(lambda endpoint: guarded(admin_key, endpoint)),
            *insight_routes(lambda endpoint: guarded(admin_key, endpoint)),
            *dashboard_routes(),
        ],
        exception_handlers={
            TollgateError: _tollgate_error,
            HTTPException: _http_error,
            Exception: _server_error,
        },
        lifespan=lifespan,
    )
    # A redirect from /admin/usage/ to /admin/usage would build its Location from the Host header,
    # which any client sets: a trailing slash gets the one-shape 404 instead.
    app.router.redirect_slashes = False
    return app


def _email_outbox(config: Config, teams: Callable[[], Mapping[str, TeamConfig]]) -> EmailOutbox | None:
    """The alert email outbox, when ``[alerts.email] smtp_host`` is set (imported only then)."""
    if config.alerts.email.smtp_host is None:
        return None
    from proxy.insight.email import EmailOutbox

    return EmailOutbox(config.alerts.email, teams)


def _versions_now(store: Store) -> list[PriceVersion] | None:
    """The imported price versions, read again on a reload; None (the known ones stay) if the database fails."""
    try:
        return load_versions(store)
    except sa.exc.SQLAlchemyError as exc:
        logger.warning("price versions not re-read on reload (the database failed: %s); the known ones stay", exc)
        return None


async def _prepare_database(store: Store) -> None:
    """Bring the database to the newest schema, or stop the start with one clear line saying why."""
    try:
        await asyncio.to_thread(store.create_tables)
    except UpgradeRefused as exc:
        # One clear line first (it names the database and what to do); uvicorn then prints the short
        # traceback of the raise below and exits with status 3, and stops its other workers too.
        logger.error("tollgate cannot start: %s", exc)
        raise UpgradeRefused(f"tollgate cannot start: {exc}") from None


def app_from_environment() -> Starlette:
    """The app for ``uvicorn --factory``: config from ``$TOLLGATE_CONFIG`` (``tollgate serve`` sets it).

    ``$TOLLGATE_ACCESS_LOG=1`` (set by ``serve --access-log``) turns the access log on.
    """
    config = load_config(os.environ.get("TOLLGATE_CONFIG"))
    if os.environ.get("TOLLGATE_ACCESS_LOG") == "1":
        config = config.model_copy(update={"server": config.server.model_copy(update={"access_log": True})})
    return create_app(config, owns_process=True)
