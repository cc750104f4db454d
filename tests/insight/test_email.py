"""Alert emails reach a real SMTP server on loopback, with a body a person can act on."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from proxy.config import EmailConfig, TeamConfig
from proxy.insight.email import EmailOutbox, recipients_for
from proxy.limits.alerts import Alert, AlertDispatcher
from tests.insight.smtp import Inbox, smtp_server

ALERT = Alert(
    scope="user",
    scope_id="alice",
    window="day",
    window_label="2026-11-25",
    spent_usd=Decimal("8.0000000001"),
    limit_usd=Decimal("10"),
    threshold=Decimal("0.8"),
    action="block",
    time=datetime(2026, 11, 25, 14, 3, 7, tzinfo=UTC),
    window_start=datetime(2026, 11, 25, tzinfo=UTC),
)
TEAMS = {"research": TeamConfig(members=("alice",), alert_emails=("lead@example.com",))}


def _settings(port: int, **changes: Any) -> EmailConfig:
    base: dict[str, Any] = {
        "smtp_host": "127.0.0.1",
        "smtp_port": port,
        "starttls": False,
        "from": "tollgate@example.com",
        "to": ["ops@example.com"],
        "dashboard_url": "https://tollgate.example.com/dashboard",
        "timeout": 5.0,
        "attempts": 3,
    }
    return EmailConfig.model_validate({**base, **changes})


async def _deliver(settings: EmailConfig, *alerts: Alert) -> EmailOutbox:
    outbox = EmailOutbox(settings, lambda: TEAMS, retry_wait=0.01)
    dispatcher = AlertDispatcher(None, outbox=outbox)
    dispatcher.start()
    for alert in alerts:
        dispatcher.emit(alert)
    await dispatcher.close()
    await outbox.close()
    return outbox


@pytest.mark.anyio
async def test_an_alert_arrives_as_an_email_a_person_can_act_on() -> None:
    inbox = Inbox()
    with smtp_server(inbox) as port:
        outbox = await _deliver(_settings(port), ALERT)
    assert outbox.sent == 1 and len(inbox.messages) == 1
    message = inbox.messages[0]
    assert message["Subject"] == "Tollgate: user alice reached 80% of its day (2026-11-25) limit"
    assert message["From"] == "tollgate@example.com"
    assert inbox.recipients == [["ops@example.com", "lead@example.com"]]  # the team of alice too
    body = message.get_payload(decode=True).decode()  # type: ignore[union-attr]
    assert "Who:        user alice" in body
    assert "How much:   $8.00 spent of $10.00 in the day 2026-11-25" in body
    assert "Since when: window started 2026-11-25 00:00 UTC; alert raised 2026-11-25 14:03 UTC" in body
    assert "requests that would pass the limit are refused with a 429" in body
    assert "Dashboard:  https://tollgate.example.com/dashboard#user=alice" in body
    assert "spent_usd: 8.0000000001" in body  # the exact figure, beside the rounded one


@pytest.mark.anyio
async def test_a_server_that_refuses_then_accepts_gets_the_email() -> None:
    inbox = Inbox(refuse=2)
    with smtp_server(inbox) as port:
        outbox = await _deliver(_settings(port), ALERT)
    assert inbox.attempts == 3
    assert len(inbox.messages) == 1 and outbox.sent == 1 and outbox.failed == 0


@pytest.mark.anyio
async def test_a_failed_email_is_logged_and_others_still_go(caplog: pytest.LogCaptureFixture) -> None:
    inbox = Inbox(refuse=3)  # the first email's three attempts are all refused
    bob = dataclasses.replace(ALERT, scope_id="bob")
    with smtp_server(inbox) as port:
        outbox = EmailOutbox(_settings(port), lambda: TEAMS, retry_wait=0.01, concurrency=1)
        dispatcher = AlertDispatcher(None, outbox=outbox)
        dispatcher.start()
        dispatcher.emit(ALERT)
        dispatcher.emit(bob)
        await dispatcher.close()
        await outbox.close()
    assert outbox.failed == 1 and outbox.sent == 1
    assert [m["Subject"].split()[2] for m in inbox.messages] == ["bob"]
    assert "alert email for user alice to ops@example.com, lead@example.com failed" in caplog.text
    assert dispatcher.delivered == 2  # the other destinations were not held up


@pytest.mark.anyio
async def test_an_unreachable_server_never_blocks_the_dispatcher(caplog: pytest.LogCaptureFixture) -> None:
    with smtp_server(Inbox()) as port:
        pass  # the port is closed again: every connection is refused
    outbox = EmailOutbox(_settings(port, attempts=2), retry_wait=0.01)
    dispatcher = AlertDispatcher(None, outbox=outbox)
    dispatcher.start()
    dispatcher.emit(ALERT)
    await asyncio.sleep(0)
    await dispatcher.close()
    assert dispatcher.delivered == 1
    with caplog.at_level(logging.ERROR):
        await outbox.close()
    assert outbox.failed == 1 and "ConnectionRefusedError" in caplog.text


def test_recipients_are_the_list_and_the_team_concerned() -> None:
    teams = {**TEAMS, "ops": TeamConfig(members=("bob",), alert_emails=("ops-lead@example.com",))}
    team_alert = dataclasses.replace(ALERT, scope="team", scope_id="ops")
    assert recipients_for(ALERT, ["a@example.com"], teams) == ["a@example.com", "lead@example.com"]
    assert recipients_for(team_alert, ["a@example.com"], teams) == ["a@example.com", "ops-lead@example.com"]
    assert recipients_for(ALERT, [], {}) == []
