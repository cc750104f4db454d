"""Cost advice on fixed rows, against figures worked out by hand from the catalog's prices.

gpt-4o: $2.50 input, $1.25 cache read, $10 output per million tokens; gpt-4o-mini: $0.15, $0.075, $0.60.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
import pytest

from pricing import Catalog
from proxy.cli.advise import print_advice
from proxy.insight.advice import Opportunity, advise
from proxy.recording.records import UsageRecord
from proxy.recording.store import Store
from tests.insight.history import row, write

SINCE, UNTIL = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)
T = datetime(2026, 11, 20, 10, tzinfo=UTC)
TOKENS: dict[str, Any] = {"reasoning_tokens": 0, "cached_input_tokens": 0, "input_tokens": 0, "output_tokens": 0}


def _row(at: datetime, usd: str | None, **fields: Any) -> UsageRecord:
    return row(at, usd, **{**TOKENS, "model_requested": "gpt-4o", **fields})


def _rows() -> list[UsageRecord]:
    # Each planner request: 8,000 uncached x 2.5 + 2,000 cached x 1.25 + 100 out x 10 = $0.0235.
    planner = {"agent": "planner", "input_tokens": 10_000, "cached_input_tokens": 2_000, "output_tokens": 100}
    rows = [_row(T + timedelta(minutes=i), "0.0235", user_id="alice", **planner) for i in (1, 2)]
    rows.append(_row(T + timedelta(seconds=30), "0.0235", user_id="bob", thread_id="t-1", **planner))  # a retry
    rows.append(_row(T + timedelta(minutes=3), "0.0235", user_id="bob", **planner))
    # A stream cut off after 5,000 output tokens: $0.05 billed for a failure.
    rows.append(
        _row(
            T,
            "0.05",
            user_id="bob",
            thread_id="t-1",
            agent="planner",
            output_tokens=5_000,
            status=502,
            error_type="upstream_error",
        )
    )
    # Two long answers on gpt-4o-mini: 1,000 x 0.15 + 1,000 x 0.6 = $0.00075 each.
    writer = {"agent": "writer", "thread_id": "t-w", "input_tokens": 1_000, "output_tokens": 1_000}
    rows += [_row(T + timedelta(hours=i), "0.00075", model_requested="gpt-4o-mini", **writer) for i in (1, 2)]
    # Three of bob's requests refused by a spend limit.
    rows += [
        _row(T + timedelta(hours=3, minutes=i), None, user_id="bob", status=429, error_type="spend_limit_exceeded")
        for i in range(3)
    ]
    rows.append(_row(SINCE - timedelta(days=1), "9"))  # before the period: in no figure
    return rows


def _by_kind(store: Store, team: str | None = None) -> dict[str, list[Opportunity]]:
    advice = advise(store, Catalog.load(), SINCE, UNTIL, team)
    out: dict[str, list[Opportunity]] = {}
    for o in advice.opportunities:
        out.setdefault(o.kind, []).append(o)
    return out


def test_advice_figures_match_the_hand_computed_ones(db_url: str) -> None:
    found = _by_kind(write(db_url, _rows()))
    planner, writer = found["cache"]
    # planner: 40,000 input, 8,000 cached (20%): 32,000 x (2.50 - 1.25) / 1e6 = $0.04.
    assert (planner.figures["agent"], planner.usd, planner.figures["hit_ratio"]) == (
        "planner",
        Decimal("0.04"),
        "0.2000",
    )
    # writer: 2,000 uncached x (0.15 - 0.075) / 1e6 = $0.00015.
    assert (writer.figures["agent"], writer.usd) == ("writer", Decimal("0.00015"))
    # The four short planner answers on gpt-4o-mini: 8,000 x 0.15 + 2,000 x 0.075 + 100 x 0.6 = $0.00141 each.
    (smaller,) = found["smaller_model"]
    assert Decimal(smaller.figures["alternative_usd"]) == Decimal("0.00564") and smaller.usd == Decimal(
        "0.094"
    ) - Decimal("0.00564")
    assert "(6%)" in smaller.text
    assert [(o.figures["thread"], o.usd) for o in found["top_threads"]] == [
        ("t-1", Decimal("0.0735")),
        ("t-w", Decimal("0.0015")),
    ]
    assert [(o.figures["agent"], o.usd) for o in found["top_agents"]] == [
        ("planner", Decimal("0.144")),
        ("writer", Decimal("0.0015")),
    ]
    # bob's 3 refusals at his average answered cost on gpt-4o: (0.0235 x 2 + 0.05) / 3 ... answered means < 400.
    (refused,) = found["refused_uncapped"]
    assert (refused.figures["refused"], refused.usd) == (3, Decimal("0.0705"))
    (failed,) = found["failed_billed"]
    assert (failed.figures["requests"], failed.usd) == (1, Decimal("0.05"))
    (retries,) = found["retries"]
    assert (retries.figures["requests"], retries.usd) == (1, Decimal("0.0235"))


def test_a_team_sees_only_its_own_requests(db_url: str) -> None:
    rows = [
        _row(T, "0.0235", team_id="red", agent="a", input_tokens=10_000, cached_input_tokens=2_000, output_tokens=100)
    ]
    found = _by_kind(write(db_url, rows + _rows()), team="red")
    assert [o.usd for o in found["cache"]] == [Decimal("0.01")]
    assert set(found) == {"cache", "smaller_model", "top_agents"}


def test_json_names_the_query_of_each_opportunity(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    store = write(db_url, _rows())
    print_advice({}, store, SINCE, UNTIL, None, True)
    body = orjson.loads(capsys.readouterr().out)
    assert (body["spent_usd"], body["requests"]) == ("0.1455", 10)
    assert {o["kind"]: o["query"] for o in body["opportunities"]}["cache"] == "cache_by_agent_model"
    assert all(o["query_text"] and o["usd_at_stake"] for o in body["opportunities"])


def test_the_text_report_has_a_section_per_kind(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    print_advice({}, write(db_url, _rows()), SINCE, UNTIL, None, False)
    out = capsys.readouterr().out
    assert "Prompt caching (per agent and model) - up to $0.04" in out
    assert "Retries after a failure - up to $0.02" in out
    assert "agent planner on gpt-4o: 20% of 40,000 input tokens came from the cache" in out
