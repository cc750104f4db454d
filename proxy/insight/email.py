"""Alert emails: one plain-text message per alert, sent over SMTP off the request path.

``EmailOutbox.submit`` never blocks: each message is sent by its own task (a few at a
time), through the standard library's ``smtplib`` on a worker thread, and retried with
tenacity while the server is unreachable or answers with a temporary (4xx) refusal. A
message that still fails is logged and given up; it never holds up or drops another.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import smtplib
import ssl
from collections.abc import Callable, Mapping, Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from urllib.parse import urlencode

from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential, wait_random

from proxy.config import EmailConfig, TeamConfig
from proxy.limits.alerts import Notice

logger = logging.getLogger("tollgate.alerts.email")

Teams = Callable[[], Mapping[str, TeamConfig]]

_DRILL_DOWNS = frozenset({"user", "team", "agent", "thread"})  # the scopes the dashboard drills down to


def recipients_for(notice: Notice, to: Sequence[str], teams: Mapping[str, TeamConfig]) -> list[str]:
    """Who gets ``notice``: every address of ``to``, and the ``alert_emails`` of the team it concerns.

    A user's alert also goes to the teams that list the user among their members.
    """
    found = list(to)
    for team_id, team in sorted(teams.items()):
        concerned = (notice.scope == "team" and notice.scope_id == team_id) or (
            notice.scope == "user" and notice.scope_id in team.members
        )
        if concerned:
            found += team.alert_emails
    return list(dict.fromkeys(found))  # each address once, in order


def dashboard_link(base_url: str, notice: Notice) -> str:
    """The dashboard view of the notice's subject, e.g. ``https://t.example/dashboard#user=alice``.

    The page reads its view from the fragment (which browsers never send, so the link holds nothing
    secret either way): a user's, team's, agent's or thread's drill-down. Other scopes (a key, the
    global limit) open the board itself.
    """
    base = base_url.rstrip("/")
    if notice.scope not in _DRILL_DOWNS or not notice.scope_id:
        return base
    return f"{base}#{urlencode({notice.scope: notice.scope_id})}"


def compose_email(notice: Notice, settings: EmailConfig, recipients: Sequence[str]) -> EmailMessage:
    """The message for ``notice``: its subject, then one line per fact, the dashboard link and the JSON fields."""
    message = EmailMessage()
    message["Subject"] = notice.subject()
    message["From"] = settings.sender
    message["To"] = ", ".join(recipients)
    message["Date"] = formatdate(notice.time.timestamp(), usegmt=True)
    message["Message-ID"] = make_msgid(domain=settings.sender.rpartition("@")[2])
    facts = notice.facts()
    if settings.dashboard_url:
        facts.append(("Dashboard", dashboard_link(settings.dashboard_url, notice)))
    width = max(len(label) for label, _ in facts) + 1
    lines = [notice.describe(), ""]
    lines += [f"{label + ':':<{width}} {text}" for label, text in facts]
    lines += ["", "The alert as JSON fields:"]
    lines += [f"  {key}: {value}" for key, value in notice.as_json().items()]
    lines += ["", "-- ", "Sent by Tollgate. Recipients are set in [alerts.email] to and [teams.<id>] alert_emails."]
    message.set_content("\n".join(lines) + "\n")
    return message


def _temporary(error: BaseException) -> bool:
    """Worth another try: no connection, a timeout, or a 4xx answer; a 5xx answer is final."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return any(code < 500 for code, _ in error.recipients.values())
    if isinstance(error, smtplib.SMTPResponseException):
        return bool(error.smtp_code < 500)
    return isinstance(error, (smtplib.SMTPException, OSError))


class EmailOutbox:
    """Sends each submitted notice as an email to its recipients; ``start`` in the loop, ``close`` at shutdown."""

    def __init__(
        self,
        settings: EmailConfig,
        teams: Teams = dict,
        *,
        retry_wait: float = 1.0,
        concurrency: int = 4,
    ) -> None:
        self._settings = settings
        self._teams = teams
        self._retry_wait = retry_wait
        self._password = os.environ.get(settings.password_env) if settings.password_env else None
        if settings.password_env and self._password is None:
            logger.error(
                "alerts.email.password_env names $%s, which is not set: emails will be sent without a password",
                settings.password_env,
            )
        self._slots = asyncio.Semaphore(concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        self.sent = 0
        self.failed = 0

    def submit(self, notice: Notice) -> None:
        """Start sending ``notice``; never blocks. Called on the event loop (the dispatcher hops there first)."""
        recipients = recipients_for(notice, self._settings.to, self._teams())
        if not recipients:
            return
        message = compose_email(notice, self._settings, recipients)
        task = asyncio.get_running_loop().create_task(self._send(message, notice), name="tollgate-alert-email")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Wait for the emails under way, at most ``timeout * attempts`` seconds, then give up the rest."""
        if not self._tasks:
            return
        pending = set(self._tasks)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._settings.timeout * self._settings.attempts):
                await asyncio.wait(pending)
        left = [task for task in pending if not task.done()]
        for task in left:
            task.cancel()
        if left:
            await asyncio.wait(left)
            self.failed += len(left)
            logger.error("shutdown gave up %d alert emails still being sent", len(left))

    async def _send(self, message: EmailMessage, notice: Notice) -> None:
        wait = self._retry_wait
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._settings.attempts),
            # Not wait_exponential_jitter: its first argument was renamed across the tenacity versions we allow.
            wait=wait_exponential(multiplier=wait, max=wait * 60) + wait_random(0, wait),
            retry=retry_if_exception(_temporary),
            reraise=True,
        )
        async with self._slots:
            try:
                async for attempt in retrying:
                    with attempt:
                        if attempt.retry_state.attempt_number > 1:
                            logger.info("retrying the alert email for %s %s", notice.scope, notice.scope_id)
                        await asyncio.to_thread(self._deliver, message)
            except Exception as exc:
                self.failed += 1
                logger.error(
                    "alert email for %s %s to %s failed (%s: %s); given up",
                    notice.scope,
                    notice.scope_id,
                    message["To"],
                    type(exc).__name__,
                    _first_line(exc),
                )
                return
        self.sent += 1

    def _deliver(self, message: EmailMessage) -> None:
        """One attempt, on a worker thread: connect, STARTTLS, log in, send, quit."""
        settings = self._settings
        assert settings.smtp_host is not None
        with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=settings.timeout) as smtp:
            if settings.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if settings.username:
                smtp.login(settings.username, self._password or "")
            smtp.send_message(message)


def _first_line(error: BaseException) -> str:
    text = str(error)
    return text.splitlines()[0] if text else ""
