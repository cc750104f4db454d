"""The ``[billing]`` settings: their defaults, help texts, validation, and the one rounding of amounts.

``BillingSettings`` is the single definition: ``proxy.config`` uses it as the type of its
``billing`` section, and reads each field's description for the README's config table.
It imports nothing of Tollgate, so the config can import it at no cost.
"""

from __future__ import annotations

import decimal
from collections.abc import Mapping
from decimal import Context, Decimal, InvalidOperation
from types import MappingProxyType
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from proxy.billing.customers import CustomerBook

ENTITIES = ("user", "team")
_ROUNDINGS = frozenset(name for name in dir(decimal) if name.startswith("ROUND_"))
# Rounding is explicit, to ``decimals`` places: the context only needs room for the digits.
_QUANTIZE = Context(prec=100, traps=[InvalidOperation])


def _setting(default: Any, help: str) -> Any:
    # Strict like every config setting, but decimals, which TOML writes as numbers or strings
    # (pydantic reads a float through str, so 0.1 becomes Decimal("0.1")).
    return Field(default, description=help, strict=not isinstance(default, Decimal))


class BillingSettings(BaseModel):
    """The ``[billing]`` config section; an invalid value is refused naming the key."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)

    entity: str = _setting("user", "Who is invoiced: 'user', or 'team' (a team invoice covers its members).")
    currency: str = _setting("USD", "Currency written on invoices.")
    decimals: int = _setting(2, "Decimal places invoice amounts are rounded to, once per amount.")
    rounding: str = _setting("ROUND_HALF_UP", "Rounding rule, a Python decimal ROUND_* name.")
    markup_percent: Decimal = _setting(Decimal(0), "Percent added to each invoice's subtotal.")
    exchange_rate: Decimal = _setting(Decimal(1), "Units of the invoice currency per USD (costs are priced in USD).")
    generate_day: int = _setting(2, "Day of the month (1-28) on which the server invoices the previous month.")
    generate_hour_utc: int = _setting(0, "Hour (UTC) of that day at which it does.")
    customers: Annotated[Mapping[str, CustomerBook], AfterValidator(MappingProxyType)] = Field(
        default_factory=dict,
        description="Customer price books by invoiced user or team: markups, discounts and per-model prices.",
    )

    @model_validator(mode="after")
    def _valid(self) -> BillingSettings:
        checks = (
            ("entity", self.entity in ENTITIES, "'user' or 'team'"),
            ("currency", bool(self.currency.strip()), "a currency code such as 'USD'"),
            ("decimals", 0 <= self.decimals <= 12, "an integer from 0 to 12"),
            ("rounding", self.rounding in _ROUNDINGS, "one of " + ", ".join(sorted(_ROUNDINGS))),
            ("markup_percent", self.markup_percent.is_finite() and self.markup_percent >= 0, "a number >= 0"),
            ("exchange_rate", self.exchange_rate.is_finite() and self.exchange_rate > 0, "a number > 0"),
            ("generate_day", 1 <= self.generate_day <= 28, "a day from 1 to 28 (every month has it)"),
            ("generate_hour_utc", 0 <= self.generate_hour_utc <= 23, "an hour from 0 to 23"),
        )
        for name, ok, expected in checks:
            if not ok:
                raise ValueError(f"[billing] {name} must be {expected}, not {getattr(self, name)!r}")
        for customer, book in self.customers.items():
            problem = book.problem()
            if problem is not None:
                raise ValueError(f'[billing.customers."{customer}"] {problem}')
        return self

    def round(self, amount: Decimal) -> Decimal:
        """``amount`` rounded to ``decimals`` places with ``rounding``: the one rounding of each amount."""
        return amount.quantize(Decimal(1).scaleb(-self.decimals), rounding=self.rounding, context=_QUANTIZE)


class CurrentBilling:
    """The ``[billing]`` settings in force, read at each use by the admin routes and the scheduler.

    One holder per app, shared by both: a config reload swaps ``settings`` and both see the new ones.
    """

    def __init__(self, settings: BillingSettings) -> None:
        self.settings = settings


def current_settings(billing: BillingSettings | CurrentBilling) -> BillingSettings:
    """The settings themselves, from settings or from the holder of the ones in force."""
    return billing.settings if isinstance(billing, CurrentBilling) else billing


def settings_from_config(config: object) -> BillingSettings:
    """``config.billing`` as ``BillingSettings`` (its attributes of the same names); defaults without one."""
    billing = getattr(config, "billing", None)
    if billing is None or isinstance(billing, BillingSettings):
        return billing or BillingSettings()
    names = [name for name in BillingSettings.model_fields if hasattr(billing, name)]
    return BillingSettings(**{name: getattr(billing, name) for name in names})
