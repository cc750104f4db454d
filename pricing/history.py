"""Price history: the catalog as it stood at each imported price version, and which one is in force when.

A **version** is what ``tollgate prices import`` made: the catalog as it was (every version imported
before it, over the config's catalog), plus one file. So a version's prices never change once it is
imported, and a row that names its version can be priced again exactly as it was. Each version is
in force from its ``effective_at``; at any moment the one in force is the newest *imported* of those
already effective (an import dated in the past thus takes over from then on, carrying the versions
imported before it). Before any is effective, the config's catalog (bundled map and
``[pricing.models]``) is in force: version ``None``.

The config's ``[pricing.models]`` overrides apply on top of every version: they are the operator's
own word, and a file imported later does not silently undo them.

Pure and built once (at start and on reload): a request asks ``at`` with its start time, which
is a short scan of the versions already in memory, never a database query.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from pricing.catalog import Catalog
from pricing.sheets import MAP


@dataclass(frozen=True, slots=True)
class PriceVersion:
    """One imported version. ``entries`` as ``pricing.sheets.PriceFile`` holds them for its ``kind``."""

    id: int
    effective_at: datetime
    imported_at: datetime
    kind: str
    source: str
    entries: Mapping[str, Mapping[str, object]] = field(hash=False, repr=False)


class PriceHistory:
    """The config's catalog and every imported version, each version's catalog built once."""

    def __init__(self, base: Catalog, versions: Sequence[PriceVersion] = ()) -> None:
        self.base = base
        self.versions = tuple(sorted(versions, key=lambda v: v.id))
        self._catalogs: dict[int, Catalog] = {}
        layered = base
        for version in self.versions:
            layered = _layer(layered, version, base.origin)
            self._catalogs[version.id] = layered
        # Newest import first: the first one already effective is the one in force.
        self._newest_first = tuple(reversed(self.versions))
        self._base_only: tuple[Catalog, ...] = (base,)  # what may price every request before any import

    def at(self, when: datetime) -> tuple[int | None, Catalog]:
        """The version in force at ``when`` and its catalog; (None, the config's catalog) before any."""
        for version in self._newest_first:
            if version.effective_at <= when:
                return version.id, self._catalogs[version.id]
        return None, self.base

    def may_price(self, when: datetime) -> tuple[Catalog, ...]:
        """Every catalog that may price a request started at ``when``: the one in force, and any later.

        A request is bounded by the dearest of these, so that no version that can price its row (a
        background job completed after a newer version took effect, say) costs more than it reserved.
        """
        if not self.versions:  # the request path's usual case: no tuple built, no scan
            return self._base_only
        in_force = self.at(when)[1]
        later = [self._catalogs[v.id] for v in self._newest_first if v.effective_at > when]
        return (in_force, *(catalog for catalog in later if catalog is not in_force))

    def catalog(self, version: int | None) -> Catalog:
        """The catalog of ``version`` (None: the config's); ``KeyError`` for a version never imported."""
        return self.base if version is None else self._catalogs[version]

    def __contains__(self, version: object) -> bool:
        return version in self._catalogs


def _layer(below: Catalog, version: PriceVersion, base_origin: str) -> Catalog:
    origin = f"price version {version.id} ({version.source}) over the {base_origin}"
    if version.kind == MAP:
        return below.layered(version.entries, origin)
    # A sheet replaces only the rates it names, in the entry its name resolves to (as a lookup would
    # find it: "openai/gpt-4o" patches "gpt-4o"), or in a new entry of that name.
    patched: dict[str, Mapping[str, object]] = {}
    for name, rates in version.entries.items():
        key = next((n for n in below.candidates(name) if below.entry(n) is not None), name)
        patched[key] = {**(below.entry(key) or {}), **patched.get(key, {}), **rates}
    return below.layered(patched, origin)
