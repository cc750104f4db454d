"""The admin HTTP API under ``/admin``, closed without ``$TOLLGATE_ADMIN_KEY``.

The key is compared in constant time. With no key set, the admin API is off and
its routes answer 404.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Awaitable, Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from proxy.admin.limit_routes import NAME_PARAMS, delete_limit, limit_changes, put_limit
from proxy.admin.openapi import admin_openapi_json
from proxy.admin.params import WINDOW, accepting, window
from proxy.errors import BadRequest, NotFound, TollgateError, Unauthorized, render_error
from proxy.insight.forecast import Rates, forecast_limits, project
from proxy.keys import bearer_token
from proxy.limits.ledger import Ledger
from proxy.limits.rules import LimitBook
from proxy.limits.state import Subject, limit_states
from proxy.money import money_text
from proxy.recording.reports import FILTER_COLUMNS as FILTERS
from proxy.recording.reports import GROUPS, check_group, parse_tag_filter, usage_report
from proxy.recording.store import Store

Endpoint = Callable[[Request], Awaitable[Response]]


def _error(error: TollgateError) -> Response:
    return Response(render_error(error), status_code=error.status, media_type="application/json")


def guarded(admin_key: str | None, endpoint: Endpoint) -> Endpoint:
    """``endpoint`` behind the admin key; a refusal is raised, and the app's error handler renders it."""

    async def check(request: Request) -> Response:
        if not admin_key:
            raise NotFound("The admin API is off: set $TOLLGATE_ADMIN_KEY to turn it on.")
        token = bearer_token(request.headers.get("authorization", "").encode("latin-1")) or ""
        if not hmac.compare_digest(token.encode(), admin_key.encode()):
            raise Unauthorized(
                "The admin API needs 'Authorization: Bearer <$TOLLGATE_ADMIN_KEY>'.",
                headers={"WWW-Authenticate": "Bearer"},
            )
        values = [*request.query_params.values(), *map(str, request.path_params.values())]
        if any("\x00" in value for value in values):
            raise BadRequest("Query and path values may not hold a NUL character (%00).")
        return await endpoint(request)

    return check


async def _limits(request: Request) -> Response:
    params = request.query_params
    subject = Subject(**{name: params.get(name) for name in LIMIT_PARAMS})
    now = request.state.clock()
    team_of = request.state.metering.attribution.team_of
    refused = dict(request.state.budget.last_refused)
    states = await asyncio.to_thread(
        limit_states,
        request.state.limits(),
        request.state.ledger,
        now,
        subject=subject,
        team_of=team_of,
        refused=refused,
    )
    return JSONResponse({"limits": [s.as_json() for s in states]})


async def _usage(request: Request) -> Response:
    """``GET /admin/usage``: the same answers as ``tollgate usage``."""
    params = request.query_params
    group_by = params.get("group_by")
    try:
        check_group(group_by)
        tags = dict(parse_tag_filter(text) for text in params.getlist("tag"))
    except ValueError as exc:
        return _error(BadRequest(f"{exc}; group_by is one of {', '.join(GROUPS)} or tag:<name>, tag is name=value."))
    since, until = window(request)
    filters = {name: params.get(name) for name in FILTERS}
    store = request.state.store
    rows = await asyncio.to_thread(usage_report, store, group_by, filters=filters, since=since, until=until, tags=tags)
    return JSONResponse({"group_by": group_by, "rows": [r.as_json() for r in rows]})


async def _user_summary(request: Request) -> Response:
    """``GET /admin/users/{id}/summary``: this month, all time, daily costs, the month-end projection, limit dates."""
    user = request.path_params["id"]
    now = request.state.clock()
    summary = await asyncio.to_thread(
        _summary_of, request.state.store, request.state.limits(), request.state.ledger, user, now
    )
    return JSONResponse(summary)


def _summary_of(store: Store, book: LimitBook, ledger: Ledger, user: str, now: datetime) -> dict[str, Any]:
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    month = usage_report(store, None, filters={"user": user}, since=month_start)
    total = usage_report(store, None, filters={"user": user})
    month_cost = month[0].cost_usd if month else Decimal(0)
    days = now.day  # days of this month so far, today included
    rates = Rates(store, now)
    found = rates.projections("user", user)
    projection = found[0] if found else project(Decimal(0), Decimal(0), 1, now, user)
    states = [s for s in limit_states(book, ledger, now, user) if s.scope == "user"]
    return {
        "user": user,
        "this_month": month[0].as_json() if month else None,
        "all_time": total[0].as_json() if total else None,
        "average_daily_cost_usd_this_month": money_text((month_cost / days).quantize(Decimal("1e-12"))),
        "forecast": projection.as_json(),
        "limits": [f.as_json() for f in forecast_limits(states, rates)],
    }


async def _openapi(request: Request) -> Response:
    """``GET /admin/openapi.json``: the OpenAPI 3.1 description of the admin API."""
    return Response(admin_openapi_json(), media_type="application/json")


LIMIT_PARAMS = ("user", "team", "thread", "agent", "key")
USAGE_PARAMS = ("group_by", *FILTERS, "tag", *WINDOW)


def admin_routes(admin_key: str | None) -> list[Route]:
    return [
        Route("/admin/limits", guarded(admin_key, accepting(LIMIT_PARAMS, _limits)), methods=["GET"]),
        Route("/admin/limits/changes", guarded(admin_key, accepting((), limit_changes)), methods=["GET"]),
        # An id is whatever a client sent, "/" included; the window is the last segment.
        Route(
            "/admin/limits/{scope}/{id:path}/{window}",
            guarded(admin_key, accepting((), put_limit)),
            methods=["PUT"],
        ),
        Route(
            "/admin/limits/{scope}/{id:path}/{window}",
            guarded(admin_key, accepting(NAME_PARAMS, delete_limit)),
            methods=["DELETE"],
        ),
        Route("/admin/usage", guarded(admin_key, accepting(USAGE_PARAMS, _usage)), methods=["GET"]),
        # A user id is whatever a client sent, "/" included (as %2F, which the router sees decoded).
        Route("/admin/users/{id:path}/summary", guarded(admin_key, accepting((), _user_summary)), methods=["GET"]),
        Route("/admin/openapi.json", guarded(admin_key, accepting((), _openapi)), methods=["GET"]),
    ]
