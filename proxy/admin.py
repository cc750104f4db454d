"""The admin HTTP API under ``/admin``, closed without ``$TOLLGATE_ADMIN_KEY``.

The key is compared in constant time. With no key set, the admin API is off and
its routes answer 404.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from proxy.errors import NotFound, TollgateError, Unauthorized, render_error
from proxy.keys import bearer_token
from proxy.limit_report import limit_states

Endpoint = Callable[[Request], Awaitable[Response]]


def _error(error: TollgateError) -> Response:
    return Response(render_error(error), status_code=error.status, media_type="application/json")


def _guarded(admin_key: str | None, endpoint: Endpoint) -> Endpoint:
    async def guarded(request: Request) -> Response:
        if not admin_key:
            return _error(NotFound("The admin API is off: set $TOLLGATE_ADMIN_KEY to turn it on."))
        token = bearer_token(request.headers.get("authorization", "").encode("latin-1")) or ""
        if not hmac.compare_digest(token.encode(), admin_key.encode()):
            return _error(Unauthorized("The admin API needs 'Authorization: Bearer <$TOLLGATE_ADMIN_KEY>'."))
        return await endpoint(request)

    return guarded


async def _limits(request: Request) -> Response:
    handler = request.state.handler
    user = request.query_params.get("user")
    team = request.query_params.get("team")
    states = await asyncio.to_thread(limit_states, handler.limits, handler.budget.ledger, datetime.now(UTC), user, team)
    return JSONResponse({"limits": [s.as_json() for s in states]})


def admin_routes(admin_key: str | None) -> list[Route]:
    return [Route("/admin/limits", _guarded(admin_key, _limits), methods=["GET"])]
