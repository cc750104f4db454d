"""The tables: one SQLModel class per table, and the ``*_TABLE`` objects that queries use.

Money columns are integer picodollars (10**12 per USD), so that sums in SQL are exact on
both engines. A change here needs a migration (``proxy.recording.migrations``); a test
checks that the migrated schema and these models agree on SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from proxy.recording.records import MAX_LABEL_CHARS, MAX_TIER_CHARS

# A runtime limit's tag name, and its model globs as JSON: longer ones are refused when it is set.
MAX_TAG_CHARS = 64
MAX_MODELS_CHARS = 1024


class UsageRow(SQLModel, table=True):
    """One row per request Tollgate answered."""

    __tablename__ = "usage_records"

    request_id: str = Field(primary_key=True, max_length=64)
    started_at: datetime = Field(index=True, sa_type=sa.DateTime(timezone=True))
    ended_at: datetime = Field(sa_type=sa.DateTime(timezone=True))
    method: str = Field(max_length=16)
    endpoint: str = Field(max_length=MAX_LABEL_CHARS)
    provider: str | None = Field(default=None, max_length=128)
    model_requested: str | None = Field(default=None, max_length=MAX_LABEL_CHARS, index=True)
    model_served: str | None = Field(default=None, max_length=MAX_LABEL_CHARS)
    stream: bool = False
    status: int
    user_id: str | None = Field(default=None, max_length=MAX_LABEL_CHARS, index=True)
    team_id: str | None = Field(default=None, max_length=MAX_LABEL_CHARS, index=True)
    thread_id: str | None = Field(default=None, max_length=MAX_LABEL_CHARS)
    agent: str | None = Field(default=None, max_length=MAX_LABEL_CHARS)
    key_name: str | None = Field(default=None, max_length=256)
    tags: str | None = None
    # BIGINT: a provider may report more than 2**31 tokens (an INTEGER would fail the whole batch).
    input_tokens: int = Field(default=0, sa_type=sa.BigInteger)
    cached_input_tokens: int = Field(default=0, sa_type=sa.BigInteger)
    cache_write_tokens: int = Field(default=0, sa_type=sa.BigInteger)
    cache_write_1h_tokens: int = Field(default=0, sa_type=sa.BigInteger)
    output_tokens: int = Field(default=0, sa_type=sa.BigInteger)
    reasoning_tokens: int = Field(default=0, sa_type=sa.BigInteger)
    audio_input_tokens: int = Field(default=0, sa_type=sa.BigInteger)
    audio_output_tokens: int = Field(default=0, sa_type=sa.BigInteger)
    service_tier: str | None = Field(default=None, max_length=MAX_TIER_CHARS)
    cost_pico: int | None = Field(default=None, sa_type=sa.BigInteger)
    unpriced: bool = False
    usage_source: str = Field(max_length=16)
    latency_ms: float
    ttfb_ms: float | None = None
    error_type: str | None = Field(default=None, max_length=64)
    cache_write_12h_tokens: int = Field(default=0, sa_type=sa.BigInteger)
    provider_kind: str | None = Field(default=None, max_length=16)
    provider_usage: str | None = None
    front_door: str = Field(default="proxy", max_length=16)
    # Units beyond tokens (pricing.UnitCounts), their cost (part of cost_pico) and those that had no price.
    web_search_calls: int = Field(default=0, sa_type=sa.BigInteger)
    search_context_size: str | None = Field(default=None, max_length=8)
    file_search_calls: int = Field(default=0, sa_type=sa.BigInteger)
    container_sessions: int = Field(default=0, sa_type=sa.BigInteger)
    server_tool_requests: int = Field(default=0, sa_type=sa.BigInteger)
    grounding_queries: int = Field(default=0, sa_type=sa.BigInteger)
    images: int = Field(default=0, sa_type=sa.BigInteger)
    image_size: str | None = Field(default=None, max_length=32)
    image_quality: str | None = Field(default=None, max_length=16)
    image_tokens_in: int = Field(default=0, sa_type=sa.BigInteger)
    image_tokens_out: int = Field(default=0, sa_type=sa.BigInteger)
    audio_characters: int = Field(default=0, sa_type=sa.BigInteger)
    audio_ms: int = Field(default=0, sa_type=sa.BigInteger)
    storage_bytes: int = Field(default=0, sa_type=sa.BigInteger)
    storage_free_bytes: int = Field(default=0, sa_type=sa.BigInteger)
    unit_cost_pico: int | None = Field(default=None, sa_type=sa.BigInteger)
    unpriced_units: str | None = Field(default=None, max_length=256)
    resource_id: str | None = Field(default=None, max_length=128)  # what the request created (a vector store)
    price_version: int | None = None  # the imported price version that priced it; None: config and bundled map
    provider_cost_pico: int | None = Field(default=None, sa_type=sa.BigInteger)  # cost_source = "provider"


class SpendCounterRow(SQLModel, table=True):
    """Recorded spend of one subject in one window (see ``proxy.limits.rules.Counter``)."""

    __tablename__ = "spend_counters"

    counter_key: str = Field(primary_key=True, max_length=600)
    spent_pico: int = Field(default=0, sa_type=sa.BigInteger)


class BudgetLeaseRow(SQLModel, table=True):
    """Budget one worker process holds on a counter, to admit requests without a database round trip."""

    __tablename__ = "budget_leases"

    counter_key: str = Field(primary_key=True, max_length=600)
    holder: str = Field(primary_key=True, max_length=64)
    amount_pico: int = Field(default=0, sa_type=sa.BigInteger)
    expires_at: float = Field(index=True)


class AlertSentRow(SQLModel, table=True):
    """An alert already sent: at most one per counter, limit and threshold, across every worker."""

    __tablename__ = "alerts_sent"

    counter_key: str = Field(primary_key=True, max_length=600)
    limit_pico: int = Field(primary_key=True, sa_type=sa.BigInteger)
    threshold: str = Field(primary_key=True, max_length=16)
    sent_at: datetime = Field(sa_type=sa.DateTime(timezone=True))


class RateLeaseRow(SQLModel, table=True):
    """Rate-limit room one worker process holds on a rate counter (see ``proxy.limits.rate_ledger``)."""

    __tablename__ = "rate_leases"

    counter_key: str = Field(primary_key=True, max_length=600)
    holder: str = Field(primary_key=True, max_length=64)
    amount: int = Field(default=0, sa_type=sa.BigInteger)
    expires_at: float = Field(index=True)


class RuntimeLimitRow(SQLModel, table=True):
    """A spend limit set while Tollgate runs (``tollgate limits set``, ``PUT /admin/limits/...``)."""

    __tablename__ = "runtime_limits"

    scope: str = Field(primary_key=True, max_length=16)
    tag: str = Field(default="", primary_key=True, max_length=MAX_TAG_CHARS)  # "" unless scope is tag
    limit_id: str = Field(primary_key=True, max_length=MAX_LABEL_CHARS)
    window: str = Field(primary_key=True, max_length=8)
    models: str = Field(default="[]", primary_key=True, max_length=MAX_MODELS_CHARS)  # JSON: sorted, distinct
    max_usd: str = Field(max_length=64)  # a decimal string: exact, as it was given
    action: str = Field(max_length=8)
    timezone: str = Field(max_length=64)
    alert_at: str = Field(default="", max_length=256)  # comma-separated decimal fractions
    start_day: int = 1
    on_exceed: str = Field(default="refuse", max_length=8)
    min_output_tokens: int = 256
    updated_at: datetime = Field(sa_type=sa.DateTime(timezone=True))
    updated_by: str = Field(max_length=128)


class LimitChangeRow(SQLModel, table=True):
    """One change to a runtime limit: who, when, the limit before and after (JSON, null when absent)."""

    __tablename__ = "limit_changes"

    id: int | None = Field(default=None, primary_key=True)
    changed_at: datetime = Field(index=True, sa_type=sa.DateTime(timezone=True))
    changed_by: str = Field(max_length=128)
    scope: str = Field(max_length=16)
    tag: str = Field(default="", max_length=MAX_TAG_CHARS)
    limit_id: str = Field(max_length=MAX_LABEL_CHARS)
    window: str = Field(max_length=8)
    models: str = Field(default="[]", max_length=MAX_MODELS_CHARS)
    old: str | None = Field(default=None)
    new: str | None = Field(default=None)


class UsageRollupRow(SQLModel, table=True):
    """Daily and monthly totals per user, team, agent, model and provider, kept by the recorder.

    Written in the same transaction as the raw rows, so the two never disagree. Missing
    attribution is stored as "" (primary key columns cannot be NULL).
    """

    __tablename__ = "usage_rollups"

    period: str = Field(primary_key=True, max_length=8)  # "day" or "month"
    period_start: str = Field(primary_key=True, max_length=10)  # "2026-11-25" or "2026-11" (UTC)
    user_id: str = Field(primary_key=True, max_length=MAX_LABEL_CHARS, default="")
    team_id: str = Field(primary_key=True, max_length=MAX_LABEL_CHARS, default="")
    agent: str = Field(primary_key=True, max_length=MAX_LABEL_CHARS, default="")
    model: str = Field(primary_key=True, max_length=MAX_LABEL_CHARS, default="")
    provider: str = Field(primary_key=True, max_length=128, default="")
    requests: int = Field(default=0, sa_type=sa.BigInteger)
    input_tokens: int = Field(default=0, sa_type=sa.BigInteger)
    cached_input_tokens: int = Field(default=0, sa_type=sa.BigInteger)
    cache_write_tokens: int = Field(default=0, sa_type=sa.BigInteger)
    output_tokens: int = Field(default=0, sa_type=sa.BigInteger)
    reasoning_tokens: int = Field(default=0, sa_type=sa.BigInteger)
    audio_input_tokens: int = Field(default=0, sa_type=sa.BigInteger)
    audio_output_tokens: int = Field(default=0, sa_type=sa.BigInteger)
    cost_pico: int = Field(default=0, sa_type=sa.BigInteger)
    unpriced_requests: int = Field(default=0, sa_type=sa.BigInteger)


class BackgroundResponseRow(SQLModel, table=True):
    """A background Response whose usage comes later: the create's half, the finished half, or both.

    See ``proxy.recording.deferred``: once both halves are in, the usage row is completed and this one marked
    ``completed``, so that a later fetch of the same response changes nothing.
    """

    __tablename__ = "background_responses"

    response_id: str = Field(primary_key=True, max_length=128)
    request_id: str | None = Field(default=None, max_length=64)
    provisional_pico: int | None = Field(default=None, sa_type=sa.BigInteger)
    counter_keys: str | None = None  # JSON list of the spend counters charged provisionally
    finished: str | None = None  # JSON of the finished response's priced usage
    completed: bool = False


class HourlyUsageRow(SQLModel, table=True):
    """Spend per UTC hour of each user, team, agent and thread, kept by the recorder for anomaly detection.

    Written in the same transaction as the raw rows; rows older than the anomaly baseline are pruned.
    """

    __tablename__ = "usage_hourly"

    hour: str = Field(primary_key=True, max_length=13)  # "2026-11-25T14" (UTC)
    scope: str = Field(primary_key=True, max_length=8)  # user, team, agent or thread
    entity_id: str = Field(primary_key=True, max_length=MAX_LABEL_CHARS)
    requests: int = Field(default=0, sa_type=sa.BigInteger)
    tokens: int = Field(default=0, sa_type=sa.BigInteger)  # input + output
    cost_pico: int = Field(default=0, sa_type=sa.BigInteger)


class ThreadMinuteRow(SQLModel, table=True):
    """Requests, tokens and cost per UTC minute of each thread: what catches a runaway loop. Pruned after an hour."""

    __tablename__ = "thread_minutes"

    minute: str = Field(primary_key=True, max_length=16)  # "2026-11-25T14:03" (UTC)
    thread_id: str = Field(primary_key=True, max_length=MAX_LABEL_CHARS)
    requests: int = Field(default=0, sa_type=sa.BigInteger)
    tokens: int = Field(default=0, sa_type=sa.BigInteger)
    cost_pico: int = Field(default=0, sa_type=sa.BigInteger)


class AnomalyRow(SQLModel, table=True):
    """An anomaly (or a forecast warning) already alerted: one per kind, entity and window, across every worker."""

    __tablename__ = "anomalies"

    kind: str = Field(primary_key=True, max_length=16)  # spike, new, runaway or forecast
    scope: str = Field(primary_key=True, max_length=8)
    entity_id: str = Field(primary_key=True, max_length=MAX_LABEL_CHARS)
    window: str = Field(primary_key=True, max_length=32)  # the hour "2026-11-25T14", or a limit's window label
    detected_at: datetime = Field(index=True, sa_type=sa.DateTime(timezone=True))
    observed_pico: int = Field(default=0, sa_type=sa.BigInteger)
    baseline_pico: int | None = Field(default=None, sa_type=sa.BigInteger)
    requests: int = Field(default=0, sa_type=sa.BigInteger)
    tokens: int = Field(default=0, sa_type=sa.BigInteger)
    detail: str = ""  # one sentence saying what was seen


class PriceVersionRow(SQLModel, table=True):
    """One imported price version (``tollgate prices import``): the entries it adds, in force from ``effective_at``.

    ``entries`` is JSON: for a ``map`` (litellm's format) the entries as the file wrote them, each replacing
    the model's entry; for a ``sheet`` the prices per million tokens it names, as decimal strings, each
    replacing just those rates. Versions are never changed once imported.
    """

    __tablename__ = "price_versions"

    id: int | None = Field(default=None, primary_key=True)
    effective_at: datetime = Field(sa_type=sa.DateTime(timezone=True))
    imported_at: datetime = Field(sa_type=sa.DateTime(timezone=True))
    kind: str = Field(max_length=8)  # "map" or "sheet"
    source: str = Field(max_length=512)  # the file it came from, as the operator named it
    models: int = Field(default=0)
    entries: str


class RepriceAuditRow(SQLModel, table=True):
    """One applied ``tollgate reprice``: the window, the version it priced with and what it changed."""

    __tablename__ = "reprice_audit"

    id: int | None = Field(default=None, primary_key=True)
    applied_at: datetime = Field(sa_type=sa.DateTime(timezone=True))
    since: datetime = Field(sa_type=sa.DateTime(timezone=True))
    until: datetime = Field(sa_type=sa.DateTime(timezone=True))
    version: int | None = None  # None: each row's version in force at its start
    rows_changed: int = Field(default=0, sa_type=sa.BigInteger)
    before_pico: int = Field(default=0, sa_type=sa.BigInteger)
    after_pico: int = Field(default=0, sa_type=sa.BigInteger)
    detail: str  # JSON: per user and model, rows and cost before and after


USAGE_TABLE: sa.Table = UsageRow.__table__  # type: ignore[attr-defined]
BACKGROUND_TABLE: sa.Table = BackgroundResponseRow.__table__  # type: ignore[attr-defined]
ROLLUPS_TABLE: sa.Table = UsageRollupRow.__table__  # type: ignore[attr-defined]
COUNTERS_TABLE: sa.Table = SpendCounterRow.__table__  # type: ignore[attr-defined]
LEASES_TABLE: sa.Table = BudgetLeaseRow.__table__  # type: ignore[attr-defined]
ALERTS_TABLE: sa.Table = AlertSentRow.__table__  # type: ignore[attr-defined]
HOURLY_TABLE: sa.Table = HourlyUsageRow.__table__  # type: ignore[attr-defined]
THREAD_MINUTES_TABLE: sa.Table = ThreadMinuteRow.__table__  # type: ignore[attr-defined]
ANOMALIES_TABLE: sa.Table = AnomalyRow.__table__  # type: ignore[attr-defined]
RATE_LEASES_TABLE: sa.Table = RateLeaseRow.__table__  # type: ignore[attr-defined]
RUNTIME_LIMITS_TABLE: sa.Table = RuntimeLimitRow.__table__  # type: ignore[attr-defined]
LIMIT_CHANGES_TABLE: sa.Table = LimitChangeRow.__table__  # type: ignore[attr-defined]
PRICE_VERSIONS_TABLE: sa.Table = PriceVersionRow.__table__  # type: ignore[attr-defined]
REPRICE_AUDIT_TABLE: sa.Table = RepriceAuditRow.__table__  # type: ignore[attr-defined]


class InvoiceRow(SQLModel, table=True):
    """One invoice per billing entity (a user or a team) and calendar month; see ``proxy.billing.queries``.

    Money columns are decimal strings (exact, in the invoice's currency, already rounded),
    except ``cost_usd``: the exact unrounded usage cost it was built from. The unique
    constraint is what makes generation safe when several instances run it at once.
    """

    __tablename__ = "invoices"
    __table_args__ = (
        sa.UniqueConstraint(
            "entity_type", "entity_id", "period", "revision", name="uq_invoices_entity_period_revision"
        ),
    )

    id: str = Field(primary_key=True, max_length=128)
    entity_type: str = Field(max_length=8)  # "user" or "team"
    entity_id: str = Field(max_length=256)
    period: str = Field(max_length=7, index=True)  # "2026-11" (UTC calendar month)
    currency: str = Field(max_length=8)
    cost_usd: str = Field(max_length=64)
    exchange_rate: str = Field(max_length=64)
    subtotal: str = Field(max_length=64)
    markup_percent: str = Field(max_length=64)
    markup: str = Field(max_length=64)
    total: str = Field(max_length=64)
    requests: int = Field(default=0, sa_type=sa.BigInteger)
    unpriced_requests: int = Field(default=0, sa_type=sa.BigInteger)
    status: str = Field(max_length=16)  # pending, paid, failed or void
    price_book: str | None = Field(default=None, max_length=256)  # the [billing.customers] entry; None: at cost
    revision: int = 0  # 0: as first issued; n: the n-th correction (``tollgate invoices correct``)
    corrects: str | None = Field(default=None, max_length=128)  # the id of the invoice this one corrects
    created_at: datetime = Field(sa_type=sa.DateTime(timezone=True))
    updated_at: datetime = Field(sa_type=sa.DateTime(timezone=True))


class InvoiceLineRow(SQLModel, table=True):
    """One line of an invoice: usage of one model ("model" lines, which the total adds up) or one agent."""

    __tablename__ = "invoice_lines"

    invoice_id: str = Field(primary_key=True, max_length=128, foreign_key="invoices.id")
    kind: str = Field(primary_key=True, max_length=8)  # "model" or "agent"
    key: str = Field(primary_key=True, max_length=256)  # the model or agent name; "" when unknown
    requests: int = Field(default=0, sa_type=sa.BigInteger)
    unpriced_requests: int = Field(default=0, sa_type=sa.BigInteger)
    input_tokens: int = Field(default=0, sa_type=sa.BigInteger)
    cached_input_tokens: int = Field(default=0, sa_type=sa.BigInteger)
    cache_write_tokens: int = Field(default=0, sa_type=sa.BigInteger)
    cache_write_1h_tokens: int = Field(default=0, sa_type=sa.BigInteger)
    cache_write_12h_tokens: int = Field(default=0, sa_type=sa.BigInteger)
    output_tokens: int = Field(default=0, sa_type=sa.BigInteger)
    reasoning_tokens: int = Field(default=0, sa_type=sa.BigInteger)
    audio_input_tokens: int = Field(default=0, sa_type=sa.BigInteger)
    audio_output_tokens: int = Field(default=0, sa_type=sa.BigInteger)
    cost_usd: str = Field(max_length=64)
    amount: str = Field(max_length=64)
    unit_prices: str | None = None  # JSON: USD per million tokens by kind, for model lines with a price card


INVOICES_TABLE: sa.Table = InvoiceRow.__table__  # type: ignore[attr-defined]
INVOICE_LINES_TABLE: sa.Table = InvoiceLineRow.__table__  # type: ignore[attr-defined]
