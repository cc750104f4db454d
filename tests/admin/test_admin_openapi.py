"""The admin API's OpenAPI document: served behind the key, in step with the routes, true to real bodies."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import schemathesis
from hypothesis import given, settings
from jsonschema import Draft202012Validator
from openapi_spec_validator import OpenAPIV31SpecValidator, validate
from referencing import Registry
from referencing.jsonschema import DRAFT202012
from starlette.routing import Route
from starlette.testclient import TestClient

from proxy.admin.openapi import admin_openapi
from proxy.app import create_app
from proxy.billing.invoice import invoice_id_for
from proxy.billing.periods import parse_period, previous_period
from proxy.insight.anomalies import Anomaly
from proxy.insight.history import claim_anomaly
from proxy.recording.records import UsageRecord
from proxy.recording.store import Store
from proxy.recording.tables import ALERTS_TABLE
from tests.conftest import chat_completion, json_answer, make_config
from tests.fakeprovider import FakeProvider
from tests.recording.test_store import _BASE

ADMIN = {"authorization": "Bearer s3cret"}
CHAT = "/v1/chat/completions"
LIMITS = '[[limits]]\nscope = "user"\nmax_usd = "10"\n\n[[limits]]\nscope = "team"\nwindow = "total"\nmax_usd = "50"\n'
PERIOD = previous_period(datetime.now(UTC))  # invoiced by the fixture
EARLIER = previous_period(parse_period(PERIOD)[0])  # left for POST /admin/invoices/generate
INVOICE = invoice_id_for("user", "alice", PERIOD)
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
DOCUMENT = admin_openapi()
OPERATIONS = [(path, method) for path, item in DOCUMENT["paths"].items() for method in item if method in METHODS]
GROUP_BY = next(p for p in DOCUMENT["paths"]["/admin/usage"]["get"]["parameters"] if p["name"] == "group_by")
GROUPS_DOCUMENTED = [*GROUP_BY["schema"]["anyOf"][0]["enum"], "tag:env"]


ANOMALY = Anomaly(
    kind="runaway",
    scope="thread",
    scope_id="t-1",
    window="2026-11-25T14",
    since=datetime(2026, 11, 25, 14, 3, tzinfo=UTC),
    time=datetime(2026, 11, 25, 14, 3, 40, tzinfo=UTC),
    cost_usd=Decimal("0.000000000001"),
    baseline_usd=None,
    requests=70,
    tokens=910,
    detail="70 requests in a minute",
)


def _records(period: str, prefix: str) -> list[UsageRecord]:
    """Usage in ``period``: two models and an agent for alice, a cost of one picodollar, unpriced and anonymous rows."""
    day = parse_period(period)[0] + timedelta(days=3)
    changes: list[dict[str, Any]] = [
        {},
        {"model_requested": "gpt-4o-mini", "cost_pico": 1, "agent": None},  # $0.000000000001
        {"model_requested": "my-model", "cost_pico": None, "unpriced": True},
        {"user_id": None, "team_id": None},
    ]
    return [
        dataclasses.replace(_BASE, request_id=f"{prefix}{n}", started_at=day, ended_at=day, **change)
        for n, change in enumerate(changes)
    ]


@pytest.fixture
def admin(provider: FakeProvider, db_url: str) -> Iterator[TestClient]:
    """The running app with usage this month and in two past months, spend on its limits, and one invoice."""
    store = Store(db_url)
    store.create_tables()
    store.insert_records(_records(PERIOD, "p") + _records(EARLIER, "e"))
    with store.write_engine.begin() as conn:
        claim_anomaly(conn, store.dialect, ANOMALY)
        conn.execute(
            ALERTS_TABLE.insert().values(
                counter_key="user:alice:day:2026-11-25", limit_pico=10**13, threshold="0.8", sent_at=ANOMALY.time
            )
        )
    store.dispose()
    provider.answer("POST", CHAT, json_answer(chat_completion()))
    with TestClient(create_app(make_config(provider, db_url, LIMITS), admin_key="s3cret")) as client:
        body = b'{"model": "gpt-4o-mini", "messages": []}'
        client.post(CHAT, content=body, headers={"x-user-id": "alice", "x-team-id": "research"})
        client.portal.call(client.app_state["recorder"].flush)  # type: ignore[union-attr]
        assert client.post("/admin/invoices/generate", params={"period": PERIOD}, headers=ADMIN).status_code == 200
        assert client.put("/admin/limits/user/carol/day", json={"max_usd": 3}, headers=ADMIN).status_code == 200
        hermes = {"max_usd": 3, "tag": "project", "models": ["gpt-4o*"]}
        assert client.put("/admin/limits/tag/hermes/day", json=hermes, headers=ADMIN).status_code == 200
        yield client


def _registry() -> Registry[Any]:
    registry: Registry[Any] = Registry().with_resource("urn:admin-openapi", DRAFT202012.create_resource(DOCUMENT))
    return registry


def _escape(part: str) -> str:
    return part.replace("~", "~0").replace("/", "~1")


def assert_documented(path: str, method: str, status: int, body: Any) -> None:
    """``body`` is valid under the schema documented for ``method path`` answering ``status``."""
    response = DOCUMENT["paths"][path][method]["responses"][str(status)]
    if "$ref" in response:
        pointer = response["$ref"]
    else:
        pointer = "#/" + "/".join(_escape(p) for p in ("paths", path, method, "responses", str(status)))
    schema = {"$ref": f"urn:admin-openapi{pointer}/content/application~1json/schema"}
    validator = Draft202012Validator(schema, registry=_registry(), format_checker=Draft202012Validator.FORMAT_CHECKER)
    validator.validate(body)


def _concrete(path: str) -> str:
    return path.replace("{id}", "alice").replace("{scope}", "user").replace("{window}", "day")


def test_document_is_served_with_the_admin_key(admin: TestClient) -> None:
    response = admin.get("/admin/openapi.json", headers=ADMIN)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == DOCUMENT
    assert DOCUMENT["openapi"] == "3.1.0"


@pytest.mark.parametrize(("path", "method"), OPERATIONS)
@pytest.mark.parametrize("headers", [{}, {"authorization": "Bearer wrong"}], ids=["no-key", "wrong-key"])
def test_every_operation_answers_401_as_documented_without_the_key(
    admin: TestClient, path: str, method: str, headers: dict[str, str]
) -> None:
    response = admin.request(method, _concrete(path), headers=headers)
    assert response.status_code == 401
    assert_documented(path, method, 401, response.json())


@pytest.mark.parametrize(("path", "method"), OPERATIONS)
def test_every_operation_answers_404_as_documented_when_the_admin_api_is_off(
    provider: FakeProvider, db_url: str, path: str, method: str
) -> None:
    with TestClient(create_app(make_config(provider, db_url), admin_key="")) as client:
        response = client.request(method, _concrete(path), headers=ADMIN)
    assert response.status_code == 404
    assert "TOLLGATE_ADMIN_KEY" in response.json()["error"]["message"]
    assert_documented(path, method, 404, response.json())


def test_mounted_admin_routes_and_documented_operations_are_the_same(provider: FakeProvider, db_url: str) -> None:
    app = create_app(make_config(provider, db_url), admin_key="s3cret")
    mounted = {
        (re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path), method.lower())  # {id:path} is documented as {id}
        for route in app.routes
        if isinstance(route, Route) and route.path.startswith("/admin")
        for method in route.methods or ()
        if method != "HEAD"
    }
    assert ("/admin/invoices/{id}", "patch") in mounted
    assert mounted == set(OPERATIONS)


def test_document_is_valid_openapi_3_1() -> None:
    validate(DOCUMENT, cls=OpenAPIV31SpecValidator)


TAG_LIMIT = {
    "max_usd": "5",
    "tag": "project",
    "models": ["gpt-4o*", "o3"],
    "start_day": 15,
    "on_exceed": "clamp",
    "min_output_tokens": 64,
}
HERMES_NAME = "tag=Project&models=gpt-4o*"  # the limit the fixture sets on tag project's hermes (tags: any case)
# (documented path, method, request path, JSON body, status): every operation, answering each documented status.
CASES: list[tuple[str, str, str, Any, int]] = [
    ("/admin/limits", "get", "/admin/limits", None, 200),
    ("/admin/limits", "get", "/admin/limits?user=alice&team=research", None, 200),
    ("/admin/limits", "get", "/admin/limits?user=a%00b", None, 400),
    ("/admin/limits/changes", "get", "/admin/limits/changes", None, 200),
    ("/admin/limits/changes", "get", "/admin/limits/changes?user=alice", None, 400),
    ("/admin/limits/{scope}/{id}/{window}", "put", "/admin/limits/user/bob/month", {"max_usd": "20"}, 200),
    ("/admin/limits/{scope}/{id}/{window}", "put", "/admin/limits/user/bob/month", {"max_usd": "0"}, 400),
    ("/admin/limits/{scope}/{id}/{window}", "put", "/admin/limits/user/bob/month", {"usd": "5"}, 400),
    ("/admin/limits/{scope}/{id}/{window}", "delete", "/admin/limits/user/carol/day", None, 200),
    ("/admin/limits/{scope}/{id}/{window}", "delete", "/admin/limits/user/bob/year", None, 400),
    ("/admin/limits/{scope}/{id}/{window}", "delete", "/admin/limits/user/nobody/day", None, 404),
    ("/admin/limits/{scope}/{id}/{window}", "put", "/admin/limits/tag/apollo/month", TAG_LIMIT, 200),
    ("/admin/limits/{scope}/{id}/{window}", "put", "/admin/limits/tag/apollo/day", {"max_usd": "1"}, 400),
    ("/admin/limits/{scope}/{id}/{window}", "delete", f"/admin/limits/tag/hermes/day?{HERMES_NAME}", None, 200),
    ("/admin/limits/{scope}/{id}/{window}", "delete", "/admin/limits/user/carol/day?tag=project", None, 400),
    ("/admin/limits/{scope}/{id}/{window}", "delete", "/admin/limits/user/carol/day?models=o3&models=o4", None, 404),
    ("/admin/usage", "get", "/admin/usage", None, 200),
    ("/admin/usage", "get", "/admin/usage?group_by=user&from=2020-01-01&to=2100-01-01T00:00Z", None, 200),
    ("/admin/usage", "get", "/admin/usage?group_by=colour", None, 400),
    ("/admin/usage", "get", "/admin/usage?from=yesterday", None, 400),
    ("/admin/usage", "get", "/admin/usage?group_by=tag:env&since=2020-01-01&until=2100-01-01&tag=env=prod", None, 200),
    ("/admin/users/{id}/summary", "get", "/admin/users/alice/summary", None, 200),
    ("/admin/users/{id}/summary", "get", "/admin/users/nobody/summary", None, 200),
    ("/admin/users/{id}/summary", "get", "/admin/users/a%00b/summary", None, 400),
    ("/admin/invoices", "get", "/admin/invoices", None, 200),
    ("/admin/invoices", "get", "/admin/invoices?period=2026-1", None, 400),
    ("/admin/invoices", "get", "/admin/invoices?status=open", None, 400),
    ("/admin/invoices/generate", "post", f"/admin/invoices/generate?period={EARLIER}", None, 200),
    ("/admin/invoices/generate", "post", f"/admin/invoices/generate?period={PERIOD}", None, 200),
    ("/admin/invoices/generate", "post", "/admin/invoices/generate?period=2999-01", None, 400),
    ("/admin/invoices/preview", "get", "/admin/invoices/preview", None, 200),
    ("/admin/invoices/preview", "get", "/admin/invoices/preview?period=running&entity=alice", None, 200),
    ("/admin/invoices/preview", "get", "/admin/invoices/preview?period=2999-01", None, 400),
    ("/admin/invoices/{id}", "get", f"/admin/invoices/{INVOICE}", None, 200),
    ("/admin/invoices/{id}", "get", "/admin/invoices/inv_nope", None, 404),
    ("/admin/invoices/{id}", "get", "/admin/invoices/inv%00", None, 400),
    ("/admin/invoices/{id}", "patch", f"/admin/invoices/{INVOICE}", {"status": "paid"}, 200),
    ("/admin/invoices/{id}", "patch", f"/admin/invoices/{INVOICE}", {"status": "refunded"}, 400),
    ("/admin/invoices/{id}", "patch", f"/admin/invoices/{INVOICE}", {"state": "paid"}, 400),
    ("/admin/invoices/{id}", "patch", "/admin/invoices/inv_nope", {"status": "paid"}, 404),
    ("/admin/alerts", "get", "/admin/alerts", None, 200),
    ("/admin/alerts", "get", "/admin/alerts?since=2020-01-01&kind=spike", None, 200),
    ("/admin/alerts", "get", "/admin/alerts?kind=loud", None, 400),
    ("/admin/alerts", "get", "/admin/alerts?since=yesterday", None, 400),
    ("/admin/forecast", "get", "/admin/forecast", None, 200),
    ("/admin/forecast", "get", "/admin/forecast?user=alice", None, 200),
    ("/admin/forecast", "get", "/admin/forecast?team=a%00b", None, 400),
    ("/admin/openapi.json", "get", "/admin/openapi.json", None, 200),
    ("/admin/openapi.json", "get", "/admin/openapi.json?format=yaml", None, 400),
]


@pytest.mark.parametrize(("path", "method", "url", "body", "status"), CASES)
def test_real_responses_match_the_documented_schemas(
    admin: TestClient, path: str, method: str, url: str, body: Any, status: int
) -> None:
    response = admin.request(method, url, json=body, headers=ADMIN)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert_documented(path, method, status, response.json())


def test_cases_cover_every_documented_answer() -> None:
    """Beyond the 401 and admin-off 404 that every operation shares (tested above), each answer has a case."""
    shared = [{"$ref": "#/components/responses/Unauthorized"}, {"$ref": "#/components/responses/AdminOff"}]
    documented = {
        (path, method, int(status))
        for path, method in OPERATIONS
        for status, answer in DOCUMENT["paths"][path][method]["responses"].items()
        if answer not in shared
    }
    assert {(path, method, status) for path, method, _, _, status in CASES} == documented


@pytest.mark.parametrize("group_by", GROUPS_DOCUMENTED)
def test_every_documented_group_by_is_accepted(admin: TestClient, group_by: str) -> None:
    response = admin.get("/admin/usage", params={"group_by": group_by}, headers=ADMIN)
    assert response.status_code == 200
    assert_documented("/admin/usage", "get", 200, response.json())


def test_a_patch_body_that_is_not_json_is_a_documented_400(admin: TestClient) -> None:
    response = admin.patch(f"/admin/invoices/{INVOICE}", content=b"paid", headers=ADMIN)
    assert response.status_code == 400
    assert_documented("/admin/invoices/{id}", "patch", 400, response.json())


def test_the_seeded_bodies_reach_the_tricky_parts_of_the_schemas(admin: TestClient) -> None:
    """Tiny amounts (written without an exponent), unit prices, and nulls are really validated above."""
    invoice = admin.get(f"/admin/invoices/{INVOICE}", headers=ADMIN).json()
    models = {line["key"]: line for line in invoice["lines"] if line["kind"] == "model"}
    assert models["gpt-4o-mini"]["cost_usd"] == "0.000000000001"
    assert models["gpt-4o"]["unit_prices_per_million"]["input"] == "2.5"
    assert models["my-model"]["unit_prices_per_million"] is None
    summary = admin.get("/admin/users/nobody/summary", headers=ADMIN).json()
    assert (summary["this_month"], summary["average_daily_cost_usd_this_month"]) == (None, "0")
    alerts = admin.get("/admin/alerts", headers=ADMIN).json()["alerts"]
    assert [(a["kind"], a["cost_usd"]) for a in alerts] == [("threshold", "8"), ("runaway", "0.000000000001")]
    states = admin.get("/admin/limits", headers=ADMIN).json()["limits"]
    assert {state["window"]: state["resets_at"] is None for state in states} == {"day": False, "total": True}


# Only the checks that the document can promise: no 5xx, and every answer documented (status, media type,
# body). The key is sent out of band, so schemathesis's own auth probes do not apply.
_CHECKS = """
[checks]
enabled = false
[checks.not_a_server_error]
enabled = true
[checks.status_code_conformance]
enabled = true
[checks.content_type_conformance]
enabled = true
[checks.response_schema_conformance]
enabled = true
"""
SCHEMATHESIS = schemathesis.openapi.from_dict(DOCUMENT, config=schemathesis.Config.from_str(_CHECKS))


def _constrained(operation: dict[str, Any]) -> bool:
    """Whether some input of ``operation`` can be invalid: a body, or a parameter with an enum or a pattern."""
    schemas = [p.get("schema", {}) for p in operation.get("parameters", [])]
    return "requestBody" in operation or any("enum" in s or "pattern" in s or "$ref" in s for s in schemas)


# Invalid input is generated only where some input can be invalid: elsewhere every string is valid.
FUZZED = [(path, method, schemathesis.GenerationMode.POSITIVE) for path, method in OPERATIONS] + [
    (path, method, schemathesis.GenerationMode.NEGATIVE)
    for path, method in OPERATIONS
    if _constrained(DOCUMENT["paths"][path][method])
]


@pytest.mark.parametrize(("path", "method", "mode"), FUZZED)
def test_generated_requests_get_documented_answers_and_no_server_error(
    admin: TestClient, path: str, method: str, mode: schemathesis.GenerationMode
) -> None:
    strategy = SCHEMATHESIS[path][method.upper()].as_strategy(generation_mode=mode, headers=ADMIN)

    @given(case=strategy)
    @settings(max_examples=25, deadline=None, database=None, derandomize=True)
    def send(case: schemathesis.Case[Any]) -> None:
        sent = case.as_transport_kwargs(base_url=str(admin.base_url))
        response = admin.request(
            sent["method"],
            sent["url"],
            params=sent.get("params"),
            headers=sent.get("headers"),
            json=sent.get("json"),
            content=sent.get("data"),
        )
        case.validate_response(response)

    send()
