"""The image keeps the journal on the /data volume and runs as a user that owns it (no Docker engine needed)."""

from __future__ import annotations

import shlex
from pathlib import Path

from proxy.config import load_config

DOCKERFILE = Path(__file__).parents[1] / "Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, with continuation lines joined."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def _env() -> dict[str, str]:
    pairs = [shlex.split(args) for name, args in _instructions() if name == "ENV"]
    return dict(item.split("=", 1) for words in pairs for item in words)


def test_the_journal_and_the_database_live_on_the_data_volume() -> None:
    env = _env()
    assert ("VOLUME", '["/data"]') in _instructions()
    config = load_config(DOCKERFILE.parent / "config.toml", environ=env)
    assert Path(config.recorder.journal_dir).is_relative_to("/data")
    assert config.database.url.startswith("sqlite:////data/")


def test_the_server_runs_as_a_user_that_owns_the_data_volume() -> None:
    steps = _instructions()
    [user] = [args for name, args in steps if name == "USER"]
    assert user not in ("root", "0") and not user.startswith(("root:", "0:"))
    names = [name for name, _ in steps]
    assert names.index("USER") < names.index("CMD")
    # Docker copies /data's owner into a new volume only if it is set before VOLUME.
    chown = next(i for i, (name, args) in enumerate(steps) if name == "RUN" and f"chown {user}" in args)
    assert "/data" in steps[chown][1] and chown < names.index("VOLUME")
