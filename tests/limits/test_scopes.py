"""Scopes people ask for: a limit per tag value, limits on some models, months that start on day N."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from starlette.testclient import TestClient

from pricing import Catalog, bound_cost
from proxy.app import create_app
from proxy.attribution import Attribution
from proxy.config import ConfigError, parse_config
from proxy.limits.rules import LimitBook, compile_rules, counter_window
from proxy.limits.windows import window_bounds, window_label, window_of_label
from tests.conftest import chat_completion, json_answer, make_config
from tests.fakeprovider import FakeProvider

NOW = datetime(2026, 11, 25, 15, 30, tzinfo=UTC)
CHAT = "/v1/chat/completions"
# gpt-4o-mini, 12 prompt and 5 completion tokens: 12 * $0.15/M + 5 * $0.60/M
BODY = b'{"model": "gpt-4o-mini", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}'
COST = (12 * Decimal("0.15") + 5 * Decimal("0.6")) / 10**6


def _book(text: str) -> LimitBook:
    return LimitBook(compile_rules(parse_config(text).limits))


def test_a_tag_limit_keeps_one_counter_per_value() -> None:
    book = _book('[[limits]]\nscope = "tag"\ntag = "Project"\nmax_usd = 1\n')
    [counter] = book.counters(Attribution(tags={"project": "acme"}), NOW)
    assert counter.key == "tag=project:acme:day:2026-11-25"
    assert counter.describe() == "tag project 'acme', day 2026-11-25"
    assert book.counters(Attribution(tags={"team": "acme"}), NOW) == ()
    window = counter_window(counter.key)
    assert (window.scope, window.tag, window.scope_id) == ("tag", "project", "acme")


def test_a_models_limit_applies_only_to_the_models_it_names() -> None:
    book = _book(
        '[[limits]]\nscope = "user"\nmodels = ["gpt-5*", "o3"]\nmax_usd = 1\n[[limits]]\nscope = "user"\nmax_usd = 9\n'
    )
    alice = Attribution(user="alice")
    assert [c.key for c in book.counters(alice, NOW, "gpt-5-mini")] == [
        "user+gpt-5%2A,o3:alice:day:2026-11-25",
        "user:alice:day:2026-11-25",
    ]
    assert [c.key for c in book.counters(alice, NOW, "o3-mini")] == ["user:alice:day:2026-11-25"]
    assert [c.key for c in book.counters(alice, NOW, "GPT-5")] == ["user:alice:day:2026-11-25"]  # case counts
    assert counter_window(book.counters(alice, NOW, "o3")[0].key).models == ("gpt-5*", "o3")


@pytest.mark.parametrize(
    ("now", "start_day", "first", "after", "label"),
    [
        (
            datetime(2026, 11, 25, tzinfo=UTC),
            15,
            datetime(2026, 11, 15, tzinfo=UTC),
            datetime(2026, 12, 15, tzinfo=UTC),
            "2026-11-15",
        ),
        (
            datetime(2026, 1, 10, tzinfo=UTC),
            15,
            datetime(2025, 12, 15, tzinfo=UTC),
            datetime(2026, 1, 15, tzinfo=UTC),
            "2025-12-15",
        ),
        (
            datetime(2026, 12, 28, tzinfo=UTC),
            28,
            datetime(2026, 12, 28, tzinfo=UTC),
            datetime(2027, 1, 28, tzinfo=UTC),
            "2026-12-28",
        ),
        (
            datetime(2026, 3, 1, tzinfo=UTC),
            1,
            datetime(2026, 3, 1, tzinfo=UTC),
            datetime(2026, 4, 1, tzinfo=UTC),
            "2026-03",
        ),
    ],
)
def test_a_month_can_start_on_another_day(
    now: datetime, start_day: int, first: datetime, after: datetime, label: str
) -> None:
    zone = ZoneInfo("UTC")
    assert window_bounds("month", now, zone, start_day) == (first, after)
    assert window_label("month", first, zone) == label
    assert window_of_label("month", label, zone) == (first, after)


def test_a_billing_cycle_follows_the_limits_time_zone() -> None:
    book = _book(
        '[[limits]]\nscope = "global"\nwindow = "month"\nstart_day = 3\ntimezone = "Asia/Tokyo"\nmax_usd = 1\n'
    )
    [counter] = book.counters(Attribution(), datetime(2026, 11, 2, 16, tzinfo=UTC))  # 01:00 on the 3rd in Tokyo
    assert counter.window_label == "2026-11-03" and counter.start == datetime(2026, 11, 2, 15, tzinfo=UTC)
    assert counter_window(counter.key).start == counter.start


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ('scope = "tag"', "limits[0].scope = 'tag' needs tag = '<name>'"),
        ('scope = "user"\ntag = "project"', "limits[0].tag = 'project' is only for scope = 'tag'"),
        ('scope = "tag"\ntag = "pro ject"', "limits[0].tag = 'pro ject' must be a header name's tail"),
        ("start_day = 15", "limits[0].start_day = 15 is only for window = 'month'"),
        ('window = "month"\nstart_day = 31', "limits[0].start_day = 31 must be a day from 1 to 28"),
        ('models = ["gpt-[45]"]', "limits[0].models = ['gpt-[45]'] must be model names or * and ? globs"),
        ('on_exceed = "wait"', "limits[0].on_exceed = 'wait' must be refuse or clamp"),
        ("min_output_tokens = 0", "limits[0].min_output_tokens = 0 must be at least 1"),
    ],
)
def test_bad_scope_config_names_the_key_and_the_file(text: str, error: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config(f"[[limits]]\nmax_usd = 1\n{text}\n", "team.toml")
    assert "team.toml" in str(raised.value) and error in str(raised.value)


@pytest.fixture
def open_tollgate(provider: FakeProvider, any_db_url: str) -> Iterator[Any]:
    clients: list[TestClient] = []

    def start(extra: str = "") -> TestClient:
        client = TestClient(create_app(make_config(provider, any_db_url, extra)), base_url="http://tollgate.test")
        client.__enter__()
        clients.append(client)
        return client

    yield start
    for client in clients:
        client.__exit__(None, None, None)


def _post(client: TestClient, model: str, project: str) -> int:
    body = BODY.replace(b"gpt-4o-mini", model.encode())
    headers = {"x-user-id": "carol", "x-tollgate-tag-project": project}
    return client.post(CHAT, content=body, headers=headers).status_code


def _flush(client: TestClient) -> None:
    portal = client.portal
    assert portal is not None
    portal.call(client.app_state["recorder"].flush)


def test_tag_and_model_counters_count_only_their_own_rows(open_tollgate: Any, provider: FakeProvider) -> None:
    provider.answer("POST", CHAT, json_answer(chat_completion()))
    before = open_tollgate()
    for model, project in [("gpt-4o-mini", "acme")] * 3 + [("gpt-4o-mini", "other"), ("gpt-4.1-nano", "acme")]:
        assert _post(before, model, project) == 200
    _flush(before)
    # A limit added now counts what its window's rows cost: three acme requests on gpt-4o-mini, not the others.
    # It leaves room for one more request's bound on a counter that spent COST, not on one that spent 3 * COST.
    card = Catalog.load().lookup("gpt-4o-mini")
    assert card is not None
    limit = 3 * COST + bound_cost(card, len(BODY), 5) - Decimal("0.000000001")
    limits = f'[[limits]]\nscope = "tag"\ntag = "project"\nmodels = ["gpt-4o-*"]\nmax_usd = "{limit}"\n'
    after = open_tollgate(limits)
    response = after.post(CHAT, content=BODY, headers={"x-tollgate-tag-project": "acme"})
    assert response.status_code == 429
    message = response.json()["error"]["message"]
    assert f"${COST * 3:f} spent" in message and "tag project 'acme' on gpt-4o-*" in message
    assert _post(after, "gpt-4o-mini", "other") == 200
    assert _post(after, "gpt-4.1-nano", "acme") == 200
