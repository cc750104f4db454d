"""The decimal contexts pricing computes in.

``EXACT`` traps ``Inexact`` and ``Rounded``: any product or sum that would lose a
digit raises instead of rounding silently, so "exact" is checked, not hoped for.
``ROUNDING`` is used for the one deliberate rounding (a cost total to 1e-12 USD).
Both are passed explicitly, so the thread's current decimal context never matters.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Context, Decimal, DivisionByZero, Inexact, InvalidOperation, Overflow, Rounded
from typing import Final

EXACT: Final = Context(prec=100, traps=[InvalidOperation, DivisionByZero, Overflow, Inexact, Rounded])
ROUNDING: Final = Context(prec=100, rounding=ROUND_HALF_EVEN)
ZERO: Final = Decimal(0)
PER_MILLION: Final = 1_000_000
