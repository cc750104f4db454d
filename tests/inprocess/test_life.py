"""Nothing lost, nothing stuck: exit without close(), a fork, a database outage during calls."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from openai.types.chat import ChatCompletionMessageParam

from proxy.inprocess import Meter
from proxy.recording.store import Store
from tests.conftest import chat_completion, database_available, journal_dir, json_answer
from tests.fakeprovider import FakeProvider
from tests.inprocess.conftest import MeterFactory, rows, sync_client

_HI: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]
_PROGRAM = """
import os, sys
import openai
from proxy.config import parse_config
from proxy.inprocess import Meter

config = parse_config(open(sys.argv[1]).read(), sys.argv[1])
meter = Meter(config)

def call(user):
    with openai.OpenAI(base_url=sys.argv[2], api_key="k", http_client=meter.httpx_client(), max_retries=0) as client:
        with meter.attribute(user=user):
            client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
"""


def _run(program: str, config_text: str, provider: FakeProvider, tmp_path: Path) -> None:
    config_file = tmp_path / "meter.toml"
    config_file.write_text(config_text)
    script = tmp_path / "app.py"
    script.write_text(textwrap.dedent(_PROGRAM) + textwrap.dedent(program))
    root = Path(__file__).parents[2]
    subprocess.run([sys.executable, str(script), str(config_file), provider.base_url], check=True, timeout=60, cwd=root)


def _config_text(db_url: str) -> str:
    # A batch waits a minute: only the exit (or the child's own writer) can have written it.
    return f'[database]\nurl = "{db_url}"\n[recorder]\nflush_interval = 60.0\njournal_dir = "{journal_dir(db_url)}"\n'


def test_a_process_that_exits_without_close_still_writes_its_records(
    provider: FakeProvider, db_url: str, tmp_path: Path
) -> None:
    provider.answer("POST", "/v1/chat/completions", json_answer(chat_completion()))
    _run("call('alice')\ncall('bob')\n", _config_text(db_url), provider, tmp_path)
    store = Store(db_url)
    assert store.count_records() == 2
    store.dispose()
    assert list((tmp_path / "journal").glob("*.jsonl")) == []


def test_a_forked_child_writes_its_own_records_and_leaves_the_parents_alone(
    provider: FakeProvider, db_url: str, tmp_path: Path
) -> None:
    provider.answer("POST", "/v1/chat/completions", json_answer(chat_completion()))
    program = """
    call("parent-before")
    child = os.fork()
    if child == 0:
        call("child")
        sys.exit(0)
    _, status = os.waitpid(child, 0)
    assert status == 0, status
    call("parent-after")
    """
    _run(program, _config_text(db_url), provider, tmp_path)
    store = Store(db_url)
    with store.engine.connect() as conn:
        found = conn.exec_driver_sql("SELECT user_id, request_id FROM usage_records").all()
    store.dispose()
    assert sorted(user for user, _ in found) == ["child", "parent-after", "parent-before"]
    assert len({request_id for _, request_id in found}) == 3


@pytest.mark.postgres
def test_calls_during_a_database_outage_succeed_and_their_rows_arrive_after(
    meter_factory: MeterFactory, provider: FakeProvider, own_database: str
) -> None:
    meter: Meter = meter_factory(url=own_database)
    provider.answer("POST", "/v1/chat/completions", json_answer(chat_completion(content="still here")))
    client = sync_client(meter, provider)
    database_available(own_database, False)
    try:
        answers = [client.chat.completions.create(model="gpt-4o-mini", messages=_HI) for _ in range(3)]
        assert [a.choices[0].message.content for a in answers] == ["still here"] * 3
        assert not meter.flush()
    finally:
        database_available(own_database, True)
    assert len(rows(meter)) == 3
