"""Customer price books: ``[billing.customers."<user-or-team>"]``, what a customer pays for its usage.

Rows and reports keep the provider's cost; only invoices and ``tollgate usage --priced-for`` show a
customer's price. For one model line (a customer's usage of one model in a period)::

    base   = the provider's cost, or, where [...models."<model>"] names rates, the line's tokens
             priced at those rates (per 1M tokens, over the catalog's other rates for the model;
             flat: size and service tiers do not apply to a customer's own rates)
    price  = base × (100 + markup_percent - discount_percent) / 100

where ``markup_percent`` and ``discount_percent`` are the model's own if it names them, else the
customer's. The price is exact; an invoice rounds it once per line, in its currency. A customer
with a price book gets no invoice-level ``[billing] markup_percent`` on top: its book says it all.

This module is read by the config, so it imports nothing of Tollgate's at load time.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Context, Decimal, Inexact, InvalidOperation, Rounded
from types import MappingProxyType
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from pricing import PriceCard

#: A customer's own rate keys (USD per 1M tokens) -> the token column of an invoice line it prices.
#: The same keys as [pricing.models] (a test checks), so one name means one thing everywhere.
RATE_KEYS: Mapping[str, str] = MappingProxyType(
    {
        "input": "input_tokens",
        "output": "output_tokens",
        "cached_input": "cached_input_tokens",
        "cache_write": "cache_write_tokens",
        "cache_write_1h": "cache_write_1h_tokens",
        "reasoning": "reasoning_tokens",
        "audio_input": "audio_input_tokens",
        "audio_output": "audio_output_tokens",
        "cache_write_12h": "cache_write_12h_tokens",
    }
)
_EXACT = Context(prec=100, traps=[InvalidOperation, Inexact, Rounded])
_READ_ONLY = AfterValidator(MappingProxyType)


def _percent(help: str) -> Any:
    return Field(None, description=help)


def _rate(kind: str) -> Any:
    return Field(None, description=f"This customer's price of {kind} tokens for this model, USD per 1M tokens.")


class ModelPrice(BaseModel):
    """``[billing.customers."<id>".models."<model>"]``: one customer's price of one model."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    markup_percent: Decimal | None = _percent("Percent added to this model's price for this customer.")
    discount_percent: Decimal | None = _percent("Percent taken off this model's price for this customer.")
    input: Decimal | None = _rate("input")
    output: Decimal | None = _rate("output")
    cached_input: Decimal | None = _rate("cached input")
    cache_write: Decimal | None = _rate("cache write (5-minute)")
    cache_write_1h: Decimal | None = _rate("1-hour cache write")
    reasoning: Decimal | None = _rate("reasoning")
    audio_input: Decimal | None = _rate("audio input")
    audio_output: Decimal | None = _rate("audio output")
    cache_write_12h: Decimal | None = _rate("12-hour cache write")

    @property
    def rates(self) -> dict[str, Decimal]:
        """The rates it names, by key (USD per 1M tokens)."""
        return {key: value for key in RATE_KEYS if (value := getattr(self, key)) is not None}


class CustomerBook(BaseModel):
    """``[billing.customers."<user-or-team>"]``: what one customer (an invoiced user or team) pays."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    markup_percent: Decimal = Field(Decimal(0), description="Percent added to this customer's prices.")
    discount_percent: Decimal = Field(Decimal(0), description="Percent taken off this customer's prices.")
    models: Annotated[Mapping[str, ModelPrice], _READ_ONLY] = Field(
        default_factory=dict, description="Per-model prices of this customer, by model name (see below)."
    )

    def problem(self) -> str | None:
        """What is wrong with this book, naming the key (under its table); None when it is valid."""
        problem = _percents_problem(self.markup_percent, self.discount_percent)
        if problem is not None:
            return problem
        for model, own in self.models.items():
            where = f'models."{model}" '
            problem = _percents_problem(own.markup_percent, own.discount_percent)
            if problem is not None:
                return where + problem
            for key, value in own.rates.items():
                if not (value.is_finite() and value >= 0):
                    return f"{where}{key} must be a price of 0 or more (USD per 1M tokens), not {value}"
        return None

    def price(self, model: str, cost_usd: Decimal, tokens: Mapping[str, int], card: PriceCard | None) -> Decimal:
        """This customer's exact price of a line: ``model``'s usage, of ``tokens``, that cost ``cost_usd``."""
        own = self.models.get(model)
        base = cost_usd if own is None or not own.rates else _at_rates(own.rates, tokens, card)
        markup = own.markup_percent if own is not None and own.markup_percent is not None else self.markup_percent
        discount = self.discount_percent
        if own is not None and own.discount_percent is not None:
            discount = own.discount_percent
        factor = _EXACT.divide(_EXACT.add(100, _EXACT.subtract(markup, discount)), 100)
        return _EXACT.multiply(base, factor)


def _percents_problem(markup: Decimal | None, discount: Decimal | None) -> str | None:
    if markup is not None and not (markup.is_finite() and markup >= 0):
        return f"markup_percent must be a number of 0 or more, not {markup}"
    if discount is not None and not (discount.is_finite() and 0 <= discount <= 100):
        return f"discount_percent must be a number from 0 to 100, not {discount}"
    return None


def _at_rates(own: Mapping[str, Decimal], tokens: Mapping[str, int], card: PriceCard | None) -> Decimal:
    """``tokens`` priced at the customer's rates (per 1M), the catalog's base rates filling the others."""
    from pricing import TokenCounts, price_tokens
    from pricing.catalog import OVERRIDE_RATE_KEYS, PriceCard

    rates = dict(card.rates) if card is not None else {}
    rates.update({OVERRIDE_RATE_KEYS[key]: _EXACT.divide(value, 1_000_000) for key, value in own.items()})
    counts = TokenCounts(**{column.removesuffix("_tokens"): tokens.get(column, 0) for column in RATE_KEYS.values()})
    flat = {key: rate for key, rate in rates.items() if "_above_" not in key or key in OVERRIDE_RATE_KEYS.values()}
    return price_tokens(PriceCard(model="customer", source="config", rates=flat), counts).total
