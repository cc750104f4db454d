"""The dashboard: one static page at ``/dashboard`` that draws spend from the admin API.

Why the page itself needs no key: a browser cannot add ``Authorization: Bearer``
to a page load, and putting the key in a query string would leave it in access
logs. So ``GET /dashboard`` serves only static HTML, JavaScript and CSS with no
data in them. The page asks for the admin key (a password field, kept in the
tab's ``sessionStorage``, or ``#key=...`` in the URL fragment, which browsers
never send to the server) and calls ``/admin/...`` with it as a bearer token.
Every number stays behind ``$TOLLGATE_ADMIN_KEY``, checked where it always is.

No build step and no CDN: plain HTML, vanilla JavaScript and inline SVG,
shipped as package data (``proxy/admin/static``) and read once when the routes are made.
The Content-Security-Policy allows scripts and styles from this origin only,
so an id sent in an attribution header cannot run as script even if it looks
like HTML (the page also writes text with ``textContent`` only).
"""

from __future__ import annotations

from importlib.resources import files

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

# The only files ``/dashboard/{name}`` serves: a fixed allow-list, so no path can reach anything else.
_ASSETS = {
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
}
_HEADERS = {
    # The page is tiny, and a stale script after an upgrade would read the API wrongly.
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def _read(name: str) -> bytes:
    return (files("proxy.admin") / "static" / name).read_bytes()


def dashboard_routes() -> list[Route]:
    """``GET /dashboard`` (the page) and ``GET /dashboard/{name}`` (its script and stylesheet)."""
    page = _read("dashboard.html")
    assets = {name: (_read(name), media_type) for name, media_type in _ASSETS.items()}

    async def serve_page(request: Request) -> Response:
        return Response(page, media_type="text/html; charset=utf-8", headers=_HEADERS)

    async def serve_asset(request: Request) -> Response:
        found = assets.get(request.path_params["name"])
        if found is None:
            # The app's 404 handler renders this in the one error shape.
            raise HTTPException(404)
        body, media_type = found
        return Response(body, media_type=media_type, headers=_HEADERS)

    return [
        Route("/dashboard", serve_page, methods=["GET"]),
        Route("/dashboard/{name}", serve_asset, methods=["GET"]),
    ]
