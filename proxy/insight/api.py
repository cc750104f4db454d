"""``GET /admin/alerts``: the alerts sent (anomalies and threshold alerts), as ``tollgate alerts`` lists them."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from proxy.admin.params import accepting
from proxy.errors import BadRequest
from proxy.insight.anomalies import KINDS
from proxy.insight.history import recorded_alerts

ALERT_KINDS = (*KINDS, "threshold")
ALERT_PARAMS = ("since", "kind")
Endpoint = Callable[[Request], Awaitable[Response]]


def parse_since(text: str | None) -> datetime | None:
    """An ISO date or time (UTC unless it names a zone); None for none. ValueError if it is neither."""
    if not text:
        return None
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


async def _alerts(request: Request) -> Response:
    kind = request.query_params.get("kind")
    if kind is not None and kind not in ALERT_KINDS:
        raise BadRequest(f"kind must be one of {', '.join(ALERT_KINDS)}, not {kind!r}.")
    try:
        since = parse_since(request.query_params.get("since"))
    except ValueError:
        raise BadRequest("since must be an ISO date or time, e.g. 2026-11-01 or 2026-11-01T12:00.") from None
    items = await asyncio.to_thread(recorded_alerts, request.state.store, since, kind)
    return JSONResponse({"alerts": items})


def insight_routes(guard: Callable[[Endpoint], Endpoint]) -> list[Route]:
    """The routes, each behind ``guard`` (the admin key check)."""
    return [Route("/admin/alerts", guard(accepting(ALERT_PARAMS, _alerts)), methods=["GET"])]
