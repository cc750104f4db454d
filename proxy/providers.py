"""Which provider serves a model, and how to reach it.

A request is routed within its API's kind (``[[providers]] kind``): among the providers of
the kind its dialect speaks, the first whose ``models`` match its model, in config order.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from proxy.config import ProviderConfig

logger = logging.getLogger("tollgate.providers")


@dataclass(frozen=True, slots=True)
class Provider:
    name: str
    base_url: str
    api_key: str | None
    api_key_env: str | None
    extra_headers: tuple[tuple[str, str], ...]
    connect_timeout: float
    read_timeout: float
    retries: int
    retry_max_seconds: float
    bound_models: tuple[str, ...] = ()
    kind: str = "openai"
    deployments: Mapping[str, str] = field(default_factory=dict, hash=False)
    cost_source: str = "catalog"  # "provider": the cost the provider reports is the row's (proxy.settlement)
    cost_tolerance_percent: Decimal = Decimal(1)

    def url(self, upstream_path: str, query: bytes) -> str:
        """The provider URL for the part of a path that follows its ``base_url`` (as the dialect says)."""
        url = self.base_url + upstream_path
        return f"{url}?{query.decode('latin-1')}" if query else url


class ProviderRouter:
    """Maps (a model name, an API kind) to the first provider of that kind whose patterns match it."""

    def __init__(self, configs: tuple[ProviderConfig, ...], environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.providers: list[tuple[re.Pattern[str], Provider]] = []
        self._by_kind: dict[str, list[tuple[re.Pattern[str], Provider]]] = {}
        for cfg in configs:
            pattern = re.compile("|".join(fnmatch.translate(m) for m in cfg.models) or "(?!)")
            api_key = env.get(cfg.api_key_env) if cfg.api_key_env else None
            # A missing key is worth a warning only in the modes that send one (proxy.startup.start_warnings).
            provider = Provider(
                name=cfg.name,
                base_url=cfg.base_url.rstrip("/"),
                api_key=api_key,
                api_key_env=cfg.api_key_env,
                extra_headers=tuple(cfg.headers.items()),
                connect_timeout=cfg.connect_timeout,
                read_timeout=cfg.read_timeout,
                retries=cfg.retries,
                retry_max_seconds=cfg.retry_max_seconds,
                bound_models=cfg.bound_models,
                kind=cfg.kind,
                deployments=dict(cfg.deployments),
                cost_source=cfg.cost_source,
                cost_tolerance_percent=cfg.cost_tolerance_percent,
            )
            self.providers.append((pattern, provider))
            self._by_kind.setdefault(cfg.kind, []).append((pattern, provider))
        self._cache: dict[tuple[str, str], Provider | None] = {}

    @property
    def default(self) -> Provider | None:
        """The first provider of all, for requests that name no model, such as ``GET /v1/models``."""
        return self.providers[0][1] if self.providers else None

    def default_for(self, kind: str) -> Provider | None:
        """The first provider of ``kind``, for requests of its API that name no model."""
        providers = self._by_kind.get(kind)
        return providers[0][1] if providers else None

    def route(self, model: str, kind: str = "openai") -> Provider | None:
        """The first provider of ``kind`` whose ``models`` match ``model``."""
        key = (model, kind)
        try:
            return self._cache[key]
        except KeyError:
            pass
        found = next((p for pattern, p in self._by_kind.get(kind, ()) if pattern.match(model)), None)
        if len(self._cache) < 10_000:  # model names come from clients: bound the memo
            self._cache[key] = found
        return found
