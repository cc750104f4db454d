"""The price catalog: litellm's bundled price map read as data, plus config.toml overrides.

Tollgate never imports litellm (the import alone takes about five seconds). It finds
the installed package with ``importlib.util.find_spec`` and reads
``model_prices_and_context_window_backup.json`` from it as a plain JSON file. Entries
become :class:`PriceCard` objects on first lookup, so loading is one file read and
one parse.

Precision: the map stores per-token prices as JSON floats, some carrying binary noise
such as ``2.0000000000000002e-07``. Each rate is normalised to 12 significant digits,
``Decimal(format(value, ".12g"))``, which recovers the published price (``2E-7``) and is
far finer than any real price list. From there on every rate is a ``Decimal``.

Overrides: ``[pricing.models."<name>"]`` tables give prices per MILLION tokens (see
``OVERRIDE_RATE_KEYS``). They are divided by 1,000,000 exactly. A table whose name is a
key of the map replaces just the rates it names, leaving the map's other rates (tiered
and service-tier variants included) in place; any other name defines a custom model.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import logging
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from types import MappingProxyType
from typing import Final

import orjson

from pricing._exact import EXACT, PER_MILLION, ROUNDING, ZERO

logger = logging.getLogger(__name__)

MAP_FILENAME: Final = "model_prices_and_context_window_backup.json"

#: config.toml override key (USD per 1M tokens) -> litellm per-token rate key.
OVERRIDE_RATE_KEYS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "input": "input_cost_per_token",
        "output": "output_cost_per_token",
        "cached_input": "cache_read_input_token_cost",
        "cache_write": "cache_creation_input_token_cost",
        "cache_write_1h": "cache_creation_input_token_cost_above_1hr",
        "reasoning": "output_cost_per_reasoning_token",
        "audio_input": "input_cost_per_audio_token",
        "audio_output": "output_cost_per_audio_token",
        "cache_write_12h": "cache_creation_input_token_cost_above_12hr",
    }
)
_LIMIT_KEYS: Final = ("max_output_tokens", "max_input_tokens")
_VALID_OVERRIDE_KEYS: Final = ", ".join((*OVERRIDE_RATE_KEYS, *_LIMIT_KEYS))

# Rate keys kept on a card besides those containing "cost_per_token".
_RATE_PREFIXES: Final = (
    "cache_read_input_token_cost",
    "cache_creation_input_token_cost",
    "input_cost_per_audio_token",
    "output_cost_per_audio_token",
    "output_cost_per_reasoning_token",
)
# Base keys for display, longest first so "..._above_1hr" wins over its prefix.
_LABELS: Final = sorted(((key, name) for name, key in OVERRIDE_RATE_KEYS.items()), key=lambda p: -len(p[0]))
_LABEL_ORDER: Final = {name: rank for rank, name in enumerate(OVERRIDE_RATE_KEYS)}
#: Prices of units that are not tokens, kept on a card as ``unit_rates`` (see ``pricing.units``).
UNIT_RATE_KEYS: Final = frozenset(
    {
        "input_cost_per_character",
        "input_cost_per_second",
        "output_cost_per_second",
        "input_cost_per_image",
        "output_cost_per_image",
        "input_cost_per_pixel",
        "output_cost_per_pixel",
        "input_cost_per_image_token",
        "output_cost_per_image_token",
        "code_interpreter_cost_per_session",
        "file_search_cost_per_1k_calls",
        "vector_store_cost_per_gb_per_day",
    }
)
SEARCH_CONTEXT: Final = "search_context_cost_per_query"
_SKIPPED_ENTRIES: Final = frozenset({"sample_spec"})
# Dated snapshots: -2024-07-18, -20240718, @20240718 and OpenAI's -MMDD (gpt-4-0613).
_DATED: Final = re.compile(r"(?:-\d{4}-\d{2}-\d{2}|-\d{8}|@\d{8}|-(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01]))$")
_LATEST: Final = "-latest"
_CENT: Final = Decimal("0.01")
# Model names come from clients; a cap keeps junk names from growing the memo forever.
_MEMO_LIMIT: Final = 4096


class PricingConfigError(ValueError):
    """A ``[pricing.models."<name>"]`` table is invalid; the message names the model and key."""


@dataclass(frozen=True, slots=True)
class PriceCard:
    """The prices of one model, as resolved from the catalog.

    ``model`` is the catalog key the requested name resolved to; ``source`` is
    ``"litellm"`` or ``"config"`` (a config.toml override or custom model). ``rates``
    holds USD per token under litellm's key names, and is read-only.
    """

    model: str
    source: str
    rates: Mapping[str, Decimal] = field(hash=False)
    max_output_tokens: int | None = None
    max_input_tokens: int | None = None
    mode: str | None = None
    unit_rates: Mapping[str, Decimal] = field(default_factory=dict, hash=False)
    """USD per unit that is not a token (a web search, a character, a second, an image), under litellm's
    key names; ``search_context_cost_per_query`` is flattened to ``search_context_cost_per_query.<size>``."""
    web_search_billing_unit: str | None = None
    """litellm's ``web_search_billing_unit``: Gemini grounding bills ``per_prompt`` (the default) or ``per_query``."""

    def __post_init__(self) -> None:
        # Copy, so a caller's dict cannot change the card behind its back.
        object.__setattr__(self, "rates", MappingProxyType(dict(self.rates)))
        object.__setattr__(self, "unit_rates", MappingProxyType(dict(self.unit_rates)))


@dataclass(frozen=True, slots=True)
class _Override:
    rates: Mapping[str, Decimal]
    max_output_tokens: int | None
    max_input_tokens: int | None


class Catalog:
    """Every model Tollgate can price, looked up by the name a client sends.

    Build one with :meth:`load` (the bundled litellm map) or :meth:`from_entries`.
    """

    def __init__(
        self,
        entries: Mapping[str, object],
        overrides: Mapping[str, Mapping[str, object]] | None,
        origin: str | None,
    ) -> None:
        self._entries: dict[str, Mapping[str, object]] = {
            name: entry
            for name, entry in entries.items()
            if name not in _SKIPPED_ENTRIES and isinstance(entry, Mapping)
        }
        self._overrides = {name: _parse_override(name, table) for name, table in (overrides or {}).items()}
        self._origin = origin
        self._memo: dict[str, PriceCard | None] = {}

    @classmethod
    def load(cls, overrides: Mapping[str, Mapping[str, object]] | None = None, *, path: Path | None = None) -> Catalog:
        """Read the price map (litellm's bundled one unless ``path`` is given) and apply overrides.

        Raises ``FileNotFoundError`` if litellm is not installed, and
        :class:`PricingConfigError` for an invalid override.
        """
        started = time.perf_counter()
        source = path if path is not None else bundled_map_path()
        data = orjson.loads(source.read_bytes())
        if not isinstance(data, dict):
            raise ValueError(f"{source}: expected a JSON object mapping model names to prices")
        catalog = cls(data, overrides, None if path is None else f"price map {path}")
        logger.debug("read %d price entries from %s in %.3fs", len(data), source, time.perf_counter() - started)
        return catalog

    @classmethod
    def from_entries(
        cls,
        entries: Mapping[str, Mapping[str, object]],
        overrides: Mapping[str, Mapping[str, object]] | None = None,
    ) -> Catalog:
        """Build a catalog from explicit entries shaped like litellm's map (used by tests)."""
        return cls(entries, overrides, "explicit entries")

    def layered(self, entries: Mapping[str, Mapping[str, object]], origin: str) -> Catalog:
        """This catalog with ``entries`` replacing (or adding) whole map entries; its config overrides still win.

        ``entries`` are shaped like the map's; a rate may also be a ``Decimal`` (a price sheet's, exact).
        """
        catalog = Catalog({**self._entries, **entries}, None, origin)
        catalog._overrides = self._overrides
        return catalog

    def entry(self, name: str) -> Mapping[str, object] | None:
        """The map entry stored under exactly ``name`` (no prefix dropped, no date), if any."""
        return self._entries.get(name)

    def lookup(self, model: str) -> PriceCard | None:
        """The card for ``model``, or None if no catalog key matches it.

        Tried in order: the exact name; the name without provider prefixes
        (``openai/gpt-4o-mini``); then each of those without a dated snapshot suffix,
        then without ``-latest``. Results are memoised, so a repeat is a dict lookup.
        """
        try:
            return self._memo[model]
        except KeyError:
            pass
        key = next((name for name in _candidates(model) if name in self._entries or name in self._overrides), None)
        card = None if key is None else self._card(key)
        if len(self._memo) >= _MEMO_LIMIT:
            self._memo.clear()
        self._memo[model] = card
        return card

    def __contains__(self, name: object) -> bool:
        """Whether ``name`` is itself a key of the map or of the overrides (no prefix dropped, no date)."""
        return name in self._entries or name in self._overrides

    def candidates(self, model: str) -> Iterator[str]:
        """The names ``lookup`` tries for ``model``, in its order."""
        return _candidates(model)

    def describe(self, model: str) -> str:
        """A human-readable account of how ``model`` is priced (for ``tollgate prices MODEL``)."""
        card = self.lookup(model)
        if card is None:
            return (
                f"{_field('model', model)}\n"
                f"unknown: no entry in the {self._origin_text()} or config.toml matches it.\n"
                "Requests for it would be recorded as unpriced (no cost)."
            )
        lines = [_field("model", model), _field("resolved", card.model), _field("source", self._source_text(card))]
        if card.mode is not None:
            lines.append(_field("mode", card.mode))
        for label, limit in (("max input", card.max_input_tokens), ("max output", card.max_output_tokens)):
            if limit is not None:
                lines.append(_field(label, f"{limit} tokens"))
        labels = sorted((_label(key), rate) for key, rate in card.rates.items())
        labels.sort(key=lambda pair: _LABEL_ORDER.get(pair[0].split(" ")[0], len(_LABEL_ORDER)))
        width = max((len(label) for label, _ in labels), default=0)
        lines.append(_field("rates", "USD per 1M tokens" if labels else "none"))
        lines.extend(f"  {label:<{width}}  ${_per_million_text(rate)} / 1M tokens" for label, rate in labels)
        if card.unit_rates:
            lines.append(_field("units", "USD per unit (see pricing.units)"))
            width = max(len(name) for name in card.unit_rates)
            lines.extend(f"  {name:<{width}}  ${format(rate, 'f')}" for name, rate in card.unit_rates.items())
        return "\n".join(lines)

    def _card(self, key: str) -> PriceCard:
        entry = self._entries.get(key, {})
        rates = {name: _normalise(value) for name, value in entry.items() if _is_rate(name, value)}
        max_output, max_input = _token_limit(entry, "max_output_tokens"), _token_limit(entry, "max_input_tokens")
        override = self._overrides.get(key)
        if override is not None:
            rates.update(override.rates)
            max_output = override.max_output_tokens if override.max_output_tokens is not None else max_output
            max_input = override.max_input_tokens if override.max_input_tokens is not None else max_input
        mode = entry.get("mode")
        billing_unit = entry.get("web_search_billing_unit")
        return PriceCard(
            model=key,
            source="litellm" if override is None else "config",
            rates=dict(sorted(rates.items())),
            max_output_tokens=max_output,
            max_input_tokens=max_input,
            mode=mode if isinstance(mode, str) else None,
            unit_rates=_unit_rates(entry),
            web_search_billing_unit=billing_unit if isinstance(billing_unit, str) else None,
        )

    @property
    def origin(self) -> str:
        """Where the map entries come from, as ``describe`` names it."""
        return self._origin_text()

    def _origin_text(self) -> str:
        if self._origin is not None:
            return self._origin
        return f"litellm bundled map (litellm {_package_version('litellm')})"

    def _source_text(self, card: PriceCard) -> str:
        if card.source == "litellm":
            return self._origin_text()
        if card.model in self._entries:
            return f"config.toml override of the {self._origin_text()}"
        return "config.toml custom model"


def bundled_map_path(package: str = "litellm") -> Path:
    """Where the installed ``package`` keeps its price map, found without importing it."""
    spec = importlib.util.find_spec(package)
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    if spec is not None and not folders and spec.origin is not None:
        folders.append(str(Path(spec.origin).parent))
    for folder in folders:
        candidate = Path(folder) / MAP_FILENAME
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"no {MAP_FILENAME} found in an installed {package!r} package; is litellm installed?")


def _candidates(model: str) -> Iterator[str]:
    names = [model]
    while "/" in names[-1]:
        names.append(names[-1].split("/", 1)[1])
    yield from names
    for name in names:
        undated = _DATED.sub("", name)
        if undated != name:
            yield undated
    for name in names:
        if name.endswith(_LATEST):
            yield name.removesuffix(_LATEST)


def _is_rate(name: str, value: object) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        return False
    return "cost_per_token" in name or name.startswith(_RATE_PREFIXES)


def _unit_rates(entry: Mapping[str, object]) -> dict[str, Decimal]:
    rates = {name: _normalise(value) for name, value in entry.items() if name in UNIT_RATE_KEYS and _is_number(value)}
    search = entry.get(SEARCH_CONTEXT)
    if isinstance(search, Mapping):
        for size, value in search.items():
            if isinstance(size, str) and _is_number(value):
                rates[f"{SEARCH_CONTEXT}.{size.removeprefix('search_context_size_')}"] = _normalise(value)
    return dict(sorted(rates.items()))


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0


def _normalise(value: object) -> Decimal:
    if isinstance(value, Decimal):  # a price sheet's rate: exact as written
        return value
    # Twelve significant digits strips float noise (2.0000000000000002e-07 -> 2E-7).
    return Decimal(format(value, ".12g"))


def _token_limit(entry: Mapping[str, object], key: str) -> int | None:
    value = entry.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _parse_override(name: str, table: Mapping[str, object]) -> _Override:
    rates: dict[str, Decimal] = {}
    limits: dict[str, int] = {}
    for key, value in table.items():
        if key in OVERRIDE_RATE_KEYS:
            rates[OVERRIDE_RATE_KEYS[key]] = EXACT.divide(_price(name, key, value), PER_MILLION)
        elif key in _LIMIT_KEYS:
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise PricingConfigError(f"{_where(name)}: {key} must be a non-negative integer, got {value!r}")
            limits[key] = value
        else:
            raise PricingConfigError(f"{_where(name)}: unknown key {key!r}; valid keys are {_VALID_OVERRIDE_KEYS}")
    return _Override(MappingProxyType(rates), limits.get("max_output_tokens"), limits.get("max_input_tokens"))


def _price(name: str, key: str, value: object) -> Decimal:
    amount: Decimal | None = None
    if isinstance(value, float):
        # repr is the shortest text that round-trips, i.e. what was written in the TOML.
        amount = Decimal(repr(value))
    elif isinstance(value, int | str) and not isinstance(value, bool):
        try:
            amount = Decimal(value)
        except InvalidOperation:
            amount = None
    if amount is None or not amount.is_finite() or amount < ZERO:
        raise PricingConfigError(
            f"{_where(name)}: {key} must be a non-negative price in USD per 1M tokens "
            f"(a number or a decimal string), got {value!r}"
        )
    return amount


def _where(name: str) -> str:
    return f'[pricing.models."{name}"]'


def _label(key: str) -> str:
    for base, name in _LABELS:
        if key == base:
            return name
        if key.startswith(base + "_"):
            return f"{name} ({key.removeprefix(base + '_')})"
    return key


def _per_million_text(rate: Decimal) -> str:
    amount = EXACT.multiply(rate, PER_MILLION).normalize(EXACT)
    cents = amount.quantize(_CENT, context=ROUNDING)
    # Whole cents read as money ($2.50); finer prices keep every digit ($0.075).
    return format(cents if cents == amount else amount, "f")


def _field(label: str, value: str) -> str:
    return f"{label:<11}{value}"


def _package_version(distribution: str) -> str:
    # Read lazily: importlib.metadata costs about 50 ms, which load() should not pay.
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "version unknown"
