"""Customer price books: invoices at the customer's price with the provider's cost beside; rows keep the cost."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

from pricing import Catalog
from pricing.catalog import OVERRIDE_RATE_KEYS
from proxy.billing.customers import RATE_KEYS, CustomerBook
from proxy.billing.queries import generate_invoices, get_invoice
from proxy.billing.text import invoice_text
from proxy.cli import main
from proxy.config import ConfigError, parse_config
from proxy.recording.records import UsageRecord
from proxy.recording.store import Store
from tests.recording.test_store import _BASE

NOW = datetime(2026, 11, 2, tzinfo=UTC)
IN_OCTOBER = datetime(2026, 10, 15, 12, tzinfo=UTC)
PRICES = Catalog.from_entries(
    {
        "gpt-4o": {
            "input_cost_per_token": 2.5e-06,
            "output_cost_per_token": 1e-05,
            "cache_read_input_token_cost": 1.25e-06,
        }
    }
)
BOOKS = """
[billing.customers."acme"]
markup_percent = 20
discount_percent = 5
[billing.customers."acme".models."gpt-4o"]
input = "2.00"
discount_percent = "10"
[billing.customers."bob"]
discount_percent = "12.5"
"""


def _row(n: int, user: str, model: str, cost_pico: int, **tokens: int) -> UsageRecord:
    counts: dict[str, Any] = {f"{kind}_tokens": count for kind, count in tokens.items()}
    return dataclasses.replace(
        _BASE,
        request_id=f"r{n}",
        started_at=IN_OCTOBER,
        user_id=user,
        model_requested=model,
        cost_pico=cost_pico,
        **counts,
    )


def test_rate_keys_are_those_of_pricing_models() -> None:
    assert list(RATE_KEYS) == list(OVERRIDE_RATE_KEYS)


def test_invoices_show_the_customers_price_with_the_providers_cost_beside(store: Store) -> None:
    settings = parse_config(BOOKS, "tollgate.toml").billing
    store.insert_records(
        [
            # gpt-4o at cost: 1M input (200k cached) and 100k output = 2.00 + 0.25 + 1.00 = $3.25
            _row(1, "acme", "gpt-4o", 3_250_000_000_000, input=1_000_000, cached_input=200_000, output=100_000),
            _row(2, "acme", "gpt-4o-mini", 1_000_000_000_000, input=10),  # $1.00 at cost
            _row(3, "bob", "gpt-4o-mini", 2_000_000_000_000, input=10),
            _row(4, "carol", "gpt-4o-mini", 2_000_000_000_000, input=10),
        ]
    )
    generate_invoices(store, settings, "2026-10", NOW, prices=PRICES)
    acme = get_invoice(store, "inv_2026-10_user_acme")
    assert acme is not None and acme.price_book == "acme"
    lines = {line.key: (line.cost_usd, line.amount) for line in acme.lines if line.kind == "model"}
    # gpt-4o at acme's own input rate: 800k × 2.00 + 200k × 1.25 + 100k × 10.00 per 1M = $2.85, +20% -10%
    # gpt-4o-mini at cost, +20% -5%: $1.15
    assert lines == {"gpt-4o": (Decimal("3.25"), Decimal("3.14")), "gpt-4o-mini": (Decimal("1"), Decimal("1.15"))}
    assert (acme.subtotal, acme.markup, acme.total, acme.cost_usd) == (
        Decimal("4.29"),
        Decimal("0.00"),
        Decimal("4.29"),
        Decimal("4.25"),
    )
    assert "priced by customer acme's price book" in invoice_text(acme)
    bob, carol = get_invoice(store, "inv_2026-10_user_bob"), get_invoice(store, "inv_2026-10_user_carol")
    assert bob is not None and carol is not None
    assert (bob.total, bob.price_book, carol.total, carol.price_book) == (Decimal("1.75"), "bob", Decimal("2.00"), None)


def test_rows_keep_the_providers_cost(store: Store) -> None:
    store.insert_records([_row(1, "acme", "gpt-4o-mini", 1_000_000_000_000, input=10)])
    generate_invoices(store, parse_config(BOOKS, "t.toml").billing, "2026-10", NOW, prices=PRICES)
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT cost_pico FROM usage_records").scalar_one() == 1_000_000_000_000


@pytest.mark.parametrize(
    ("book", "message"),
    [
        ('[billing.customers."a"]\ndiscount_percent = 120', r'\[billing.customers."a"\] discount_percent must be a '),
        ('[billing.customers."a"]\nmarkup_percent = -1', r'\[billing.customers."a"\] markup_percent must be a number'),
        ('[billing.customers."a".models."m"]\noutput = -2', r'\[billing.customers."a"\] models."m" output must be a '),
        ('[billing.customers."a"]\nmarkup = 1', r"unknown key 'billing.customers.a.markup'"),
    ],
)
def test_a_bad_price_book_is_refused_naming_the_file_and_key(book: str, message: str) -> None:
    with pytest.raises(ConfigError, match=r"^tollgate\.toml: .*" + message):
        parse_config(book, "tollgate.toml")


@pytest.mark.parametrize(
    ("book", "model", "price"),
    [
        ({}, "gpt-4o", Decimal("3.25")),
        ({"markup_percent": 10}, "gpt-4o", Decimal("3.575")),
        ({"models": {"gpt-4o": {"output": "20"}}}, "gpt-4o", Decimal("4.25")),  # 2.00 + 0.25 + 100k × 20 / 1M
        ({"models": {"gpt-4o": {"markup_percent": 100}}}, "gpt-4o", Decimal("6.50")),
        ({"models": {"other": {"input": 1}}}, "unknown", Decimal("3.25")),
    ],
)
def test_a_customers_price_of_a_line(book: dict[str, Any], model: str, price: Decimal) -> None:
    tokens = {"input_tokens": 1_000_000, "cached_input_tokens": 200_000, "output_tokens": 100_000}
    card = PRICES.lookup(model)
    assert CustomerBook(**book).price(model, Decimal("3.25"), tokens, card) == price


def test_usage_priced_for_a_customer_shows_its_price_beside_the_cost(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "t.db"}"\n{BOOKS}')
    store = Store(f"sqlite:///{tmp_path / 't.db'}")
    store.create_tables()
    store.insert_records([_row(1, "bob", "gpt-4o-mini", 2_000_000_000_000, input=10), _row(2, "al", "x", 5, input=1)])
    store.dispose()
    assert main(["usage", "--config", str(config), "--priced-for", "bob", "--json"]) == 0
    assert orjson.loads(capsys.readouterr().out) == {
        "user": "bob",
        "models": [
            {"model": "gpt-4o-mini", "requests": 1, "unpriced_requests": 0, "cost_usd": "2", "price_usd": "1.750"}
        ],
    }
    assert main(["usage", "--config", str(config), "--priced-for", "bob"]) == 0
    assert capsys.readouterr().out.splitlines()[1].split() == ["gpt-4o-mini", "1", "$2", "$1.75"]
    assert main(["usage", "--config", str(config), "--priced-for", "al"]) == 0
    captured = capsys.readouterr()
    assert 'no [billing.customers."al"] price book' in captured.err and "$0.000000000005" in captured.out
