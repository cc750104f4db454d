"""``tollgate usage --group-by provider`` names each provider's kind: all four kinds in one report."""

from __future__ import annotations

from pathlib import Path

import httpx
import orjson
import pytest

from proxy.cli import main
from tests.conftest import chat_completion, json_answer
from tests.dialects.conftest import LiveTollgate
from tests.fakeprovider import FakeProvider

_GEMINI = "/v1beta/models/gemini-2.5-flash:generateContent"
_AZURE = "/openai/deployments/prod-mini/chat/completions"


def _one_call_per_kind(live: LiveTollgate, provider: FakeProvider) -> None:
    message = {"type": "message", "role": "assistant", "content": [], "model": "claude-sonnet-4-5"}
    usage = {"input_tokens": 5, "output_tokens": 2}
    provider.answer("POST", "/v1/messages", json_answer(orjson.dumps(message | {"usage": usage})))
    gemini = {"candidates": [], "usageMetadata": {"promptTokenCount": 7, "candidatesTokenCount": 3}}
    provider.answer("POST", _GEMINI, json_answer(orjson.dumps(gemini)))
    provider.answer("POST", _AZURE, json_answer(chat_completion(model="gpt-4o-mini")))
    provider.answer("POST", "/v1/chat/completions", json_answer(chat_completion(model="gpt-4o-mini")))
    chat = {"model": "gpt-4o-mini", "messages": []}
    calls = [
        ("/v1/messages", {"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": []}, {"x-api-key": "k"}),
        (_GEMINI, {"contents": []}, {"x-goog-api-key": "k"}),
        (f"{_AZURE}?api-version=2024-10-21", chat, {"api-key": "k"}),
        ("/v1/chat/completions", chat, {"authorization": "Bearer k"}),
    ]
    for path, body, headers in calls:
        assert httpx.post(live.url + path, json=body, headers=headers).status_code == 200
    live.rows(expected=4)


def _usage(live: LiveTollgate, tmp_path: Path, *args: str) -> int:
    config = tmp_path / "cli.toml"
    config.write_text(f'[database]\nurl = "{live.config.database.url}"\n')
    return main(["usage", "--config", str(config), "--group-by", "provider", *args])


def test_grouped_by_provider_each_row_names_its_kind(
    live: LiveTollgate, provider: FakeProvider, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _one_call_per_kind(live, provider)
    assert _usage(live, tmp_path) == 0
    header, *lines = capsys.readouterr().out.splitlines()
    assert header.split()[:3] == ["provider", "kind", "requests"]
    kinds = {line.split()[0]: (line.split()[1], line.split()[2]) for line in lines}
    assert kinds == {
        "fake": ("openai", "1"),
        "fake-anthropic": ("anthropic", "1"),
        "fake-gemini": ("gemini", "1"),
        "fake-azure": ("azure", "1"),
    }


def test_grouped_by_provider_in_json_each_row_has_its_kind(
    live: LiveTollgate, provider: FakeProvider, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _one_call_per_kind(live, provider)
    assert _usage(live, tmp_path, "--json") == 0
    report = orjson.loads(capsys.readouterr().out)
    assert sorted((r["group"], r["kind"]) for r in report) == [
        ("fake", "openai"),
        ("fake-anthropic", "anthropic"),
        ("fake-azure", "azure"),
        ("fake-gemini", "gemini"),
    ]
