"""A request's usage as Tollgate keeps it: ``Usage``, where it came from, and counts held to the possible.

Each dialect reads its provider's usage into a ``Usage`` (``proxy.dialects``); what is
here knows no wire format. ``tokens`` follows one meaning per column whatever the
provider: input is every prompt token, cache reads and writes included, and output is
every generated token, reasoning included (see ``pricing.TokenCounts``).
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pricing import NO_UNITS, TOKEN_KINDS, UNIT_COUNT_COLUMNS, PriceCard, TokenCounts, UnitCounts

# Where the usage came from, recorded on every row.
NO_USAGE = "none"  # an endpoint that carries no usage
PENDING = "pending"  # usage that comes later (a background job), see proxy.recording.deferred
REPORTED = "reported"
ESTIMATED = "estimated"
MISSING = "missing"
CLAMPED = "clamped"  # the provider's counts, some cut to what the model could have used

# A count no model can reach: ten times the largest context window in the price map. Counts are also held
# to five times the model's own window (input plus output), which leaves room for maps that lag a provider
# (a beta that widens the window), and the whole row stays within 64-bit integers.
MAX_TOKENS = 100_000_000
# Units are held to a count no request reaches (a trillion searches, or milliseconds: 31 years of audio), so
# that what a provider says can never overflow exact pricing or a row's 64-bit columns.
MAX_UNITS = 10**12
_WINDOW_MARGIN = 5
_COUNTS = operator.attrgetter(*TOKEN_KINDS)  # every count as one tuple, built in C (astuple copies deeply)


@dataclass(frozen=True, slots=True)
class Usage:
    tokens: TokenCounts
    service_tier: str | None = None
    model: str | None = None
    provider_usage: Mapping[str, Any] | None = field(default=None, compare=False)
    """The provider's own usage object, as it reported it (recorded beside the counts, for audit)."""
    units: UnitCounts = NO_UNITS
    """What the request used besides tokens (hosted tools, images, audio), as its answer shows."""


def clamp_usage(usage: Usage, card: PriceCard | None) -> tuple[Usage, bool]:
    """``usage`` with impossible counts cut to what the model could have used, and whether any were."""
    ceiling = MAX_TOKENS
    if card is not None and card.max_input_tokens and card.max_output_tokens:
        ceiling = min(ceiling, _WINDOW_MARGIN * (card.max_input_tokens + card.max_output_tokens))
    tokens = usage.tokens
    counts: tuple[int, ...] = _COUNTS(tokens)
    units = usage.units
    if units and max(getattr(units, name) for name in UNIT_COUNT_COLUMNS) > MAX_UNITS:
        held = {name: min(getattr(units, name), MAX_UNITS) for name in UNIT_COUNT_COLUMNS}
        usage = dataclasses.replace(usage, units=dataclasses.replace(units, **held))
        if max(counts) <= ceiling:
            return usage, True
    if max(counts) <= ceiling:
        return usage, False
    clamped = TokenCounts(*(min(count, ceiling) for count in counts))
    return dataclasses.replace(usage, tokens=clamped), True
