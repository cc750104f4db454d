"""``tollgate usage --priced-for CUSTOMER``: a customer's usage per model, at its price and at cost.

The customer is an invoiced user or team (``[billing] entity``); its price book is
``[billing.customers."<id>"]`` (``proxy.billing.customers``). A customer without one pays cost.
Prices are exact, unrounded: an invoice rounds them once per line, in its currency.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime

import orjson

from proxy.config import Config
from proxy.recording.store import Store

_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(9999, 1, 1, tzinfo=UTC)


def print_priced_for(
    config: Config, store: Store, customer: str, since: datetime | None, until: datetime | None, as_json: bool
) -> int:
    from pricing import Catalog, decimal_text, pico_to_usd
    from proxy.billing.customers import CustomerBook
    from proxy.billing.queries import usage_totals
    from proxy.cli.table import print_table
    from proxy.clock import system_clock
    from proxy.money import money_text
    from proxy.recording.prices import load_history

    entity = config.billing.entity
    book = config.billing.customers.get(customer)
    if book is None:
        sys.stderr.write(f'tollgate: no [billing.customers."{customer}"] price book: its price is the cost\n')
        book = CustomerBook.model_validate({})
    catalog = load_history(store, Catalog.load(config.pricing_models)).at(system_clock())[1]
    column = "user_id" if entity == "user" else "team_id"
    lines = usage_totals(store, column, "model_requested", since or _EARLIEST, until or _LATEST).get(customer, [])
    lines.sort(key=lambda u: (-u.cost_pico, u.key))
    priced = [
        (u, book.price(u.key, pico_to_usd(u.cost_pico), u.tokens, catalog.lookup(u.key) if u.key else None))
        for u in lines
    ]
    if as_json:
        out = [
            {
                "model": u.key,
                "requests": u.requests,
                "unpriced_requests": u.unpriced_requests,
                "cost_usd": decimal_text(pico_to_usd(u.cost_pico)),
                "price_usd": decimal_text(price),
            }
            for u, price in priced
        ]
        sys.stdout.write(orjson.dumps({entity: customer, "models": out}, option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    if not priced:
        sys.stdout.write(f"no usage recorded for {entity} {customer} in this window\n")
        return 0
    # Exact, every digit: a price is not rounded until an invoice rounds it.
    costs = ["$" + money_text(pico_to_usd(u.cost_pico)) for u, _ in priced]
    prices = ["$" + money_text(price) for _, price in priced]
    table = [("model", "requests", "cost", f"price for {customer}", "unpriced")]
    table += [
        (u.key or "(none)", str(u.requests), cost, price, str(u.unpriced_requests) if u.unpriced_requests else "")
        for (u, _), cost, price in zip(priced, costs, prices, strict=True)
    ]
    print_table(table)
    return 0
