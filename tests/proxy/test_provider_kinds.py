"""Provider kinds: configured per provider, routed within the kind, recorded on every row."""

from __future__ import annotations

import orjson
import pytest

from proxy.config import ConfigError, parse_config
from proxy.providers import ProviderRouter
from proxy.recording.reports import usage_report
from tests.conftest import Tollgate, chat_completion, json_answer
from tests.fakeprovider import FakeProvider

_TWO_KINDS = """
[[providers]]
name = "oa"
base_url = "https://api.openai.com/v1"

[[providers]]
name = "claude"
kind = "anthropic"
base_url = "https://api.anthropic.com"
models = ["claude-*"]

[[providers]]
name = "claude-all"
kind = "anthropic"
base_url = "https://other.example"
"""


def test_kind_defaults_to_openai() -> None:
    config = parse_config('[[providers]]\nname = "a"\nbase_url = "https://x/v1"\n', "c.toml")
    assert config.providers[0].kind == "openai"


def test_an_unknown_kind_is_refused_naming_key_and_file() -> None:
    with pytest.raises(ConfigError, match=r"c\.toml.*providers\[0\]\.kind.*one of openai, anthropic, gemini, azure"):
        parse_config('[[providers]]\nname = "a"\nkind = "bedrock"\nbase_url = "https://x"\n', "c.toml")


def test_a_model_is_routed_among_the_providers_of_its_kind() -> None:
    router = ProviderRouter(parse_config(_TWO_KINDS, "c.toml").providers, environ={})
    assert router.route("claude-sonnet-4-5", "openai").name == "oa"  # type: ignore[union-attr]
    assert router.route("claude-sonnet-4-5", "anthropic").name == "claude"  # type: ignore[union-attr]
    assert router.route("other", "anthropic").name == "claude-all"  # type: ignore[union-attr]
    assert router.route("gemini-2.5-pro", "gemini") is None
    assert router.default_for("anthropic").name == "claude"  # type: ignore[union-attr]


def test_a_row_records_its_provider_kind_and_raw_usage(tollgate: Tollgate, provider: FakeProvider) -> None:
    provider.answer("POST", "/v1/chat/completions", json_answer(chat_completion(prompt_tokens=9)))
    tollgate.client.post("/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": []})
    [row] = tollgate.rows()
    assert row["provider_kind"] == "openai"
    assert orjson.loads(row["provider_usage"])["prompt_tokens"] == 9


def test_usage_groups_by_kind(tollgate: Tollgate, provider: FakeProvider) -> None:
    provider.answer("POST", "/v1/chat/completions", json_answer(chat_completion()))
    tollgate.client.post("/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": []})
    tollgate.rows()
    [group] = usage_report(tollgate.store, "kind")
    assert (group.group, group.requests) == ("openai", 1)
