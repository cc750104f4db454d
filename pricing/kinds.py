"""Which price map entry prices a model at a provider of a given kind.

The map keeps some providers' prices under a prefix: ``gemini/...`` are the Gemini API's
(the bare names are Vertex AI's), ``azure/...`` are Azure OpenAI's, ``vertex_ai/...`` Vertex AI's
own (Claude and newer Gemini models there), ``bedrock/...`` Amazon Bedrock's. A provider of such a
kind is priced by its own entry where the map has one (``azure/gpt-4o`` for a dated
``gpt-4o-2024-05-13`` the map has no ``azure/`` entry for), else by the bare model's, as
``Catalog.lookup`` finds it. Bedrock's bare ids (``us.anthropic.claude-...-v1:0``) are themselves
Bedrock's entries in the map, so a Bedrock id resolves to ``bedrock/<id>`` where the map has one,
else to the id's own entry.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from pricing.catalog import Catalog, PriceCard

#: Provider kind -> the prefix of its own entries in the price map.
KIND_PREFIXES: Final[Mapping[str, str]] = MappingProxyType(
    {"gemini": "gemini/", "azure": "azure/", "vertex_ai": "vertex_ai/", "bedrock": "bedrock/"}
)


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


def describe_for_kind(catalog: Catalog, model: str, kind: str | None) -> str:
    """``Catalog.describe`` of the entry that prices ``model`` at a provider of ``kind``, saying why that one."""
    card = lookup_for_kind(catalog, model, kind)
    prefix = KIND_PREFIXES.get(kind or "")
    if card is None or prefix is None:
        return catalog.describe(model if card is None or prefix is None else card.model)
    if card.model.startswith(prefix):
        why = f"its own {prefix} entry"
    elif kind == "bedrock":
        why = "the Bedrock id's own entry (the map keeps most Bedrock prices under the bare id)"
    else:
        why = f"no {prefix} entry, so the bare model's"
    header = f"{'asked':<11}{model}\n{'provider':<11}{kind}: {why}\n"
    return header + catalog.describe(card.model)


@functools.lru_cache(maxsize=4096)  # on the request path several times a request; a catalog is never changed
def _lookup_own_first(catalog: Catalog, model: str, prefix: str) -> PriceCard | None:
    name = priced_name(model, prefix.rstrip("/"))
    own = next((n for n in catalog.candidates(name) if n.startswith(prefix) and n in catalog), None)
    return catalog.lookup(own if own is not None else model.removeprefix("models/"))
