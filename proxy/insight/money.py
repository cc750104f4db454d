"""Dollars as people read them in alerts and reports."""

from __future__ import annotations

from decimal import Decimal

from pricing import decimal_text

_CENT = Decimal("0.01")


def dollars(amount: Decimal) -> str:
    """``$1,234.56``; an amount under a cent keeps six places (``$0.00048``) rather than read as $0.00."""
    if amount == 0 or abs(amount) >= _CENT:
        return f"${amount:,.2f}"
    return "$" + decimal_text(amount.quantize(Decimal("0.000001")).normalize())


def plural(count: int, word: str, many: str | None = None) -> str:
    """``1 request``, ``2 requests`` (or ``many``), with thousands separated."""
    return f"{count:,} " + (word if count == 1 else many or word + "s")
