"""Attribution scopes: who the calls made inside a ``with meter.attribute(...)`` block are for.

The scope is a ``contextvars`` variable, so it follows the code that runs inside the block:
asyncio tasks created there, ``asyncio.to_thread`` and anything run in a copied context
(``contextvars.copy_context().run``). A plain ``threading.Thread`` starts with an empty
context, so a thread meant to inherit the scope is started with ``copy_context().run``.

Scopes nest: an inner scope keeps what the outer one set and overrides what it names,
and tags merge. Values are checked as the proxy checks its headers, when the scope opens.

Light to import: nothing here imports the core.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from proxy.attribution import Attribution

_CURRENT: contextvars.ContextVar[Attribution | None] = contextvars.ContextVar("tollgate_attribution", default=None)


def current_scope() -> Attribution | None:
    """The attribution of the innermost open scope in this context, or None."""
    return _CURRENT.get()


@contextmanager
def attribution_scope(
    user: str | None = None,
    team: str | None = None,
    thread: str | None = None,
    agent: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> Iterator[Attribution]:
    """Open a scope (see the module's docstring); yields its attribution, the outer one merged in."""
    from proxy.attribution import Attribution  # by now the meter has imported it: a dict look-up

    outer = _CURRENT.get()
    named = {"user": user, "team": team, "thread": thread, "agent": agent}
    for name, value in named.items():
        if value is not None:
            _check_label(name, value)
    for name, value in (tags or {}).items():
        _check_tag(name, value)
    if outer is not None:
        merged_tags = {**outer.tags, **(tags or {})}
        scope = Attribution(
            user=user if user is not None else outer.user,
            team=team if team is not None else outer.team,
            thread=thread if thread is not None else outer.thread,
            agent=agent if agent is not None else outer.agent,
            tags=merged_tags,
        )
    else:
        scope = Attribution(user=user, team=team, thread=thread, agent=agent, tags=dict(tags or {}))
    token = _CURRENT.set(scope)
    try:
        yield scope
    finally:
        _CURRENT.reset(token)


def _check_label(name: str, value: object) -> None:
    from proxy.recording.records import label_problem

    if not isinstance(value, str):
        raise TypeError(f"meter.attribute({name}=...) takes a string, not {type(value).__name__}")
    problem = label_problem(value)
    if problem is not None:
        raise ValueError(f"meter.attribute({name}=...): the value {problem}")


def _check_tag(name: object, value: object) -> None:
    from proxy.attribution import MAX_TAG_NAME_CHARS
    from proxy.recording.records import MAX_LABEL_CHARS

    if not isinstance(name, str) or not isinstance(value, str):
        raise TypeError("meter.attribute(tags=...) takes a mapping of strings to strings")
    if len(name) > MAX_TAG_NAME_CHARS or len(value) > MAX_LABEL_CHARS or "\x00" in name + value:
        raise ValueError(
            f"meter.attribute(tags=...): the tag {name[:40]!r} is too long or holds a NUL: a tag name is at most "
            f"{MAX_TAG_NAME_CHARS} characters and its value at most {MAX_LABEL_CHARS}"
        )
