"""Tollgate's configuration: ``config.toml`` loaded once into frozen, typed objects.

Each table of the file is a frozen pydantic model. Every setting has a default and
a one-line help (its field's description); ``tests/test_docs.py`` checks that the
README documents each one. A bad file is refused whole with one ``ConfigError``
that names the file and, for each problem, the key, the bad value and why:
Tollgate never starts on a half-valid config.

Values must already have their setting's type ("80" is no port, ``true`` is no
number), except where TOML has no such type: an array becomes a tuple, and a
number or a string a ``Decimal``, read through ``str`` so that 0.1 stays 0.1.
"""

from __future__ import annotations

import string
import types
import typing
import zoneinfo
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Annotated, Any, ClassVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from proxy.billing.settings import BillingSettings


class ConfigError(ValueError):
    """The config file is invalid; the message names the file and the key."""


def _setting(default: Any, help: str) -> Any:
    # Strict, but for tuples and decimals, which TOML writes as arrays and as numbers or strings
    # (pydantic reads a float through str, so 0.1 becomes Decimal("0.1")).
    return Field(default, description=help, strict=not isinstance(default, (tuple, Decimal)))


def _invalid(value: object, why: str, key: str = "") -> PydanticCustomError:
    """The error ``key = value why``; ``key`` defaults to where the value was found."""
    return PydanticCustomError("tollgate", "{why}", {"why": why, "value": value, "key": key})


def _as_written(value: Any) -> Any:
    """A value as an error shows it: a decimal as its string, '0.1', not Decimal('0.1')."""
    if isinstance(value, tuple):
        return [_as_written(v) for v in value]
    return str(value) if isinstance(value, Decimal) else value


_Check = tuple[Callable[[Any], bool], str]
_HTTP = ("http://", "https://")
# A table read from the file cannot be changed through the frozen object that holds it.
_READ_ONLY = AfterValidator(types.MappingProxyType)


class _Section(BaseModel):
    """A table of the file: frozen, unknown keys refused, defaults checked like any value."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)
    # What a setting must be beyond its type, as (test, why); a value that fails is refused as ``key = value why``.
    _checks: ClassVar[Mapping[str, _Check]] = {}

    @field_validator("*")
    @classmethod
    def _checked(cls, value: Any, info: ValidationInfo) -> Any:
        check = cls._checks.get(info.field_name or "")
        if check is not None and not check[0](value):
            raise _invalid(_as_written(value), check[1])
        return value


def _one_of(choices: tuple[str, ...]) -> _Check:
    return choices.__contains__, f"must be one of {', '.join(choices)}"


def _is_time_zone(name: str) -> bool:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


class ServerConfig(_Section):
    host: str = _setting("127.0.0.1", "Address to listen on.")
    port: int = _setting(8787, "Port to listen on.")
    workers: int = _setting(1, "Worker processes; each runs the full proxy.")
    max_body_bytes: int = _setting(32 * 1024 * 1024, "Largest request body accepted; larger gets a 413.")
    metrics_user_labels: bool = _setting(False, "Label /metrics series by user id too (many users: many series).")
    cost_header: bool = _setting(True, "Add X-Tollgate-Cost-USD to non-streamed responses (the body is never altered).")
    on_client_disconnect: str = _setting(
        "drain", "'drain' reads a stream to its end when the client leaves, for exact usage; 'cancel' stops at once."
    )
    access_log: bool = _setting(
        False, "Log one line per request (method, path, status, user, model, tokens, cost, latency; never a key)."
    )
    _checks = {
        "port": (lambda n: n >= 0, "must be positive"),
        "workers": (lambda n: n >= 1, "must be positive"),
        "max_body_bytes": (lambda n: n >= 1, "must be positive"),
        "on_client_disconnect": (("drain", "cancel").__contains__, "must be drain or cancel"),
    }


class DatabaseConfig(_Section):
    url: str = _setting(
        "sqlite:///./tollgate.db",
        "SQLAlchemy URL of the usage store, a relative SQLite path under the config file's folder; "
        "$TOLLGATE_DATABASE_URL overrides it.",
    )


class RecorderConfig(_Section):
    batch_size: int = _setting(500, "Most usage rows written in one transaction.")
    flush_interval: float = _setting(0.2, "Seconds the recorder waits to fill a batch before it writes.")
    journal_dir: str = _setting(
        "./tollgate-journal",
        "Folder of the journal that keeps finished records until the database has them, "
        "relative to the config file's folder; $TOLLGATE_JOURNAL_DIR overrides it.",
    )
    journal_max_bytes: int = _setting(256 * 1024 * 1024, "Largest the journal may grow while the database is away.")
    _checks = {
        "batch_size": (lambda n: n >= 1, "must be at least 1"),
        "journal_max_bytes": (lambda n: n >= 1, "must be positive"),
    }


class AuthConfig(_Section):
    mode: str = _setting(
        "passthrough",
        "'passthrough': the client's Authorization goes upstream unless it is a Tollgate key; "
        "'managed': every client must present a Tollgate key.",
    )
    _checks = {"mode": _one_of(("passthrough", "managed"))}


class AttributionConfig(_Section):
    user_header: str = _setting("X-User-Id", "Header naming the user.")
    team_header: str = _setting("X-Team-Id", "Header naming the team.")
    thread_header: str = _setting("X-Thread-Id", "Header naming the conversation thread.")
    agent_header: str = _setting("X-Agent-Name", "Header naming the agent.")
    tag_prefix: str = _setting("X-Tollgate-Tag-", "Prefix of custom tag headers; the rest of the name is the tag.")
    strip_headers: bool = _setting(True, "Remove attribution headers before forwarding upstream.")


PROVIDER_KINDS = ("openai", "anthropic", "gemini", "azure")


class ProviderConfig(_Section):
    name: str = _setting("", "Name of the provider, recorded on each row.")
    kind: str = _setting(
        "openai",
        "The API it speaks: openai, anthropic, gemini or azure; requests go to a provider of their API's kind.",
    )
    base_url: str = _setting(
        "",
        "The base URL its own SDK takes: https://api.openai.com/v1 (openai, up to and including /v1), "
        "https://api.anthropic.com, https://generativelanguage.googleapis.com, https://RESOURCE.openai.azure.com.",
    )
    api_key_env: str | None = _setting(None, "Environment variable holding the provider key (managed keys).")
    models: tuple[str, ...] = _setting(("*",), "Model names or glob patterns this provider serves.")
    headers: Annotated[Mapping[str, str], _READ_ONLY] = _setting({}, "Extra headers sent upstream with every request.")
    connect_timeout: float = _setting(10.0, "Seconds to wait for a connection to the provider.")
    read_timeout: float = _setting(600.0, "Seconds to wait for the provider between bytes.")
    retries: int = _setting(2, "Retries of a request that failed before any byte reached the client.")
    retry_max_seconds: float = _setting(30.0, "Most seconds spent retrying one request, waits included.")
    bound_models: tuple[str, ...] = _setting(
        (), "Priced models this provider may answer with instead of the one asked for; spend limits bound by them too."
    )
    deployments: Annotated[Mapping[str, str], _READ_ONLY] = _setting(
        {}, 'Azure: deployment name -> the model it runs (prod-4o = "gpt-4o"), to price and bound its requests.'
    )
    cost_source: str = _setting(
        "catalog",
        "'catalog' prices rows from the price catalog; 'provider' records the cost the provider reports "
        "(OpenRouter-style usage.cost), compared with the catalog's.",
    )
    cost_tolerance_percent: Decimal = _setting(
        Decimal(1), "With cost_source = 'provider': percent by which its cost may differ from the catalog's unwarned."
    )
    _checks = {
        "name": (bool, "is required"),
        "kind": _one_of(PROVIDER_KINDS),
        "cost_source": _one_of(("catalog", "provider")),
        "cost_tolerance_percent": (lambda p: p.is_finite() and p >= 0, "must be a number of 0 or more"),
        "base_url": (lambda url: url.startswith(_HTTP), "must start with http:// or https://"),
        "retries": (lambda n: n >= 0, "must be 0 or more"),
    }

    @field_validator("headers", "deployments", mode="before")
    @classmethod
    def _table_of_strings(cls, value: object) -> object:
        # Checked whole before pydantic reads it, so that the error shows the table as written.
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise _invalid(value, "must be a table of strings")
        return value


class KeyConfig(_Section):
    name: str = _setting("", "A label for the key, recorded on each row.")
    sha256: str = _setting("", "Hex SHA-256 of the key (`tollgate keys hash < keyfile` prints it).")
    user: str | None = _setting(None, "User every request with this key is attributed to.")
    team: str | None = _setting(None, "Team every request with this key is attributed to.")
    trust_headers: bool = _setting(False, "Let attribution headers override the key's user and team.")
    _checks = {
        "sha256": (
            lambda hex: len(hex) == 64 and all(c in string.hexdigits for c in hex),
            "must be 64 hex digits (run `tollgate keys hash < keyfile`)",
        ),
    }


LIMIT_SCOPES = ("user", "team", "key", "agent", "thread", "tag", "global")


class LimitConfig(_Section):
    scope: str = _setting("user", "What the limit counts: user, team, key, agent, thread, tag or global.")
    id: str = _setting("*", "Which one: an id (a tag's value), or '*' for each member of the scope separately.")
    tag: str | None = _setting(None, "With scope = 'tag': the tag whose values are counted (X-Tollgate-Tag-<tag>).")
    models: tuple[str, ...] = _setting(
        (), "Models the limit counts (names, or globs with * and ?); empty counts every model."
    )
    window: str = _setting("day", "Calendar window: day, week, month or total.")
    start_day: int = _setting(1, "With window = 'month': the day of the month (1-28) on which the window starts.")
    max_usd: Decimal = _setting(Decimal(0), "Most that may be spent in a window, in dollars (a decimal).")
    action: str = _setting("block", "'block' refuses requests past the limit with a 429; 'warn' only alerts.")
    on_exceed: str = _setting(
        "refuse", "'refuse' refuses a request whose bound does not fit; 'clamp' lowers its output cap to what fits."
    )
    min_output_tokens: int = _setting(
        256, "With on_exceed = 'clamp': the fewest output tokens worth forwarding; fewer than that is refused."
    )
    alert_at: tuple[Decimal, ...] = _setting((), "Fractions of max_usd at which to alert, e.g. [0.5, 0.8, 1.0].")
    timezone: str = _setting("UTC", "Time zone in which the calendar window starts and ends.")
    _checks = {
        "scope": _one_of(LIMIT_SCOPES),
        "tag": (lambda tag: tag is None or _is_tag_name(tag), "must be a header name's tail, like project"),
        "models": (lambda models: all(m and "[" not in m for m in models), "must be model names or * and ? globs"),
        "window": _one_of(("day", "week", "month", "total")),
        "start_day": (lambda day: 1 <= day <= 28, "must be a day from 1 to 28"),
        "max_usd": (lambda usd: usd > 0, "must be more than 0"),
        "action": (("block", "warn").__contains__, "must be block or warn"),
        "on_exceed": (("refuse", "clamp").__contains__, "must be refuse or clamp"),
        "min_output_tokens": (lambda n: n >= 1, "must be at least 1"),
        "alert_at": (lambda at: all(0 < a <= 10 for a in at), "must be fractions above 0, like 0.8"),
        "timezone": (_is_time_zone, "is not a known time zone (e.g. UTC, Europe/Paris)"),
    }

    @model_validator(mode="after")
    def _consistent(self) -> LimitConfig:
        if self.scope == "tag" and self.tag is None:
            raise _invalid("tag", "needs tag = '<name>': which X-Tollgate-Tag-<name> header it counts", key="scope")
        if self.scope != "tag" and self.tag is not None:
            raise _invalid(self.tag, "is only for scope = 'tag'", key="tag")
        if self.start_day != 1 and self.window != "month":
            raise _invalid(self.start_day, "is only for window = 'month'", key="start_day")
        return self


def _is_tag_name(name: str) -> bool:
    """A tag is named by the tail of a header name: letters, digits and - or _ (compared lower-cased)."""
    return bool(name) and all(c.isascii() and (c.isalnum() or c in "-_") for c in name)


class TeamConfig(_Section):
    members: tuple[str, ...] = _setting((), "Users in the team; their requests count against it.")
    alert_emails: tuple[str, ...] = _setting(
        (), "Addresses that also get the team's alerts, and those of its members, by email."
    )
    _checks = {"alert_emails": (lambda to: all(_is_address(a) for a in to), "must be email addresses")}


class BudgetConfig(_Section):
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
    _checks = {"limits_when_db_down": (("refuse", "allow").__contains__, "must be refuse or allow")}


RATE_SCOPES = ("user", "team", "key", "agent", "model", "tag", "global")


class RateLimitConfig(_Section):
    scope: str = _setting("user", "What a rate limit counts: user, team, key, agent, model, tag or global.")
    id: str = _setting("*", "Which one: an id (a model name for scope model), or '*' for each separately.")
    tag: str | None = _setting(None, "For scope tag: the tag's name; each value of X-Tollgate-Tag-<name> is counted.")
    requests_per_minute: int | None = _setting(None, "Most requests admitted in a calendar minute.")
    tokens_per_minute: int | None = _setting(
        None, "Most tokens in a calendar minute: each request holds its bound until its real count is known."
    )
    max_concurrent: int | None = _setting(None, "Most requests in flight at once.")
    _checks = {
        "scope": _one_of(RATE_SCOPES),
        "requests_per_minute": (lambda n: n is None or n > 0, "must be more than 0"),
        "tokens_per_minute": (lambda n: n is None or n > 0, "must be more than 0"),
        "max_concurrent": (lambda n: n is None or n > 0, "must be more than 0"),
    }

    @model_validator(mode="after")
    def _complete(self) -> RateLimitConfig:
        if self.requests_per_minute is None and self.tokens_per_minute is None and self.max_concurrent is None:
            raise _refused(
                f"a [[rate_limits]] entry (scope {self.scope!r}, id {self.id!r}) sets none of "
                "requests_per_minute, tokens_per_minute, max_concurrent"
            )
        if (self.scope == "tag") != (self.tag is not None):
            raise _refused(
                f"a [[rate_limits]] entry with scope = {self.scope!r} "
                + ("needs tag = '<name>'" if self.scope == "tag" else "takes no tag (that is for scope = 'tag')")
            )
        return self


def _is_address(text: str) -> bool:
    """Roughly an email address: one @ with something on each side, no spaces or line breaks."""
    local, at, domain = text.rpartition("@")
    return bool(local and at and domain) and not any(c.isspace() for c in text)


class EmailConfig(_Section):
    smtp_host: str | None = _setting(None, "SMTP server that sends alert emails; unset, no email is sent.")
    smtp_port: int = _setting(587, "Port of the SMTP server.")
    starttls: bool = _setting(True, "Upgrade the SMTP connection with STARTTLS before logging in.")
    username: str | None = _setting(None, "SMTP login name; unset, Tollgate does not log in.")
    password_env: str | None = _setting(None, "Environment variable holding the SMTP password (never the password).")
    sender: str = Field(
        "tollgate@localhost", description="Address alert emails come from.", validation_alias="from", strict=True
    )
    to: tuple[str, ...] = _setting((), "Addresses that get every alert by email.")
    dashboard_url: str | None = _setting(
        None, "Base URL of the dashboard, e.g. https://tollgate.example.com/dashboard, linked from each email."
    )
    timeout: float = _setting(10.0, "Seconds one SMTP attempt may take.")
    attempts: int = _setting(5, "Tries per email before it is logged as failed.")
    _checks = {
        "smtp_port": (lambda n: 0 < n < 65536, "must be a port number"),
        "sender": (_is_address, "must be an email address"),
        "to": (lambda to: all(_is_address(a) for a in to), "must be email addresses"),
        "dashboard_url": (lambda url: not url or url.startswith(_HTTP), "must start with http:// or https://"),
        "attempts": (lambda n: n >= 1, "must be at least 1"),
    }


class AlertsConfig(_Section):
    webhook_url: str | None = _setting(None, "URL that receives each spend alert as a JSON POST.")
    alert_handlers: tuple[str, ...] = _setting((), "Functions 'pkg.module:function' called with each alert.")
    forecast_alert: bool = _setting(
        False, "Alert when a limit is projected to be reached before its window ends, at the recent daily rate."
    )
    # model_validate, not EmailConfig(): mypy reads the constructor as needing the "from" alias.
    email: EmailConfig = Field(default_factory=lambda: EmailConfig.model_validate({}))
    _checks = {"webhook_url": (lambda url: not url or url.startswith(_HTTP), "must start with http:// or https://")}


class AnomaliesConfig(_Section):
    enabled: bool = _setting(False, "Look for unusual spend and runaway threads, and alert on them.")
    baseline_days: int = _setting(14, "Days of hourly spend an entity's baseline is taken from.")
    baseline_percentile: int = _setting(95, "Percentile of those hourly spends that is the baseline.")
    factor: Decimal = _setting(Decimal(5), "An hour alerts when its spend is above this many times the baseline...")
    min_usd: Decimal = _setting(Decimal(1), "... and above this many dollars.")
    min_tokens: int = _setting(
        1_000_000, "An hour also alerts when its tokens pass factor times their baseline and this many tokens."
    )
    scopes: tuple[str, ...] = _setting(("user", "team", "agent", "thread"), "Which entities are watched.")
    runaway_requests_per_minute: int = _setting(60, "A thread sending more requests than this in a minute alerts.")
    runaway_tokens_per_minute: int = _setting(2_000_000, "A thread using more tokens than this in a minute alerts.")
    check_interval: float = _setting(15.0, "Seconds between looks at the hourly and per-minute rollups.")
    _checks = {
        "baseline_days": (lambda n: 1 <= n <= 90, "must be between 1 and 90"),
        "baseline_percentile": (lambda n: 1 <= n <= 100, "must be between 1 and 100"),
        "factor": (lambda n: n >= 1, "must be at least 1"),
        "min_usd": (lambda n: n >= 0, "must be 0 or more"),
        "scopes": (
            lambda scopes: all(s in ("user", "team", "agent", "thread") for s in scopes),
            "must name user, team, agent or thread",
        ),
        "runaway_requests_per_minute": (lambda n: n >= 1, "must be at least 1"),
        "runaway_tokens_per_minute": (lambda n: n >= 1, "must be at least 1"),
        "check_interval": (lambda n: n > 0, "must be more than 0"),
    }


class Config(_Section):
    """The whole file. ``source`` is where it was read from, or ``"<defaults>"``."""

    server: ServerConfig = Field(default_factory=ServerConfig)
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    recorder: RecorderConfig = Field(default_factory=RecorderConfig)
    auth: AuthConfig = Field(default_factory=AuthConfig)
    attribution: AttributionConfig = Field(default_factory=AttributionConfig)
    providers: tuple[ProviderConfig, ...] = ()
    keys: tuple[KeyConfig, ...] = ()
    limits: tuple[LimitConfig, ...] = ()
    rate_limits: tuple[RateLimitConfig, ...] = ()
    teams: Annotated[Mapping[str, TeamConfig], _READ_ONLY] = Field(default_factory=dict)
    budget: BudgetConfig = Field(default_factory=BudgetConfig)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    anomalies: AnomaliesConfig = Field(default_factory=AnomaliesConfig)
    billing: BillingSettings = Field(default_factory=BillingSettings)
    # The file's [pricing] table, of which only [pricing.models."<name>"] is read; pricing.Catalog checks the prices.
    pricing_models: Annotated[Mapping[str, Mapping[str, Any]], _READ_ONLY] = Field(
        default_factory=dict, validation_alias="pricing"
    )
    # [pricing.tools]: prices of hosted tools and storage the map lacks (pricing.tools), split off [pricing] below.
    pricing_tools: Annotated[Mapping[str, Any], _READ_ONLY] = Field(
        default_factory=dict, validation_alias="[pricing.tools]"
    )
    usage_handlers: tuple[str, ...] = _setting((), "Functions 'pkg.module:function' called with each usage record.")
    # A private attribute, not a field: the file may not set it.
    _source: str = PrivateAttr("<defaults>")

    @property
    def source(self) -> str:
        return self._source

    def model_post_init(self, context: Any, /) -> None:
        if isinstance(context, dict) and "source" in context:
            self._source = context["source"]

    @model_validator(mode="before")
    @classmethod
    def _split_pricing(cls, data: object) -> object:
        # [pricing.tools] is its own setting; [pricing] itself keeps the model tables.
        if isinstance(data, dict) and isinstance(data.get("pricing"), dict) and "tools" in data["pricing"]:
            pricing = dict(data["pricing"])
            return {**data, "pricing": pricing, "[pricing.tools]": pricing.pop("tools")}
        return data

    @field_validator("pricing_tools", mode="before")
    @classmethod
    def _tool_prices(cls, tools: object) -> object:
        from pricing import PricingConfigError, tool_prices

        if not isinstance(tools, dict):
            raise _refused("[pricing.tools] must be a table of prices in USD")
        try:
            tool_prices(tools)
        except PricingConfigError as error:
            raise _refused(str(error)) from None
        return tools

    @field_validator("pricing_models", mode="before")
    @classmethod
    def _price_tables(cls, pricing: object) -> object:
        if not isinstance(pricing, dict):
            raise _refused("[pricing] must be a table")
        unknown = sorted(pricing.keys() - {"models"})
        if unknown:
            raise _refused(f"unknown key 'pricing.{unknown[0]}'; valid keys: models, tools")
        models = pricing.get("models", {})
        if not isinstance(models, dict) or not all(isinstance(v, dict) for v in models.values()):
            raise _refused('[pricing.models."<name>"] must be tables of prices')
        return models

    @model_validator(mode="after")
    def _consistent(self) -> Config:
        names = [p.name for p in self.providers]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise _invalid(name, "is used by two providers", key=f"providers[{i}].name")
        if self.auth.mode == "managed" and not self.keys:
            raise _invalid("managed", "needs at least one [[keys]] entry", key="auth.mode")
        return self


def _refused(message: str) -> PydanticCustomError:
    """An error whose message is whole: a table of the wrong shape has no single bad value."""
    return PydanticCustomError("tollgate_message", "{message}", {"message": message})


def documented_settings() -> list[tuple[str, str]]:
    """Every setting as (dotted name, help), for docs and their test."""
    out: list[tuple[str, str]] = []
    for name, field in Config.model_fields.items():
        section = _section_in(field.annotation)
        if section is None:
            if field.description:
                out.append((name, field.description))
            continue
        prefix = f"{name}.<id>" if typing.get_origin(field.annotation) is Mapping else name
        out += _section_settings(prefix, section)
    return out


def _section_settings(prefix: str, section: type[BaseModel]) -> list[tuple[str, str]]:
    """The settings of one table, those of its sub-tables ([alerts.email]) included, under their names in the file."""
    out: list[tuple[str, str]] = []
    for key, f in section.model_fields.items():
        name = f.validation_alias if isinstance(f.validation_alias, str) else key
        inner = _section_in(f.annotation)
        if inner is not None:
            table = typing.get_origin(f.annotation) is Mapping  # [billing.customers."<id>"]: a table of them
            out += _section_settings(f"{prefix}.{name}.<id>" if table else f"{prefix}.{name}", inner)
        else:
            out.append((f"{prefix}.{name}", f.description or ""))
    return out


def _section_in(hint: Any) -> type[BaseModel] | None:
    """The section a field holds: itself, an array of them ([[providers]]) or a table of them ([teams.<id>])."""
    for candidate in (hint, *typing.get_args(hint)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None
