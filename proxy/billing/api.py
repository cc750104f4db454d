"""The admin invoice routes: list, show, generate a period, and change an invoice's status.

Handlers read the store from ``request.state.store``, the ``BillingSettings`` in force from
``request.state.billing`` (a ``CurrentBilling``, or plain settings), the app's clock from
``request.state.clock`` and, optionally, a price ``Catalog`` from ``request.state.catalog``
(for unit prices on model lines). Bad input gets an OpenAI-style error body.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from proxy.admin.params import accepting
from proxy.billing.invoice import STATUSES
from proxy.billing.periods import parse_period, previous_period
from proxy.billing.preview import RUNNING, preview_invoices
from proxy.billing.queries import InvoiceNotFound, generate_invoices, get_invoice, list_invoices, set_status
from proxy.billing.settings import current_settings
from proxy.errors import BadRequest, InvalidJSON, NotFound, TollgateError, render_error

Endpoint = Callable[[Request], Awaitable[Response]]


def invoice_routes(guard: Callable[[Endpoint], Endpoint]) -> list[Route]:
    """The routes under ``/admin/invoices``; ``guard`` wraps each endpoint with admin authentication."""
    return [
        Route("/admin/invoices", guard(accepting(("period", "status", "entity"), _list)), methods=["GET"]),
        Route("/admin/invoices/generate", guard(accepting(("period",), _generate)), methods=["POST"]),
        Route("/admin/invoices/preview", guard(accepting(("period", "entity"), _preview)), methods=["GET"]),
        Route("/admin/invoices/{id}", guard(accepting((), _show)), methods=["GET"]),
        Route("/admin/invoices/{id}", guard(accepting((), _patch)), methods=["PATCH"]),
    ]


def _error(error: TollgateError) -> Response:
    return Response(render_error(error), status_code=error.status, media_type="application/json")


async def _list(request: Request) -> Response:
    """``GET /admin/invoices?period=YYYY-MM&status=...&entity=...``"""
    params = request.query_params
    period, status = params.get("period"), params.get("status")
    try:
        if period is not None:
            parse_period(period)
    except ValueError as exc:
        return _error(BadRequest(str(exc)))
    if status is not None and status not in STATUSES:
        return _error(BadRequest(f"status must be one of {', '.join(STATUSES)}, not {status!r}"))
    store = request.state.store
    found = await asyncio.to_thread(list_invoices, store, period=period, status=status, entity_id=params.get("entity"))
    return JSONResponse({"invoices": [invoice.as_json() for invoice in found]})


async def _show(request: Request) -> Response:
    invoice = await asyncio.to_thread(get_invoice, request.state.store, request.path_params["id"])
    if invoice is None:
        return _error(NotFound(f"No invoice {request.path_params['id']!r}."))
    return JSONResponse(invoice.as_json())


def _catalog(request: Request) -> Any:
    catalog = getattr(request.state, "catalog", None)
    return catalog() if callable(catalog) else catalog  # the app hands the catalog in force, which a reload swaps


async def _preview(request: Request) -> Response:
    """``GET /admin/invoices/preview?period=running|YYYY-MM&entity=...``: nothing is stored."""
    settings = current_settings(request.state.billing)
    params = request.query_params
    try:
        preview = await asyncio.to_thread(
            preview_invoices,
            request.state.store,
            settings,
            request.state.clock(),
            period=params.get("period") or RUNNING,
            entity_id=params.get("entity"),
            prices=_catalog(request),
        )
    except ValueError as exc:
        return _error(BadRequest(f"{exc} (period is running or YYYY-MM)."))
    return JSONResponse(preview.as_json())


async def _generate(request: Request) -> Response:
    """``POST /admin/invoices/generate?period=YYYY-MM``: last month when no period is given."""
    settings = current_settings(request.state.billing)  # read now: a config reload may have changed them
    now = request.state.clock()
    period = request.query_params.get("period") or previous_period(now)
    try:
        result = await asyncio.to_thread(
            generate_invoices, request.state.store, settings, period, now, prices=_catalog(request)
        )
    except ValueError as exc:
        return _error(BadRequest(str(exc)))
    return JSONResponse(
        {
            "period": result.period,
            "created": [invoice.as_json() for invoice in result.created],
            "skipped": list(result.skipped),
        }
    )


async def _patch(request: Request) -> Response:
    """``PATCH /admin/invoices/{id}`` with ``{"status": "pending" | "paid" | "failed" | "void"}``."""
    try:
        body: Any = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        return _error(InvalidJSON('The body must be JSON, e.g. {"status": "paid"}.'))
    status = body.get("status") if isinstance(body, dict) else None
    if not isinstance(status, str):
        return _error(BadRequest(f'The body must hold a status, one of {", ".join(STATUSES)}: {{"status": "paid"}}.'))
    try:
        invoice = await asyncio.to_thread(
            set_status, request.state.store, request.path_params["id"], status, request.state.clock()
        )
    except InvoiceNotFound:
        return _error(NotFound(f"No invoice {request.path_params['id']!r}."))
    except ValueError as exc:
        return _error(BadRequest(str(exc)))
    return JSONResponse(invoice.as_json())
