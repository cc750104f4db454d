from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import threading
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import httpx
import pytest
import respx

from proxy.limits.alerts import Alert, AlertDispatcher, Notice, load_alert_handlers

WEBHOOK = "https://hooks.example.com/services/T000/SECRET-TOKEN?key=hush"

ALERT = Alert(
    scope="user",
    scope_id="alice",
    window="day",
    window_label="2026-11-25",
    spent_usd=Decimal("8.00"),
    limit_usd=Decimal("10.00"),
    threshold=Decimal("0.8"),
    action="block",
    time=datetime(2026, 11, 25, 14, 3, 7, tzinfo=UTC),
)

EXPECTED_JSON = {
    "kind": "threshold",
    "scope": "user",
    "id": "alice",
    "window": "day",
    "window_label": "2026-11-25",
    "spent_usd": "8.00",
    "limit_usd": "10.00",
    "threshold": "0.8",
    "action": "block",
    "time": "2026-11-25T14:03:07Z",
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def alert_for(scope_id: str) -> Alert:
    return dataclasses.replace(ALERT, scope_id=scope_id)


def handler_for_loading(alert: Alert) -> None:
    """Target of the load_alert_handlers test."""


def test_as_json_has_decimal_strings_and_utc_time() -> None:
    assert ALERT.as_json() == EXPECTED_JSON


def test_as_json_converts_time_to_utc_and_never_uses_exponents() -> None:
    alert = dataclasses.replace(
        ALERT,
        spent_usd=Decimal("1E+1"),
        limit_usd=Decimal("0.0000001"),
        time=datetime(2026, 11, 25, 9, 0, tzinfo=timezone(timedelta(hours=-5))),
    )
    body = alert.as_json()
    assert (body["spent_usd"], body["limit_usd"], body["time"]) == ("10", "0.0000001", "2026-11-25T14:00:00Z")


def test_alert_refuses_naive_time() -> None:
    with pytest.raises(ValueError, match="aware"):
        dataclasses.replace(ALERT, time=datetime(2026, 11, 25, 14, 3))


def test_load_alert_handlers_imports_functions() -> None:
    specs = ["tests.limits.test_alerts:handler_for_loading", "tests.limits.test_alerts:AlertDispatcher.emit"]
    assert load_alert_handlers(specs) == [handler_for_loading, AlertDispatcher.emit]


@pytest.mark.parametrize(
    ("spec", "why"),
    [
        ("no_colon_here", "not of the form"),
        (":handler", "not of the form"),
        ("tests.limits.test_alerts:", "not of the form"),
        ("tollgate_no_such_module:handler", "cannot load"),
        ("tests.limits.test_alerts:no_such_function", "cannot load"),
        ("tests.limits.test_alerts:WEBHOOK", "not a function"),
    ],
)
def test_load_alert_handlers_names_the_bad_spec(spec: str, why: str) -> None:
    with pytest.raises(ValueError) as raised:
        load_alert_handlers(["tests.limits.test_alerts:handler_for_loading", spec])
    message = str(raised.value)
    assert message.startswith("alert_handlers: ") and repr(spec) in message and why in message


def test_emit_logs_one_warning_line_at_once(caplog: pytest.LogCaptureFixture) -> None:
    dispatcher = AlertDispatcher(None)
    with caplog.at_level(logging.WARNING, logger="tollgate.alerts"):
        dispatcher.emit(ALERT)
    [record] = caplog.records
    assert record.name == "tollgate.alerts" and record.levelno == logging.WARNING
    assert record.getMessage() == "spend alert: user alice day 2026-11-25 spent $8.00 of $10.00 (80%)"
    assert getattr(record, "alert") == EXPECTED_JSON  # noqa: B009


def test_total_window_reads_in_total() -> None:
    alert = dataclasses.replace(ALERT, window="total", window_label="total", threshold=Decimal("0.125"))
    assert alert.describe() == "user alice total spent $8.00 of $10.00 (12.5%)"


@pytest.mark.anyio
async def test_webhook_receives_the_alert_json() -> None:
    with respx.mock(assert_all_called=True, assert_all_mocked=True) as router:
        route = router.post(WEBHOOK).mock(return_value=httpx.Response(204))
        dispatcher = AlertDispatcher(WEBHOOK, retry_wait=0)
        dispatcher.start()
        dispatcher.emit(ALERT)
        await dispatcher.close()
    assert route.call_count == 1
    request = route.calls.last.request
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.content) == EXPECTED_JSON
    assert dispatcher.delivered == 1


@pytest.mark.anyio
async def test_webhook_server_error_is_retried() -> None:
    with respx.mock(assert_all_called=True) as router:
        route = router.post(WEBHOOK).mock(side_effect=[httpx.Response(500), httpx.Response(200)])
        dispatcher = AlertDispatcher(WEBHOOK, retry_wait=0)
        dispatcher.start()
        dispatcher.emit(ALERT)
        await dispatcher.close()
    assert route.call_count == 2
    assert (dispatcher.delivered, dispatcher.dropped) == (1, 0)


@pytest.mark.anyio
async def test_webhook_connect_error_and_429_are_retried() -> None:
    answers: list[httpx.Response | Exception] = [httpx.ConnectError("no"), httpx.Response(429), httpx.Response(200)]
    with respx.mock(assert_all_called=True) as router:
        route = router.post(WEBHOOK).mock(side_effect=answers)
        dispatcher = AlertDispatcher(WEBHOOK, retry_wait=0)
        dispatcher.start()
        dispatcher.emit(ALERT)
        await dispatcher.close()
    assert route.call_count == 3
    assert dispatcher.delivered == 1


@pytest.mark.anyio
async def test_webhook_gives_up_after_attempts_and_logs_only_its_origin(caplog: pytest.LogCaptureFixture) -> None:
    with respx.mock(assert_all_called=True) as router:
        route = router.post(WEBHOOK).mock(return_value=httpx.Response(503))
        dispatcher = AlertDispatcher(WEBHOOK, attempts=3, retry_wait=0)
        dispatcher.start()
        dispatcher.emit(ALERT)
        await dispatcher.close()
    assert route.call_count == 3
    assert (dispatcher.delivered, dispatcher.dropped) == (0, 1)
    [error] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "https://hooks.example.com" in error.getMessage() and "HTTP 503" in error.getMessage()
    assert "SECRET" not in caplog.text and "hush" not in caplog.text


@pytest.mark.anyio
async def test_webhook_client_error_is_not_retried() -> None:
    calls: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(404)

    dispatcher = AlertDispatcher(WEBHOOK, transport=httpx.MockTransport(answer), retry_wait=0)
    dispatcher.start()
    dispatcher.emit(ALERT)
    await dispatcher.close()
    assert len(calls) == 1
    assert (dispatcher.delivered, dispatcher.dropped) == (0, 1)


@pytest.mark.anyio
async def test_sync_and_async_handlers_get_the_alert() -> None:
    seen: list[tuple[str, Notice, bool]] = []

    def sync_handler(alert: Notice) -> None:
        # Run on a worker thread, not the event loop's.
        seen.append(("sync", alert, threading.current_thread() is threading.main_thread()))

    async def async_handler(alert: Notice) -> None:
        seen.append(("async", alert, threading.current_thread() is threading.main_thread()))

    dispatcher = AlertDispatcher(None, [sync_handler, async_handler])
    dispatcher.start()
    dispatcher.emit(ALERT)
    await dispatcher.close()
    assert seen == [("sync", ALERT, False), ("async", ALERT, True)]
    assert dispatcher.delivered == 1


@pytest.mark.anyio
async def test_failing_handler_does_not_stop_the_others(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[str] = []

    def broken_sync(alert: Notice) -> None:
        raise RuntimeError("sync boom")

    async def broken_async(alert: Notice) -> None:
        raise RuntimeError("async boom")

    dispatcher = AlertDispatcher(None, [broken_sync, broken_async, lambda alert: seen.append(alert.scope_id)])
    dispatcher.start()
    dispatcher.emit(alert_for("alice"))
    dispatcher.emit(alert_for("bob"))
    await dispatcher.close()
    assert seen == ["alice", "bob"]
    failures = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(failures) == 4 and all("alert handler" in r.getMessage() for r in failures)


@pytest.mark.anyio
async def test_webhook_failure_does_not_stop_handlers() -> None:
    seen: list[Notice] = []
    transport = httpx.MockTransport(lambda request: httpx.Response(500))
    dispatcher = AlertDispatcher(WEBHOOK, [seen.append], transport=transport, attempts=2, retry_wait=0)
    dispatcher.start()
    dispatcher.emit(ALERT)
    await dispatcher.close()
    assert seen == [ALERT]


@pytest.mark.anyio
async def test_close_flushes_everything_queued() -> None:
    with respx.mock(assert_all_called=True) as router:
        route = router.post(WEBHOOK).mock(return_value=httpx.Response(200))
        dispatcher = AlertDispatcher(WEBHOOK, retry_wait=0)
        for i in range(50):
            dispatcher.emit(alert_for(f"user-{i}"))
        dispatcher.start()
        await dispatcher.close()
    assert route.call_count == 50
    assert dispatcher.delivered == 50
    ids = [json.loads(call.request.content)["id"] for call in route.calls]
    assert ids == [f"user-{i}" for i in range(50)]


@pytest.mark.anyio
async def test_close_gives_up_after_its_bound(caplog: pytest.LogCaptureFixture) -> None:
    never = asyncio.Event()

    async def stuck(alert: Notice) -> None:
        await never.wait()

    dispatcher = AlertDispatcher(None, [stuck], timeout=0.05, attempts=1)
    dispatcher.start()
    dispatcher.emit(alert_for("alice"))
    dispatcher.emit(alert_for("bob"))
    await asyncio.wait_for(dispatcher.close(), 5)
    assert dispatcher.dropped == 2
    assert "shutdown cut short the delivery of the alert for user alice" in caplog.text
    assert "shutdown dropped 1 spend alerts still queued" in caplog.text


@pytest.mark.anyio
async def test_full_queue_drops_with_an_error(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[Notice] = []
    dispatcher = AlertDispatcher(None, [seen.append], max_queued=2)
    for name in ("alice", "bob", "carol"):
        dispatcher.emit(alert_for(name))
    dispatcher.start()
    await dispatcher.close()
    assert [a.scope_id for a in seen] == ["alice", "bob"]
    assert dispatcher.dropped == 1
    assert "queue is full" in caplog.text and "carol" in caplog.text


@pytest.mark.anyio
async def test_emit_from_another_thread_is_delivered() -> None:
    seen: list[Notice] = []
    dispatcher = AlertDispatcher(None, [seen.append])
    dispatcher.start()
    await asyncio.to_thread(dispatcher.emit, ALERT)
    await asyncio.sleep(0)  # let the loop run the hop scheduled from the thread
    await dispatcher.close()
    assert seen == [ALERT]


@pytest.mark.anyio
async def test_emit_after_close_is_logged_and_dropped(caplog: pytest.LogCaptureFixture) -> None:
    dispatcher = AlertDispatcher(None)
    dispatcher.start()
    await dispatcher.close()
    dispatcher.emit(ALERT)
    assert dispatcher.dropped == 1
    assert "after shutdown" in caplog.text


def test_emit_never_raises_even_when_its_loop_is_gone(caplog: pytest.LogCaptureFixture) -> None:
    dispatcher = AlertDispatcher(None)

    async def start_only() -> None:
        dispatcher.start()

    asyncio.run(start_only())
    # The loop is closed now; a thread emitting into it must get a log line, not an exception.
    worker = threading.Thread(target=dispatcher.emit, args=(ALERT,))
    worker.start()
    worker.join()
    assert "could not queue spend alert" in caplog.text
