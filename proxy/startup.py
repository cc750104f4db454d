"""What ``tollgate serve`` says as it starts: one short block, and warnings only for what is really wrong.

Pure: the config, where the server listens and what the environment holds in; lines out.
The block says where Tollgate listens, the base-URL lines an app exports to use it (one per
provider API Tollgate speaks), the dashboard's URL or why it is off, the database and the
providers. A warning is given only when the chosen mode cannot work as configured: no
providers, or a Tollgate key that would be swapped for a provider key the environment lacks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from proxy.config import Config
from proxy.dialects import DIALECTS

_EXPORT_ORDER = ("openai", "anthropic", "gemini", "azure")


def listen_url(host: str, port: int) -> str:
    """The URL an app on this machine reaches Tollgate at (a wildcard address becomes 127.0.0.1)."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
    return f"http://[{shown}]:{port}" if ":" in shown else f"http://{shown}:{port}"


def start_block(config: Config, url: str, *, admin_on: bool, database: str, version: str, workers: int = 1) -> str:
    """The lines ``serve`` prints once it listens."""
    lines = [f"tollgate {version} listening on {url}" + (f" ({workers} workers)" if workers > 1 else "")]
    # OpenAI's line first, as most apps need it; then the others, in the order the README's clients come.
    shown = sorted(DIALECTS, key=lambda dialect: _EXPORT_ORDER.index(dialect.kind))
    exports = [
        f"    export {dialect.sdk_base_url[0]}={url}{dialect.sdk_base_url[1]}"
        for dialect in shown
        if dialect.sdk_base_url is not None
    ]
    if exports:
        lines += ["  point your apps at it:", *exports]
    if admin_on:
        lines.append(f"  dashboard: {url}/dashboard (it asks for $TOLLGATE_ADMIN_KEY)")
    else:
        lines.append("  dashboard and admin API: off (set $TOLLGATE_ADMIN_KEY to turn them on)")
    lines.append(f"  database: {database}")
    names = ", ".join(p.name for p in config.providers)
    lines.append(f"  providers: {len(config.providers)}" + (f" ({names})" if names else ""))
    keys = f", {len(config.keys)} managed keys" if config.keys else ""
    lines.append(f"  keys: {config.auth.mode}{keys}; limits: {len(config.limits)}")
    return "\n".join(lines)


def start_warnings(config: Config, environ: Mapping[str, str]) -> Sequence[str]:
    """What is really wrong for the chosen mode, one sentence each; nothing in a working pass-through setup."""
    warnings = []
    if not config.providers:
        warnings.append(
            f"no [[providers]] in {config.source}: every request will get 404 model_not_found until one is added"
        )
    # A provider key is sent only for Tollgate keys: every request in managed mode, keyed ones in pass-through.
    if config.auth.mode == "managed" or config.keys:
        for provider in config.providers:
            if provider.api_key_env and not environ.get(provider.api_key_env):
                warnings.append(
                    f"provider {provider.name}: ${provider.api_key_env} is not set, so requests with a Tollgate key "
                    f"get 503 provider_key_missing; export it before starting"
                )
            elif not provider.api_key_env and config.auth.mode == "managed":
                warnings.append(
                    f"provider {provider.name} has no api_key_env: in managed mode Tollgate has no key to send it"
                )
    return warnings
