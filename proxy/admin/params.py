"""Query parameters of the admin API: only the documented ones, and times read one way.

An admin route names the parameters it takes; any other is a 400 naming it, so a typo
(``?sinse=``) or a parameter of another route never silently widens an answer to everything.
``since`` and ``until`` (the CLI's words) are the window's names; ``from`` and ``to`` are kept
as aliases of them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import Response

from proxy.errors import BadRequest, UnknownParameter

Endpoint = Callable[[Request], Awaitable[Response]]
WINDOW = ("since", "until", "from", "to")
_ALIASES = {"since": "from", "until": "to"}


def accepting(names: Iterable[str], endpoint: Endpoint) -> Endpoint:
    """``endpoint``, refusing any query parameter outside ``names`` with a 400 that names it."""
    allowed = frozenset(names)
    listed = ", ".join(sorted(allowed)) or "none"

    async def check(request: Request) -> Response:
        for name in request.query_params:
            if name not in allowed:
                raise UnknownParameter(f"Unknown query parameter {name!r}: this route takes {listed}.")
        return await endpoint(request)

    return check


def window(request: Request) -> tuple[datetime | None, datetime | None]:
    """``since`` and ``until`` (or their aliases ``from`` and ``to``) as aware datetimes; BadRequest if bad."""
    since, until = _when(request, "since"), _when(request, "until")
    if since is not None and until is not None and since >= until:
        raise BadRequest(
            f"The window is empty: since {since.isoformat()} is not before until {until.isoformat()} "
            "(since is inclusive, until exclusive)."
        )
    return since, until


def _when(request: Request, name: str) -> datetime | None:
    params = request.query_params
    alias = _ALIASES[name]
    if name in params and alias in params:
        raise BadRequest(f"Give {name} or its alias {alias}, not both.")
    text = params.get(name) or params.get(alias)
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise BadRequest(
            f"{name if name in params else alias} must be an ISO date or time, e.g. 2026-11-01 or 2026-11-01T12:00, "
            f"not {text!r}."
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)
