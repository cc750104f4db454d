"""The OpenAPI 3.1 description of the admin API, served at ``GET /admin/openapi.json``.

The document is a plain dict built once. Enums come from the constants the handlers
check against (``GROUPS``, ``STATUSES``, ...), so the two cannot disagree, and each
response schema follows the ``as_json`` method that writes that body. Money is a
decimal string in positional notation, never a JSON number nor an exponent
(``"0.0000005"``, not ``"5E-7"``). Every operation needs the admin
key as a bearer token and answers 401 without it, or 404 when the admin API is off.
``tests/proxy/test_admin_openapi.py`` checks that this document and the mounted
``/admin`` routes describe the same operations, and that real bodies validate.
"""

from __future__ import annotations

import functools
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import orjson

from proxy.billing.invoice import STATUSES, TOKEN_KINDS
from proxy.billing.preview import PREVIEW_STATUS
from proxy.billing.settings import ENTITIES
from proxy.insight.api import ALERT_KINDS
from proxy.limits.state import SOURCES, STATES
from proxy.limits.windows import WINDOWS
from proxy.recording.reports import GROUPS

Schema = dict[str, Any]
LIMIT_SCOPES = ("user", "team", "key", "agent", "thread", "tag", "global")

# pricing.decimal_text: digits and an optional fraction, never an exponent.
_DECIMAL_PATTERN = r"^-?[0-9]+(\.[0-9]+)?$"
_PERIOD_PATTERN = r"^[0-9]{4}-(0[1-9]|1[0-2])$"
_UNPRICED = "Requests with no price, which cost nothing here."
_TAG_GROUP = r"^tag:[a-z0-9!#$%&'*+.^_`|~-]{1,64}$"
_GROUP: dict[str, Any] = {
    "anyOf": [
        {"type": "string", "enum": list(GROUPS)},
        {"type": "string", "pattern": _TAG_GROUP, "description": "tag:<name>: one row per value of that tag."},
    ]
}


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _money(description: str) -> Schema:
    return {**_ref("Decimal"), "description": description}


def _count(description: str) -> Schema:
    return {"type": "integer", "minimum": 0, "description": description}


def _text(description: str, *, nullable: bool = False, **constraints: str) -> Schema:
    return {"type": ["string", "null"] if nullable else "string", **constraints, "description": description}


def _choice(values: tuple[str, ...], description: str) -> Schema:
    return {"type": "string", "enum": list(values), "description": description}


def _or_null(schema: Schema, description: str) -> Schema:
    return {"anyOf": [schema, {"type": "null"}], "description": description}


def _list_of(schema: Schema, description: str = "") -> Schema:
    return {"type": "array", "items": schema, **({"description": description} if description else {})}


def _object(properties: dict[str, Schema], description: str) -> Schema:
    """An object with exactly ``properties``, all of them always present (as the handlers write them)."""
    return {
        "type": "object",
        "description": description,
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


def _whole(description: str, low: int, high: int | None = None) -> Schema:
    return {"type": "integer", "minimum": low, **({"maximum": high} if high else {}), "description": description}


def _limit_fields() -> dict[str, Schema]:
    """What a spend limit has beyond scope, id, window, amount and action, as ``[[limits]]`` takes it."""
    return {
        "tag": _text("With scope tag: the tag counted (X-Tollgate-Tag-<tag>), lower-cased; else null.", nullable=True),
        "models": _list_of(_text("A model name, or a glob with * and ?."), "The models it counts; empty: every model."),
        "start_day": _whole("With window month: the day of the month the window starts on (1 by default).", 1, 28),
        "on_exceed": _choice(("refuse", "clamp"), "refuse a request whose bound does not fit, or clamp its output."),
        "min_output_tokens": _whole("With on_exceed clamp: the fewest output tokens worth forwarding.", 1),
    }


def _schemas() -> dict[str, Schema]:
    return {
        "Decimal": {
            "type": "string",
            "format": "decimal",
            "pattern": _DECIMAL_PATTERN,
            "description": 'An exact decimal as a string, e.g. "0.000042", never with an exponent.',
            "examples": ["0.000042", "12.50", "0.0000005"],
        },
        "Error": _object(
            {
                "error": _object(
                    {
                        "message": _text("What went wrong, and how to fix it."),
                        "type": _text("OpenAI's error type, e.g. invalid_request_error."),
                        "param": _text("The parameter at fault, if any.", nullable=True),
                        "code": _text("A stable code, e.g. invalid_api_key or not_found.", nullable=True),
                    },
                    "The error.",
                )
            },
            "An error in OpenAI's shape.",
        ),
        "ReportRow": _object(
            {
                "group": _text(
                    'The group\'s value ("all" when not grouped); null if the usage has none.', nullable=True
                ),
                "requests": _count("Requests recorded."),
                "input_tokens": _count("Input tokens, cached ones included."),
                "output_tokens": _count("Output tokens, reasoning ones included."),
                "cached_input_tokens": _count("Input tokens read from the provider's cache."),
                "reasoning_tokens": _count("Reasoning tokens."),
                "cost_usd": _money("Exact cost in USD."),
                "unpriced_requests": _count(_UNPRICED),
            },
            "Usage of one group.",
        ),
        "Usage": _object(
            {
                "group_by": {
                    "anyOf": [_GROUP, {"type": "null"}],
                    "description": "As asked, or null.",
                },
                "rows": _list_of(_ref("ReportRow"), "Largest cost first; by date for day and month."),
            },
            "A usage report, as `tollgate usage` gives it.",
        ),
        "UserSummary": _object(
            {
                "user": _text("The user id."),
                "this_month": _or_null(_ref("ReportRow"), "Since the 1st (UTC); null without usage."),
                "all_time": _or_null(_ref("ReportRow"), "Everything recorded; null without usage."),
                "average_daily_cost_usd_this_month": _money("This month's cost / days so far, to 12 places."),
                "forecast": _ref("Projection"),
                "limits": _list_of(
                    _ref("LimitForecast"), "The user's own limits, each with the date it will be reached."
                ),
            },
            "One user's usage.",
        ),
        "Forecast": _object(
            {
                "now": _text("When the projection was made.", format="date-time"),
                "users": _list_of(_ref("Projection"), "One per user with usage this month (or the one asked for)."),
                "teams": _list_of(_ref("Projection"), "One per team with usage this month (or the one asked for)."),
                "total": _or_null(_ref("Projection"), "Everything; null when a user or team is asked for."),
                "limits": _list_of(_ref("LimitForecast"), "Each limit that applies, with the date it will be reached."),
            },
            "Month-end projections and limit dates, as `tollgate usage --forecast --json` gives them.",
        ),
        "Projection": _object(
            {
                "group": _text("The user, team, or 'total'."),
                "month_so_far_usd": _money("Spend since the 1st of this UTC month."),
                "daily_rate_usd": _money("Spend of the 7 full days before today / 7 (fewer days for a newer entity)."),
                "projected_month_end_usd": _money("month_so_far_usd + daily_rate_usd x days_left."),
                "days_left": _money("Days from now to the 1st of next month, fractions included."),
            },
            "A month-end projection; see docs in proxy/insight/forecast.py and the README.",
        ),
        "LimitForecast": _object(
            {
                "scope": _text("What the limit counts."),
                "id": _text("The subject within the scope."),
                "window": _choice(WINDOWS, "The calendar window."),
                "window_label": _text("This window."),
                "action": _choice(("block", "warn"), "What the limit does when reached."),
                **_limit_fields(),
                "source": _choice(SOURCES, "config, wildcard, team or runtime (as in LimitState)."),
                "state": _choice(STATES, "ok, alerting or refusing (as in LimitState)."),
                "resets_at": _or_null(_text("", format="date-time"), "When the window ends; null for total."),
                "spent_usd": _money("Spent in this window."),
                "limit_usd": _money("The limit."),
                "daily_rate_usd": _or_null(
                    _ref("Decimal"), "The subject's recent daily rate; null for key and thread."
                ),
                "reached_at": _or_null(
                    _text("", format="date-time"), "When the limit will be reached at that rate, if within the window."
                ),
                "already_reached": {"type": "boolean", "description": "Spent is at the limit already."},
            },
            "When one limit will be reached at the current rate.",
        ),
        "LimitState": _object(
            {
                "scope": _text("What the limit counts: user, team, key, agent, thread, tag or global."),
                "id": _text('The subject within the scope ("all" for global; the tag\'s value for tag).'),
                "window": _choice(WINDOWS, "The calendar window."),
                "window_label": _text("This window, e.g. 2026-11-25, 2026-W48, 2026-11 (2026-11-15 from a start_day)."),
                "action": _text("block (refuses requests past the limit with 429) or warn (only alerts)."),
                **_limit_fields(),
                "source": _choice(
                    SOURCES, "config (names this id), wildcard (id *), team (through [teams]) or runtime."
                ),
                "state": _choice(
                    STATES, "refusing (nothing left, or refused a request lately), alerting (past alert_at) or ok."
                ),
                "resets_at": _text("When this window ends; null for total.", nullable=True, format="date-time"),
                "spent_usd": _money("Recorded spend in this window."),
                "held_usd": _money("Budget held by requests in flight."),
                "limit_usd": _money("The limit."),
                "remaining_usd": _money("What is left: limit - spent - held, never below 0."),
            },
            "One spend limit's counter, now.",
        ),
        "Limits": _object({"limits": _list_of(_ref("LimitState"))}, "The limits' counters."),
        "RuntimeLimit": _object(
            {
                "scope": _choice(LIMIT_SCOPES, "What the limit counts."),
                "id": _text("The subject within the scope, or * for each separately (always * for global)."),
                "window": _choice(WINDOWS, "The calendar window."),
                "max_usd": _money("Most that may be spent in a window."),
                "action": _choice(("block", "warn"), "block refuses past the limit; warn only alerts."),
                "timezone": _text("Where the window starts and ends."),
                "alert_at": _list_of(_ref("Decimal"), "Fractions of max_usd at which to alert."),
                **_limit_fields(),
                "updated_at": _text("When it was set.", format="date-time"),
                "updated_by": _text("Who set it: admin-api[:<changed_by>] or cli:<login>."),
            },
            "A spend limit set at run time; it beats a [[limits]] entry of the same scope, tag, id, window and models.",
        ),
        "LimitChange": _object(
            {
                "old": _or_null(_ref("RuntimeLimit"), "The runtime limit before; null if there was none."),
                "new": _or_null(_ref("RuntimeLimit"), "The runtime limit after; null once removed."),
                "applies_within_seconds": {
                    "type": "number",
                    "description": "budget.sync_interval: every instance applies the change within it.",
                },
            },
            "What one change did (this worker applies it at once).",
        ),
        "LimitSetting": {
            "type": "object",
            "properties": {
                "max_usd": {
                    "anyOf": [_ref("Decimal"), {"type": "integer", "minimum": 1}],
                    "description": "Most that may be spent in a window, in dollars.",
                },
                "action": _choice(("block", "warn"), "block (the default) or warn."),
                "timezone": _text("Where the window starts and ends; UTC by default."),
                "alert_at": _list_of(_ref("Decimal"), "Fractions of max_usd at which to alert."),
                "tag": {
                    **_text("With scope tag (and only then): the tag whose values it counts, e.g. project."),
                    **{"minLength": 1, "maxLength": 64, "pattern": "^[A-Za-z0-9_-]+$"},
                },
                "models": _list_of(
                    _text("A model name, or a glob with * and ?.", pattern=r"^[^\[]+$") | {"minLength": 1},
                    "The models it counts (part of which limit it is); every model by default.",
                ),
                "start_day": _whole("With window month: the day of the month the window starts on (default 1).", 1, 28),
                "on_exceed": _choice(("refuse", "clamp"), "refuse (the default) or clamp a request's output cap."),
                "min_output_tokens": _whole("With on_exceed clamp: the fewest output tokens worth forwarding.", 1),
                "changed_by": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 100,
                    "description": "Who, for the audit.",
                },
            },
            "required": ["max_usd"],
            "additionalProperties": False,
            "description": "A runtime limit to set; any other field is a 400 (unknown_parameter).",
        },
        "AuditedChange": _object(
            {
                "id": {"type": "integer", "description": "The change's number; it only grows."},
                "changed_at": _text("When.", format="date-time"),
                "changed_by": _text("Who."),
                "scope": _choice(LIMIT_SCOPES, "The limit's scope."),
                "tag": _text("The limit's tag (scope tag); null for other scopes.", nullable=True),
                "limit_id": _text("The limit's id."),
                "window": _choice(WINDOWS, "The limit's window."),
                "models": _list_of(_text("A model name or glob."), "The limit's models; empty: every model."),
                "old": _or_null(_ref("RuntimeLimit"), "Before; null when it was new."),
                "new": _or_null(_ref("RuntimeLimit"), "After; null when it was removed."),
            },
            "One audited change to a runtime limit.",
        ),
        "LimitChanges": _object({"changes": _list_of(_ref("AuditedChange"), "Newest first.")}, "The audit."),
        "InvoiceLine": _object(
            {
                "kind": _text("model (lines that add up to the subtotal) or agent (the same usage per agent)."),
                "key": _text("The model or agent; empty when unknown."),
                "requests": _count("Requests."),
                "unpriced_requests": _count(_UNPRICED),
                **{kind: _count(f"Tokens: {kind}.") for kind in TOKEN_KINDS},
                "cost_usd": _money("Exact cost in USD."),
                "amount": _money("In the invoice currency, rounded once."),
                "unit_prices_per_million": {
                    "type": ["object", "null"],
                    "additionalProperties": _ref("Decimal"),
                    "description": "Base prices per million tokens by token kind, in the invoice currency, "
                    "at generation time; null on agent lines and unknown models.",
                },
            },
            "Usage of one model or one agent on an invoice.",
        ),
        "Invoice": _object(
            {
                "id": _text("A stable id, e.g. inv_2026-11_user_alice."),
                "entity_type": _choice(ENTITIES, "Who is invoiced."),
                "entity_id": _text("The user or team id."),
                "period": _text("The UTC month, YYYY-MM.", pattern=_PERIOD_PATTERN),
                "currency": _text("The currency label of the amounts."),
                "status": _choice((*STATUSES, PREVIEW_STATUS), "The invoice's status (preview only in a preview)."),
                "cost_usd": _money("Exact usage cost in USD, before exchange, rounding and markup."),
                "exchange_rate": _money("Units of the currency per USD."),
                "subtotal": _money("The sum of the model lines' amounts."),
                "markup_percent": _money("Markup on the subtotal, in percent."),
                "markup": _money("The markup, rounded once."),
                "total": _money("subtotal + markup."),
                "requests": _count("Requests."),
                "unpriced_requests": _count(_UNPRICED),
                "created_at": _text("When it was generated.", format="date-time"),
                "updated_at": _text("When it last changed.", format="date-time"),
                "price_book": _text(
                    "The customer ([billing.customers]) whose price book its amounts come from; null: at cost.",
                    nullable=True,
                ),
                "revision": _count("0 as first issued; n for the n-th correction (tollgate invoices correct)."),
                "corrects": _text("The id of the invoice this one corrects; null for a first issue.", nullable=True),
                "lines": _list_of(_ref("InvoiceLine")),
            },
            "One entity's invoice for one month; amounts never change after generation.",
        ),
        "Invoices": _object({"invoices": _list_of(_ref("Invoice"), "Newest period first.")}, "Invoices."),
        "PreviewInvoice": {
            "allOf": [_ref("Invoice")],
            "properties": {"status": {"const": PREVIEW_STATUS, "description": "Always preview: not stored."}},
            "description": "An invoice as generation would make it now; never stored.",
        },
        "Preview": _object(
            {
                "period": _text("The month previewed, YYYY-MM.", pattern=_PERIOD_PATTERN),
                "as_of": _text("The usage counted is up to this time.", format="date-time"),
                "stored": {"const": False, "description": "Always false: a preview stores nothing."},
                "note": _text("Says that nothing is stored."),
                "invoices": _list_of(_ref("PreviewInvoice"), "One per entity with usage so far."),
            },
            "What a month's invoices would be now (Stripe's upcoming invoice).",
        ),
        "Generation": _object(
            {
                "period": _text("The month, YYYY-MM.", pattern=_PERIOD_PATTERN),
                "created": _list_of(_ref("Invoice"), "The invoices this run created."),
                "skipped": _list_of({"type": "string"}, "Ids of invoices that existed, left unchanged."),
            },
            "What one run of invoice generation did.",
        ),
        "Alert": _object(
            {
                "kind": _choice(
                    ALERT_KINDS,
                    "spike, new (an entity with no history), runaway (a thread's minute), "
                    "forecast (a limit projected to be reached) or threshold (a limit's alert_at fraction).",
                ),
                "scope": _text("user, team, agent or thread; for threshold and forecast alerts, the limit's scope."),
                "id": _text("The entity."),
                "window": _text("The UTC hour (2026-11-25T14), or the limit's window and label."),
                "time": _text("When it was alerted.", format="date-time"),
                "cost_usd": _money("Spend in the window when found; for a threshold alert, the threshold's amount."),
                "baseline_usd": _or_null(_ref("Decimal"), "The usual hour it was compared with, if any."),
                "requests": {"type": ["integer", "null"], "minimum": 0, "description": "Requests in the window."},
                "tokens": {"type": ["integer", "null"], "minimum": 0, "description": "Tokens in the window."},
                "detail": _text("What was seen, in one sentence."),
            },
            "One alert sent: an anomaly, a forecast warning or a threshold alert.",
        ),
        "Alerts": _object({"alerts": _list_of(_ref("Alert"), "Newest first.")}, "Alerts sent."),
        "OpenAPI": {"type": "object", "required": ["openapi", "info", "paths"], "description": "This document."},
        "StatusChange": {
            "type": "object",
            "properties": {"status": _choice(STATUSES, "The new status.")},
            "required": ["status"],
        },
    }


def _json(schema: Schema, description: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _query(name: str, description: str, schema: Schema | None = None) -> Schema:
    return {"name": name, "in": "query", "description": description, "schema": schema or {"type": "string"}}


def _path(name: str, description: str, schema: Schema | None = None) -> Schema:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": schema or {"type": "string"},
    }


def _path_id(description: str) -> Schema:
    return {"name": "id", "in": "path", "required": True, "description": description, "schema": {"type": "string"}}


def _operation(
    operation_id: str,
    summary: str,
    tag: str,
    ok: str,
    *,
    parameters: tuple[Schema, ...] = (),
    bad_request: str | None = None,
    not_found: str | None = None,
    body: str | None = None,
) -> Schema:
    """One operation answering 200 with the schema named ``ok``, and 401 (no or wrong key) and 404 (admin API off)."""
    responses = {"200": _json(_ref(ok), summary)}
    reasons = [bad_request] if bad_request else []
    if parameters:
        reasons.append("A query or path value with a NUL character (%00).")
    reasons.append("A query parameter this operation does not take (code unknown_parameter, named in the message).")
    responses["400"] = _json(_ref("Error"), " ".join(reasons))
    responses["401"] = {"$ref": "#/components/responses/Unauthorized"}
    off = {"$ref": "#/components/responses/AdminOff"}
    responses["404"] = _json(_ref("Error"), f"{not_found}, or the admin API is off.") if not_found else off
    operation: Schema = {"operationId": operation_id, "summary": summary, "tags": [tag]}
    if parameters:
        operation["parameters"] = list(parameters)
    if body is not None:
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ref(body)}}}
    return {**operation, "responses": responses}


def _paths() -> dict[str, Schema]:
    invoice_id = _path_id("The invoice id, e.g. inv_2026-11_user_alice.")
    period = _text("A month.", pattern=_PERIOD_PATTERN)
    filters = (_query(name, f"Only usage of this {name}.") for name in ("user", "team", "agent", "thread", "model"))
    since = "Usage from this ISO date or time (UTC unless it has a zone), inclusive."
    until = "Usage before this ISO date or time (UTC unless it has a zone), exclusive."
    limit_path = (
        _path("scope", "What the limit counts.", _choice(LIMIT_SCOPES, "A scope.")),
        _path("id", "The subject, percent-encoded ('/' as %2F), or * for each separately; ignored for global."),
        _path("window", "The calendar window.", _choice(WINDOWS, "A window.")),
    )
    limit_name = (
        _query("tag", "With scope tag: the limit's tag, e.g. project."),
        {
            **_query("models", "The limit's models, one parameter each (models=a&models=b); none: every model."),
            "schema": _list_of({"type": "string"}),
            "explode": True,
        },
    )
    return {
        "/admin/limits": {
            "get": _operation(
                "listLimits",
                "The state of the spend limits, one entry per counter",
                "limits",
                "Limits",
                parameters=(
                    _query("user", "Only the limits that apply to this user, their [teams] team's included."),
                    _query("team", "Only the limits that apply to this team."),
                    _query("thread", "Only the limits that apply to this thread."),
                    _query("agent", "Only the limits that apply to this agent."),
                    _query("key", "Only the limits that apply to this managed key, by name."),
                ),
            )
        },
        "/admin/limits/changes": {
            "get": _operation(
                "listLimitChanges",
                "Changes to runtime limits, newest first: who, when, before and after",
                "limits",
                "LimitChanges",
            )
        },
        "/admin/limits/{scope}/{id}/{window}": {
            "put": _operation(
                "setRuntimeLimit",
                "Set a spend limit without editing the config; it beats a [[limits]] entry of the same one",
                "limits",
                "LimitChange",
                parameters=limit_path,
                body="LimitSetting",
                bad_request="An unknown scope, window, action, on_exceed or time zone, max_usd not above 0, alert_at "
                "not fractions, a tag missing for scope tag or given for another, models not names or globs, "
                "start_day not 1 to 28 or given for a window other than month, min_output_tokens below 1, "
                "a body that is not a JSON object or lacks max_usd, or a field it does not take.",
            ),
            "delete": _operation(
                "removeRuntimeLimit",
                "Remove a runtime limit; a [[limits]] entry it replaced applies again",
                "limits",
                "LimitChange",
                parameters=(*limit_path, *limit_name),
                bad_request='A body other than {"changed_by": <name>}, or a tag without scope tag.',
                not_found="No runtime limit on that scope, tag, id, window and models",
            ),
        },
        "/admin/usage": {
            "get": _operation(
                "getUsage",
                "Usage and cost per group, as `tollgate usage` gives them",
                "usage",
                "Usage",
                parameters=(
                    _query("group_by", "What to group by (or tag:<name>); one row in all when absent.", _GROUP),
                    _query("since", since),
                    _query("until", until),
                    _query("from", f"An alias of since, kept for older clients. {since}"),
                    _query("to", f"An alias of until, kept for older clients. {until}"),
                    *filters,
                    {
                        "name": "tag",
                        "in": "query",
                        "description": "Only usage with this tag value, name=value; repeat it, all must match.",
                        "schema": {"type": "array", "items": {"type": "string", "pattern": "^[^=]+=.*$"}},
                        "style": "form",
                        "explode": True,
                    },
                ),
                bad_request="An unknown group_by, a tag that is not name=value, since or until (or from or to) "
                "that is not an ISO date or time, both a name and its alias, or since not before until.",
            )
        },
        "/admin/users/{id}/summary": {
            "get": _operation(
                "getUserSummary",
                "One user's usage this month and all time",
                "usage",
                "UserSummary",
                parameters=(_path_id("The user id: any id, percent-encoded ('/' as %2F)."),),
            )
        },
        "/admin/invoices": {
            "get": _operation(
                "listInvoices",
                "Invoices with their lines, newest period first",
                "invoices",
                "Invoices",
                parameters=(
                    _query("period", "Only this month, YYYY-MM.", period),
                    _query("status", "Only invoices with this status.", _choice(STATUSES, "A status.")),
                    _query("entity", "Only this user's or team's invoices."),
                ),
                bad_request="A period that is not YYYY-MM, or an unknown status.",
            )
        },
        "/admin/invoices/generate": {
            "post": _operation(
                "generateInvoices",
                "Create the missing invoices of an ended month; existing ones are never changed",
                "invoices",
                "Generation",
                parameters=(_query("period", "The month, YYYY-MM; last month when absent.", period),),
                bad_request="A period that is not YYYY-MM, or one that has not ended.",
            )
        },
        "/admin/invoices/preview": {
            "get": _operation(
                "previewInvoices",
                "What the running month's invoices would be now; nothing is stored",
                "invoices",
                "Preview",
                parameters=(
                    _query(
                        "period",
                        "running (the default: this month) or a month YYYY-MM.",
                        _text("running or a month.", pattern=r"^(running|[0-9]{4}-(0[1-9]|1[0-2]))$"),
                    ),
                    _query("entity", "Only this user's or team's invoice."),
                ),
                bad_request="A period that is neither running nor YYYY-MM, or one that has not started.",
            )
        },
        "/admin/invoices/{id}": {
            "get": _operation(
                "getInvoice",
                "One invoice with its lines",
                "invoices",
                "Invoice",
                parameters=(invoice_id,),
                not_found="No such invoice",
            ),
            "patch": _operation(
                "setInvoiceStatus",
                "Change an invoice's status; amounts never change",
                "invoices",
                "Invoice",
                parameters=(invoice_id,),
                body="StatusChange",
                bad_request="A body that is not JSON or holds no status, an unknown status, or a move that "
                "is not allowed (pending to paid, failed or void; failed to pending, paid or void; paid to void).",
                not_found="No such invoice",
            ),
        },
        "/admin/alerts": {
            "get": _operation(
                "listAlerts",
                "The alerts sent, anomalies and threshold alerts, newest first, as `tollgate alerts` lists them",
                "alerts",
                "Alerts",
                parameters=(
                    _query("since", "Only alerts from this ISO date or time (UTC unless it has a zone)."),
                    _query("kind", "Only alerts of this kind.", _choice(ALERT_KINDS, "A kind.")),
                ),
                bad_request="An unknown kind, or since that is not an ISO date or time.",
            )
        },
        "/admin/forecast": {
            "get": _operation(
                "getForecast",
                "Month-end projections per user, team and in total, and the date each limit will be reached",
                "alerts",
                "Forecast",
                parameters=(
                    _query("user", "Only this user's projection, and the limits that apply to them."),
                    _query("team", "Only this team's projection, and the limits that apply to it."),
                ),
            )
        },
        "/admin/openapi.json": {
            "get": _operation("getAdminOpenapi", "This OpenAPI 3.1 document", "meta", "OpenAPI"),
        },
    }


def _version() -> str:
    try:
        return version("tollgate")
    except PackageNotFoundError:  # a source tree that was never installed
        return "0+unknown"


@functools.cache
def admin_openapi() -> dict[str, Any]:
    """The document, built on first use and shared afterwards: callers must not change it."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Tollgate admin API",
            "version": _version(),
            "description": "Usage, spend limits and invoices. Every route needs "
            "`Authorization: Bearer $TOLLGATE_ADMIN_KEY`; without that variable the admin API is off (404).",
        },
        "security": [{"adminKey": []}],
        "tags": [{"name": name} for name in ("usage", "limits", "alerts", "invoices", "meta")],
        "paths": _paths(),
        "components": {
            "schemas": _schemas(),
            "responses": {
                "Unauthorized": _json(_ref("Error"), "No admin key, or the wrong one."),
                "AdminOff": _json(_ref("Error"), "The admin API is off: $TOLLGATE_ADMIN_KEY is not set."),
            },
            "securitySchemes": {
                "adminKey": {"type": "http", "scheme": "bearer", "description": "The value of $TOLLGATE_ADMIN_KEY."}
            },
        },
    }


@functools.cache
def admin_openapi_json() -> bytes:
    """The document as JSON bytes, rendered once."""
    return orjson.dumps(admin_openapi())
