"""`tollgate keys`: new managed keys and their [[keys]] entries."""

from __future__ import annotations

import pytest

from proxy.cli import main
from proxy.keys import hash_key


def test_keys_new_prints_an_entry_whose_hash_matches(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "new", "--user", "alice", "--name", "laptop"]) == 0
    out = capsys.readouterr().out
    key = out.splitlines()[0].removeprefix("# key: ")
    assert f'sha256 = "{hash_key(key)}"' in out and 'user = "alice"' in out
