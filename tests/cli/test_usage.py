"""`tollgate usage`: recorded usage grouped, filtered and priced exactly, as JSON or a table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from proxy.cli import main
from tests.conftest import Tollgate, chat_completion, json_answer
from tests.fakeprovider import FakeProvider

CHAT = "/v1/chat/completions"


def _spend(
    tollgate: Tollgate, provider: FakeProvider, calls: list[tuple[str, str, str, int]], env: str | None = None
) -> None:
    """Make one request per (user, agent, model, prompt tokens), tagged ``env`` if given."""
    before = len(tollgate.rows(expected=0))
    for user, agent, model, prompt in calls:
        provider.answer(
            "POST", CHAT, json_answer(chat_completion(model=model, prompt_tokens=prompt, completion_tokens=10))
        )
        body = orjson.dumps({"model": model, "messages": []})
        headers = {"x-user-id": user, "x-agent-name": agent} | ({"x-tollgate-tag-env": env} if env else {})
        tollgate.client.post(CHAT, content=body, headers=headers)
    tollgate.rows(expected=before + len(calls))


def _usage(tmp_path: Path, db_url: str, capsys: pytest.CaptureFixture[str], *args: str) -> Any:
    config = tmp_path / "cli.toml"
    config.write_text(f'[database]\nurl = "{db_url}"\n')
    assert main(["usage", "--config", str(config), "--json", *args]) == 0
    return orjson.loads(capsys.readouterr().out)


def test_usage_groups_by_user_with_exact_decimal_costs(
    tollgate: Tollgate, provider: FakeProvider, db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _spend(
        tollgate,
        provider,
        [("alice", "a", "gpt-4o", 1000), ("alice", "b", "gpt-4o", 1000), ("bob", "a", "gpt-4o-mini", 100)],
    )
    report = {row["group"]: row for row in _usage(tmp_path, db_url, capsys, "--group-by", "user")}
    assert report["alice"]["requests"] == 2
    assert report["alice"]["input_tokens"] == 2000
    # gpt-4o: 1000 input at $2.50/M + 10 output at $10/M, twice
    assert report["alice"]["cost_usd"] == "0.0052"
    assert report["bob"]["cost_usd"] == "0.000021"


def test_usage_filters_by_agent_and_groups_by_model(
    tollgate: Tollgate, provider: FakeProvider, db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _spend(
        tollgate, provider, [("alice", "a", "gpt-4o", 10), ("bob", "a", "gpt-4o-mini", 10), ("bob", "b", "gpt-4o", 10)]
    )
    report = _usage(tmp_path, db_url, capsys, "--agent", "a", "--group-by", "model")
    assert sorted((r["group"], r["requests"]) for r in report) == [("gpt-4o", 1), ("gpt-4o-mini", 1)]


def test_usage_groups_by_day(
    tollgate: Tollgate, provider: FakeProvider, db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _spend(tollgate, provider, [("alice", "a", "gpt-4o", 10)])
    [row] = _usage(tmp_path, db_url, capsys, "--group-by", "day")
    assert row["group"] == tollgate.rows()[0]["started_at"].strftime("%Y-%m-%d")
    assert _usage(tmp_path, db_url, capsys, "--since", "2100-01-01") == []


def test_usage_prints_a_table(
    tollgate: Tollgate, provider: FakeProvider, db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _spend(tollgate, provider, [("alice", "a", "gpt-4o", 1000)])
    config = tmp_path / "cli.toml"
    config.write_text(f'[database]\nurl = "{db_url}"\n')
    assert main(["usage", "--config", str(config), "--group-by", "user"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["user", "requests", "input", "output", "cached", "reasoning", "cost", "unpriced"]
    assert lines[1].split() == ["alice", "1", "1000", "10", "0", "0", "$0.0026"]


def test_an_impossible_window_is_an_error_not_an_empty_table(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "cli.toml"
    config.write_text(f'[database]\nurl = "{db_url}"\n')
    assert main(["usage", "--config", str(config), "--since", "2026-12-05", "--until", "2026-12-01"]) == 2
    captured = capsys.readouterr()
    assert "--since 2026-12-05" in captured.err and "not before --until 2026-12-01" in captured.err
    assert captured.out == ""


def test_usage_groups_by_a_tag_and_filters_by_one(
    tollgate: Tollgate, provider: FakeProvider, db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _spend(tollgate, provider, [("alice", "a", "gpt-4o", 1000), ("bob", "a", "gpt-4o", 10)], env="prod")
    _spend(tollgate, provider, [("alice", "a", "gpt-4o", 100)], env="dev")
    _spend(tollgate, provider, [("carol", "a", "gpt-4o", 100)])
    by_env = {r["group"]: r["requests"] for r in _usage(tmp_path, db_url, capsys, "--group-by", "tag:env")}
    assert by_env == {"prod": 2, "dev": 1, None: 1}
    prod = _usage(tmp_path, db_url, capsys, "--tag", "Env=prod", "--group-by", "user")
    assert sorted((r["group"], r["requests"]) for r in prod) == [("alice", 1), ("bob", 1)]
    assert _usage(tmp_path, db_url, capsys, "--tag", "env=prod", "--user", "carol") == []


def test_a_bad_tag_filter_is_refused_naming_the_form(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["usage", "--tag", "env"])
    assert "name=value" in capsys.readouterr().err


def test_cost_column_has_one_format_with_enough_places_for_the_smallest(
    tollgate: Tollgate, provider: FakeProvider, db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _spend(tollgate, provider, [("alice", "a", "gpt-4o", 100000), ("bob", "a", "gpt-4o-mini", 100)])
    config = tmp_path / "cli.toml"
    config.write_text(f'[database]\nurl = "{db_url}"\n')
    assert main(["usage", "--config", str(config), "--group-by", "user"]) == 0
    lines = capsys.readouterr().out.splitlines()
    costs = {line.split()[0]: line.split()[6] for line in lines[1:]}
    # gpt-4o-mini: 100 input at $0.15/M + 10 output at $0.60/M = $0.000021
    assert costs == {"alice": "$0.250100", "bob": "$0.000021"}


def test_unpriced_usage_reads_unpriced_not_zero(
    tollgate: Tollgate, provider: FakeProvider, db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _spend(tollgate, provider, [("alice", "a", "my-unpriced-model", 100)])
    config = tmp_path / "cli.toml"
    config.write_text(f'[database]\nurl = "{db_url}"\n')
    assert main(["usage", "--config", str(config), "--group-by", "model"]) == 0
    [row] = capsys.readouterr().out.splitlines()[1:]
    assert row.split()[-2:] == ["unpriced", "1"]
