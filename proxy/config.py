"""Tollgate's configuration: ``config.toml`` loaded once into frozen, typed objects.

Every setting has a default and a one-line help (the ``help`` metadata of its
field); ``tests/test_docs.py`` checks that the README documents each one. A bad
file is refused whole with a ``ConfigError`` that names the file, the key and the
bad value: Tollgate never starts on a half-valid config.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from proxy.billing.settings import BillingSettings

DEFAULT_CONFIG_PATH = "config.toml"


class ConfigError(ValueError):
    """The config file is invalid; the message names the file and the key."""


def _setting(default: Any, help: str) -> Any:
    if isinstance(default, (list, dict, tuple)):
        return field(default_factory=lambda: default, metadata={"help": help})
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str = _setting("127.0.0.1", "Address to listen on.")
    port: int = _setting(8787, "Port to listen on.")
    workers: int = _setting(1, "Worker processes; each runs the full proxy.")
    max_body_bytes: int = _setting(32 * 1024 * 1024, "Largest request body accepted; larger gets a 413.")
    metrics_user_labels: bool = _setting(False, "Label /metrics series by user id too (many users: many series).")
    cost_header: bool = _setting(True, "Add X-Tollgate-Cost-USD to non-streamed responses (the body is never altered).")
    on_client_disconnect: str = _setting(
        "drain", "'drain' reads a stream to its end when the client leaves, for exact usage; 'cancel' stops at once."
    )


@dataclass(frozen=True, slots=True)
class DatabaseConfig:
    url: str = _setting(
        "sqlite:///./tollgate.db",
        "SQLAlchemy URL of the usage store, a relative SQLite path under the config file's folder; "
        "$TOLLGATE_DATABASE_URL overrides it.",
    )


@dataclass(frozen=True, slots=True)
class RecorderConfig:
    batch_size: int = _setting(500, "Most usage rows written in one transaction.")
    flush_interval: float = _setting(0.2, "Seconds the recorder waits to fill a batch before it writes.")
    journal_dir: str = _setting(
        "./tollgate-journal",
        "Folder of the journal that keeps finished records until the database has them, "
        "relative to the config file's folder; $TOLLGATE_JOURNAL_DIR overrides it.",
    )
    journal_max_bytes: int = _setting(256 * 1024 * 1024, "Largest the journal may grow while the database is away.")


@dataclass(frozen=True, slots=True)
class AuthConfig:
    mode: str = _setting(
        "passthrough",
        "'passthrough': the client's Authorization goes upstream unless it is a Tollgate key; "
        "'managed': every client must present a Tollgate key.",
    )


@dataclass(frozen=True, slots=True)
class AttributionConfig:
    user_header: str = _setting("X-User-Id", "Header naming the user.")
    team_header: str = _setting("X-Team-Id", "Header naming the team.")
    thread_header: str = _setting("X-Thread-Id", "Header naming the conversation thread.")
    agent_header: str = _setting("X-Agent-Name", "Header naming the agent.")
    tag_prefix: str = _setting("X-Tollgate-Tag-", "Prefix of custom tag headers; the rest of the name is the tag.")
    strip_headers: bool = _setting(True, "Remove attribution headers before forwarding upstream.")


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    name: str = _setting("", "Name of the provider, recorded on each row.")
    base_url: str = _setting("", "Base URL up to and including /v1, e.g. https://api.openai.com/v1.")
    api_key_env: str | None = _setting(None, "Environment variable holding the provider key (managed keys).")
    models: tuple[str, ...] = _setting(("*",), "Model names or glob patterns this provider serves.")
    headers: Mapping[str, str] = _setting({}, "Extra headers sent upstream with every request.")
    connect_timeout: float = _setting(10.0, "Seconds to wait for a connection to the provider.")
    read_timeout: float = _setting(600.0, "Seconds to wait for the provider between bytes.")
    retries: int = _setting(2, "Retries of a request that failed before any byte reached the client.")
    retry_max_seconds: float = _setting(30.0, "Most seconds spent retrying one request, waits included.")
    bound_models: tuple[str, ...] = _setting(
        (), "Priced models this provider may answer with instead of the one asked for; spend limits bound by them too."
    )


@dataclass(frozen=True, slots=True)
class KeyConfig:
    name: str = _setting("", "A label for the key, recorded on each row.")
    sha256: str = _setting("", "Hex SHA-256 of the key (`tollgate keys hash KEY` prints it).")
    user: str | None = _setting(None, "User every request with this key is attributed to.")
    team: str | None = _setting(None, "Team every request with this key is attributed to.")
    trust_headers: bool = _setting(False, "Let attribution headers override the key's user and team.")


@dataclass(frozen=True, slots=True)
class LimitConfig:
    scope: str = _setting("user", "What the limit counts: user, team, key, agent, thread or global.")
    id: str = _setting("*", "Which one: an id, or '*' for each member of the scope separately.")
    window: str = _setting("day", "Calendar window: day, week, month or total.")
    max_usd: Decimal = _setting(Decimal(0), "Most that may be spent in a window, in dollars (a decimal).")
    action: str = _setting("block", "'block' refuses requests past the limit with a 429; 'warn' only alerts.")
    alert_at: tuple[Decimal, ...] = _setting((), "Fractions of max_usd at which to alert, e.g. [0.5, 0.8, 1.0].")
    timezone: str = _setting("UTC", "Time zone in which the calendar window starts and ends.")


@dataclass(frozen=True, slots=True)
class TeamConfig:
    members: tuple[str, ...] = _setting((), "Users in the team; their requests count against it.")


@dataclass(frozen=True, slots=True)
class BudgetConfig:
    lease_seconds: float = _setting(
        2.0, "Budget a worker leases covers about this many seconds of its recent spend; leases shrink near a limit."
    )
    lease_ttl: float = _setting(30.0, "Seconds a lease lives unless renewed; a crashed worker's lease frees after it.")
    sync_interval: float = _setting(0.5, "Seconds between a worker's lease renewals and returns of unused budget.")
    image_tokens: int = _setting(
        3000, "Prompt tokens assumed for each image or audio part when bounding a request's cost."
    )
    limits_when_db_down: str = _setting(
        "refuse", "'refuse' answers 503 when a blocking limit cannot be checked; 'allow' forwards anyway."
    )


@dataclass(frozen=True, slots=True)
class AlertsConfig:
    webhook_url: str | None = _setting(None, "URL that receives each spend alert as a JSON POST.")
    alert_handlers: tuple[str, ...] = _setting((), "Functions 'pkg.module:function' called with each alert.")


@dataclass(frozen=True, slots=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    recorder: RecorderConfig = field(default_factory=RecorderConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    attribution: AttributionConfig = field(default_factory=AttributionConfig)
    providers: tuple[ProviderConfig, ...] = ()
    keys: tuple[KeyConfig, ...] = ()
    limits: tuple[LimitConfig, ...] = ()
    teams: Mapping[str, TeamConfig] = field(default_factory=dict)
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    billing: BillingSettings = field(default_factory=BillingSettings)
    pricing_models: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    usage_handlers: tuple[str, ...] = _setting((), "Functions 'pkg.module:function' called with each usage record.")
    source: str = "<defaults>"


# Top-level sections that map onto one dataclass each.
_SECTIONS: dict[str, type[Any]] = {
    "server": ServerConfig,
    "database": DatabaseConfig,
    "recorder": RecorderConfig,
    "auth": AuthConfig,
    "attribution": AttributionConfig,
    "budget": BudgetConfig,
    "alerts": AlertsConfig,
    "billing": BillingSettings,
}
_LIMIT_SCOPES = ("user", "team", "key", "agent", "thread", "global")
_WINDOWS = ("day", "week", "month", "total")
_AUTH_MODES = ("passthrough", "managed")


def documented_settings() -> list[tuple[str, str]]:
    """Every setting as (dotted name, help), for docs and their test."""
    out: list[tuple[str, str]] = []
    sections: list[tuple[str, type[Any]]] = [
        *_SECTIONS.items(),
        ("providers", ProviderConfig),
        ("keys", KeyConfig),
        ("limits", LimitConfig),
        ("teams.<id>", TeamConfig),
    ]
    for section, cls in sections:
        for f in dataclasses.fields(cls):
            out.append((f"{section}.{f.name}", f.metadata["help"]))
    out.append(("usage_handlers", "Functions 'pkg.module:function' called with each usage record."))
    return out


def load_config(path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Read and validate the config file.

    The path is ``path``, else ``$TOLLGATE_CONFIG``, else ``./config.toml``. A
    missing default file means "all defaults"; a missing named file is an error.
    Relative paths of the file (and the defaults') mean its folder, so that every
    command given the same file finds the same database and journal, wherever it
    runs; ``$TOLLGATE_DATABASE_URL`` is taken as it is, relative to the current folder.
    """
    env = os.environ if environ is None else environ
    explicit = path is not None or "TOLLGATE_CONFIG" in env
    file = Path(path if path is not None else env.get("TOLLGATE_CONFIG", DEFAULT_CONFIG_PATH))
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        if explicit:
            raise ConfigError(f"{file}: config file not found") from None
        return _apply_env(Config(), env)
    return _apply_env(_relative_to(parse_config(text, str(file)), file.absolute().parent), env)


def _relative_to(config: Config, folder: Path) -> Config:
    """``config`` with its relative SQLite file and journal folder made absolute, under ``folder``."""
    journal = Path(config.recorder.journal_dir)
    return dataclasses.replace(
        config,
        database=DatabaseConfig(url=_sqlite_url_under(config.database.url, folder)),
        recorder=dataclasses.replace(config.recorder, journal_dir=str(folder / journal)),
    )


def _sqlite_url_under(url: str, folder: Path) -> str:
    """A ``sqlite:///relative/path.db`` URL (any driver, any query) as an absolute one; others unchanged."""
    scheme, found, rest = url.partition(":///")
    if not found or not scheme.startswith("sqlite"):
        return url
    database, query_mark, query = rest.partition("?")
    # An empty path and ":memory:" are in memory; "file:" is a URI filename, which SQLite reads itself.
    if database in ("", ":memory:") or database.startswith(("/", "file:")):
        return url
    return f"{scheme}:///{folder / database}{query_mark}{query}"


def parse_config(text: str, source: str = "config.toml") -> Config:
    """Validate TOML text into a ``Config``; errors name ``source``."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    reader = _Reader(source)
    known = {*_SECTIONS, "providers", "keys", "limits", "teams", "pricing", "usage_handlers"}
    reader.reject_unknown(data, known, "")
    sections = {name: reader.build(cls, data.get(name, {}), name) for name, cls in _SECTIONS.items()}
    providers = tuple(
        reader.build(ProviderConfig, item, f"providers[{i}]") for i, item in enumerate(reader.tables(data, "providers"))
    )
    keys = tuple(reader.build(KeyConfig, item, f"keys[{i}]") for i, item in enumerate(reader.tables(data, "keys")))
    limits = tuple(
        reader.build(LimitConfig, item, f"limits[{i}]") for i, item in enumerate(reader.tables(data, "limits"))
    )
    teams_table = data.get("teams", {})
    if not isinstance(teams_table, dict):
        raise ConfigError(f"{source}: teams must be tables, written [teams.<id>]")
    teams = {name: reader.build(TeamConfig, table, f"teams.{name}") for name, table in teams_table.items()}
    usage_handlers = reader.value(data.get("usage_handlers", []), tuple[str, ...], "usage_handlers")
    pricing = data.get("pricing", {})
    reader.reject_unknown(pricing, {"models"}, "pricing")
    models = pricing.get("models", {})
    if not isinstance(models, dict) or not all(isinstance(v, dict) for v in models.values()):
        raise ConfigError(f'{source}: [pricing.models."<name>"] must be tables of prices')
    config = Config(
        **sections,
        providers=providers,
        keys=keys,
        limits=limits,
        teams=types.MappingProxyType(teams),
        pricing_models=types.MappingProxyType(models),
        usage_handlers=usage_handlers,
        source=source,
    )
    _check(config, reader)
    return config


def _check(config: Config, reader: _Reader) -> None:
    if config.auth.mode not in _AUTH_MODES:
        reader.fail("auth.mode", config.auth.mode, f"must be one of {', '.join(_AUTH_MODES)}")
    for name in ("port", "workers", "max_body_bytes"):
        if getattr(config.server, name) < (0 if name == "port" else 1):
            reader.fail(f"server.{name}", getattr(config.server, name), "must be positive")
    if config.server.on_client_disconnect not in ("drain", "cancel"):
        reader.fail("server.on_client_disconnect", config.server.on_client_disconnect, "must be drain or cancel")
    if config.recorder.journal_max_bytes < 1:
        reader.fail("recorder.journal_max_bytes", config.recorder.journal_max_bytes, "must be positive")
    if config.recorder.batch_size < 1:
        reader.fail("recorder.batch_size", config.recorder.batch_size, "must be at least 1")
    seen: set[str] = set()
    for i, p in enumerate(config.providers):
        if not p.name:
            reader.fail(f"providers[{i}].name", p.name, "is required")
        if p.name in seen:
            reader.fail(f"providers[{i}].name", p.name, "is used by two providers")
        seen.add(p.name)
        if not p.base_url.startswith(("http://", "https://")):
            reader.fail(f"providers[{i}].base_url", p.base_url, "must start with http:// or https://")
        if p.retries < 0:
            reader.fail(f"providers[{i}].retries", p.retries, "must be 0 or more")
    for i, k in enumerate(config.keys):
        digest = k.sha256.lower()
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            reader.fail(f"keys[{i}].sha256", k.sha256, "must be 64 hex digits (run `tollgate keys hash KEY`)")
    for i, limit in enumerate(config.limits):
        where = f"limits[{i}]"
        if limit.scope not in _LIMIT_SCOPES:
            reader.fail(f"{where}.scope", limit.scope, f"must be one of {', '.join(_LIMIT_SCOPES)}")
        if limit.window not in _WINDOWS:
            reader.fail(f"{where}.window", limit.window, f"must be one of {', '.join(_WINDOWS)}")
        if limit.action not in ("block", "warn"):
            reader.fail(f"{where}.action", limit.action, "must be block or warn")
        if limit.max_usd <= 0:
            reader.fail(f"{where}.max_usd", str(limit.max_usd), "must be more than 0")
        if any(not 0 < a <= 10 for a in limit.alert_at):
            reader.fail(f"{where}.alert_at", [str(a) for a in limit.alert_at], "must be fractions above 0, like 0.8")
        try:
            zoneinfo.ZoneInfo(limit.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            reader.fail(f"{where}.timezone", limit.timezone, "is not a known time zone (e.g. UTC, Europe/Paris)")
    if config.budget.limits_when_db_down not in ("refuse", "allow"):
        reader.fail("budget.limits_when_db_down", config.budget.limits_when_db_down, "must be refuse or allow")
    if config.alerts.webhook_url and not config.alerts.webhook_url.startswith(("http://", "https://")):
        reader.fail("alerts.webhook_url", config.alerts.webhook_url, "must start with http:// or https://")
    if config.auth.mode == "managed" and not config.keys:
        reader.fail("auth.mode", "managed", "needs at least one [[keys]] entry")


def _apply_env(config: Config, env: Mapping[str, str]) -> Config:
    """``$TOLLGATE_DATABASE_URL`` and ``$TOLLGATE_JOURNAL_DIR`` over the file's values (a container sets them)."""
    url = env.get("TOLLGATE_DATABASE_URL")
    if url:
        config = dataclasses.replace(config, database=DatabaseConfig(url=url))
    journal_dir = env.get("TOLLGATE_JOURNAL_DIR")
    if journal_dir:
        config = dataclasses.replace(config, recorder=dataclasses.replace(config.recorder, journal_dir=journal_dir))
    return config


class _Reader:
    """Maps TOML tables onto dataclasses, naming the file and key on any error."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, value: object, why: str) -> typing.NoReturn:
        raise ConfigError(f"{self.source}: {key} = {value!r} {why}")

    def reject_unknown(self, table: Mapping[str, Any], known: set[str], where: str) -> None:
        for key in table:
            if key not in known:
                name = f"{where}.{key}" if where else key
                raise ConfigError(f"{self.source}: unknown key {name!r}; valid keys: {', '.join(sorted(known))}")

    def tables(self, data: Mapping[str, Any], name: str) -> list[Mapping[str, Any]]:
        items = data.get(name, [])
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise ConfigError(f"{self.source}: {name} must be an array of tables, written [[{name}]]")
        return items

    def build(self, cls: type[Any], table: object, where: str) -> Any:
        if not isinstance(table, dict):
            raise ConfigError(f"{self.source}: [{where}] must be a table")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        self.reject_unknown(table, set(fields), where)
        hints = typing.get_type_hints(cls)
        values = {name: self.value(raw, hints[name], f"{where}.{name}") for name, raw in table.items()}
        try:
            return cls(**values)
        except ValueError as exc:  # a section that validates itself, such as BillingSettings, names the key
            raise ConfigError(f"{self.source}: {exc}") from None

    def value(self, raw: object, hint: Any, key: str) -> Any:
        origin = typing.get_origin(hint)
        if origin in (types.UnionType, typing.Union):
            options = [a for a in typing.get_args(hint) if a is not type(None)]
            return self.value(raw, options[0], key)
        if origin is tuple:
            item = typing.get_args(hint)[0]
            if not isinstance(raw, list):
                self.fail(key, raw, f"must be a list of {'numbers' if item is Decimal else 'strings'}")
            return tuple(self.value(x, item, key) for x in raw)
        if hint is Decimal:
            if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
                self.fail(key, raw, "must be a number or a decimal string")
            try:
                # str() first: a TOML float like 0.1 becomes Decimal("0.1"), not its binary approximation.
                return Decimal(str(raw))
            except InvalidOperation:
                self.fail(key, raw, "must be a number or a decimal string")
        if origin is Mapping or hint is Mapping:
            if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
                self.fail(key, raw, "must be a table of strings")
            return types.MappingProxyType(dict(raw))
        if hint is float and isinstance(raw, int) and not isinstance(raw, bool):
            return float(raw)
        if hint is int and (isinstance(raw, bool) or not isinstance(raw, int)):
            self.fail(key, raw, "must be an integer")
        if not isinstance(raw, hint):
            self.fail(key, raw, f"must be a {hint.__name__}")
        return raw
