"""Which price map entry prices a model at a provider of a given kind.

The map keeps some providers' prices under a prefix: ``gemini/...`` are the Gemini API's
(the bare names are Vertex AI's), ``azure/...`` are Azure OpenAI's. A provider of such a
kind is priced by its prefixed entry where the map has one, else by the bare model's
(``Catalog.lookup`` drops the prefix when nothing matches with it).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from pricing.catalog import Catalog, PriceCard

#: Provider kind -> the prefix of its own entries in the price map.
KIND_PREFIXES: Final[Mapping[str, str]] = MappingProxyType({"gemini": "gemini/", "azure": "azure/"})


def priced_name(model: str, kind: str | None) -> str:
    """The name to look ``model`` up by at a provider of ``kind``."""
    prefix = KIND_PREFIXES.get(kind or "")
    if prefix is None or model.startswith(prefix):
        return model
    return prefix + model.removeprefix("models/")


def lookup_for_kind(catalog: Catalog, model: str, kind: str | None) -> PriceCard | None:
    """The card that prices ``model`` at a provider of ``kind``: its own entry first, then the bare model's."""
    return catalog.lookup(priced_name(model, kind))
