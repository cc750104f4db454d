"""Shared fixtures: a fake provider on loopback, Tollgate apps built from config text, canned bodies."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from proxy.app import create_app
from proxy.config import Config, parse_config
from proxy.recording.store import Store, engine_url
from tests.fakeprovider import Canned, FakeProvider, ServerThread

POSTGRES_URL = os.environ.get("TOLLGATE_TEST_POSTGRES_URL")


def chat_completion(
    content: str = "Hello!",
    model: str = "gpt-4o-mini-2024-07-18",
    prompt_tokens: int = 12,
    completion_tokens: int = 5,
    cached_tokens: int = 0,
    reasoning_tokens: int = 0,
    service_tier: str | None = "default",
) -> bytes:
    """A chat completion body as OpenAI writes it."""
    return orjson.dumps(
        {
            "id": "chatcmpl-abc123",
            "object": "chat.completion",
            "created": 1732550400,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content, "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
                "prompt_tokens_details": {"cached_tokens": cached_tokens, "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": reasoning_tokens, "audio_tokens": 0},
            },
            "service_tier": service_tier,
            "system_fingerprint": "fp_0123456789",
        },
        option=orjson.OPT_INDENT_2,
    )


def chat_chunks(
    words: tuple[str, ...] = ("Hel", "lo", "!"),
    model: str = "gpt-4o-mini-2024-07-18",
    prompt_tokens: int = 12,
    completion_tokens: int = 3,
    cached_tokens: int = 0,
    include_usage: bool = True,
) -> tuple[bytes, ...]:
    """A chat completion stream as OpenAI sends it: one SSE event per chunk, ending in ``data: [DONE]``.

    With ``include_usage``, each chunk carries ``"usage":null`` and a last usage-only chunk follows.
    """

    def event(choices: list[dict[str, Any]], usage: Any = None) -> bytes:
        chunk: dict[str, Any] = {
            "id": "chatcmpl-abc123",
            "object": "chat.completion.chunk",
            "created": 1732550400,
            "model": model,
            "system_fingerprint": "fp_0123456789",
            "choices": choices,
        }
        if include_usage:
            chunk["usage"] = usage
        return b"data: " + orjson.dumps(chunk) + b"\n\n"

    events = [event([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])]
    events += [event([{"index": 0, "delta": {"content": w}, "finish_reason": None}]) for w in words]
    events.append(event([{"index": 0, "delta": {}, "finish_reason": "stop"}]))
    if include_usage:
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": cached_tokens, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
        }
        events.append(event([], usage))
    events.append(b"data: [DONE]\n\n")
    return tuple(events)


def sse(chunks: tuple[bytes, ...], **options: Any) -> Canned:
    return Canned(headers=((b"content-type", b"text/event-stream; charset=utf-8"),), chunks=chunks, **options)


def json_answer(body: bytes, status: int = 200, **options: Any) -> Canned:
    return Canned(status=status, body=body, headers=((b"content-type", b"application/json"),), **options)


@pytest.fixture(scope="session")
def _provider_server() -> Iterator[FakeProvider]:
    provider = FakeProvider()
    with ServerThread(provider) as server:
        provider.port = server.port
        yield provider


@pytest.fixture
def provider(_provider_server: FakeProvider) -> Iterator[FakeProvider]:
    """The fake provider, emptied for each test."""
    _provider_server.reset()
    yield _provider_server
    _provider_server.reset()


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'tollgate.db'}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A URL to a fresh schema of the test PostgreSQL server, dropped afterwards."""
    if not POSTGRES_URL:
        pytest.skip(
            "PostgreSQL tests need $TOLLGATE_TEST_POSTGRES_URL (e.g. postgresql://postgres@127.0.0.1:5432/test)"
        )
    schema = f"tollgate_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(engine_url(POSTGRES_URL))
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    separator = "&" if "?" in POSTGRES_URL else "?"
    try:
        yield f"{POSTGRES_URL}{separator}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture
def own_database() -> Iterator[str]:
    """A PostgreSQL database of this test's own, so that it can be taken away and given back."""
    if not POSTGRES_URL:
        pytest.skip(
            "PostgreSQL tests need $TOLLGATE_TEST_POSTGRES_URL (e.g. postgresql://postgres@127.0.0.1:5432/test)"
        )
    name = f"tollgate_fault_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(engine_url(POSTGRES_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    try:
        yield POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true"))
            conn.execute(sa.text(f"DROP DATABASE {name} WITH (FORCE)"))
        admin.dispose()


def database_available(url: str, available: bool) -> None:
    """Let connections into a database made by ``own_database``, or keep them out and end those open."""
    name = url.rsplit("/", 1)[1]
    admin = sa.create_engine(engine_url(url.rsplit("/", 1)[0] + "/postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"ALTER DATABASE {name} ALLOW_CONNECTIONS {'true' if available else 'false'}"))
        if not available:
            conn.execute(sa.text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"))
    admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each database engine Tollgate supports, for tests that must hold on both."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'tollgate.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def store(any_db_url: str) -> Iterator[Store]:
    """A store on each database engine, upgraded to the newest schema."""
    store = Store(any_db_url)
    store.create_tables()
    yield store
    store.dispose()


def journal_dir(db_url: str) -> str:
    """A journal folder beside a test's SQLite file (or a fresh temporary one for PostgreSQL)."""
    if db_url.startswith("sqlite:///"):
        return str(Path(db_url.removeprefix("sqlite:///")).parent / "journal")
    import tempfile

    return tempfile.mkdtemp(prefix="tollgate-journal-")


def make_config(provider: FakeProvider, db_url: str, extra: str = "", provider_extra: str = "") -> Config:
    """A config whose one provider is the fake, plus ``extra`` TOML."""
    text = f"""
{extra}

[database]
url = "{db_url}"

[recorder]
flush_interval = 0.01
journal_dir = "{journal_dir(db_url)}"

[[providers]]
name = "fake"
base_url = "{provider.base_url}"
models = ["gpt-*", "text-embedding-*", "o*", "my-*", "metered-*"]
retries = 1
{provider_extra}
"""
    return parse_config(text, "test-config.toml")


class Tollgate:
    """A running Tollgate app (lifespan on) and a way to read what it recorded."""

    def __init__(self, client: TestClient, config: Config) -> None:
        self.client = client
        self.config = config
        self.store = Store(config.database.url)

    def rows(self, expected: int = 1) -> list[dict[str, Any]]:
        """Every recorded row, once at least ``expected`` are written (a stream may still be finishing)."""
        from proxy.recording.tables import USAGE_TABLE

        deadline = time.monotonic() + 5
        while True:
            self.flush()
            with self.store.engine.connect() as conn:
                query = USAGE_TABLE.select().order_by(USAGE_TABLE.c.started_at)
                rows = [dict(r._mapping) for r in conn.execute(query)]
            if len(rows) >= expected or time.monotonic() > deadline:
                return rows
            time.sleep(0.01)

    def flush(self) -> None:
        recorder = self.client.app_state["recorder"]
        portal = self.client.portal
        assert portal is not None
        portal.call(recorder.flush)


@pytest.fixture
def tollgate_factory(provider: FakeProvider, db_url: str) -> Iterator[Any]:
    opened: list[TestClient] = []

    def open_tollgate(extra: str = "", provider_extra: str = "") -> Tollgate:
        config = make_config(provider, db_url, extra, provider_extra)
        client = TestClient(create_app(config), base_url="http://tollgate.test")
        client.__enter__()
        opened.append(client)
        return Tollgate(client, config)

    yield open_tollgate
    for client in opened:
        client.__exit__(None, None, None)


@pytest.fixture
def tollgate(tollgate_factory: Any) -> Tollgate:
    result: Tollgate = tollgate_factory()
    return result
