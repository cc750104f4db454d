"""`tollgate keys`: new managed keys and their [[keys]] entries, with the secret kept out of files and history."""

from __future__ import annotations

import io
import tomllib

import pytest

from proxy.cli import main
from proxy.keys import hash_key


def test_keys_new_prints_the_key_apart_from_an_entry_holding_only_its_hash(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["keys", "new", "--user", "alice", "--name", "laptop", "--team", "research"]) == 0
    captured = capsys.readouterr()
    [key_line] = [line for line in captured.err.splitlines() if line.startswith("key: ")]
    key = key_line.removeprefix("key: ")
    assert key not in captured.out
    [entry] = tomllib.loads(captured.out)["keys"]
    assert entry == {"name": "laptop", "sha256": hash_key(key), "user": "alice", "team": "research"}


def test_keys_new_trust_headers_goes_into_the_entry(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "new", "--user", 'a"b', "--trust-headers"]) == 0
    [entry] = tomllib.loads(capsys.readouterr().out)["keys"]
    assert entry["trust_headers"] is True and entry["user"] == 'a"b'


def test_every_keys_new_flag_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["keys", "new", "--help"])
    out = capsys.readouterr().out
    for flag in ("--user USER", "--team TEAM", "--name NAME", "--trust-headers"):
        line = next(line for line in out.splitlines() if line.strip().startswith(flag))
        assert len(line.split(flag, 1)[1].strip()) > 10, line


def test_keys_hash_reads_the_key_from_stdin(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("tg-secret\n"))
    assert main(["keys", "hash"]) == 0
    assert capsys.readouterr().out.strip() == hash_key("tg-secret")


def test_keys_hash_takes_no_argument_and_refuses_an_empty_stdin(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(SystemExit):
        main(["keys", "hash", "tg-secret"])
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert main(["keys", "hash"]) == 2
    assert "standard input" in capsys.readouterr().err
