"""Streams cut short by the provider or the client still end in exactly one usage row."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from proxy.app import create_app
from proxy.keys import hash_key
from proxy.recording.store import Store
from proxy.recording.tables import USAGE_TABLE
from tests.conftest import Tollgate, chat_chunks, chat_completion, make_config, sse
from tests.fakeprovider import Canned, FakeProvider, ServerThread

CHAT = "/v1/chat/completions"
STREAM = b'{"model": "gpt-4o-mini", "stream": true, "messages": [{"role": "user", "content": "Say hello"}]}'


def test_provider_dropping_the_stream_ends_it_cleanly_with_an_estimate(
    tollgate: Tollgate, provider: FakeProvider
) -> None:
    chunks = chat_chunks(words=("Hello", " there", " friend"), include_usage=True)
    provider.answer("POST", CHAT, sse(chunks, drop_after=3))
    response = tollgate.client.post(CHAT, content=STREAM)
    assert response.status_code == 200
    assert response.content == b"".join(chat_chunks(words=("Hello", " there", " friend"), include_usage=False)[:3])
    [row] = tollgate.rows()
    assert (row["usage_source"], row["error_type"]) == ("estimated", "upstream_unavailable")
    assert row["output_tokens"] == 2  # "Hello there": what the client received
    assert row["input_tokens"] > 0 and row["cost_pico"] > 0


def _rows(db_url: str, expected: int = 1) -> list[dict[str, Any]]:
    store = Store(db_url)
    deadline = time.monotonic() + 10
    try:
        while True:
            with store.engine.connect() as conn:
                rows = [dict(r._mapping) for r in conn.execute(sa.select(USAGE_TABLE))]
            if len(rows) >= expected or time.monotonic() > deadline:
                return rows
            time.sleep(0.05)
    finally:
        store.dispose()


def _leave_after_first_chunk(port: int) -> bytes:
    with httpx.Client() as client, client.stream("POST", f"http://127.0.0.1:{port}{CHAT}", content=STREAM) as r:
        return next(r.iter_raw())


@pytest.mark.parametrize(
    ("mode", "source", "error"), [("drain", "reported", None), ("cancel", "estimated", "client_disconnected")]
)
def test_client_leaving_mid_stream_is_recorded(
    provider: FakeProvider, db_url: str, mode: str, source: str, error: str | None
) -> None:
    chunks = chat_chunks(words=("one", " two", " three", " four"), prompt_tokens=9, completion_tokens=4)
    provider.answer("POST", CHAT, sse(chunks, delay=0.1))
    config = make_config(provider, db_url, f'[server]\non_client_disconnect = "{mode}"\n')
    with ServerThread(create_app(config)) as server:
        assert _leave_after_first_chunk(server.port)
        [row] = _rows(db_url)
        time.sleep(0.3)
    assert (row["usage_source"], row["error_type"]) == (source, error)
    if mode == "drain":
        assert (row["input_tokens"], row["output_tokens"]) == (9, 4)  # the provider's own figures, read to the end


def test_provider_cookies_and_alt_svc_are_not_relayed(tollgate: Tollgate, provider: FakeProvider) -> None:
    headers = ((b"content-type", b"application/json"), (b"set-cookie", b"__cf_bm=x"), (b"alt-svc", b'h3=":443"'))
    provider.answer("POST", CHAT, Canned(body=chat_completion(), headers=headers))
    response = tollgate.client.post(CHAT, content=b'{"model": "gpt-4o-mini", "messages": []}')
    assert "set-cookie" not in response.headers and "alt-svc" not in response.headers


@pytest.mark.parametrize("managed", [True, False])
def test_provider_account_headers_stay_private_under_a_managed_key(
    tollgate_factory: Any, provider: FakeProvider, monkeypatch: pytest.MonkeyPatch, managed: bool
) -> None:
    monkeypatch.setenv("FAKE_PROVIDER_KEY", "sk-provider")
    keys = f'[[keys]]\nname = "k"\nsha256 = "{hash_key("tg-k")}"\n'
    tollgate: Tollgate = tollgate_factory(keys, 'api_key_env = "FAKE_PROVIDER_KEY"')
    headers = ((b"content-type", b"application/json"), (b"openai-organization", b"org-secret"))
    provider.answer("POST", CHAT, Canned(body=chat_completion(), headers=headers))
    key = "tg-k" if managed else "sk-client-own"
    response = tollgate.client.post(
        CHAT, content=b'{"model": "gpt-4o-mini", "messages": []}', headers={"authorization": f"Bearer {key}"}
    )
    assert ("openai-organization" in response.headers) is (not managed)
