"""`tollgate prices MODEL`: the prices of a model and where they come from."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.cli import main


def test_prices_names_the_source(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = tmp_path / "p.toml"
    config.write_text("")
    assert main(["prices", "--config", str(config), "openai/gpt-4o-mini-2024-07-18"]) == 0
    out = capsys.readouterr().out
    assert "litellm" in out and "0.15" in out


def test_prices_of_unknown_model_exits_1(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = tmp_path / "p.toml"
    config.write_text("")
    assert main(["prices", "--config", str(config), "no-such-model-xyz"]) == 1
    assert "unpriced" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("kind", "resolved"),
    [("gemini", "gemini/gemini-2.5-pro"), ("openai", "gemini-2.5-pro")],
)
def test_prices_shows_the_entry_a_provider_kind_chooses(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, kind: str, resolved: str
) -> None:
    config = tmp_path / "p.toml"
    config.write_text("")
    assert main(["prices", "--config", str(config), "gemini-2.5-pro", "--provider", kind]) == 0
    assert f"resolved   {resolved}\n" in capsys.readouterr().out


def test_prices_for_a_bedrock_id_names_the_entry_chosen(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = tmp_path / "p.toml"
    config.write_text("")
    model = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
    assert main(["prices", "--config", str(config), model, "--provider", "bedrock"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"asked      {model}\nprovider   bedrock: the Bedrock id's own entry")
    assert "$3.30 / 1M tokens" in out
