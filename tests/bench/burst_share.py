"""Share of a spend limit's budget used by a burst, with the byte bound, tight bounds and clamp; and the
cost of the tight bound on the refusal path. One worker, then ``serve --workers 2`` sharing SQLite; the
fake provider on loopback.

    PYTHONPATH=. python -m tests.bench.burst_share
"""

from __future__ import annotations

import tempfile
import time
from decimal import Decimal
from pathlib import Path

import orjson

from pricing import Catalog
from proxy.app import create_app
from proxy.config import parse_config
from proxy.dialects.openai_requests import read_request
from proxy.limits.tighten import bound_of, count_prompt
from tests.fakeprovider import FakeProvider, ServerThread, free_port
from tests.limits.test_burst_bounds import CHAT, FITS, REQUESTS, _answer, _body, _cost, _limits, burst, serve, stop
from tests.limits.test_limits import _config_text


def _run(
    provider: FakeProvider, folder: Path, name: str, limit: Decimal, clamp: bool, body: bytes, workers: int
) -> str:
    db_url = f"sqlite:///{folder / (name.replace(' ', '-') + f'-{workers}.db')}"
    provider.reset()
    provider.answer_computed("POST", CHAT, _answer)
    text = _config_text(provider, db_url, _limits(limit, clamp))
    if workers == 1:
        with ServerThread(create_app(parse_config(text))) as server:
            result = burst([f"http://127.0.0.1:{server.port}"], db_url, body)
    else:
        config, port = folder / f"{name.replace(' ', '-')}.toml", free_port()
        config.write_text(text)
        process = serve(config, port, ["--workers", str(workers)])
        try:
            result = burst([f"http://127.0.0.1:{port}"], db_url, body)
        finally:
            stop(process)
    return (
        f"{workers} worker{'s' if workers > 1 else ' '} {name:<14} admitted {result.admitted:>3} of {REQUESTS} "
        f"({result.clamped} clamped), spent ${result.spent} of ${limit}: {result.spent / limit:.0%} of the budget"
    )


async def _tight_cost_us(body: bytes) -> float:
    card = Catalog.load(parse_config(_limits(Decimal(1), False)).pricing_models).lookup("gpt-4o-mini")
    assert card is not None
    payload = orjson.loads(body)
    facts = read_request(payload)
    prompt = await count_prompt("openai", card, facts, payload, len(body), CHAT, 3000, None)  # loads the encoding
    started, rounds = time.perf_counter(), 500
    for _ in range(rounds):
        prompt = await count_prompt("openai", card, facts, payload, len(body), CHAT, 3000, None)
        assert prompt is not None
        bound_of(prompt, facts, embeddings=False)
    return (time.perf_counter() - started) / rounds * 1e6


def main() -> None:
    import asyncio

    provider = FakeProvider()
    with ServerThread(provider) as server, tempfile.TemporaryDirectory() as folder:
        provider.port = server.port
        tight_limit = _cost(100) * FITS
        clamp_limit = _cost(1000) * 10 + _cost(100) * 3
        for workers in (1, 2):
            runs = [
                ("byte bound", tight_limit, False, _body("metered-model", 100)),
                ("tight bound", tight_limit, False, _body("gpt-4o-mini", 100)),
                ("byte, no clamp", clamp_limit, False, _body("metered-model", 1000)),
                ("clamp", clamp_limit, True, _body("gpt-4o-mini", 1000)),
            ]
            for name, limit, clamp, body in runs:
                print(_run(provider, Path(folder), name, limit, clamp, body, workers))
    body = _body("gpt-4o-mini", 100)
    print(f"tight bound of a {len(body):,}-byte chat request: {asyncio.run(_tight_cost_us(body)):.0f} µs")


if __name__ == "__main__":
    main()
