"""The README's "Metering inside your app" examples, run as written against fake providers: one row per call."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from proxy.recording.store import Store
from proxy.recording.tables import USAGE_TABLE
from tests.conftest import chat_chunks, chat_completion, journal_dir, json_answer, sse
from tests.dialects.test_anthropic_sdk import _message
from tests.dialects.test_gemini_sdk import _answer
from tests.fakeprovider import FakeProvider

_ROOT = Path(__file__).parents[2]
_SECTION = _ROOT.joinpath("README.md").read_text().split("## Metering inside your app\n", 1)[1].split("\n## ", 1)[0]
_BLOCKS = re.findall(r"```python\n(.*?)```", _SECTION, re.S)
# What a block that does not make its own meter starts and ends with, and what the web-app block needs.
_OPEN_METER = "from proxy.inprocess import Meter\nmeter = Meter.from_config('config.toml')\n"
_STARLETTE_APP = "from starlette.applications import Starlette\napp = Starlette()\n"


def _run(block: str, provider: FakeProvider, folder: Path) -> str:
    program = block if "Meter.from_config" in block else _OPEN_METER + _STARLETTE_APP + block + "\nmeter.close()\n"
    root = f"http://{provider.host}:{provider.port}"
    env = {
        **os.environ,
        "PYTHONPATH": str(_ROOT),
        "OPENAI_BASE_URL": provider.base_url,
        "OPENAI_API_KEY": "sk-app",
        "ANTHROPIC_BASE_URL": root,
        "ANTHROPIC_API_KEY": "sk-ant-app",
        "GOOGLE_GEMINI_BASE_URL": root,
        "GEMINI_API_KEY": "AIza-app",
    }
    env.pop("GOOGLE_API_KEY", None)
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(program)],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_section_has_the_sync_async_anthropic_gemini_and_web_app_examples() -> None:
    assert len(_BLOCKS) == 4
    assert "httpx_client()" in _BLOCKS[0] and "httpx2_client()" in _BLOCKS[1]
    assert "async_httpx_client()" in _BLOCKS[2] and "meter.attribute(user=request" in _BLOCKS[3]


def test_the_readme_examples_record_one_priced_attributed_row_per_call(provider: FakeProvider, tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'usage.db'}"
    tmp_path.joinpath("config.toml").write_text(
        f'[database]\nurl = "{db_url}"\n[recorder]\njournal_dir = "{journal_dir(db_url)}"\n'
    )
    chat = "/v1/chat/completions"
    provider.answer("POST", chat, json_answer(chat_completion()), sse(chat_chunks(words=("Bon", "jour"))))
    assert _run(_BLOCKS[0], provider, tmp_path) == "Bonjour"  # a usage-only chunk would have no choices[0]
    assert orjson.loads(provider.requests[1].body)["stream_options"] == {"include_usage": True}
    provider.answer("POST", "/v1/messages", json_answer(_message({"input_tokens": 9, "output_tokens": 3})))
    gemini = json_answer(orjson.dumps(_answer({"promptTokenCount": 4, "candidatesTokenCount": 2})))
    for version in ("v1", "v1beta"):
        provider.answer("POST", f"/{version}/models/gemini-2.5-flash:generateContent", gemini)
    _run(_BLOCKS[1], provider, tmp_path)
    provider.answer("POST", chat, json_answer(chat_completion()))
    _run(_BLOCKS[2], provider, tmp_path)
    _run(_BLOCKS[3], provider, tmp_path)  # the middleware: defined and added to an app
    store = Store(db_url)
    with store.engine.connect() as conn:
        found = [dict(r._mapping) for r in conn.execute(USAGE_TABLE.select().order_by(USAGE_TABLE.c.started_at))]
    store.dispose()
    assert [(r["provider_kind"], r["stream"], r["user_id"]) for r in found] == [
        ("openai", False, "alice"),
        ("openai", True, "alice"),
        ("anthropic", False, None),
        ("gemini", False, None),
        ("openai", False, "bob"),
    ]
    assert all(r["front_door"] == "inprocess" and r["usage_source"] == "reported" for r in found)
    assert all(not r["unpriced"] and Decimal(r["cost_pico"]) > 0 for r in found)
    assert (found[0]["team_id"], found[0]["thread_id"], found[0]["agent"]) == ("research", "t-42", "planner")
    assert found[1]["output_tokens"] == 3 and orjson.loads(found[1]["tags"]) == {"env": "prod"}


@pytest.mark.parametrize("figure", ["import proxy.inprocess", "per non-streamed call", "per stream chunk"])
def test_the_section_gives_its_figures_with_the_command_that_made_them(figure: str) -> None:
    assert figure in _SECTION and "python -m tests.bench.inprocess" in _SECTION
