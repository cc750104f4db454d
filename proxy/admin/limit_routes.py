"""``PUT`` / ``DELETE /admin/limits/{scope}/{id}/{window}`` and ``GET /admin/limits/changes``: runtime limits.

A limit is named by its scope, id and window in the path, and by its tag and models (``proxy.limits.runtime``):
in the body of a ``PUT``, as the query of a ``DELETE`` (``?tag=project&models=gpt-5*&models=o3``).

A change is written to the database with its audit row (``proxy.limits.runtime``); this worker applies it at
once, every other worker and instance within ``budget.sync_interval``.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from proxy.admin.openapi import LIMIT_SCOPES
from proxy.errors import BadRequest, NotFound, UnknownParameter
from proxy.limits.runtime import InvalidLimit, RuntimeLimits, make_limit
from proxy.limits.windows import WINDOWS

BODY_FIELDS = (
    "max_usd",
    "action",
    "timezone",
    "alert_at",
    "tag",
    "models",
    "start_day",
    "on_exceed",
    "min_output_tokens",
    "changed_by",
)
NAME_PARAMS = ("tag", "models")
_MAX_BY_CHARS = 100


def _who(changed_by: object) -> str:
    if changed_by is None:
        return "admin-api"
    if not isinstance(changed_by, str) or not changed_by or len(changed_by) > _MAX_BY_CHARS:
        raise BadRequest(f"changed_by must be a name of 1 to {_MAX_BY_CHARS} characters.")
    return f"admin-api:{changed_by}"


async def _body(request: Request) -> dict[str, Any]:
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        raise BadRequest('The body must be a JSON object, e.g. {"max_usd": "20"}.') from None
    if not isinstance(body, dict):
        raise BadRequest('The body must be a JSON object, e.g. {"max_usd": "20"}.')
    for name in body:
        if name not in BODY_FIELDS:
            raise UnknownParameter(f"Unknown field {name!r}: this body takes {', '.join(BODY_FIELDS)}.")
    if "max_usd" not in body:
        raise BadRequest('The body needs max_usd, the most that may be spent in the window, e.g. "20".')
    return body


async def put_limit(request: Request) -> Response:
    """Set (or replace) the runtime limit of one scope, id and window."""
    params = request.path_params
    body = await _body(request)
    alert_at = body.get("alert_at", [])
    if not isinstance(alert_at, list):
        raise BadRequest('alert_at must be a list of fractions, e.g. ["0.5", "0.8"].')
    models = body.get("models", [])
    if not isinstance(models, list):
        raise BadRequest('models must be a list of model names or globs, e.g. ["gpt-5*"].')
    try:
        limit = make_limit(
            params["scope"],
            params["id"],
            params["window"],
            body["max_usd"],
            body.get("action", "block"),
            body.get("timezone", "UTC"),
            alert_at,
            tag=body.get("tag"),
            models=models,
            start_day=body.get("start_day", 1),
            on_exceed=body.get("on_exceed", "refuse"),
            min_output_tokens=body.get("min_output_tokens", 256),
        )
    except InvalidLimit as exc:
        raise BadRequest(f"{exc}.") from None
    runtime: RuntimeLimits = request.state.runtime_limits
    old, new = await asyncio.to_thread(runtime.set, limit, _who(body.get("changed_by")), request.state.clock())
    await request.state.runtime_watcher.refresh()
    return _change(request, old.as_json() if old else None, new.as_json())


async def delete_limit(request: Request) -> Response:
    """Remove the runtime limit of one scope, tag, id, window and models: a config limit it replaced applies again."""
    params = request.path_params
    if params["scope"] not in LIMIT_SCOPES or params["window"] not in WINDOWS:
        raise BadRequest(
            f"No such limit: scope is one of {', '.join(LIMIT_SCOPES)} and window one of {', '.join(WINDOWS)}."
        )
    tag = request.query_params.get("tag")
    models = request.query_params.getlist("models")
    if (params["scope"] == "tag") != (tag is not None):
        raise BadRequest("No such limit: a tag limit is named with ?tag=<name>, and only a tag limit has one.")
    if request.headers.get("content-length") not in (None, "0"):
        body = await _body_for_delete(request)
        who = _who(body.get("changed_by"))
    else:
        who = "admin-api"
    runtime: RuntimeLimits = request.state.runtime_limits
    now = request.state.clock()
    old = await asyncio.to_thread(
        functools.partial(runtime.remove, tag=tag, models=models),
        params["scope"],
        params["id"],
        params["window"],
        who,
        now,
    )
    if old is None:
        on = f" tag {tag}" if tag is not None else ""
        of = f" on models {', '.join(models)}" if models else ""
        raise NotFound(f"No runtime limit on {params['scope']}{on} {params['id']!r}{of}, window {params['window']}.")
    await request.state.runtime_watcher.refresh()
    return _change(request, old.as_json(), None)


async def _body_for_delete(request: Request) -> dict[str, Any]:
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        raise BadRequest('The body, if any, must be a JSON object such as {"changed_by": "ops"}.') from None
    if not isinstance(body, dict) or set(body) - {"changed_by"}:
        raise BadRequest('The body, if any, must be a JSON object such as {"changed_by": "ops"}.')
    return body


async def limit_changes(request: Request) -> Response:
    """The newest changes to runtime limits first: who, when, before and after."""
    runtime: RuntimeLimits = request.state.runtime_limits
    return JSONResponse({"changes": await asyncio.to_thread(runtime.changes)})


def _change(request: Request, old: dict[str, Any] | None, new: dict[str, Any] | None) -> Response:
    interval = request.state.runtime_watcher.interval
    return JSONResponse({"old": old, "new": new, "applies_within_seconds": interval})
