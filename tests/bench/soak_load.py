"""The soak's load: a planned mix of requests, sent with bounded concurrency, each outcome kept.

Every request is planned before the run starts (its kind and its user), so the
mix is exact and the same for a given seed. For each one the driver keeps what
the client saw: the status, Tollgate's ``X-Tollgate-Request-Id``, whether the
whole response arrived, whether the client walked away on purpose, and when.

Requests from a given index on can be held back until an event is set: the soak
uses this to make sure its faults happen while load is still running, and to
send nothing while Tollgate is being restarted.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass

import httpx
import orjson

from tests.bench.soak_provider import DROP, ERROR_500, JSON, SLOW, SSE

CHAT = "/v1/chat/completions"
ABORT = "abort"  # a "slow" stream that the client leaves after the first chunk
MAX_TOKENS = 50  # keeps each request's cost bound, and so the leases near a limit, small

# Shares of the mix, from the issue; the rest is split evenly between JSON and SSE answers.
SHARE_ERROR_500 = 0.05
SHARE_DROP = 0.02
SHARE_ABORT = 0.05


@dataclass(frozen=True, slots=True)
class Plan:
    index: int
    kind: str  # json, sse, error500, drop or abort
    user: str


@dataclass(slots=True)
class Outcome:
    plan: Plan
    started: float  # time.monotonic() when sent
    ended: float = 0.0
    status: int | None = None
    request_id: str | None = None
    complete: bool = False  # the whole response arrived
    aborted: bool = False  # the client left after the first chunk, on purpose
    failure: str | None = None  # what went wrong on the client's side, if anything

    @property
    def answered(self) -> bool:
        """Tollgate answered: the whole response arrived, or the client left it on purpose."""
        return self.status is not None and (self.complete or self.aborted)


def plan_requests(count: int, users: Sequence[str], seed: int = 20261125) -> list[Plan]:
    """``count`` requests in a shuffled, exact mix; users take turns."""
    special = {ERROR_500: SHARE_ERROR_500, DROP: SHARE_DROP, ABORT: SHARE_ABORT}
    kinds = [kind for kind, share in special.items() for _ in range(round(count * share))]
    rest = count - len(kinds)
    kinds += [JSON] * (rest // 2) + [SSE] * (rest - rest // 2)
    random.Random(seed).shuffle(kinds)
    return [Plan(i, kind, users[i % len(users)]) for i, kind in enumerate(kinds)]


def _body(kind: str) -> bytes:
    stream = kind in (SSE, DROP, ABORT)
    return orjson.dumps(
        {
            "model": "gpt-4o-mini",
            "max_tokens": MAX_TOKENS,
            "stream": stream,
            "messages": [{"role": "user", "content": "Say hello to the soak."}],
        }
    )


_CONNECTIONS_PER_CLIENT = 4
_BODIES = {kind: _body(kind) for kind in (JSON, SSE, ERROR_500, DROP, ABORT)}
_PROVIDER_KIND = {ABORT: SLOW}


class LoadDriver:
    def __init__(self, base_url: str, plans: Sequence[Plan], concurrency: int, timeout: float) -> None:
        self.base_url = base_url
        self.plans = plans
        self.concurrency = concurrency
        self.timeout = timeout
        self.outcomes: list[Outcome] = []
        self.started = 0  # requests sent so far
        self.open = asyncio.Event()  # cleared while Tollgate is down: nothing new is sent
        self.open.set()
        self._holds: list[tuple[int, asyncio.Event]] = []
        self._next = 0

    def hold_from(self, index: int) -> asyncio.Event:
        """Requests from ``index`` on wait until the returned event is set."""
        event = asyncio.Event()
        self._holds.append((index, event))
        return event

    async def reached(self, count: int) -> None:
        """Return once ``count`` requests have been sent."""
        while self.started < count:
            await asyncio.sleep(0.01)

    async def run(self) -> list[Outcome]:
        # Several small clients rather than one big one: httpcore's pool does work per request that grows
        # with its number of connections, and at 64 it costs more CPU than Tollgate itself.
        shards = -(-self.concurrency // _CONNECTIONS_PER_CLIENT)
        async with contextlib.AsyncExitStack() as stack:
            clients = [await stack.enter_async_context(self._client()) for _ in range(shards)]
            await asyncio.gather(*(self._worker(clients[i % shards]) for i in range(self.concurrency)))
        return self.outcomes

    def _client(self) -> httpx.AsyncClient:
        limits = httpx.Limits(
            max_connections=_CONNECTIONS_PER_CLIENT, max_keepalive_connections=_CONNECTIONS_PER_CLIENT
        )
        return httpx.AsyncClient(base_url=self.base_url, limits=limits, timeout=self.timeout)

    async def _worker(self, client: httpx.AsyncClient) -> None:
        while self._next < len(self.plans):
            plan = self.plans[self._next]
            self._next += 1
            for index, event in self._holds:
                if plan.index >= index:
                    await event.wait()
            await self.open.wait()
            self.started += 1
            self.outcomes.append(await _send(client, plan))


async def _send(client: httpx.AsyncClient, plan: Plan) -> Outcome:
    outcome = Outcome(plan, started=time.monotonic())
    headers = {
        "content-type": "application/json",
        "x-user-id": plan.user,
        "x-soak-kind": _PROVIDER_KIND.get(plan.kind, plan.kind),
    }
    try:
        async with client.stream("POST", CHAT, content=_BODIES[plan.kind], headers=headers) as response:
            outcome.status = response.status_code
            outcome.request_id = response.headers.get("x-tollgate-request-id")
            if plan.kind == ABORT and response.status_code == 200:
                async for _ in response.aiter_raw():
                    break
                # Leaving the block with the body unread closes the connection: the client is gone.
                outcome.aborted = True
            else:
                await response.aread()
                outcome.complete = True
    except (httpx.HTTPError, AttributeError) as exc:
        # AttributeError: httpcore, asking a socket the kill just closed for its peer, finds no socket.
        outcome.failure = type(exc).__name__
    outcome.ended = time.monotonic()
    return outcome
