"""Migration 0010 (runtime limits with tag, models, start_day, on_exceed, min_output_tokens): every row kept."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from alembic import command

from proxy.limits.runtime import RuntimeLimits, make_limit
from proxy.recording.migrations import HEAD
from proxy.recording.migrations.schema import alembic_config
from proxy.recording.store import Store
from tests.recording.migrations.conftest import insert_rows, kept, read_rows

RUNTIME_FIELDS = "0010"  # this revision
WHEN = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def _rows_at_0009(dialect: str) -> dict[str, list[dict[str, Any]]]:
    when = "2026-11-25 12:00:00.000000" if dialect == "sqlite" else "2026-11-25 12:00:00+00:00"
    limit = {"limit_id": "alice", "window": "month", "max_usd": "0.50", "action": "block", "timezone": "UTC"}
    limit |= {"alert_at": "0.5,0.8", "updated_at": when, "updated_by": "cli:ann"}
    change = {"changed_at": when, "changed_by": "cli:ann", "limit_id": "alice", "window": "month"}
    return {
        "runtime_limits": [
            {"scope": "user", **limit},
            {"scope": "team", **limit, "limit_id": "zoë/research", "action": "warn", "alert_at": ""},
            {"scope": "global", **limit, "limit_id": "*", "window": "total", "timezone": "Europe/Paris"},
        ],
        "limit_changes": [
            {"scope": "user", **change, "old": None, "new": '{"max_usd": "0.50"}'},
            {"scope": "user", **change, "old": '{"max_usd": "0.50"}', "new": None},
        ],
    }


def _at_0009(url: str, make_store: Callable[[str], Store]) -> tuple[Store, dict[str, list[dict[str, Any]]]]:
    store = make_store(url)
    with store.write_engine.begin() as conn:
        command.upgrade(alembic_config(conn), f"{RUNTIME_FIELDS}-1")
    rows = _rows_at_0009(store.dialect)
    insert_rows(url, rows)
    return store, read_rows(url, list(rows))


def test_runtime_limits_at_0009_upgrade_in_place_keeping_every_row_and_value(
    any_db_url: str, make_store: Callable[[str], Store]
) -> None:
    store, before = _at_0009(any_db_url, make_store)
    store.create_tables()  # what a server does at start: upgrade to the newest
    after = read_rows(any_db_url, list(before))
    assert kept(before, after) == before
    assert len(after["runtime_limits"]) == 3 and len(after["limit_changes"]) == 2
    defaults = {"tag": "", "models": "[]", "start_day": 1, "on_exceed": "refuse", "min_output_tokens": 256}
    assert all({name: row[name] for name in defaults} == defaults for row in after["runtime_limits"])
    assert all((row["tag"], row["models"]) == ("", "[]") for row in after["limit_changes"])
    with store.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one() == HEAD


def test_upgraded_limits_read_back_as_they_were_and_tag_limits_are_apart(
    any_db_url: str, make_store: Callable[[str], Store]
) -> None:
    store, _ = _at_0009(any_db_url, make_store)
    store.create_tables()
    runtime = RuntimeLimits(store)
    user = next(r.limit for r in runtime.all() if r.limit.scope == "user")
    assert (user.id, user.max_usd, user.alert_at) == ("alice", Decimal("0.50"), (Decimal("0.5"), Decimal("0.8")))
    assert (user.tag, user.models, user.start_day, user.on_exceed, user.min_output_tokens) == (
        None,
        (),
        1,
        "refuse",
        256,
    )
    # The new key: the same id and window on two tags, and on some models, are three more limits.
    for tag, models in (("project", ()), ("env", ()), ("project", ("gpt-5*",))):
        runtime.set(make_limit("tag", "alice", "month", "1", tag=tag, models=models), "t", WHEN)
    runtime.set(make_limit("user", "alice", "month", "2", models=["gpt-5*"]), "t", WHEN)
    limits = [r.limit for r in runtime.all()]
    assert len(limits) == 3 + 4
    assert next(x for x in limits if x.scope == "user" and not x.models).max_usd == Decimal("0.50")


def test_a_downgrade_keeps_the_limits_the_old_key_can_hold(any_db_url: str, make_store: Callable[[str], Store]) -> None:
    store, before = _at_0009(any_db_url, make_store)
    store.create_tables()
    RuntimeLimits(store).set(make_limit("tag", "apollo", "day", "1", tag="project"), "t", WHEN)
    with store.write_engine.begin() as conn:
        command.downgrade(alembic_config(conn), f"{RUNTIME_FIELDS}-1")
    after = read_rows(any_db_url, ["runtime_limits"])
    assert after["runtime_limits"] == before["runtime_limits"]
