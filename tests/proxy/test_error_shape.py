"""Every error Tollgate answers itself has OpenAI's shape and a message a person can act on."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from proxy.app import create_app
from proxy.config import parse_config
from proxy.forward import AiohttpUpstream
from tests.conftest import Tollgate, chat_completion, journal_dir, json_answer, make_config
from tests.fakeprovider import FakeProvider, free_port

CHAT = "/v1/chat/completions"


@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "status", "code"),
    [
        ("POST", CHAT, b"{not json", {}, 400, "invalid_json"),
        ("POST", CHAT, b"[1, 2]", {}, 400, "invalid_json"),
        ("POST", CHAT, b'{"messages": []}', {}, 400, "missing_required_parameter"),
        ("POST", CHAT, b'{"model": "gpt-4o"}', {"content-type": "text/plain"}, 415, "unsupported_media_type"),
        ("POST", CHAT, b'{"model": "unknown-model"}', {}, 404, "model_not_found"),
        ("GET", "/nowhere", b"", {}, 404, "not_found"),
    ],
)
def test_error_bodies_have_the_openai_shape(
    tollgate: Tollgate,
    provider: FakeProvider,
    method: str,
    path: str,
    body: bytes,
    headers: dict[str, str],
    status: int,
    code: str,
) -> None:
    response = tollgate.client.request(method, path, content=body, headers=headers)
    assert response.status_code == status
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == code
    assert len(error["message"]) > 20
    assert provider.requests == []


def test_labels_too_long_for_a_row_are_refused_and_recording_goes_on(provider: FakeProvider, any_db_url: str) -> None:
    """A 300-character user id, or a NUL, would make PostgreSQL refuse the whole batch of rows, again and again."""
    provider.answer("POST", CHAT, json_answer(chat_completion()))
    config = make_config(provider, any_db_url)
    long = "u" * 300
    admin = {"Authorization": "Bearer admin-key"}
    with TestClient(create_app(config, admin_key="admin-key"), base_url="http://tollgate.test") as client:
        tollgate = Tollgate(client, config)
        refused = [
            client.post(CHAT, json={"model": "gpt-4o", "messages": []}, headers={"X-User-Id": long}),
            client.post(CHAT, json={"model": "gpt-4o", "messages": [], "user": long}),
            client.post(CHAT, json={"model": "gpt-" + long, "messages": []}),
            client.get("/v1/files/" + long),
            client.post(CHAT, json={"model": "gpt-4o", "messages": [], "user": "a\x00b"}),
            client.post(CHAT, json={"model": "gpt-4o\x00", "messages": []}),
            client.get("/v1/files/a%00b"),
        ]
        assert [r.status_code for r in refused] == [400, 400, 404, 404, 400, 404, 404]
        assert "NUL" in refused[4].json()["error"]["message"]
        assert client.get("/admin/usage?user=a%00b", headers=admin).status_code == 400
        assert "X-User-Id" in refused[0].json()["error"]["message"]
        assert "300" in refused[1].json()["error"]["message"]
        assert client.post(CHAT, json={"model": "gpt-4o", "messages": []}).status_code == 200
        rows = tollgate.rows(expected=8)
        tollgate.store.dispose()
    assert [r["status"] for r in rows] == [400, 400, 404, 404, 400, 404, 404, 200]
    assert provider.requests and len(provider.requests) == 1


def test_body_over_the_limit_is_refused_with_413(tollgate_factory: object, provider: FakeProvider) -> None:
    tollgate: Tollgate = tollgate_factory("[server]\nmax_body_bytes = 1000\n")  # type: ignore[operator]
    response = tollgate.client.post(CHAT, content=b'{"model": "gpt-4o", "x": "' + b"a" * 2000 + b'"}')
    assert response.status_code == 413
    assert "1000" in response.json()["error"]["message"]
    assert provider.requests == []


def test_unreachable_provider_is_a_502_after_retries(db_url: str) -> None:
    dead = free_port()
    provider = f'[[providers]]\nname = "down"\nbase_url = "http://127.0.0.1:{dead}/v1"\nretries = 2\n'
    config = parse_config(
        f'[database]\nurl = "{db_url}"\n[recorder]\njournal_dir = "{journal_dir(db_url)}"\n' + provider
    )
    with TestClient(create_app(config, lambda: AiohttpUpstream(retry_wait=0))) as client:
        response = client.post(CHAT, content=b'{"model": "gpt-4o", "messages": []}')
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["code"] == "upstream_unavailable"
    assert f"127.0.0.1:{dead} after 3 attempts" in error["message"]
