"""Money as people read it: enough places that no cost reads as zero, one format per column."""

from __future__ import annotations

from decimal import Decimal

import pytest

from proxy.money import format_usd, format_usd_column, money_text


@pytest.mark.parametrize(
    ("amount", "text"),
    [
        ("0", "$0.00"),
        ("12.5", "$12.50"),
        ("0.000021", "$0.000021"),
        ("0.0052", "$0.0052"),
        ("0.00523456", "$0.0052"),
        ("0.000000000001", "$0.000000000001"),
        ("-0.4", "-$0.40"),
        ("1234.5678", "$1234.57"),
    ],
)
def test_one_amount_shows_two_significant_digits_at_least_cents(amount: str, text: str) -> None:
    assert format_usd(Decimal(amount)) == text


def test_a_column_takes_the_places_of_its_smallest_nonzero_amount() -> None:
    cells = format_usd_column([Decimal("12.5"), Decimal("0"), Decimal("0.000021")])
    assert cells == ["$12.500000", "$0.000000", "$0.000021"]
    assert len({len(c.split(".")[1]) for c in cells}) == 1


@pytest.mark.parametrize(
    ("amount", "text"),
    [("0.000091840000", "0.00009184"), ("12.50", "12.5"), ("3.000", "3"), ("0E-12", "0"), ("100", "100")],
)
def test_money_text_drops_trailing_zeros_and_never_uses_an_exponent(amount: str, text: str) -> None:
    assert money_text(Decimal(amount)) == text
