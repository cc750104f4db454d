"""Which price map entry prices a model at a provider of a given kind.

The map keeps some providers' prices under a prefix: ``gemini/...`` are the Gemini API's
(the bare names are Vertex AI's), ``azure/...`` are Azure OpenAI's. A provider of such a
kind is priced by its own entry where the map has one (``azure/gpt-4o`` for a dated
``gpt-4o-2024-05-13`` the map has no ``azure/`` entry for), else by the bare model's, as
``Catalog.lookup`` finds it.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from pricing.catalog import Catalog, PriceCard

#: Provider kind -> the prefix of its own entries in the price map.
KIND_PREFIXES: Final[Mapping[str, str]] = MappingProxyType({"gemini": "gemini/", "azure": "azure/"})


def priced_name(model: str, kind: str | None) -> str:
    """The name to look ``model`` up by at a provider of ``kind``: its own prefix added."""
    prefix = KIND_PREFIXES.get(kind or "")
    if prefix is None or model.startswith(prefix):
        return model
    return prefix + model.removeprefix("models/")


def lookup_for_kind(catalog: Catalog, model: str, kind: str | None) -> PriceCard | None:
    """The card that prices ``model`` at a provider of ``kind``: its own entry first, then the bare model's."""
    prefix = KIND_PREFIXES.get(kind or "")
    return catalog.lookup(model) if prefix is None else _lookup_own_first(catalog, model, prefix)


@functools.lru_cache(maxsize=4096)  # on the request path several times a request; a catalog is never changed
def _lookup_own_first(catalog: Catalog, model: str, prefix: str) -> PriceCard | None:
    name = priced_name(model, prefix.rstrip("/"))
    own = next((n for n in catalog.candidates(name) if n.startswith(prefix) and n in catalog), None)
    return catalog.lookup(own if own is not None else model.removeprefix("models/"))
