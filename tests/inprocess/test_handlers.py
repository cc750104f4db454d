"""Usage handlers: called with each finished record, sync or async, off the app's path, never raising into it."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from decimal import Decimal

import pytest
from openai.types.chat import ChatCompletionMessageParam

from proxy.inprocess import Meter
from proxy.recording.records import UsageRecord
from tests.conftest import chat_completion, json_answer
from tests.fakeprovider import FakeProvider
from tests.inprocess.conftest import MeterFactory, sync_client

_HI: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]
CONFIGURED: list[UsageRecord] = []


def collect(record: UsageRecord) -> None:
    """A handler named in the config as ``usage_handlers``."""
    CONFIGURED.append(record)


def _wait_for(found: list[UsageRecord], count: int = 1) -> list[UsageRecord]:
    deadline = time.monotonic() + 5
    while len(found) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    return found


def test_a_handler_gets_the_record_with_the_callback_fields(meter: Meter, provider: FakeProvider) -> None:
    provider.answer("POST", "/v1/chat/completions", json_answer(chat_completion(cached_tokens=4, reasoning_tokens=2)))
    found: list[UsageRecord] = []
    meter.on_usage(found.append)
    with meter.attribute(user="alice", thread="t-42", agent="planner"):
        sync_client(meter, provider).chat.completions.create(model="gpt-4o-mini", messages=_HI)
    [record] = _wait_for(found)
    assert (record.user_id, record.thread_id, record.agent_name) == ("alice", "t-42", "planner")
    assert (record.model, record.provider) == ("gpt-4o-mini-2024-07-18", "fake")
    usage = record.usage
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (12, 5, 17)
    assert (usage.cached_tokens, usage.reasoning_tokens) == (4, 2)
    assert record.provider_metadata is not None and record.provider_metadata["prompt_tokens"] == 12
    # 8 uncached at $0.15/M, 4 cached at $0.075/M, 5 output at $0.60/M
    assert record.cost == (8 * Decimal("0.15") + 4 * Decimal("0.075") + 5 * Decimal("0.6")) / 10**6


def test_an_async_handler_is_awaited(meter: Meter, provider: FakeProvider) -> None:
    provider.answer("POST", "/v1/chat/completions", json_answer(chat_completion()))
    found: list[UsageRecord] = []

    async def handler(record: UsageRecord) -> None:
        await asyncio.sleep(0)
        found.append(record)

    meter.on_usage(handler)
    sync_client(meter, provider).chat.completions.create(model="gpt-4o-mini", messages=_HI)
    assert len(_wait_for(found)) == 1


def test_a_slow_handler_does_not_hold_up_the_call(meter: Meter, provider: FakeProvider) -> None:
    provider.answer("POST", "/v1/chat/completions", json_answer(chat_completion()))
    release = threading.Event()
    found: list[UsageRecord] = []

    @meter.on_usage
    def slow(record: UsageRecord) -> None:
        release.wait(5)
        found.append(record)

    client = sync_client(meter, provider)
    client.chat.completions.create(model="gpt-4o-mini", messages=_HI)
    client.chat.completions.create(model="gpt-4o-mini", messages=_HI)  # returns while the handler still waits
    assert found == []
    release.set()
    assert len(_wait_for(found, 2)) == 2


def test_a_failing_handler_is_logged_and_the_call_succeeds(
    meter: Meter, provider: FakeProvider, caplog: pytest.LogCaptureFixture
) -> None:
    provider.answer("POST", "/v1/chat/completions", json_answer(chat_completion(content="fine")))
    found: list[UsageRecord] = []

    def broken(record: UsageRecord) -> None:
        raise RuntimeError("handler bug")

    meter.on_usage(broken)
    meter.on_usage(found.append)
    with caplog.at_level(logging.ERROR, logger="tollgate.recorder"):
        answer = sync_client(meter, provider).chat.completions.create(model="gpt-4o-mini", messages=_HI)
        _wait_for(found)
    assert answer.choices[0].message.content == "fine"
    assert any("usage handler" in r.getMessage() and r.exc_info for r in caplog.records)


def test_handlers_named_in_the_config_are_called(meter_factory: MeterFactory, provider: FakeProvider) -> None:
    CONFIGURED.clear()
    meter = meter_factory('usage_handlers = ["tests.inprocess.test_handlers:collect"]')
    provider.answer("POST", "/v1/chat/completions", json_answer(chat_completion()))
    sync_client(meter, provider).chat.completions.create(model="gpt-4o-mini", messages=_HI)
    assert [r.front_door for r in _wait_for(CONFIGURED)] == ["inprocess"]
