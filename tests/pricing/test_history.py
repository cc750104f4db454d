"""Price versions: each version's catalog, which one is in force when, and what may price a request."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from pricing import Catalog, PriceHistory, PriceVersion, TokenCounts, price_tokens

_BASE = {"gpt-4o": {"input_cost_per_token": 2.5e-06, "output_cost_per_token": 1e-05, "mode": "chat"}}
DEC_1 = datetime(2026, 12, 1, tzinfo=UTC)
NOV_1 = datetime(2026, 11, 1, tzinfo=UTC)


def _version(id: int, effective: datetime, kind: str, entries: dict[str, dict[str, object]]) -> PriceVersion:
    return PriceVersion(id, effective, effective, kind, f"file-{id}", entries)


def _sheet(id: int, effective: datetime, model: str = "gpt-4o", rate: str = "2E-6") -> PriceVersion:
    return _version(id, effective, "sheet", {model: {"input_cost_per_token": Decimal(rate)}})


def _input_rate(catalog: Catalog, model: str = "gpt-4o") -> Decimal:
    card = catalog.lookup(model)
    assert card is not None
    return card.rates["input_cost_per_token"]


def test_before_any_version_is_effective_the_config_catalog_prices() -> None:
    base = Catalog.from_entries(_BASE)
    history = PriceHistory(base, [_version(1, DEC_1, "sheet", {"gpt-4o": {"input_cost_per_token": Decimal("2E-6")}})])
    assert history.at(datetime(2026, 11, 30, tzinfo=UTC)) == (None, base)
    version, catalog = history.at(DEC_1)
    assert version == 1 and _input_rate(catalog) == Decimal("0.000002")


def test_a_sheet_replaces_only_the_rates_it_names() -> None:
    history = PriceHistory(
        Catalog.from_entries(_BASE),
        [_sheet(1, DEC_1, "openai/gpt-4o")],
    )
    card = history.catalog(1).lookup("gpt-4o")
    assert card is not None and card.mode == "chat"
    assert dict(card.rates) == {"input_cost_per_token": Decimal("2E-6"), "output_cost_per_token": Decimal("0.00001")}


def test_a_map_replaces_whole_entries_and_keeps_models_it_does_not_name() -> None:
    base = Catalog.from_entries({**_BASE, "gpt-4o-mini": {"input_cost_per_token": 1.5e-07}})
    history = PriceHistory(base, [_version(1, DEC_1, "map", {"gpt-4o": {"input_cost_per_token": 3e-06}})])
    card = history.catalog(1).lookup("gpt-4o")
    assert card is not None and dict(card.rates) == {"input_cost_per_token": Decimal("0.000003")}
    assert _input_rate(history.catalog(1), "gpt-4o-mini") == Decimal("1.5E-7")


def test_a_version_keeps_its_prices_when_a_later_one_is_imported_with_an_earlier_date() -> None:
    first = _version(1, DEC_1, "sheet", {"gpt-4o": {"input_cost_per_token": Decimal("2E-6")}})
    second = _version(2, NOV_1, "sheet", {"gpt-4o": {"output_cost_per_token": Decimal("8E-6")}})
    history = PriceHistory(Catalog.from_entries(_BASE), [first, second])
    one = history.catalog(1).lookup("gpt-4o")
    assert one is not None and one.rates["output_cost_per_token"] == Decimal("0.00001")
    # The newer import is in force from its own date on, carrying what was imported before it.
    assert history.at(datetime(2026, 11, 5, tzinfo=UTC))[0] == 2
    assert history.at(datetime(2026, 12, 5, tzinfo=UTC))[0] == 2
    assert _input_rate(history.catalog(2)) == Decimal("2E-6")


def test_config_overrides_win_over_every_version() -> None:
    base = Catalog.from_entries(_BASE, {"gpt-4o": {"input": 1}})
    history = PriceHistory(base, [_version(1, NOV_1, "sheet", {"gpt-4o": {"input_cost_per_token": Decimal("2E-6")}})])
    assert _input_rate(history.catalog(1)) == Decimal("0.000001")


def test_a_request_may_be_priced_by_the_version_in_force_or_any_later_one() -> None:
    later = _version(1, DEC_1, "sheet", {"gpt-4o": {"input_cost_per_token": Decimal("5E-6")}})
    history = PriceHistory(Catalog.from_entries(_BASE), [later])
    assert history.may_price(NOV_1) == (history.base, history.catalog(1))
    assert history.may_price(DEC_1) == (history.catalog(1),)


def test_prices_of_a_version_are_exact_and_describe_names_it() -> None:
    history = PriceHistory(
        Catalog.from_entries(_BASE),
        [_sheet(7, NOV_1)],
    )
    card = history.catalog(7).lookup("gpt-4o")
    assert card is not None
    assert price_tokens(card, TokenCounts(input=1_000_000, output=1)).total == Decimal("2.00001")
    assert "price version 7 (file-7)" in history.catalog(7).describe("gpt-4o")
    assert 7 in history and 8 not in history
