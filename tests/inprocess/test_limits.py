"""Limits are enforced before a call leaves the process, with the proxy's leases: one limit, one guarantee."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from proxy.clock import fixed_clock
from proxy.inprocess import Meter
from tests.conftest import Tollgate, chat_completion, json_answer
from tests.fakeprovider import FakeProvider
from tests.inprocess.conftest import MeterFactory, rows, sync_client

_HI: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]
_CLOCK = fixed_clock(datetime(2026, 11, 30, 12, 0, tzinfo=UTC))


def _limit(max_usd: str, window: str = "day") -> str:
    return f'[[limits]]\nscope = "user"\nid = "*"\nwindow = "{window}"\nmax_usd = {max_usd}\n'


def test_a_refused_call_raises_rate_limit_error_without_a_retry_or_a_request(
    meter_factory: MeterFactory, provider: FakeProvider
) -> None:
    meter = meter_factory(_limit("0.001"), clock=_CLOCK)
    provider.answer("POST", "/v1/chat/completions", json_answer(chat_completion()))
    client = sync_client(meter, provider, max_retries=2)
    with meter.attribute(user="alice"), pytest.raises(openai.RateLimitError) as raised:
        client.chat.completions.create(model="gpt-4o-mini", messages=_HI)  # no max_tokens: bounded at 16,384
    assert raised.value.code == "spend_limit_exceeded"
    assert raised.value.response.headers["x-should-retry"] == "false"
    assert provider.requests == []
    [row] = rows(meter)
    assert (row["status"], row["error_type"], row["user_id"]) == (429, "spend_limit_exceeded", "alice")


def test_a_call_that_fits_is_admitted_and_charged(meter_factory: MeterFactory, provider: FakeProvider) -> None:
    meter = meter_factory(_limit("0.001"), clock=_CLOCK)
    provider.answer("POST", "/v1/chat/completions", json_answer(chat_completion()))
    with meter.attribute(user="alice"):
        sync_client(meter, provider).chat.completions.create(model="gpt-4o-mini", messages=_HI, max_tokens=20)
    [row] = rows(meter)
    assert (row["status"], row["cost_pico"]) == (200, 4_800_000)


def _proxy_client(tollgate: Tollgate) -> openai.OpenAI:
    return openai.OpenAI(base_url="http://tollgate.test/v1", api_key="k", http_client=tollgate.client, max_retries=0)


def test_a_proxy_and_a_meter_on_one_database_enforce_one_limit_without_overshoot(
    meter_factory: MeterFactory, tollgate_factory: Any, provider: FakeProvider
) -> None:
    limit = Decimal("0.0002")  # about 40 answers of $0.0000048, fewer bounds of 20 output tokens each
    extra = _limit(str(limit), window="total")
    tollgate: Tollgate = tollgate_factory(extra)
    meter: Meter = meter_factory(extra)
    provider.answer("POST", "/v1/chat/completions", json_answer(chat_completion()))
    through_meter, through_proxy = sync_client(meter, provider), _proxy_client(tollgate)
    served = {"meter": 0, "proxy": 0}
    refused = {"meter": 0, "proxy": 0}
    for _ in range(60):
        for door, client in (("meter", through_meter), ("proxy", through_proxy)):
            try:
                client.chat.completions.create(
                    model="gpt-4o-mini", messages=_HI, max_tokens=20, extra_headers={"X-User-Id": "alice"}
                )
                served[door] += 1
            except openai.RateLimitError:
                refused[door] += 1
    tollgate.flush()
    recorded = rows(meter)
    spent = sum(Decimal(r["cost_pico"] or 0) for r in recorded) / 10**12
    assert spent <= limit
    assert served["meter"] > 0 and served["proxy"] > 0 and refused["meter"] > 0 and refused["proxy"] > 0
    assert {r["front_door"] for r in recorded if r["status"] == 200} == {"proxy", "inprocess"}
    assert len(provider.requests) == served["meter"] + served["proxy"]


def test_a_rate_limit_holds_inside_the_process_and_its_refusal_is_openais_rate_limit_error(
    meter_factory: MeterFactory, provider: FakeProvider
) -> None:
    meter = meter_factory('[[rate_limits]]\nscope = "user"\nrequests_per_minute = 1\n', clock=_CLOCK)
    provider.answer("POST", "/v1/chat/completions", json_answer(chat_completion()))
    client = sync_client(meter, provider, max_retries=0)
    with meter.attribute(user="alice"):
        client.chat.completions.create(model="gpt-4o-mini", messages=_HI, max_tokens=5)
        with pytest.raises(openai.RateLimitError) as raised:
            client.chat.completions.create(model="gpt-4o-mini", messages=_HI, max_tokens=5)
    assert raised.value.code == "rate_limit_exceeded"
    assert raised.value.response.headers["x-ratelimit-remaining-requests"] == "0"
    assert len(provider.requests) == 1


def test_a_runtime_limit_reaches_the_in_process_meter(
    meter_factory: MeterFactory, provider: FakeProvider, db_url: str
) -> None:
    import time

    from proxy.limits.runtime import RuntimeLimits, make_limit
    from proxy.recording.store import Store

    meter = meter_factory("[budget]\nsync_interval = 0.1\n", clock=_CLOCK)
    provider.answer("POST", "/v1/chat/completions", json_answer(chat_completion()))
    client = sync_client(meter, provider, max_retries=0)
    store = Store(db_url)
    RuntimeLimits(store).set(make_limit("user", "alice", "day", "0.000001"), "test", datetime.now(UTC))
    store.dispose()
    time.sleep(0.5)  # a few sync intervals
    with meter.attribute(user="alice"), pytest.raises(openai.RateLimitError) as raised:
        client.chat.completions.create(model="gpt-4o-mini", messages=_HI, max_tokens=5)
    assert raised.value.code == "spend_limit_exceeded"
    assert provider.requests == []
