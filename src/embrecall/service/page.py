"""The exploration page: ``GET /`` and its static files under ``/ui/``, served without a key.

Plain HTML, CSS and JavaScript modules shipped in ``embrecall/service/web/`` (no build step).
The page calls the ``/v1`` read endpoints from the browser, sending the read key the user types
in; the page itself holds no data and no secret, so it needs no key. The files are read once
when the app is built and kept in memory.
"""

from __future__ import annotations

from importlib import resources

from embrecall.errors import require_extra
from embrecall.service.errors import ApiError

require_extra("fastapi", "server")

from fastapi import APIRouter  # noqa: E402
from starlette.responses import Response  # noqa: E402

# name -> media type; only these files are served (no paths from the request touch the disk)
ASSETS = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "api.js": "text/javascript; charset=utf-8",
    "views.js": "text/javascript; charset=utf-8",
    "route.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
# Everything from this origin only: the page works offline and cannot leak a key elsewhere.
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",  # revalidate, so an upgraded server serves its own page
}


def page_routes() -> APIRouter:
    """Routes of the page, left out of the OpenAPI schema (they are not API)."""
    web = resources.files("embrecall.service").joinpath("web")
    files = {name: web.joinpath(name).read_bytes() for name in ASSETS}
    router = APIRouter(include_in_schema=False)

    def asset(name: str) -> Response:
        return Response(files[name], media_type=ASSETS[name], headers=HEADERS)

    @router.get("/")
    async def index() -> Response:
        return asset("index.html")

    @router.get("/ui/{name}")
    async def static(name: str) -> Response:
        if name not in files or name == "index.html":
            raise ApiError(404, "not_found", f"no page file {name}")
        return asset(name)

    return router
