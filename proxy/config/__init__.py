"""Tollgate's configuration: ``config.toml`` loaded once into frozen, typed objects.

``models`` holds a pydantic model per table of the file (every setting with a default and
a one-line help); ``files`` reads a file into them and words every error as the file's key,
bad value and why.
"""

from __future__ import annotations

from proxy.config.files import DEFAULT_CONFIG_PATH, load_config, parse_config
from proxy.config.models import (
    AlertsConfig,
    AnomaliesConfig,
    AttributionConfig,
    AuthConfig,
    BudgetConfig,
    Config,
    ConfigError,
    DatabaseConfig,
    EmailConfig,
    KeyConfig,
    LimitConfig,
    ProviderConfig,
    RateLimitConfig,
    RecorderConfig,
    ServerConfig,
    TeamConfig,
    documented_settings,
)

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "AlertsConfig",
    "AnomaliesConfig",
    "AttributionConfig",
    "AuthConfig",
    "BudgetConfig",
    "Config",
    "ConfigError",
    "DatabaseConfig",
    "EmailConfig",
    "KeyConfig",
    "LimitConfig",
    "ProviderConfig",
    "RateLimitConfig",
    "RecorderConfig",
    "ServerConfig",
    "TeamConfig",
    "documented_settings",
    "load_config",
    "parse_config",
]
