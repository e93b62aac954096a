"""API documentation pages, ``/docs`` (Swagger UI) and ``/redoc`` (ReDoc), that work offline.

FastAPI's own pages load Swagger UI and ReDoc from a CDN, so they are blank on a machine with no
internet access. Here every file comes from this server: the Swagger UI and ReDoc bundles from
the ``fastapi-offline`` package (kept up to date with both projects' releases, MIT licensed,
the bundles under their own licences), the small start-up script from ``docs_web/``. The pages
carry a Content-Security-Policy that lets scripts and requests reach this origin only.
"""

from __future__ import annotations

import functools
import html
from importlib import resources

from embrecall.errors import require_extra
from embrecall.service.errors import ApiError

require_extra("fastapi", "server")
require_extra("fastapi_offline", "server")

from fastapi import APIRouter, Request  # noqa: E402
from starlette.responses import Response  # noqa: E402

ASSETS_PATH = "/docs/assets"
# name -> (package holding it, folder in it, media type); nothing else is served
ASSETS = {
    "swagger-ui-bundle.js": ("fastapi_offline", "static", "text/javascript; charset=utf-8"),
    "swagger-ui.css": ("fastapi_offline", "static", "text/css; charset=utf-8"),
    "redoc.standalone.js": ("fastapi_offline", "static", "text/javascript; charset=utf-8"),
    "favicon.png": ("fastapi_offline", "static", "image/png"),
    "swagger-init.js": ("embrecall.service", "docs_web", "text/javascript; charset=utf-8"),
}
_CSP = (
    "default-src 'none'; script-src 'self'; style-src {styles}; img-src 'self' data:; "
    "font-src 'self' data:; connect-src 'self'; {workers}base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
_COMMON = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",  # revalidate, so an upgraded server serves its own bundles
}
# Scripts and every fetch stay on this origin. Swagger UI sets its styles through the DOM,
# which 'self' allows; ReDoc writes <style> elements and runs its search in a blob worker.
# ReDoc also shows a logo from its vendor's CDN: the policy blocks it, and ReDoc hides it.
SWAGGER_HEADERS = {"Content-Security-Policy": _CSP.format(styles="'self'", workers=""), **_COMMON}
REDOC_HEADERS = {
    "Content-Security-Policy": _CSP.format(
        styles="'self' 'unsafe-inline'", workers="worker-src blob:; "
    ),
    **_COMMON,
}

_SWAGGER = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>{title} - Swagger UI</title>
  <link rel="icon" type="image/png" href="{assets}/favicon.png">
  <link rel="stylesheet" href="{assets}/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui" data-openapi-url="{openapi}"></div>
  <script src="{assets}/swagger-ui-bundle.js"></script>
  <script src="{assets}/swagger-init.js"></script>
</body>
</html>
"""
_REDOC = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>{title} - ReDoc</title>
  <link rel="icon" type="image/png" href="{assets}/favicon.png">
</head>
<body>
  <redoc spec-url="{openapi}"></redoc>
  <script src="{assets}/redoc.standalone.js"></script>
</body>
</html>
"""


@functools.cache
def _asset(name: str) -> bytes:
    # read on first use, not at import or app build: the bundles weigh about 3 MB
    package, folder, _ = ASSETS[name]
    return resources.files(package).joinpath(folder, name).read_bytes()


def docs_routes(title: str, openapi_url: str) -> APIRouter:
    """``/docs``, ``/redoc`` and their files, left out of the OpenAPI schema."""
    router = APIRouter(include_in_schema=False)

    def page(template: str, request: Request, headers: dict[str, str]) -> Response:
        root = request.scope.get("root_path", "")
        text = template.format(
            title=html.escape(title),
            assets=html.escape(root + ASSETS_PATH),
            openapi=html.escape(root + openapi_url),
        )
        return Response(text, media_type="text/html; charset=utf-8", headers=headers)

    @router.get("/docs")
    async def swagger_ui(request: Request) -> Response:
        return page(_SWAGGER, request, SWAGGER_HEADERS)

    @router.get("/redoc")
    async def redoc(request: Request) -> Response:
        return page(_REDOC, request, REDOC_HEADERS)

    @router.get(ASSETS_PATH + "/{name}")
    async def asset(name: str) -> Response:
        if name not in ASSETS:
            raise ApiError(404, "not_found", f"no documentation file {name}")
        return Response(_asset(name), media_type=ASSETS[name][2], headers=_COMMON)

    return router
