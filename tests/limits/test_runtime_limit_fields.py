"""Runtime limits with a tag, models, a start_day, clamping: enforced, named by them, and kept across restarts."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from starlette.testclient import TestClient

from proxy.app import create_app
from proxy.cli import main
from proxy.config import parse_config
from proxy.limits.runtime import RuntimeLimits, make_limit, merge_limits
from proxy.recording.store import Store
from tests.conftest import chat_completion, json_answer, make_config
from tests.fakeprovider import FakeProvider
from tests.recording.test_store import _BASE

CHAT = "/v1/chat/completions"
ADMIN = {"authorization": "Bearer s3cret"}
PRICES = "".join(
    f'[pricing.models."{model}"]\ninput = 1\noutput = 2\nmax_output_tokens = 1000\n'
    for model in ("metered-model", "other-model")
)
CONFIG = (
    PRICES + '[budget]\nsync_interval = 0.1\n[[limits]]\nscope = "user"\nid = "alice"\nwindow = "month"\nmax_usd = 5\n'
)
TINY = "0.0001"  # far below a request's bound (about $0.0003): refuses every request it counts
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
TEXT = "Tollgate meters every request, bounds its cost before it runs, and refuses what it cannot pay for. "


class Clock:
    """The app's clock, moved by the test."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _body(model: str = "metered-model", max_tokens: int = 100, content: str = "hi") -> bytes:
    return orjson.dumps({"model": model, "max_tokens": max_tokens, "messages": [{"role": "user", "content": content}]})


class Apps:
    """Starts the app on one database and clock; starting it again is a restart (the one running stops first)."""

    def __init__(self, provider: FakeProvider, db_url: str, clock: Clock) -> None:
        provider.answer("POST", CHAT, json_answer(chat_completion(model="metered-model")))
        self.config = make_config(provider, db_url, CONFIG)
        self.clock = clock
        self.running: TestClient | None = None

    def start(self) -> TestClient:
        self.stop()
        self.running = TestClient(create_app(self.config, admin_key="s3cret", clock=self.clock))
        self.running.__enter__()
        return self.running

    def stop(self) -> None:
        if self.running is not None:
            self.running.__exit__(None, None, None)
            self.running = None


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
def apps(provider: FakeProvider, any_db_url: str, clock: Clock) -> Iterator[Apps]:
    apps = Apps(provider, any_db_url, clock)
    yield apps
    apps.stop()


def _config_file(provider: FakeProvider, db_url: str, tmp_path: Path) -> str:
    config = make_config(provider, db_url, CONFIG)
    path = tmp_path / "tollgate.toml"
    path.write_text(f'{CONFIG}\n[database]\nurl = "{config.database.url}"\n')
    return str(path)


def _status(client: TestClient, headers: dict[str, str], model: str = "metered-model") -> int:
    return client.post(CHAT, content=_body(model), headers=headers).status_code


def test_a_runtime_tag_limit_refuses_its_value_only_and_survives_a_restart(apps: Apps) -> None:
    client = apps.start()
    tag_limit = {"max_usd": TINY, "tag": "Project", "alert_at": ["0.5"]}
    response = client.put("/admin/limits/tag/apollo/month", json=tag_limit, headers=ADMIN)
    assert response.status_code == 200, response.text
    assert (response.json()["new"]["scope"], response.json()["new"]["tag"]) == ("tag", "project")
    assert _status(client, {"x-tollgate-tag-project": "apollo"}) == 429
    assert _status(client, {"x-tollgate-tag-project": "hermes"}) == 200
    assert _status(client, {"x-tollgate-tag-env": "apollo"}) == 200
    client = apps.start()  # a restart: the limit is read back from the database
    assert _status(client, {"x-tollgate-tag-project": "apollo"}) == 429
    message = client.post(CHAT, content=_body(), headers={"x-tollgate-tag-project": "apollo"}).json()["error"]
    assert "tag project 'apollo'" in message["message"]
    states = client.get("/admin/limits", headers=ADMIN).json()["limits"]
    assert [(s["scope"], s["tag"], s["id"], s["source"]) for s in states if s["scope"] == "tag"] == [
        ("tag", "project", "apollo", "runtime")
    ]


def test_a_tag_limit_is_removed_by_naming_its_tag(apps: Apps) -> None:
    client = apps.start()
    client.put("/admin/limits/tag/apollo/day", json={"max_usd": TINY, "tag": "project"}, headers=ADMIN)
    client.put("/admin/limits/tag/apollo/day", json={"max_usd": TINY, "tag": "env"}, headers=ADMIN)
    untagged = client.delete("/admin/limits/tag/apollo/day", headers=ADMIN)
    other = client.delete("/admin/limits/tag/apollo/day", params={"tag": "team"}, headers=ADMIN)
    removed = client.delete("/admin/limits/tag/apollo/day", params={"tag": "env"}, headers=ADMIN)
    assert (untagged.status_code, other.status_code, removed.status_code) == (400, 404, 200)
    assert removed.json()["old"]["tag"] == "env"
    assert _status(client, {"x-tollgate-tag-env": "apollo"}) == 200
    assert _status(client, {"x-tollgate-tag-project": "apollo"}) == 429  # the other tag's limit is still there
    changes = client.get("/admin/limits/changes", headers=ADMIN).json()["changes"]
    assert [(c["tag"], c["new"] is None) for c in changes] == [("env", True), ("env", False), ("project", False)]


def test_a_runtime_models_limit_set_through_the_cli_refuses_those_models_only(
    apps: Apps, provider: FakeProvider, any_db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    client = apps.start()
    config = _config_file(provider, any_db_url, tmp_path)
    alice = {"x-user-id": "alice"}
    limit = ["--config", config, "--user", "alice", "--window", "month", "--models", "metered-*,gpt-5*"]
    assert main(["limits", "set", *limit, "--max-usd", TINY]) == 0
    assert "user alice on gpt-5*, metered-*, month" in capsys.readouterr().out
    client = apps.start()  # read back from the database at start
    assert _status(client, alice, "metered-model") == 429
    assert _status(client, alice, "other-model") == 200
    assert main(["limits", "--config", config, "--user", "alice", "--json"]) == 0
    states = orjson.loads(capsys.readouterr().out)
    assert sorted((s["source"], tuple(s["models"]), s["limit_usd"]) for s in states) == [
        ("config", (), "5"),  # a runtime limit on some models does not replace the one on every model
        ("runtime", ("gpt-5*", "metered-*"), TINY),
    ]
    assert main(["limits", "remove", "--config", config, "--user", "alice", "--window", "month"]) == 1
    assert main(["limits", "remove", *limit[:-1], "gpt-5*", "--models", "metered-*"]) == 0
    client = apps.start()
    assert _status(client, alice, "metered-model") == 200


def test_a_runtime_month_from_start_day_counts_only_its_billing_cycle(
    apps: Apps, any_db_url: str, clock: Clock
) -> None:
    store = Store(any_db_url)
    store.create_tables()
    on_the_14th = datetime(2026, 11, 14, 12, 0, tzinfo=UTC)
    spent = dataclasses.replace(_BASE, started_at=on_the_14th, ended_at=on_the_14th, cost_pico=2 * 10**12)  # $2
    store.insert_records([spent])
    store.dispose()
    clock.now = datetime(2026, 11, 14, 23, 0, tzinfo=UTC)
    client = apps.start()
    alice = {"x-user-id": "alice"}
    cycle = {"max_usd": "1", "start_day": 15}
    assert client.put("/admin/limits/user/alice/month", json=cycle, headers=ADMIN).status_code == 200
    assert _status(client, alice) == 429  # the cycle from October 15th holds the $2
    clock.now = datetime(2026, 11, 15, 1, 0, tzinfo=UTC)
    assert _status(client, alice) == 200  # a new cycle
    [state] = client.get("/admin/limits", params={"user": "alice"}, headers=ADMIN).json()["limits"]
    assert (state["window_label"], state["resets_at"], state["start_day"]) == ("2026-11-15", "2026-12-15T00:00:00Z", 15)
    calendar = {"max_usd": "1", "start_day": 1}  # the same limit (start_day is not part of its name): replaced
    response = client.put("/admin/limits/user/alice/month", json=calendar, headers=ADMIN)
    assert response.json()["old"]["start_day"] == 15
    assert _status(client, alice) == 429  # the calendar month holds the $2 of the 14th


def test_a_runtime_clamp_limit_lowers_the_output_cap_and_refuses_below_min_output_tokens(
    apps: Apps, provider: FakeProvider, any_db_url: str, tmp_path: Path
) -> None:
    client = apps.start()
    alice = {"x-user-id": "alice"}
    clamp = {"max_usd": "0.0015", "on_exceed": "clamp", "min_output_tokens": 64}
    assert client.put("/admin/limits/user/alice/month", json=clamp, headers=ADMIN).status_code == 200
    response = client.post(CHAT, content=_body(max_tokens=1000, content=TEXT * 4), headers=alice)
    assert response.status_code == 200, response.text
    original, new = response.headers["x-tollgate-clamped"].split("->")
    assert original == "1000" and 64 <= int(new) == orjson.loads(provider.requests[-1].body)["max_tokens"] < 1000
    config = _config_file(provider, any_db_url, tmp_path)
    tight = ["--on-exceed", "clamp", "--min-output-tokens", "900"]
    limit = ["--config", config, "--user", "alice", "--window", "month", "--max-usd", "0.0015"]
    assert main(["limits", "set", *limit, *tight]) == 0
    client = apps.start()
    response = client.post(CHAT, content=_body(max_tokens=1000, content=TEXT * 4), headers=alice)
    assert response.status_code == 429
    [state] = client.get("/admin/limits", params={"user": "alice"}, headers=ADMIN).json()["limits"]
    assert (state["on_exceed"], state["min_output_tokens"]) == ("clamp", 900)


def test_every_field_is_read_back_as_it_was_set(any_db_url: str) -> None:
    store = Store(any_db_url)
    store.create_tables()
    runtime = RuntimeLimits(store)
    limit = make_limit(
        "tag",
        "apollo",
        "month",
        "12.50",
        "warn",
        "Europe/Paris",
        ["0.5", "0.8"],
        tag="project",
        models=["o3", "gpt-5*", "o3"],
        start_day=28,
        on_exceed="clamp",
        min_output_tokens=32,
    )
    runtime.set(limit, "t", NOW)
    [back] = RuntimeLimits(store).all()
    store.dispose()
    assert back.limit == limit
    assert back.limit.models == ("gpt-5*", "o3")
    assert back.as_json() | {"updated_at": "-"} == {
        "scope": "tag",
        "tag": "project",
        "id": "apollo",
        "window": "month",
        "models": ["gpt-5*", "o3"],
        "max_usd": "12.50",
        "action": "warn",
        "timezone": "Europe/Paris",
        "alert_at": ["0.5", "0.8"],
        "start_day": 28,
        "on_exceed": "clamp",
        "min_output_tokens": 32,
        "updated_at": "-",
        "updated_by": "t",
    }


_FILE = parse_config(
    PRICES
    + "".join(
        f'[[limits]]\nscope = "tag"\ntag = "{tag}"\nid = "apollo"\nmodels = {models}\nmax_usd = 5\n'
        for tag, models in (("Project", "[]"), ("env", "[]"), ("project", '["b*", "a"]'))
    ),
    "test.toml",
).limits


@pytest.mark.parametrize(
    ("runtime", "still_in_force"),
    [
        ({"tag": "project"}, [1, 2]),  # tags compare lower-cased
        ({"tag": "env"}, [0, 2]),
        ({"tag": "project", "models": ["a", "b*"]}, [0, 1]),  # models compare as a set
        ({"tag": "project", "models": ["a"]}, [0, 1, 2]),
        ({"tag": "project", "id": "hermes"}, [0, 1, 2]),
        ({"tag": "project", "window": "month"}, [0, 1, 2]),
    ],
)
def test_a_runtime_limit_replaces_the_file_limit_of_the_same_scope_tag_id_window_and_models(
    runtime: dict[str, Any], still_in_force: list[int]
) -> None:
    limit = make_limit("tag", runtime.pop("id", "apollo"), runtime.pop("window", "day"), "1", **runtime)
    kept, _ = merge_limits(_FILE, [limit])
    assert kept == tuple(_FILE[i] for i in still_in_force)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"scope": "tag"}, "scope = tag needs tag = '<name>'"),
        ({"tag": "project"}, "tag = project is only for scope = 'tag'"),
        ({"start_day": 15, "window": "day"}, "start_day = 15 is only for window = 'month'"),
        ({"start_day": 29, "window": "month"}, "start_day = 29 must be a day from 1 to 28"),
        ({"start_day": "15", "window": "month"}, "start_day = '15' must be a whole number"),
        ({"on_exceed": "trim"}, "on_exceed = trim must be refuse or clamp"),
        ({"min_output_tokens": 0}, "min_output_tokens = 0 must be at least 1"),
        ({"models": ["gpt-[45]"]}, "models = ['gpt-[45]'] must be model names or * and ? globs"),
        ({"models": [5]}, "models = [5] must be model names or globs, as strings"),
        ({"tag": "x" * 65, "scope": "tag"}, "tag = xxxxxxxxxxxxxxxxxxxx... must be at most 64 characters"),
    ],
)
def test_a_bad_field_is_refused_by_the_api_naming_it(
    provider: FakeProvider, db_url: str, fields: dict[str, object], message: str
) -> None:
    apps = Apps(provider, db_url, Clock(NOW))
    client = apps.start()
    scope, window = fields.pop("scope", "user"), fields.pop("window", "day")
    response = client.put(f"/admin/limits/{scope}/alice/{window}", json={"max_usd": "1", **fields}, headers=ADMIN)
    assert response.status_code == 400
    apps.stop()
    assert message in response.json()["error"]["message"]


def test_the_cli_lists_a_limit_with_its_tag_models_and_clamp(
    provider: FakeProvider, db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config_file(provider, db_url, tmp_path)
    name = ["--config", config, "--tag", "project", "--id", "apollo", "--window", "month", "--models", "o3"]
    settings = ["--max-usd", "2", "--start-day", "15", "--on-exceed", "clamp", "--min-output-tokens", "64"]
    assert main(["limits", "set", *name, *settings]) == 0
    capsys.readouterr()
    assert main(["limits", "--config", config]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:7] == ["scope", "id", "models", "source", "state", "window", "action"]
    rows = [line.split() for line in lines[1:]]
    assert [row[:4] + row[7:8] for row in rows if row[0] != "user"] == [  # window is two words: month, label
        ["tag=project", "apollo", "o3", "runtime", "clamp>=64"]
    ]
    assert [row[2] for row in rows if row[0] == "user"] == ["any"]
    assert main(["limits", "history", "--config", config]) == 0
    history = capsys.readouterr().out.splitlines()
    assert history[1].split()[2:6] == ["tag=project", "apollo", "month", "o3"]


def test_the_cli_names_a_tag_value_only_with_tag(
    provider: FakeProvider, db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config_file(provider, db_url, tmp_path)
    name = ["--config", config, "--user", "alice", "--id", "apollo", "--window", "day"]
    assert main(["limits", "set", *name, "--max-usd", "1"]) == 2
    assert "--id names a tag's value" in capsys.readouterr().err
    assert main(["limits", "set", "--config", config, "--tag", "project", "--window", "day", "--max-usd", "1"]) == 0
    assert "runtime limit set: tag project *, day" in capsys.readouterr().out
