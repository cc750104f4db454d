"""Which limits apply to a request, the cost bound it is admitted with, and limit config errors."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from pricing import Catalog
from proxy.attribution import Attribution
from proxy.config import ConfigError, parse_config
from proxy.dialects.base import RequestFacts
from proxy.dialects.openai_requests import read_request
from proxy.errors import CostUnbounded
from proxy.limits.bounds import request_bound
from proxy.limits.rules import LimitBook, compile_rules, crossed_thresholds

NOW = datetime(2026, 11, 25, 15, 30, tzinfo=UTC)


def _book(text: str) -> LimitBook:
    return LimitBook(compile_rules(parse_config(text).limits))


def test_each_scope_applies_to_its_subject() -> None:
    book = _book(
        """
[[limits]]
scope = "user"
max_usd = 10
[[limits]]
scope = "team"
id = "research"
window = "month"
max_usd = "100"
[[limits]]
scope = "global"
window = "total"
max_usd = 1000
action = "warn"
"""
    )
    counters = book.counters(Attribution(user="alice", team="research"), NOW)
    assert [c.key for c in counters] == [
        "user:alice:day:2026-11-25",
        "team:research:month:2026-11",
        "global:all:total:total",
    ]
    assert [c.block_pico for c in counters] == [10 * 10**12, 100 * 10**12, None]
    other_team = book.counters(Attribution(user="bob", team="sales"), NOW)
    assert [c.scope for c in other_team] == ["user", "global"]


def test_a_request_without_a_user_escapes_only_user_limits() -> None:
    book = _book('[[limits]]\nscope = "user"\nmax_usd = 1\n[[limits]]\nscope = "global"\nmax_usd = 5\n')
    assert [c.scope for c in book.counters(Attribution(), NOW)] == ["global"]


def test_warn_and_block_limits_on_one_window_share_a_counter() -> None:
    book = _book(
        '[[limits]]\nmax_usd = 5\naction = "warn"\nalert_at = [0.5, 1.0]\n[[limits]]\nmax_usd = 10\nalert_at = [0.8]\n'
    )
    [counter] = book.counters(Attribution(user="alice"), NOW)
    assert counter.block_pico == 10 * 10**12
    crossed = crossed_thresholds(counter, 8 * 10**12)
    assert [(r.action, t) for r, t in crossed] == [
        ("warn", Decimal("0.5")),
        ("warn", Decimal("1.0")),
        ("block", Decimal("0.8")),
    ]


def test_time_zone_moves_the_window() -> None:
    book = _book('[[limits]]\nmax_usd = 5\ntimezone = "Asia/Tokyo"\n')
    [counter] = book.counters(Attribution(user="alice"), NOW)
    assert counter.key == "user:alice:day@Asia/Tokyo:2026-11-26"
    assert counter.end == datetime(2026, 11, 26, 15, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("limit", "message"),
    [
        (
            'scope = "org"\nmax_usd = 1',
            r"limits\[0\].scope = 'org' must be one of user, team, key, agent, thread, tag, global",
        ),
        ('window = "hour"\nmax_usd = 1', r"limits\[0\].window = 'hour' must be one of day, week, month, total"),
        ("max_usd = 0", r"limits\[0\].max_usd = '0' must be more than 0"),
        ('max_usd = "ten"', r"limits\[0\].max_usd = 'ten' must be a number or a decimal string"),
        ('max_usd = 1\naction = "deny"', r"limits\[0\].action = 'deny' must be block or warn"),
        ('max_usd = 1\ntimezone = "Mars/Olympus"', r"limits\[0\].timezone = 'Mars/Olympus' is not a known time zone"),
        ("max_usd = 1\nalert_at = [80]", r"limits\[0\].alert_at = \['80'\] must be fractions"),
    ],
)
def test_bad_limit_config_names_the_key(limit: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(f"[[limits]]\n{limit}\n", "limits.toml")


def test_max_usd_float_is_read_as_written() -> None:
    [limit] = parse_config("[[limits]]\nmax_usd = 0.1\n").limits
    assert limit.max_usd == Decimal("0.1")


CATALOG = Catalog.from_entries(
    {"m": {"input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06, "max_output_tokens": 1000}}
)


@pytest.mark.parametrize(
    ("payload", "body", "expected_pico", "words"),
    [
        ({"max_tokens": 10}, b"x" * 100, (100 * 1 + 10 * 2) * 10**6, "100 prompt tokens at most"),
        ({}, b"x" * 100, (100 + 1000 * 2) * 10**6, "the model's maximum output"),
        ({"max_completion_tokens": 10, "n": 3}, b"x" * 100, (100 + 30 * 2) * 10**6, "times 3 choices"),
        (
            {"max_output_tokens": 0, "input": [{"type": "input_image"}]},
            b'{"image_url"}',
            (13 + 3000) * 10**6,
            "1 media parts",
        ),
    ],
)
def test_request_bound(payload: dict[str, object], body: bytes, expected_pico: int, words: str) -> None:
    bound, why = request_bound(
        CATALOG.lookup("m"), len(body), read_request(payload), embeddings=False, media_tokens=3000
    )
    assert bound == expected_pico
    assert words in why


def test_unpriced_model_has_no_bound() -> None:
    with pytest.raises(CostUnbounded, match="has no price"):
        request_bound(None, 2, RequestFacts(model="mystery"), embeddings=False, media_tokens=0)
