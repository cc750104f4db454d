"""A burst against rate limits across Tollgate processes sharing one database: how far past a limit it gets.

Starts ``--instances`` ``tollgate serve`` processes (each with ``--workers``) on one database, a fake
provider on loopback that counts the requests it has in flight, and fires ``--requests`` concurrent
requests spread over the instances, twice:

- against ``requests_per_minute``: admitted requests versus the limit (the overshoot is their difference);
- against ``tokens_per_minute``, each request holding its bound (its body's bytes and ``max_tokens``) and
  then using the 17 tokens the provider reports: the tokens of the admitted requests versus the limit;
- against ``max_concurrent``, with a provider that answers in 0.3 s: the most requests the provider had
  in flight at once versus the limit; then, once those have ended, a second wave of twice the limit
  (tried a few times, half a second apart), which shows that the slots came back.

Run it as ``python -m tests.limits.rate_burst --db sqlite|postgres [--instances 2] [--workers 1]``
(PostgreSQL from ``$TOLLGATE_TEST_POSTGRES_URL``, in a schema of its own). The burst tests call ``run``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import sqlalchemy as sa

from proxy.recording.store import engine_url
from tests.conftest import chat_completion
from tests.fakeprovider import Message, Scope, ServerThread, free_port

CHAT = "/v1/chat/completions"
BODY = b'{"model": "gpt-4o-mini", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}'
_ANSWER = chat_completion()
USED_TOKENS = 12 + 5  # what chat_completion() reports
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class CountingProvider:
    """Answers every request with a chat completion after ``delay`` seconds, counting how many it has at once."""

    def __init__(self) -> None:
        self.delay = 0.0
        self.in_flight = 0
        self.peak = 0
        self.received = 0

    def reset(self, delay: float) -> None:
        self.delay, self.in_flight, self.peak, self.received = delay, 0, 0, 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        self.received += 1
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            await send(
                {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}
            )
            await send({"type": "http.response.body", "body": _ANSWER})
        finally:
            self.in_flight -= 1


@dataclass(frozen=True)
class Burst:
    limit: int
    requests: int
    admitted: int
    refused: int
    seen: int
    """Requests the provider received (rpm), or the most it had in flight at once (concurrency)."""
    seconds: float
    again: int = 0
    """Requests admitted by a second wave once the first had ended (concurrency only)."""

    @property
    def overshoot(self) -> int:
        return max(self.seen - self.limit, 0)


@contextlib.contextmanager
def fleet(config_text: str, instances: int, workers: int) -> Iterator[list[str]]:
    """``instances`` ``tollgate serve`` processes on ``config_text``; yields their base URLs."""
    with tempfile.TemporaryDirectory(prefix="tollgate-burst-") as folder:
        path = Path(folder) / "tollgate.toml"
        path.write_text(config_text.replace("JOURNAL", str(Path(folder) / "journal")))
        ports = [free_port() for _ in range(instances)]
        command = [sys.executable, "-m", "proxy.cli", "serve", "--config", str(path), "--workers", str(workers)]
        env = {**os.environ, "TOLLGATE_LOG_LEVEL": "warning"}
        processes = [subprocess.Popen([*command, "--port", str(port)], env=env) for port in ports]
        try:
            for port, process in zip(ports, processes, strict=True):
                _wait_ready(port, process)
            yield [f"http://127.0.0.1:{port}" for port in ports]
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                process.wait(timeout=30)


def _wait_ready(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise RuntimeError("tollgate serve exited")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                return
        if time.monotonic() > deadline:
            raise RuntimeError("tollgate serve did not start")
        time.sleep(0.05)


def _second_wave(urls: list[str], count: int, user: str) -> int:
    """Requests admitted by the first of a few waves, half a second apart, that admits any.

    The client sees the first wave end a moment before the proxy has settled its last requests (on a
    loaded machine, more than that moment), so one wave fired at once may find every slot still held.
    Slots that never come back (held in the database for no request) stay held for the lease's 30 s.
    """
    for _ in range(10):
        time.sleep(0.5)
        admitted = asyncio.run(_fire(urls, count, user)).count(200)
        if admitted:
            return admitted
    return 0


async def _fire(urls: list[str], count: int, user: str) -> list[int]:
    limits = httpx.Limits(max_connections=count)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:
        calls = [
            client.post(urls[i % len(urls)] + CHAT, content=BODY, headers={"x-user-id": user}) for i in range(count)
        ]
        return [response.status_code for response in await asyncio.gather(*calls)]


def _inside_one_minute(seconds: float) -> None:
    """Wait, if need be, so that the next ``seconds`` fall inside one calendar minute."""
    left = 60 - time.time() % 60
    if left < seconds:
        time.sleep(left + 0.05)


def config_for(provider_url: str, db_url: str, rpm: int, concurrent: int, tpm: int) -> str:
    return (
        f'[database]\nurl = "{db_url}"\n[recorder]\nflush_interval = 0.01\njournal_dir = "JOURNAL"\n'
        f'[[providers]]\nname = "fake"\nbase_url = "{provider_url}"\nmodels = ["*"]\nretries = 0\n'
        f'[[rate_limits]]\nscope = "user"\nid = "rpm-user"\nrequests_per_minute = {rpm}\n'
        f'[[rate_limits]]\nscope = "user"\nid = "busy-user"\nmax_concurrent = {concurrent}\n'
        f'[[rate_limits]]\nscope = "user"\nid = "tpm-user"\ntokens_per_minute = {tpm}\n'
    )


def run(
    db_url: str, instances: int, workers: int, requests: int, rpm: int, concurrent: int, tpm: int
) -> tuple[Burst, Burst, Burst]:
    """(the requests-per-minute burst, the concurrency burst, the tokens-per-minute burst), against one fleet."""
    provider = CountingProvider()
    with ServerThread(provider) as server:
        config = config_for(f"http://127.0.0.1:{server.port}/v1", db_url, rpm, concurrent, tpm)
        with fleet(config, instances, workers) as urls:
            asyncio.run(_fire(urls, instances * workers * 2, "warm-up"))  # every worker has met its database
            results = []
            for user, limit, delay in (("rpm-user", rpm, 0.0), ("busy-user", concurrent, 0.3), ("tpm-user", tpm, 0.0)):
                provider.reset(delay)
                _inside_one_minute(15)
                started = time.monotonic()
                statuses = asyncio.run(_fire(urls, requests, user))
                seconds = time.monotonic() - started
                seen = provider.peak if user == "busy-user" else provider.received
                if user == "tpm-user":
                    seen *= USED_TOKENS
                admitted, again = statuses.count(200), 0
                if user == "busy-user":
                    again = _second_wave(urls, 2 * concurrent, user)
                    seen = provider.peak
                results.append(Burst(limit, requests, admitted, statuses.count(429), seen, seconds, again))
    return results[0], results[1], results[2]


@contextlib.contextmanager
def postgres_schema(url: str) -> Iterator[str]:
    """A URL to a schema of its own on the PostgreSQL server at ``url``, dropped afterwards."""
    schema = f"tollgate_burst_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(engine_url(url))
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    separator = "&" if "?" in url else "?"
    try:
        yield f"{url}{separator}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--instances", type=int, default=2)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--rpm", type=int, default=100)
    parser.add_argument("--concurrent", type=int, default=10)
    parser.add_argument("--tpm", type=int, default=2000)
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        if args.db == "postgres":
            db_url = stack.enter_context(postgres_schema(os.environ["TOLLGATE_TEST_POSTGRES_URL"]))
        else:
            db_url = f"sqlite:///{stack.enter_context(tempfile.TemporaryDirectory())}/burst.db"
        rpm, busy, tpm = run(db_url, args.instances, args.workers, args.requests, args.rpm, args.concurrent, args.tpm)
    print(f"{args.instances} instances x {args.workers} workers on {args.db}, {args.requests} concurrent requests")
    print(
        f"requests_per_minute = {rpm.limit}: {rpm.admitted} admitted, {rpm.refused} refused, "
        f"{rpm.seen} reached the provider, overshoot {rpm.overshoot} ({rpm.seconds:.2f} s)"
    )
    print(
        f"max_concurrent = {busy.limit}: {busy.admitted} admitted, {busy.refused} refused, "
        f"at most {busy.seen} in flight at the provider, overshoot {busy.overshoot} ({busy.seconds:.2f} s); "
        f"{busy.again} of a second wave of {2 * busy.limit} admitted once the first had ended"
    )
    print(
        f"tokens_per_minute = {tpm.limit} (bound {len(BODY) + 5} a request, {USED_TOKENS} used): {tpm.admitted} "
        f"admitted, {tpm.refused} refused, {tpm.seen} tokens used, overshoot {tpm.overshoot} ({tpm.seconds:.2f} s)"
    )


if __name__ == "__main__":
    main()
