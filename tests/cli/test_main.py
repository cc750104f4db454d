"""The `tollgate` command itself: what every command shares, such as refusing a bad config."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from proxy.cli import main


def test_invalid_config_exits_2_naming_file_and_key(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[server]\nport = -1\n")
    assert main(["usage", "--config", str(config)]) == 2
    assert f"{config}: server.port = -1 must be positive" in capsys.readouterr().err


def test_the_command_imports_neither_uvicorn_nor_the_app_before_it_runs() -> None:
    code = "import sys, proxy.cli; print(sorted(m for m in ('uvicorn', 'proxy.app') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_version_prints_the_installed_version(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib.metadata import version

    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"tollgate {version('tollgate')}"
