"""The ``[billing]`` settings: their defaults, help texts, validation, and the one rounding of amounts.

``BillingSettings`` is the single definition: ``proxy.config`` uses it as the type of its
``billing`` section, and reads each field's ``help`` metadata for the README's config table.
It imports nothing of Tollgate, so the config can import it at no cost.
"""

from __future__ import annotations

import dataclasses
import decimal
from dataclasses import dataclass, field
from decimal import Context, Decimal, InvalidOperation

ENTITIES = ("user", "team")
_ROUNDINGS = frozenset(name for name in dir(decimal) if name.startswith("ROUND_"))
# Rounding is explicit, to ``decimals`` places: the context only needs room for the digits.
_QUANTIZE = Context(prec=100, traps=[InvalidOperation])


@dataclass(frozen=True, slots=True)
class BillingSettings:
    """The ``[billing]`` config section; invalid values raise ``ValueError`` naming the key."""

    entity: str = field(
        default="user", metadata={"help": "Who is invoiced: 'user', or 'team' (a team invoice covers its members)."}
    )
    currency: str = field(default="USD", metadata={"help": "Currency written on invoices."})
    decimals: int = field(
        default=2, metadata={"help": "Decimal places invoice amounts are rounded to, once per amount."}
    )
    rounding: str = field(default="ROUND_HALF_UP", metadata={"help": "Rounding rule, a Python decimal ROUND_* name."})
    markup_percent: Decimal = field(default=Decimal(0), metadata={"help": "Percent added to each invoice's subtotal."})
    exchange_rate: Decimal = field(
        default=Decimal(1), metadata={"help": "Units of the invoice currency per USD (costs are priced in USD)."}
    )
    generate_day: int = field(
        default=2, metadata={"help": "Day of the month (1-28) on which the server invoices the previous month."}
    )
    generate_hour_utc: int = field(default=0, metadata={"help": "Hour (UTC) of that day at which it does."})

    def __post_init__(self) -> None:
        for name in ("markup_percent", "exchange_rate"):
            value = getattr(self, name)
            if not isinstance(value, Decimal):
                # Through str, so a float from TOML becomes the decimal it was written as.
                object.__setattr__(self, name, Decimal(str(value)))
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
    names = [f.name for f in dataclasses.fields(BillingSettings) if hasattr(billing, f.name)]
    return BillingSettings(**{name: getattr(billing, name) for name in names})
