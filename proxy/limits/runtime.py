"""Spend limits set while Tollgate runs, kept in the database, with every change audited.

``tollgate limits set`` / ``remove`` and ``PUT`` / ``DELETE /admin/limits/{scope}/{id}/{window}``
write a row of ``runtime_limits`` and, in the same transaction, one of ``limit_changes`` (who,
when, the limit before and after, as JSON). Every worker of every instance polls the newest
change's id every ``budget.sync_interval`` (``RuntimeLimitWatcher``: one indexed read) and,
when it moved, reads the runtime limits again and rebuilds its limit book.

A runtime limit carries every field a ``[[limits]]`` entry has. It beats the entry that is the same
limit (``merge_limits``): the same scope, tag, id, window and models (``limit_key``). So a limit on tag
``project`` and one on tag ``env`` are two limits even with the same id, and so are a limit on every
model and one on ``gpt-5*``. Tags compare lower-cased (header names arrive so) and models as a set
(``["b", "a"]`` is ``["a", "b"]``); a runtime limit is stored that way. The other fields (max_usd, action,
timezone, start_day, on_exceed, min_output_tokens, alert_at) are what a limit *is*, not which one: setting
one again with another ``start_day`` replaces it. For ``global`` the id is always ``*``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
import pydantic
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from proxy.config import LimitConfig
from proxy.limits.rules import LimitBook, compile_rules
from proxy.recording.store import Store
from proxy.recording.tables import LIMIT_CHANGES_TABLE, MAX_MODELS_CHARS, MAX_TAG_CHARS, RUNTIME_LIMITS_TABLE

logger = logging.getLogger("tollgate.limits")


class InvalidLimit(ValueError):
    """A runtime limit that would not be valid in ``[[limits]]``; the message names the field."""


@dataclass(frozen=True, slots=True)
class RuntimeLimit:
    limit: LimitConfig
    updated_at: datetime
    updated_by: str

    def as_json(self) -> dict[str, Any]:
        return {
            **_limit_json(self.limit),
            "updated_at": self.updated_at.isoformat().replace("+00:00", "Z"),
            "updated_by": self.updated_by,
        }


def make_limit(
    scope: str,
    id: str,
    window: str,
    max_usd: object,
    action: str = "block",
    timezone: str = "UTC",
    alert_at: Sequence[object] = (),
    *,
    tag: str | None = None,
    models: Sequence[str] = (),
    start_day: object = 1,
    on_exceed: str = "refuse",
    min_output_tokens: object = 256,
) -> LimitConfig:
    """A limit checked as ``[[limits]]`` checks one; ``InvalidLimit`` names the field that is wrong.

    The tag is lower-cased and the models sorted without repeats, so that one limit is always written alike.
    """
    if not all(isinstance(model, str) for model in models):
        raise InvalidLimit(f"models = {list(models)!r} must be model names or globs, as strings")
    distinct = tuple(sorted(set(models)))
    if len(_models_text(distinct)) > MAX_MODELS_CHARS:
        raise InvalidLimit(f"models must take at most {MAX_MODELS_CHARS} characters as a JSON list")
    if isinstance(tag, str) and len(tag) > MAX_TAG_CHARS:
        raise InvalidLimit(f"tag = {tag[:20]}... must be at most {MAX_TAG_CHARS} characters")
    for name, number in (("start_day", start_day), ("min_output_tokens", min_output_tokens)):
        if not isinstance(number, int) or isinstance(number, bool):
            raise InvalidLimit(f"{name} = {number!r} must be a whole number")
    fields: dict[str, object] = {"scope": scope, "id": "*" if scope == "global" else id, "window": window}
    fields |= {"max_usd": max_usd, "action": action, "timezone": timezone, "alert_at": tuple(alert_at)}
    fields |= {"tag": tag.lower() if isinstance(tag, str) else tag, "models": distinct}
    fields |= {"start_day": start_day, "on_exceed": on_exceed, "min_output_tokens": min_output_tokens}
    try:
        if not isinstance(max_usd, (str, int, Decimal)) or isinstance(max_usd, bool):
            raise InvalidLimit(f"max_usd = {max_usd!r} must be a decimal number, as a string or an integer")
        fields["max_usd"] = Decimal(str(max_usd))
        fields["alert_at"] = tuple(Decimal(str(a)) for a in alert_at)
        return LimitConfig.model_validate(fields)
    except ArithmeticError:
        raise InvalidLimit(f"max_usd = {max_usd!r} must be a decimal number") from None
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        ctx = first.get("ctx") or {}  # a check that spans fields names the key it blames (proxy.config.models)
        key = ctx.get("key") or ".".join(str(part) for part in first["loc"])
        value = ctx.get("value", first.get("input"))
        raise InvalidLimit(f"{key} = {value!s} {first['msg']}") from None


LimitKey = tuple[str, str, str, str, tuple[str, ...]]


def limit_key(limit: LimitConfig) -> LimitKey:
    """What makes two limits the same one: scope, tag, id (``*`` for global), window and models (as a set)."""
    return _key(limit.scope, limit.tag, limit.id, limit.window, limit.models)


def _key(scope: str, tag: str | None, limit_id: str, window: str, models: Sequence[str]) -> LimitKey:
    return (scope, (tag or "").lower(), "*" if scope == "global" else limit_id, window, tuple(sorted(set(models))))


def merge_limits(
    configured: Sequence[LimitConfig], runtime: Sequence[LimitConfig]
) -> tuple[tuple[LimitConfig, ...], tuple[LimitConfig, ...]]:
    """(config limits still in force, runtime limits): a runtime limit replaces the config one it matches."""
    replaced = {limit_key(limit) for limit in runtime}
    return tuple(c for c in configured if limit_key(c) not in replaced), tuple(runtime)


class RuntimeLimits:
    """The ``runtime_limits`` and ``limit_changes`` tables."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def version(self) -> int:
        """The id of the newest change (0 when there is none): it moves with every set and remove."""
        with self.store.engine.connect() as conn:
            newest = conn.execute(sa.select(sa.func.max(LIMIT_CHANGES_TABLE.c.id))).scalar_one()
        return int(newest or 0)

    def all(self) -> list[RuntimeLimit]:
        t = RUNTIME_LIMITS_TABLE.c
        with self.store.engine.connect() as conn:
            rows = conn.execute(
                RUNTIME_LIMITS_TABLE.select().order_by(t.scope, t.tag, t.limit_id, t.window, t.models)
            ).all()
        return [_from_row(row._mapping) for row in rows]

    def set(self, limit: LimitConfig, by: str, now: datetime) -> tuple[RuntimeLimit | None, RuntimeLimit]:
        """Set (or replace) a runtime limit; (the one it replaced, the new one)."""
        key = limit_key(limit)
        values = {
            **_key_columns(key),
            "max_usd": str(limit.max_usd),
            "action": limit.action,
            "timezone": limit.timezone,
            "alert_at": ",".join(str(a) for a in limit.alert_at),
            "start_day": limit.start_day,
            "on_exceed": limit.on_exceed,
            "min_output_tokens": limit.min_output_tokens,
            "updated_at": now,
            "updated_by": by,
        }
        with self.store.write_engine.begin() as conn:
            old = self._current(conn, key)
            insert = (postgresql if self.store.dialect == "postgresql" else sqlite).insert(RUNTIME_LIMITS_TABLE)
            conn.execute(
                insert.values(**values).on_conflict_do_update(
                    index_elements=list(_KEY_COLUMNS),
                    set_={k: v for k, v in values.items() if k not in _KEY_COLUMNS},
                )
            )
            new = RuntimeLimit(limit, now, by)
            self._audit(conn, key, by, now, old, new)
        logger.info("runtime limit set by %s: %s", by, orjson.dumps(new.as_json()).decode())
        return old, new

    def remove(
        self,
        scope: str,
        limit_id: str,
        window: str,
        by: str,
        now: datetime,
        *,
        tag: str | None = None,
        models: Sequence[str] = (),
    ) -> RuntimeLimit | None:
        """Remove a runtime limit (the config one it replaced, if any, applies again); the removed one."""
        key = _key(scope, tag, limit_id, window, models)
        with self.store.write_engine.begin() as conn:
            old = self._current(conn, key)
            if old is None:
                return None
            conn.execute(RUNTIME_LIMITS_TABLE.delete().where(*_key_filter(key)))
            self._audit(conn, key, by, now, old, None)
        logger.info("runtime limit removed by %s: %s", by, orjson.dumps(_key_columns(key)).decode())
        return old

    def changes(self, limit: int = 100) -> list[dict[str, Any]]:
        """The newest changes first, as JSON-ready dicts."""
        t = LIMIT_CHANGES_TABLE.c
        with self.store.engine.connect() as conn:
            rows = conn.execute(LIMIT_CHANGES_TABLE.select().order_by(t.id.desc()).limit(limit)).all()
        return [
            {
                "id": row.id,
                "changed_at": _aware(row.changed_at).isoformat().replace("+00:00", "Z"),
                "changed_by": row.changed_by,
                "scope": row.scope,
                "tag": row.tag or None,
                "limit_id": row.limit_id,
                "window": row.window,
                "models": orjson.loads(row.models),
                "old": orjson.loads(row.old) if row.old else None,
                "new": orjson.loads(row.new) if row.new else None,
            }
            for row in rows
        ]

    def _current(self, conn: sa.Connection, key: LimitKey) -> RuntimeLimit | None:
        row = conn.execute(RUNTIME_LIMITS_TABLE.select().where(*_key_filter(key))).first()
        return _from_row(row._mapping) if row is not None else None

    def _audit(
        self,
        conn: sa.Connection,
        key: LimitKey,
        by: str,
        now: datetime,
        old: RuntimeLimit | None,
        new: RuntimeLimit | None,
    ) -> None:
        conn.execute(
            LIMIT_CHANGES_TABLE.insert().values(
                changed_at=now,
                changed_by=by,
                **_key_columns(key),
                old=orjson.dumps(old.as_json()).decode() if old is not None else None,
                new=orjson.dumps(new.as_json()).decode() if new is not None else None,
            )
        )


_KEY_COLUMNS = ("scope", "tag", "limit_id", "window", "models")


def _models_text(models: Sequence[str]) -> str:
    return orjson.dumps(list(models)).decode()


def _key_columns(key: LimitKey) -> dict[str, str]:
    scope, tag, limit_id, window, models = key
    return {"scope": scope, "tag": tag, "limit_id": limit_id, "window": window, "models": _models_text(models)}


def _key_filter(key: LimitKey) -> list[sa.ColumnElement[bool]]:
    return [RUNTIME_LIMITS_TABLE.c[name] == value for name, value in _key_columns(key).items()]


class RuntimeLimitWatcher:
    """Polls for changes every ``interval`` seconds and hands the runtime limits to ``apply`` when they move."""

    def __init__(
        self, limits: RuntimeLimits, apply: Callable[[tuple[LimitConfig, ...]], None], interval: float
    ) -> None:
        self.limits = limits
        self._apply = apply
        self.interval = interval
        self._seen = -1
        self._task: asyncio.Task[None] | None = None

    async def refresh(self) -> None:
        """Read the runtime limits now if they changed since the last look."""
        version = await asyncio.to_thread(self.limits.version)
        if version == self._seen:
            return
        current = await asyncio.to_thread(self.limits.all)
        self._apply(tuple(r.limit for r in current))
        self._seen = version

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._poll(), name="tollgate-runtime-limits")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.refresh()
            except sa.exc.SQLAlchemyError as exc:
                logger.warning("runtime limits not read: %s", type(exc).__name__)


def _limit_json(limit: LimitConfig) -> dict[str, Any]:
    return {
        "scope": limit.scope,
        "tag": limit.tag,
        "id": limit.id,
        "window": limit.window,
        "models": list(limit.models),
        "max_usd": str(limit.max_usd),
        "action": limit.action,
        "timezone": limit.timezone,
        "alert_at": [str(a) for a in limit.alert_at],
        "start_day": limit.start_day,
        "on_exceed": limit.on_exceed,
        "min_output_tokens": limit.min_output_tokens,
    }


def _from_row(row: Any) -> RuntimeLimit:
    alert_at = tuple(Decimal(a) for a in row["alert_at"].split(",") if a)
    limit = LimitConfig.model_validate(
        {
            "scope": row["scope"],
            "tag": row["tag"] or None,
            "id": row["limit_id"],
            "window": row["window"],
            "models": tuple(orjson.loads(row["models"])),
            "max_usd": Decimal(row["max_usd"]),
            "action": row["action"],
            "timezone": row["timezone"],
            "alert_at": alert_at,
            "start_day": row["start_day"],
            "on_exceed": row["on_exceed"],
            "min_output_tokens": row["min_output_tokens"],
        }
    )
    return RuntimeLimit(limit, _aware(row["updated_at"]), row["updated_by"])


def _aware(moment: datetime) -> datetime:
    """SQLite gives naive datetimes back; they were written in UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def limit_book(configured: Sequence[LimitConfig], runtime: Sequence[LimitConfig]) -> LimitBook:
    """The limits in force: the file's, with runtime ones in place of those they match."""
    return LimitBook(compile_rules(*merge_limits(configured, runtime)))
