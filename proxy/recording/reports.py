"""Usage reports: requests, tokens and cost per group, straight from ``usage_records``.

Shared by ``tollgate usage`` and, later, the admin API, so both give the same answers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from pricing import decimal_text, pico_to_usd
from proxy.recording.store import Store
from proxy.recording.tables import ROLLUPS_TABLE, USAGE_TABLE

GROUPS = ("user", "team", "agent", "thread", "model", "provider", "kind", "day", "month")
TAG_GROUP = "tag:"
"""``group_by`` may also be ``tag:<name>``: one row per value of that tag (rows without it as None)."""
# Tag names are header names (lower-cased tokens); only these may reach a JSON path.
_TAG_NAME = re.compile(r"^[a-z0-9!#$%&'*+.^_`|~-]{1,64}$")
_ROLLUP_COLUMNS = {"user": "user_id", "team": "team_id", "agent": "agent", "model": "model", "provider": "provider"}
FILTER_COLUMNS = _COLUMNS = {
    "user": "user_id",
    "team": "team_id",
    "agent": "agent",
    "thread": "thread_id",
    "model": "model_requested",
    "provider": "provider",
    "kind": "provider_kind",
}


@dataclass(frozen=True, slots=True)
class ReportRow:
    group: str | None
    requests: int
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int
    reasoning_tokens: int
    cost_usd: Decimal
    unpriced_requests: int

    def as_json(self) -> dict[str, Any]:
        """JSON-ready: the cost as a decimal string, never a float."""
        return {
            "group": self.group,
            "requests": self.requests,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cached_input_tokens": self.cached_input_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "cost_usd": decimal_text(self.cost_usd),
            "unpriced_requests": self.unpriced_requests,
        }


def empty_window(since: datetime | None, until: datetime | None) -> str | None:
    """Why ``since``..``until`` can hold no row (``since`` at or after ``until``), or None when it can."""
    if since is None or until is None or since < until:
        return None
    return (
        f"the window is empty: since {since.isoformat()} is not before until {until.isoformat()} "
        "(since is inclusive, until exclusive)"
    )


def tag_name(text: str) -> str:
    """A tag name as recorded (lower case), checked; ValueError for one no tag header could carry."""
    name = text.strip().lower()
    if not _TAG_NAME.match(name):
        raise ValueError(f"{text!r} is not a tag name: tags are named by the header after the tag prefix")
    return name


def parse_tag_filter(text: str) -> tuple[str, str]:
    """``name=value`` as a (name, value) tag filter; ValueError naming the problem."""
    name, sep, value = text.partition("=")
    if not sep:
        raise ValueError(f"{text!r} is not a tag filter: write it name=value, e.g. env=prod")
    return tag_name(name), value


def tag_expression(name: str, dialect: str) -> sa.ColumnElement[Any]:
    """The value of tag ``name`` in ``usage_records.tags`` (a JSON object as text), or NULL."""
    tags = USAGE_TABLE.c.tags
    if dialect == "postgresql":
        return sa.func.json_extract_path_text(sa.cast(tags, sa.JSON), tag_name(name))
    return sa.func.json_extract(tags, f'$."{tag_name(name)}"')


def check_group(group_by: str | None) -> None:
    """ValueError naming the choices unless ``group_by`` is one of ``GROUPS``, ``tag:<name>`` or None."""
    if group_by is None or group_by in GROUPS:
        return
    if group_by.startswith(TAG_GROUP):
        tag_name(group_by[len(TAG_GROUP) :])
        return
    raise ValueError(f"cannot group by {group_by!r}; choose one of {', '.join(GROUPS)} or tag:<name>")


def _group_expression(group_by: str | None, dialect: str) -> sa.ColumnElement[Any]:
    started = USAGE_TABLE.c.started_at
    if group_by is not None and group_by.startswith(TAG_GROUP):
        return tag_expression(group_by[len(TAG_GROUP) :], dialect)
    if group_by in ("day", "month"):
        if dialect == "postgresql":
            fmt = "YYYY-MM-DD" if group_by == "day" else "YYYY-MM"
            return sa.func.to_char(sa.func.timezone("UTC", started), fmt)
        return sa.func.strftime("%Y-%m-%d" if group_by == "day" else "%Y-%m", started)
    if group_by is None:
        return sa.literal("all")
    if group_by not in _COLUMNS:
        raise ValueError(f"cannot group by {group_by!r}; choose one of {', '.join(GROUPS)}")
    return USAGE_TABLE.c[_COLUMNS[group_by]]


def usage_report(
    store: Store,
    group_by: str | None = None,
    *,
    filters: Mapping[str, str | None] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    tags: Mapping[str, str] | None = None,
    use_rollups: bool = True,
) -> list[ReportRow]:
    """One row per group, largest cost first; ``filters`` maps a group name to the value it must have.

    ``tags`` maps tag names to the value each must have. Answered from the daily or monthly
    rollups whenever they hold the answer (no thread, no tag, and ``since``/``until`` on day
    boundaries), else from the raw rows. Both give the same numbers.
    """
    check_group(group_by)
    active = {name: value for name, value in (filters or {}).items() if value is not None}
    if use_rollups and not tags and _rollups_answer(group_by, active, since, until):
        return _sorted(group_by, _from_rollups(store, group_by, active, since, until))
    t = USAGE_TABLE.c
    group = _group_expression(group_by, store.dialect).label("grp")
    query = sa.select(
        group,
        sa.func.count(),
        sa.func.coalesce(sa.func.sum(t.input_tokens), 0),
        sa.func.coalesce(sa.func.sum(t.output_tokens), 0),
        sa.func.coalesce(sa.func.sum(t.cached_input_tokens), 0),
        sa.func.coalesce(sa.func.sum(t.reasoning_tokens), 0),
        sa.func.coalesce(sa.func.sum(t.cost_pico), 0),
        sa.func.coalesce(sa.func.sum(sa.case((t.unpriced, 1), else_=0)), 0),
    ).group_by(group)
    for name, value in (filters or {}).items():
        if value is not None:
            if name not in _COLUMNS:
                raise ValueError(f"cannot filter by {name!r}; choose one of {', '.join(_COLUMNS)}")
            query = query.where(t[_COLUMNS[name]] == value)
    for name, value in (tags or {}).items():
        query = query.where(tag_expression(name, store.dialect) == value)
    if since is not None:
        query = query.where(t.started_at >= since)
    if until is not None:
        query = query.where(t.started_at < until)
    return _sorted(group_by, _report_rows(store, query))


def _sorted(group_by: str | None, report: list[ReportRow]) -> list[ReportRow]:
    if group_by in ("day", "month"):
        return sorted(report, key=lambda r: r.group or "")
    return sorted(report, key=lambda r: (-r.cost_usd, r.group or ""))


def _midnight(value: datetime | None, *, first_of_month: bool = False) -> bool:
    if value is None:
        return True
    utc = value.astimezone(UTC)
    aligned = (utc.hour, utc.minute, utc.second, utc.microsecond) == (0, 0, 0, 0)
    return aligned and (utc.day == 1 or not first_of_month)


def _rollups_answer(
    group_by: str | None, filters: Mapping[str, str], since: datetime | None, until: datetime | None
) -> bool:
    return (
        group_by not in ("thread", "kind")  # the rollups keep neither
        and not (group_by or "").startswith(TAG_GROUP)
        and all(name in _ROLLUP_COLUMNS for name in filters)
        and _midnight(since)
        and _midnight(until)
    )


def _from_rollups(
    store: Store,
    group_by: str | None,
    filters: Mapping[str, str],
    since: datetime | None,
    until: datetime | None,
) -> list[ReportRow]:
    r = ROLLUPS_TABLE.c
    monthly = group_by != "day" and _midnight(since, first_of_month=True) and _midnight(until, first_of_month=True)
    period, width = ("month", 7) if monthly else ("day", 10)
    group: sa.ColumnElement[Any]
    if group_by == "day":
        group = r.period_start
    elif group_by == "month":
        group = sa.func.substr(r.period_start, 1, 7)
    elif group_by is None:
        group = sa.literal("all")
    else:
        group = r[_ROLLUP_COLUMNS[group_by]]
    query = (
        sa.select(
            group.label("grp"),
            sa.func.sum(r.requests),
            sa.func.sum(r.input_tokens),
            sa.func.sum(r.output_tokens),
            sa.func.sum(r.cached_input_tokens),
            sa.func.sum(r.reasoning_tokens),
            sa.func.sum(r.cost_pico),
            sa.func.sum(r.unpriced_requests),
        )
        .where(r.period == period)
        .group_by(group)
    )
    for name, value in filters.items():
        query = query.where(r[_ROLLUP_COLUMNS[name]] == value)
    if since is not None:
        query = query.where(r.period_start >= since.astimezone(UTC).isoformat()[:width])
    if until is not None:
        query = query.where(r.period_start < until.astimezone(UTC).isoformat()[:width])
    return _report_rows(store, query)


def _report_rows(store: Store, query: sa.Select[Any]) -> list[ReportRow]:
    """Run a report query whose columns are: group, requests, input, output, cached, reasoning, cost, unpriced."""
    with store.engine.connect() as conn:
        rows = conn.execute(query).all()
    return [
        ReportRow(
            group=None if row[0] in (None, "") else str(row[0]),  # rollups keep missing attribution as ""
            requests=int(row[1]),
            input_tokens=int(row[2]),
            output_tokens=int(row[3]),
            cached_input_tokens=int(row[4]),
            reasoning_tokens=int(row[5]),
            cost_usd=pico_to_usd(int(row[6])),
            unpriced_requests=int(row[7]),
        )
        for row in rows
    ]


def provider_kinds(store: Store, providers: Iterable[str]) -> dict[str, str]:
    """The kind each provider's rows record (openai, anthropic, gemini, azure), for those that have rows.

    One short read per provider: the first row that names it. A report has a handful of providers,
    and a provider's rows all carry the kind it had, so any one of them answers.
    """
    t = USAGE_TABLE.c
    kinds: dict[str, str] = {}
    with store.engine.connect() as conn:
        for provider in providers:
            query = sa.select(t.provider_kind).where(t.provider == provider, t.provider_kind.is_not(None)).limit(1)
            kind = conn.execute(query).scalar()
            if kind is not None:
                kinds[provider] = str(kind)
    return kinds
