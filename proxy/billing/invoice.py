"""The invoice and its lines as values, their stable ids, and their JSON (money as decimal strings).

One invoice per billing entity (a user or a team) and UTC calendar month; ``amounts.py`` says
how its figures are made, ``queries.py`` how it is stored and how its status may move.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from pricing import TOKEN_COLUMNS, decimal_text

STATUSES = ("pending", "paid", "failed", "void")
TOKEN_KINDS = TOKEN_COLUMNS  # an invoice line counts every kind of token a usage row does
_MONEY = ("cost_usd", "exchange_rate", "subtotal", "markup_percent", "markup", "total")
_PLAIN_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


@dataclass(frozen=True, slots=True)
class InvoiceLine:
    """Usage of one model (``kind="model"``) or one agent (``kind="agent"``); ``key`` is "" when unknown."""

    kind: str
    key: str
    requests: int
    unpriced_requests: int
    tokens: Mapping[str, int]  # by TOKEN_KINDS
    cost_usd: Decimal  # exact
    amount: Decimal  # in the invoice currency, rounded
    unit_prices: Mapping[str, Decimal] | None = None  # per million tokens, in the invoice currency

    def as_json(self) -> dict[str, Any]:
        """JSON-ready, money as decimal strings."""
        prices = None if self.unit_prices is None else {k: decimal_text(v) for k, v in self.unit_prices.items()}
        return {
            "kind": self.kind,
            "key": self.key,
            "requests": self.requests,
            "unpriced_requests": self.unpriced_requests,
            **{kind: self.tokens.get(kind, 0) for kind in TOKEN_KINDS},
            "cost_usd": decimal_text(self.cost_usd),
            "amount": decimal_text(self.amount),
            "unit_prices_per_million": prices,
        }


@dataclass(frozen=True, slots=True)
class Invoice:
    """One entity's invoice for one period, with its lines: model lines first, largest cost first."""

    id: str
    entity_type: str
    entity_id: str
    period: str
    currency: str
    status: str
    cost_usd: Decimal  # exact usage cost, before exchange, rounding and markup
    exchange_rate: Decimal
    subtotal: Decimal
    markup_percent: Decimal
    markup: Decimal
    total: Decimal
    requests: int
    unpriced_requests: int
    created_at: datetime
    updated_at: datetime
    lines: tuple[InvoiceLine, ...] = ()
    price_book: str | None = None  # the [billing.customers] entry its amounts come from; None: at cost
    revision: int = 0  # 0 as first issued; n for the n-th correction
    corrects: str | None = None  # the id of the invoice this one corrects

    def as_json(self) -> dict[str, Any]:
        """JSON-ready, money as decimal strings, times as ISO 8601 UTC."""
        return {
            "id": self.id,
            "entity_type": self.entity_type,
            "entity_id": self.entity_id,
            "period": self.period,
            "currency": self.currency,
            "status": self.status,
            **{name: decimal_text(getattr(self, name)) for name in _MONEY},
            "requests": self.requests,
            "unpriced_requests": self.unpriced_requests,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "price_book": self.price_book,
            "revision": self.revision,
            "corrects": self.corrects,
            "lines": [line.as_json() for line in self.lines],
        }


def invoice_id_for(entity_type: str, entity_id: str, period: str) -> str:
    """A stable id, so every instance names an invoice alike: ``inv_2026-11_user_alice``.

    Ids that are long or hold characters unsafe in a URL path are replaced by ``~`` and a hash.
    """
    name = entity_id if _PLAIN_ID.fullmatch(entity_id) else "~" + hashlib.sha256(entity_id.encode()).hexdigest()[:24]
    return f"inv_{period}_{entity_type}_{name}"
