"""Dollars as people read them: ``$0.000021``, never ``$0.00`` for a cost that is not zero.

Pure. One amount alone (a log line, an alert) gets at least cents and enough places for two
significant digits; a column of amounts (a table) gets one number of places for every cell,
enough for its smallest non-zero amount, so the cells line up and none reads as zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_HALF_EVEN, Decimal

_MIN_PLACES = 2
_MAX_PLACES = 12  # costs are stored as picodollars: no amount has more places than this


def places_for(amount: Decimal) -> int:
    """Decimal places that show ``amount`` with at least two significant digits (2 to 12)."""
    if amount.is_zero() or not amount.is_finite():
        return _MIN_PLACES
    return max(_MIN_PLACES, min(_MAX_PLACES, 1 - abs(amount).adjusted()))


def format_usd(amount: Decimal, places: int | None = None) -> str:
    """``$12.50``, ``$0.000021``, ``-$0.40``: ``places`` decimals, else as many as ``places_for`` says."""
    digits = places_for(amount) if places is None else places
    text = format(amount.quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_EVEN), "f")
    return "-$" + text[1:] if text.startswith("-") else "$" + text


def column_places(amounts: Sequence[Decimal]) -> int:
    """One number of places for a column: enough for the smallest non-zero amount in it."""
    return max((places_for(a) for a in amounts if not a.is_zero()), default=_MIN_PLACES)


def format_usd_column(amounts: Sequence[Decimal]) -> list[str]:
    """Each amount with the column's one number of places."""
    places = column_places(amounts)
    return [format_usd(a, places) for a in amounts]


def money_text(amount: Decimal) -> str:
    """A decimal string for JSON without trailing zeros: ``0.00009184``, ``12.5``, ``3``; never an exponent."""
    if amount.is_zero():
        return "0"
    text = format(amount, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text
