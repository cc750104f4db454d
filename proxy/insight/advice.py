"""Cost advice: measured opportunities to spend less, each with the dollars at stake over a period.

Every figure comes from the recorded rows of the period (``since`` to ``until``, optionally one
team) and the price catalog; nothing is guessed. Each ``Opportunity`` names the query it came
from (``QUERIES`` holds their descriptions), so ``tollgate advise --json`` can be checked.

- ``cache``: per agent and model, the share of input tokens read from the provider's cache,
  and the most caching the rest could save: the uncached input tokens x (input rate - cache-read
  rate). An upper bound: providers cache only a prompt's repeated prefix, past a minimum length.
- ``smaller_model``: requests on a flagship model whose output was short (at most
  ``SHORT_OUTPUT_TOKENS``), priced again, row by row, at the same provider's smaller model
  (``SMALLER``); the saving is what they cost minus what they would have cost.
- ``top_threads`` and ``top_agents``: where the money went, the five dearest of each.
- ``refused_uncapped``: requests a spend limit refused. Without an output cap, Tollgate must
  bound a request by the model's largest output, so near a limit it refuses requests that would
  have fit; the dollars at stake are those requests at the user's average cost on that model.
- ``failed_billed``: requests that ended in an error (a 4xx or 5xx answer, or a stream cut off)
  yet were billed for tokens.
- ``retries``: requests on a thread and model within ``RETRY_SECONDS`` after a failed request on
  the same thread and model: the spend of trying again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from pricing import Catalog, TokenCounts, decimal_text, pico_to_usd, price_tokens
from proxy.insight.money import dollars, plural
from proxy.recording.store import Store
from proxy.recording.tables import USAGE_TABLE

SHORT_OUTPUT_TOKENS = 256
RETRY_SECONDS = 120
TOP = 5
REFUSED = "spend_limit_exceeded"
# A flagship model (its catalog key) and the same provider's smaller one.
SMALLER = {
    "gpt-4o": "gpt-4o-mini",
    "gpt-4.1": "gpt-4.1-mini",
    "gpt-5": "gpt-5-mini",
    "o3": "o4-mini",
    "claude-opus-4-5": "claude-haiku-4-5",
    "claude-sonnet-4-5": "claude-haiku-4-5",
    "gemini-2.5-pro": "gemini-2.5-flash",
}
QUERIES = {
    "cache_by_agent_model": "SUM(input, cached, cache writes, audio input) per (agent, model_requested)",
    "short_outputs_on_flagships": f"rows with output_tokens <= {SHORT_OUTPUT_TOKENS} and status < 400, priced again",
    "cost_by_thread": f"SUM(cost_pico) per thread_id, top {TOP}",
    "cost_by_agent": f"SUM(cost_pico) per agent, top {TOP}",
    "refused_by_limit": f"COUNT(*) per (user_id, model_requested) where error_type = '{REFUSED}', "
    "times AVG(cost_pico) of the same user and model's answered requests",
    "failed_but_billed": "SUM(cost_pico) per model_requested where (status >= 400 or error_type set) and cost > 0",
    "retries_after_failure": f"rows of a thread and model started within {RETRY_SECONDS} s after a failed one",
}


@dataclass(frozen=True, slots=True)
class Opportunity:
    kind: str
    query: str  # a key of QUERIES
    usd: Decimal  # the dollars at stake over the period
    text: str  # one line a person reads
    figures: Mapping[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "query": self.query,
            "query_text": QUERIES[self.query],
            "usd_at_stake": decimal_text(self.usd.quantize(Decimal("1e-12"))),
            "text": self.text,
            "figures": dict(self.figures),
        }


@dataclass(frozen=True, slots=True)
class Advice:
    since: datetime
    until: datetime
    team: str | None
    spent_usd: Decimal
    requests: int
    opportunities: list[Opportunity]


def _in_period(query: sa.Select[Any], since: datetime, until: datetime, team: str | None) -> sa.Select[Any]:
    t = USAGE_TABLE.c
    query = query.where(t.started_at >= since, t.started_at < until)
    return query.where(t.team_id == team) if team is not None else query


def advise(store: Store, catalog: Catalog, since: datetime, until: datetime, team: str | None = None) -> Advice:
    """Every opportunity found in the period, largest dollars at stake first within each kind."""
    t = USAGE_TABLE.c
    with store.engine.connect() as conn:
        total = conn.execute(
            _in_period(sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(t.cost_pico), 0)), since, until, team)
        ).one()

        def run(query: sa.Select[Any]) -> list[sa.Row[Any]]:
            return list(conn.execute(_in_period(query, since, until, team)))

        found = [
            *_cache(run, catalog),
            *_smaller_models(run, catalog),
            *_top(run, "thread"),
            *_top(run, "agent"),
            *_refused(run),
            *_failed_billed(run),
            *_retries(run),
        ]
    return Advice(since, until, team, pico_to_usd(int(total[1])), int(total[0]), found)


Run = Any  # Callable[[sa.Select[Any]], list[sa.Row[Any]]]


def _cache(run: Run, catalog: Catalog) -> list[Opportunity]:
    t = USAGE_TABLE.c
    writes = t.cache_write_tokens + t.cache_write_1h_tokens + t.cache_write_12h_tokens
    rows = run(
        sa.select(
            t.agent,
            t.model_requested,
            sa.func.sum(t.input_tokens),
            sa.func.sum(t.cached_input_tokens),
            sa.func.sum(writes + t.audio_input_tokens),
        )
        .where(t.model_requested.is_not(None))
        .group_by(t.agent, t.model_requested)
    )
    found = []
    for agent, model, inputs, cached, other in rows:
        card = catalog.lookup(model)
        if card is None:
            continue
        input_rate = card.rates.get("input_cost_per_token")
        read_rate = card.rates.get("cache_read_input_token_cost")
        inputs, cached = int(inputs or 0), int(cached or 0)
        uncached = inputs - cached - int(other or 0)
        if input_rate is None or read_rate is None or uncached <= 0 or inputs == 0:
            continue
        saving = uncached * (input_rate - read_rate)
        if saving <= 0:
            continue
        ratio = Decimal(cached) / inputs
        who = f"agent {agent}" if agent else "requests with no agent"
        found.append(
            Opportunity(
                "cache",
                "cache_by_agent_model",
                saving,
                f"{who} on {model}: {ratio:.0%} of {inputs:,} input tokens came from the cache; caching the other "
                f"{uncached:,} at the cache-read rate would save up to {dollars(saving)}",
                {
                    "agent": agent,
                    "model": model,
                    "input_tokens": inputs,
                    "cached_input_tokens": cached,
                    "uncached_input_tokens": uncached,
                    "hit_ratio": decimal_text(ratio.quantize(Decimal("0.0001"))),
                },
            )
        )
    return sorted(found, key=lambda o: -o.usd)


def _smaller_models(run: Run, catalog: Catalog) -> list[Opportunity]:
    t = USAGE_TABLE.c
    rows = run(
        sa.select(
            t.model_requested,
            t.input_tokens,
            t.cached_input_tokens,
            t.cache_write_tokens,
            t.cache_write_1h_tokens,
            t.cache_write_12h_tokens,
            t.output_tokens,
            t.reasoning_tokens,
            t.audio_input_tokens,
            t.audio_output_tokens,
            t.service_tier,
            t.cost_pico,
        ).where(t.output_tokens <= SHORT_OUTPUT_TOKENS, t.status < 400, t.cost_pico > 0, t.model_requested.is_not(None))
    )
    sums: dict[tuple[str, str], list[Decimal | int]] = {}
    for row in rows:
        card = catalog.lookup(row[0])
        smaller = SMALLER.get(card.model) if card is not None else None
        small_card = catalog.lookup(smaller) if smaller else None
        if small_card is None or smaller is None:
            continue
        tokens = TokenCounts(
            input=row[1],
            cached_input=row[2],
            cache_write=row[3],
            cache_write_1h=row[4],
            cache_write_12h=row[5],
            output=row[6],
            reasoning=row[7],
            audio_input=row[8],
            audio_output=row[9],
        )
        kept = sums.setdefault((row[0], smaller), [Decimal(0), Decimal(0), 0])
        kept[0] += pico_to_usd(int(row[11]))
        kept[1] += price_tokens(small_card, tokens, row[10]).total
        kept[2] += 1
    found = []
    for (model, smaller), (actual, alternative, count) in sums.items():
        assert isinstance(actual, Decimal) and isinstance(alternative, Decimal)
        saving = actual - alternative
        if saving <= 0:
            continue
        fraction = alternative / actual
        found.append(
            Opportunity(
                "smaller_model",
                "short_outputs_on_flagships",
                saving,
                f"{plural(int(count), 'request')} on {model} answered in at most {SHORT_OUTPUT_TOKENS} tokens cost "
                f"{dollars(actual)}; on {smaller} they would have cost {dollars(alternative)} ({fraction:.0%}), "
                f"saving {dollars(saving)}",
                {
                    "model": model,
                    "smaller_model": smaller,
                    "requests": count,
                    "cost_usd": decimal_text(actual),
                    "alternative_usd": decimal_text(alternative),
                },
            )
        )
    return sorted(found, key=lambda o: -o.usd)


def _top(run: Run, what: str) -> list[Opportunity]:
    t = USAGE_TABLE.c
    column = t.thread_id if what == "thread" else t.agent
    cost = sa.func.sum(t.cost_pico)
    rows = run(
        sa.select(column, cost, sa.func.count())
        .where(column.is_not(None), t.cost_pico > 0)
        .group_by(column)
        .order_by(cost.desc(), column)
        .limit(TOP)
    )
    return [
        Opportunity(
            f"top_{what}s",
            f"cost_by_{what}",
            pico_to_usd(int(pico)),
            f"{what} {name}: {dollars(pico_to_usd(int(pico)))} over {plural(int(count), 'request')}",
            {what: name, "requests": int(count), "cost_usd": decimal_text(pico_to_usd(int(pico)))},
        )
        for name, pico, count in rows
    ]


def _refused(run: Run) -> list[Opportunity]:
    t = USAGE_TABLE.c
    refused = run(
        sa.select(t.user_id, t.model_requested, sa.func.count())
        .where(t.error_type == REFUSED)
        .group_by(t.user_id, t.model_requested)
    )
    if not refused:
        return []
    averages = {
        (user, model): (int(pico), int(count))
        for user, model, pico, count in run(
            sa.select(t.user_id, t.model_requested, sa.func.sum(t.cost_pico), sa.func.count())
            .where(t.status < 400, t.cost_pico.is_not(None))
            .group_by(t.user_id, t.model_requested)
        )
    }
    found = []
    for user, model, count in refused:
        pico, answered = averages.get((user, model), (0, 0))
        average = pico_to_usd(pico) / answered if answered else Decimal(0)
        at_stake = average * int(count)
        who = f"user {user}" if user else "requests with no user"
        found.append(
            Opportunity(
                "refused_uncapped",
                "refused_by_limit",
                at_stake,
                f"{who} on {model}: {plural(int(count), 'request')} refused by a spend limit, worth about "
                f"{dollars(at_stake)} at their average of {dollars(average)}; a max_tokens cap lets those that fit "
                "through",
                {"user": user, "model": model, "refused": int(count), "average_cost_usd": decimal_text(average)},
            )
        )
    return sorted(found, key=lambda o: (-o.usd, o.text))


def _failed(t: Any) -> sa.ColumnElement[bool]:
    return sa.or_(t.status >= 400, t.error_type.is_not(None))


def _failed_billed(run: Run) -> list[Opportunity]:
    t = USAGE_TABLE.c
    not_refused = sa.or_(t.error_type.is_(None), t.error_type != REFUSED)
    rows = run(
        sa.select(t.model_requested, sa.func.sum(t.cost_pico), sa.func.count())
        .where(_failed(t), not_refused, t.cost_pico > 0)
        .group_by(t.model_requested)
    )
    sums: dict[str, list[int]] = {}
    for model, pico, count in rows:
        kept = sums.setdefault(model or "", [0, 0])
        kept[0] += int(pico)
        kept[1] += int(count)
    return sorted(
        (
            Opportunity(
                "failed_billed",
                "failed_but_billed",
                pico_to_usd(pico),
                f"{plural(count, 'request')} on {model or '(unknown model)'} failed after tokens were billed: "
                f"{dollars(pico_to_usd(pico))}",
                {"model": model or None, "requests": count, "cost_usd": decimal_text(pico_to_usd(pico))},
            )
            for model, (pico, count) in sums.items()
        ),
        key=lambda o: -o.usd,
    )


def _retries(run: Run) -> list[Opportunity]:
    t = USAGE_TABLE.c
    failed_threads = sa.select(t.thread_id).where(_failed(t), t.thread_id.is_not(None)).distinct()
    rows = run(
        sa.select(t.thread_id, t.model_requested, t.started_at, t.status, t.error_type, t.cost_pico)
        .where(t.thread_id.in_(failed_threads))
        .order_by(t.thread_id, t.model_requested, t.started_at)
    )
    spent: dict[str, list[int]] = {}
    last_failure: dict[tuple[str, str], datetime] = {}
    for thread, model, started, status, error, pico in rows:
        key = (thread, model or "")
        failed_at = last_failure.get(key)
        is_failure = status >= 400 or error is not None
        if failed_at is not None and started - failed_at <= timedelta(seconds=RETRY_SECONDS) and not is_failure:
            kept = spent.setdefault(model or "", [0, 0])
            kept[0] += int(pico or 0)
            kept[1] += 1
        if is_failure:
            last_failure[key] = started
    return sorted(
        (
            Opportunity(
                "retries",
                "retries_after_failure",
                pico_to_usd(pico),
                f"{plural(count, 'retry', 'retries')} on {model or '(unknown model)'} within {RETRY_SECONDS} s of a "
                f"failure on the same thread: {dollars(pico_to_usd(pico))}",
                {"model": model or None, "requests": count, "cost_usd": decimal_text(pico_to_usd(pico))},
            )
            for model, (pico, count) in spent.items()
            if count
        ),
        key=lambda o: -o.usd,
    )


def totals_by_kind(opportunities: Iterable[Opportunity]) -> dict[str, Decimal]:
    out: dict[str, Decimal] = {}
    for o in opportunities:
        out[o.kind] = out.get(o.kind, Decimal(0)) + o.usd
    return out
