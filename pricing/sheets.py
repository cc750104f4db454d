"""Reading a price file for ``tollgate prices import``: a litellm-format map, or a partial price sheet.

A **map** is a JSON object shaped like litellm's ``model_prices_and_context_window.json`` (a newer
release's, or a trimmed copy): each entry replaces the model's whole entry. It is recognised by its
rate keys (``input_cost_per_token`` and the like).

A **sheet** names only the prices that change, per MILLION tokens, with the keys of
``[pricing.models]`` (``input``, ``output``, ``cached_input``, ...): each replaces just that rate and
leaves the model's others in place. It may be JSON (``{"gpt-4o": {"input": 2.5}}``), TOML (one table
per model, ``["gpt-4o"]``) or CSV (a ``model`` column, then one column per key; an empty cell is not
a price). Sheet prices are exact decimals: a CSV cell or a TOML string is read as written.

An invalid file is refused naming the file, the model and the key.
"""

from __future__ import annotations

import csv
import io
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Final

import orjson

from pricing._exact import EXACT, PER_MILLION, ZERO
from pricing.catalog import OVERRIDE_RATE_KEYS

MAP: Final = "map"
SHEET: Final = "sheet"
_LITELLM_RATE_KEYS: Final = frozenset(OVERRIDE_RATE_KEYS.values())


class PriceFileError(ValueError):
    """A price file cannot be imported; the message names the file and, where it can, the model and key."""


@dataclass(frozen=True, slots=True)
class PriceFile:
    """What a price file holds: ``kind`` is ``"map"`` or ``"sheet"``.

    A map's ``entries`` are its entries as written; a sheet's are litellm rate keys to exact USD per token.
    """

    kind: str
    entries: Mapping[str, Mapping[str, object]]


def read_price_file(path: Path) -> PriceFile:
    """Read and check ``path``; raises ``PriceFileError`` (or ``OSError`` if it cannot be read)."""
    data = path.read_bytes()
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return PriceFile(SHEET, _sheet(path, _csv_tables(path, data)))
    if suffix == ".toml":
        try:
            tables = tomllib.loads(data.decode())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise PriceFileError(f"{path}: not valid TOML: {exc}") from None
        return PriceFile(SHEET, _sheet(path, tables))
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise PriceFileError(f"{path}: not valid JSON (a price file is .json, .toml or .csv): {exc}") from None
    if not isinstance(parsed, dict) or not parsed:
        raise PriceFileError(f"{path}: expected a JSON object mapping model names to prices")
    if _is_map(parsed):
        entries = {name: entry for name, entry in parsed.items() if isinstance(entry, dict) and name != "sample_spec"}
        return PriceFile(MAP, entries)
    return PriceFile(SHEET, _sheet(path, parsed))


def sheet_rates_from_json(entries: Mapping[str, Mapping[str, str]]) -> dict[str, dict[str, Decimal]]:
    """A stored sheet's rates (decimal strings, USD per token) as ``Decimal``."""
    return {name: {key: Decimal(value) for key, value in rates.items()} for name, rates in entries.items()}


def _is_map(parsed: Mapping[str, object]) -> bool:
    return any(
        isinstance(entry, dict) and any(key in _LITELLM_RATE_KEYS or "cost_per" in key for key in entry)
        for entry in parsed.values()
    )


def _csv_tables(path: Path, data: bytes) -> dict[str, dict[str, object]]:
    try:
        reader = csv.DictReader(io.StringIO(data.decode("utf-8-sig")))
        rows = list(reader)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise PriceFileError(f"{path}: not a readable CSV file: {exc}") from None
    if reader.fieldnames is None or "model" not in reader.fieldnames:
        raise PriceFileError(f"{path}: a CSV price sheet needs a 'model' column, then one column per price")
    tables: dict[str, dict[str, object]] = {}
    for number, row in enumerate(rows, start=2):
        model = (row.pop("model") or "").strip()
        if not model:
            raise PriceFileError(f"{path}: line {number} has no model")
        tables[model] = {key: value.strip() for key, value in row.items() if key and value and value.strip()}
    return tables


def _sheet(path: Path, tables: Mapping[str, object]) -> dict[str, dict[str, object]]:
    if not tables:
        raise PriceFileError(f"{path}: names no model")
    sheet: dict[str, dict[str, object]] = {}
    for model, table in tables.items():
        if not isinstance(table, dict) or not table:
            raise PriceFileError(f"{path}: model {model!r}: expected a table of prices per 1M tokens")
        rates: dict[str, object] = {}
        for key, value in table.items():
            rate_key = OVERRIDE_RATE_KEYS.get(key)
            if rate_key is None:
                valid = ", ".join(OVERRIDE_RATE_KEYS)
                raise PriceFileError(f"{path}: model {model!r}: unknown key {key!r}; valid keys are {valid}")
            rates[rate_key] = EXACT.divide(_per_million(path, model, key, value), PER_MILLION)
        sheet[model] = rates
    return sheet


def _per_million(path: Path, model: str, key: str, value: object) -> Decimal:
    amount: Decimal | None = None
    if isinstance(value, float):
        amount = Decimal(repr(value))  # the shortest text that round-trips: what the file wrote
    elif isinstance(value, int | str) and not isinstance(value, bool):
        try:
            amount = Decimal(value)
        except InvalidOperation:
            amount = None
    if amount is None or not amount.is_finite() or amount < ZERO:
        raise PriceFileError(
            f"{path}: model {model!r}: {key} must be a non-negative price in USD per 1M tokens, got {value!r}"
        )
    return amount
