"""Invoices: exact amounts, one per entity and month however often (and wherever) generation runs."""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from starlette.applications import Starlette
from starlette.testclient import TestClient

from pricing import Catalog
from proxy.billing.api import invoice_routes
from proxy.billing.cli import main as invoices_main
from proxy.billing.export import export_invoices
from proxy.billing.invoice import invoice_id_for
from proxy.billing.queries import generate_invoices, get_invoice, list_invoices, set_status
from proxy.billing.scheduler import InvoiceScheduler
from proxy.billing.settings import BillingSettings
from proxy.clock import fixed_clock
from proxy.recording.records import UsageRecord
from proxy.recording.store import Store
from proxy.recording.tables import INVOICE_LINES_TABLE, INVOICES_TABLE
from tests.recording.test_store import _BASE

PERIOD = "2026-10"
NOW = datetime(2026, 11, 2, tzinfo=UTC)
IN_PERIOD = datetime(2026, 10, 15, 12, tzinfo=UTC)
USD_0_125 = 125_000_000_000  # $0.125 in picodollars


def _usage(n: int, **changes: Any) -> UsageRecord:
    defaults: dict[str, Any] = {"request_id": f"r{n}", "started_at": IN_PERIOD}
    return dataclasses.replace(_BASE, **(defaults | changes))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _count(store: Store, table: sa.Table) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def test_user_invoice_has_a_line_per_model_and_per_agent(store: Store) -> None:
    store.insert_records(
        [
            _usage(1, model_requested="gpt-4o", agent="planner", cost_pico=USD_0_125, output_tokens=7),
            _usage(2, model_requested="gpt-4o", agent="coder", cost_pico=USD_0_125, output_tokens=5),
            _usage(3, model_requested="gpt-4o-mini", agent="coder", cost_pico=USD_0_125 * 4),
        ]
    )
    [invoice] = generate_invoices(store, BillingSettings(), PERIOD, NOW).created
    assert (invoice.id, invoice.entity_type, invoice.entity_id, invoice.status) == (
        "inv_2026-10_user_alice",
        "user",
        "alice",
        "pending",
    )
    models = {line.key: line for line in invoice.lines if line.kind == "model"}
    agents = {line.key: line for line in invoice.lines if line.kind == "agent"}
    assert {k: (v.requests, v.amount) for k, v in models.items()} == {
        "gpt-4o": (2, Decimal("0.25")),
        "gpt-4o-mini": (1, Decimal("0.50")),
    }
    assert models["gpt-4o"].tokens["output_tokens"] == 12
    assert {k: v.cost_usd for k, v in agents.items()} == {"planner": Decimal("0.125"), "coder": Decimal("0.625")}
    assert get_invoice(store, invoice.id) == invoice


def test_team_invoice_covers_its_members(store: Store) -> None:
    store.insert_records(
        [
            _usage(1, user_id="alice", team_id="research", cost_pico=USD_0_125),
            _usage(2, user_id="bob", team_id="research", cost_pico=USD_0_125),
            _usage(3, user_id="carol", team_id="sales", cost_pico=USD_0_125),
        ]
    )
    created = generate_invoices(store, BillingSettings(entity="team"), PERIOD, NOW).created
    assert {(i.entity_type, i.entity_id, i.requests, i.total) for i in created} == {
        ("team", "research", 2, Decimal("0.25")),
        ("team", "sales", 1, Decimal("0.13")),
    }


def test_many_tiny_costs_sum_exactly(store: Store) -> None:
    # $0.00000015 each: a float sum would drift; integer picodollars summed in SQL do not.
    store.insert_records([_usage(n, cost_pico=150_000) for n in range(1000)])
    [invoice] = generate_invoices(store, BillingSettings(decimals=6), PERIOD, NOW).created
    assert invoice.cost_usd == Decimal("0.00015")
    assert str(invoice.total) == "0.000150"


@pytest.mark.parametrize(
    ("rounding", "decimals", "markup", "lines", "subtotal", "markup_amount", "total"),
    [
        ("ROUND_HALF_UP", 2, "0", ["0.13", "0.13"], "0.26", "0.00", "0.26"),
        ("ROUND_HALF_EVEN", 2, "0", ["0.12", "0.12"], "0.24", "0.00", "0.24"),
        ("ROUND_HALF_UP", 2, "10", ["0.13", "0.13"], "0.26", "0.03", "0.29"),
        ("ROUND_DOWN", 2, "12.5", ["0.12", "0.12"], "0.24", "0.03", "0.27"),
        ("ROUND_CEILING", 0, "0", ["1", "1"], "2", "0", "2"),
    ],
)
def test_each_amount_is_rounded_once_and_the_total_adds_up(
    tmp_path: Path,
    rounding: str,
    decimals: int,
    markup: str,
    lines: list[str],
    subtotal: str,
    markup_amount: str,
    total: str,
) -> None:
    store = Store(f"sqlite:///{tmp_path / 'tollgate.db'}")
    store.create_tables()
    store.insert_records([_usage(n, model_requested=m, cost_pico=USD_0_125) for n, m in ((1, "a"), (2, "b"))])
    settings = BillingSettings(rounding=rounding, decimals=decimals, markup_percent=Decimal(markup))
    [invoice] = generate_invoices(store, settings, PERIOD, NOW).created
    assert [str(line.amount) for line in invoice.lines if line.kind == "model"] == lines
    assert (str(invoice.subtotal), str(invoice.markup), str(invoice.total)) == (subtotal, markup_amount, total)
    store.dispose()


def test_unpriced_requests_are_counted_not_hidden(store: Store) -> None:
    store.insert_records([_usage(1), _usage(2, cost_pico=None, unpriced=True)])
    [invoice] = generate_invoices(store, BillingSettings(), PERIOD, NOW).created
    assert (invoice.requests, invoice.unpriced_requests) == (2, 1)
    assert [line.unpriced_requests for line in invoice.lines] == [1, 1]  # the model line, the agent line


def test_model_lines_show_unit_prices_per_million(store: Store) -> None:
    store.insert_records([_usage(1, model_requested="m")])
    prices = Catalog.from_entries({"m": {"input_cost_per_token": 2.5e-6, "output_cost_per_token": 1e-5}})
    [invoice] = generate_invoices(store, BillingSettings(), PERIOD, NOW, prices=prices).created
    [model] = [line for line in invoice.lines if line.kind == "model"]
    assert model.unit_prices == {"input": Decimal("2.5"), "output": Decimal("10")}
    assert get_invoice(store, invoice.id) == invoice


def test_generating_again_creates_nothing_twice(store: Store) -> None:
    store.insert_records([_usage(1), _usage(2, user_id="bob")])
    first = generate_invoices(store, BillingSettings(), PERIOD, NOW)
    lines = _count(store, INVOICE_LINES_TABLE)
    again = generate_invoices(store, BillingSettings(), PERIOD, NOW)
    assert (len(first.created), again.created, sorted(again.skipped)) == (2, (), sorted(i.id for i in first.created))
    assert (_count(store, INVOICES_TABLE), _count(store, INVOICE_LINES_TABLE)) == (2, lines)


def test_a_paid_invoice_never_changes_when_its_period_is_generated_again(store: Store) -> None:
    store.insert_records([_usage(1)])
    [invoice] = generate_invoices(store, BillingSettings(), PERIOD, NOW).created
    paid = set_status(store, invoice.id, "paid", NOW)
    store.insert_records([_usage(2, cost_pico=USD_0_125 * 8), _usage(3, user_id="bob")])  # late records
    again = generate_invoices(store, BillingSettings(markup_percent=Decimal(50)), PERIOD, NOW)
    assert [i.entity_id for i in again.created] == ["bob"]
    assert get_invoice(store, invoice.id) == paid
    assert (paid.status, paid.total, paid.lines) == ("paid", invoice.total, invoice.lines)


def test_unended_period_is_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="has not ended"):
        generate_invoices(store, BillingSettings(), "2026-11", NOW)


def _write_config(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f'[database]\nurl = "{url}"\n', encoding="utf-8")
    return path


# Each process waits for the same moment, so that their runs overlap.
_RACE = """
import sys, time
from datetime import datetime
from proxy.billing.queries import generate_invoices
from proxy.billing.settings import BillingSettings
from proxy.recording.store import Store
url, period, now, start = sys.argv[1:]
store = Store(url)
time.sleep(max(0.0, float(start) - time.time()))
print(len(generate_invoices(store, BillingSettings(), period, datetime.fromisoformat(now)).created))
"""


def test_two_processes_generating_at_once_create_each_invoice_once(store: Store, any_db_url: str) -> None:
    store.insert_records([_usage(n, user_id=f"user{n}") for n in range(200)])
    command = [sys.executable, "-c", _RACE, any_db_url, PERIOD, NOW.isoformat(), str(time.time() + 2)]
    runs = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in "ab"]
    created = [int(run.communicate(timeout=60)[0]) for run in runs]
    assert sum(created) == 200
    assert (_count(store, INVOICES_TABLE), _count(store, INVOICE_LINES_TABLE)) == (200, 400)


def test_cli_lists_shows_and_exports(
    store: Store, any_db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store.insert_records([_usage(1)])
    config = str(_write_config(tmp_path, any_db_url))
    assert invoices_main(["invoices", "generate", "--period", PERIOD, "--config", config]) == 0
    assert "1 created" in capsys.readouterr().out
    assert invoices_main(["invoices", "list", "--json", "--config", config]) == 0
    assert [i["total"] for i in json.loads(capsys.readouterr().out)] == ["0.00"]
    assert invoices_main(["invoices", "show", "inv_2026-10_user_alice", "--config", config]) == 0
    assert "gpt-4o" in capsys.readouterr().out
    assert invoices_main(["invoices", "show", "inv_nope", "--config", config]) == 1
    out = tmp_path / "invoices.csv"
    assert invoices_main(["invoices", "export", "--format", "csv", "--output", str(out), "--config", config]) == 0
    assert out.read_text(encoding="utf-8").startswith("invoice_id,")


def test_csv_and_json_exports_round_trip_exactly(store: Store) -> None:
    store.insert_records([_usage(n, model_requested=f"m{n % 3}", cost_pico=USD_0_125 + n) for n in range(10)])
    invoices = generate_invoices(store, BillingSettings(markup_percent=Decimal("7.5")), PERIOD, NOW).created
    assert json.loads(export_invoices(invoices, "json")) == [i.as_json() for i in invoices]
    rows = list(csv.DictReader(io.StringIO(export_invoices(invoices, "csv"))))
    [invoice] = invoices
    assert len(rows) == len(invoice.lines)
    models = [row for row in rows if row["line_kind"] == "model"]
    assert sum(Decimal(row["amount"]) for row in models) == Decimal(rows[0]["invoice_subtotal"]) == invoice.subtotal
    assert Decimal(rows[0]["invoice_total"]) == invoice.total
    assert [Decimal(row["cost_usd"]) for row in rows] == [line.cost_usd for line in invoice.lines]


@contextlib.contextmanager
def _admin(store: Store) -> Iterator[TestClient]:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        yield {"store": store, "billing": BillingSettings(), "clock": fixed_clock(NOW)}

    with TestClient(Starlette(routes=invoice_routes(lambda e: e), lifespan=lifespan)) as client:
        yield client


def test_status_changes_through_the_admin_api(store: Store) -> None:
    store.insert_records([_usage(1)])
    with _admin(store) as client:
        generated = client.post("/admin/invoices/generate", params={"period": PERIOD}).json()
        [invoice_id] = [i["id"] for i in generated["created"]]
        paid = client.patch(f"/admin/invoices/{invoice_id}", json={"status": "paid"})
        assert (paid.status_code, paid.json()["status"]) == (200, "paid")
        assert client.patch(f"/admin/invoices/{invoice_id}", json={"status": "pending"}).status_code == 400
        listed = client.get("/admin/invoices", params={"status": "paid"}).json()["invoices"]
        assert [i["id"] for i in listed] == [invoice_id]
        assert client.post("/admin/invoices/generate", params={"period": PERIOD}).json()["skipped"] == [invoice_id]


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "message"),
    [
        ("PATCH", "/admin/invoices/{id}", {"status": "refunded"}, 400, "status must be one of"),
        ("PATCH", "/admin/invoices/{id}", {"state": "paid"}, 400, "must hold a status"),
        ("PATCH", "/admin/invoices/inv_nope", {"status": "paid"}, 404, "No invoice"),
        ("GET", "/admin/invoices/inv_nope", None, 404, "No invoice"),
        ("GET", "/admin/invoices?period=2026-1", None, 400, "period must be YYYY-MM"),
        ("GET", "/admin/invoices?status=open", None, 400, "status must be one of"),
        ("POST", f"/admin/invoices/generate?period={NOW:%Y-%m}", None, 400, "has not ended"),  # the clock's month
    ],
)
def test_bad_admin_requests_get_openai_error_bodies(
    store: Store, method: str, path: str, body: dict[str, str] | None, status: int, message: str
) -> None:
    store.insert_records([_usage(1)])
    [invoice] = generate_invoices(store, BillingSettings(), PERIOD, NOW).created
    with _admin(store) as client:
        response = client.request(method, path.format(id=invoice.id), json=body)
    assert response.status_code == status
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert message in error["message"]


@pytest.mark.anyio
async def test_scheduler_generates_the_due_period_once(store: Store) -> None:
    store.insert_records([_usage(1)])
    scheduler = InvoiceScheduler(store, BillingSettings(), clock=lambda: NOW)
    first = await scheduler.run_once()
    assert first is not None and [i.id for i in first.created] == ["inv_2026-10_user_alice"]
    assert await scheduler.run_once() is None
    scheduler.start()
    await scheduler.close()


def test_invoice_ids_are_safe_in_a_url_path() -> None:
    assert invoice_id_for("user", "alice@example.com", PERIOD).startswith("inv_2026-10_user_~")
    assert invoice_id_for("team", "a.b-c_d", PERIOD) == "inv_2026-10_team_a.b-c_d"


def test_list_filters_by_period_and_status(store: Store) -> None:
    store.insert_records([_usage(1), _usage(2, user_id="bob")])
    generate_invoices(store, BillingSettings(), PERIOD, NOW)
    set_status(store, invoice_id_for("user", "bob", PERIOD), "void", NOW)
    assert [i.entity_id for i in list_invoices(store, period=PERIOD)] == ["alice", "bob"]
    assert [i.entity_id for i in list_invoices(store, status="void")] == ["bob"]
    assert list_invoices(store, period="2026-09") == []
    with pytest.raises(ValueError, match="void invoice cannot become pending"):
        set_status(store, invoice_id_for("user", "bob", PERIOD), "pending", NOW)


def _exported(capsys: pytest.CaptureFixture[str], config: str, *args: str) -> list[dict[str, Any]]:
    assert invoices_main(["invoices", "export", "--config", config, "--format", "jsonl", *args]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_invoice_export_takes_jsonl_and_the_usage_filters(
    store: Store, any_db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store.insert_records(
        [_usage(1), _usage(2, user_id="bob", model_requested="gpt-4o-mini", agent="writer", cost_pico=USD_0_125)]
    )
    generate_invoices(store, BillingSettings(), PERIOD, NOW)
    config = str(_write_config(tmp_path, any_db_url))
    assert sorted(i["entity_id"] for i in _exported(capsys, config)) == ["alice", "bob"]
    [bob] = _exported(capsys, config, "--user", "bob")
    assert bob["cost_usd"] == "0.125" and bob["entity_id"] == "bob"
    [only_mini] = _exported(capsys, config, "--model", "gpt-4o-mini")
    assert [(line["kind"], line["key"]) for line in only_mini["lines"]] == [("model", "gpt-4o-mini")]
    assert _exported(capsys, config, "--since", "2026-11-01") == []
    assert len(_exported(capsys, config, "--since", "2026-10-31", "--until", "2026-11-01")) == 2
    assert _exported(capsys, config, "--team", "nobody") == []


def test_invoice_export_refuses_filters_invoices_do_not_keep(
    any_db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(_write_config(tmp_path, any_db_url))
    assert invoices_main(["invoices", "export", "--config", config, "--thread", "conv-1"]) == 2
    assert "export usage" in capsys.readouterr().err


def test_preview_shows_the_running_months_invoice_and_stores_nothing(store: Store) -> None:
    from proxy.billing.preview import preview_invoices

    running = datetime(2026, 11, 20, tzinfo=UTC)
    store.insert_records(
        [
            _usage(1, started_at=datetime(2026, 11, 3, tzinfo=UTC)),
            _usage(2, started_at=datetime(2026, 11, 25, tzinfo=UTC)),
        ]
    )
    preview = preview_invoices(store, BillingSettings(), running)
    [invoice] = preview.invoices
    assert (preview.period, invoice.status, invoice.requests) == ("2026-11", "preview", 1)  # only usage up to now
    assert preview.as_json()["stored"] is False and "nothing is stored" in preview.as_json()["note"]
    assert _count(store, INVOICES_TABLE) == 0


def test_cli_preview_says_nothing_is_stored_and_mark_sets_a_status(
    store: Store, any_db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    now = datetime.now(UTC)
    store.insert_records([_usage(1), _usage(2, started_at=now, request_id="now")])
    config = str(_write_config(tmp_path, any_db_url))
    assert invoices_main(["invoices", "preview", "--config", config]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"PREVIEW of {now:%Y-%m}") and "nothing is stored" in out and "preview" in out
    assert _count(store, INVOICES_TABLE) == 0
    assert invoices_main(["invoices", "preview", "--period", "2999-01", "--config", config]) == 2
    capsys.readouterr()
    generate_invoices(store, BillingSettings(), PERIOD, NOW)
    assert invoices_main(["invoices", "mark", "inv_2026-10_user_alice", "paid", "--config", config]) == 0
    assert "paid" in capsys.readouterr().out
    assert get_invoice(store, "inv_2026-10_user_alice").status == "paid"  # type: ignore[union-attr]
    assert invoices_main(["invoices", "mark", "inv_2026-10_user_alice", "failed", "--config", config]) == 2
    assert "paid" in capsys.readouterr().err
    assert invoices_main(["invoices", "mark", "inv_nope", "void", "--config", config]) == 1


def test_text_show_has_tokens_by_kind_unit_prices_and_amounts_per_model(
    store: Store, any_db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store.insert_records([_usage(1, input_tokens=1200, cached_input_tokens=200, output_tokens=30, cost_pico=USD_0_125)])
    generate_invoices(store, BillingSettings(), PERIOD, NOW, prices=Catalog.load({}))
    config = str(_write_config(tmp_path, any_db_url))
    assert invoices_main(["invoices", "show", "inv_2026-10_user_alice", "--config", config]) == 0
    out = capsys.readouterr().out
    model = next(line for line in out.splitlines() if line.strip().startswith("model gpt-4o"))
    assert "0.13 USD" in model and "exact cost $0.125" in model
    token_lines = {line.split()[0]: line for line in out.splitlines() if line.startswith("      ")}
    assert "1,200" in token_lines["input"] and "at 2.5 USD/M" in token_lines["input"]
    assert "200" in token_lines["cached_input"] and "at 1.25 USD/M" in token_lines["cached_input"]
    assert "30" in token_lines["output"] and "at 10 USD/M" in token_lines["output"]


def test_admin_preview_answers_the_running_month_and_stores_nothing(store: Store) -> None:
    store.insert_records([_usage(1, started_at=datetime(2026, 11, 1, 8, tzinfo=UTC))])
    with _admin(store) as client:  # its clock says NOW, 2026-11-02
        preview = client.get("/admin/invoices/preview").json()
        assert client.get("/admin/invoices/preview", params={"period": "2030-01"}).status_code == 400
    assert (preview["period"], preview["stored"]) == ("2026-11", False)
    assert [(i["entity_id"], i["status"]) for i in preview["invoices"]] == [("alice", "preview")]
    assert _count(store, INVOICES_TABLE) == 0
