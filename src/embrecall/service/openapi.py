"""The OpenAPI schema with this server's limits written in as schema constraints.

The limits are settings (``max_k``, ``max_batch``...), so they cannot sit in the module-level
request models. They are not validated by those models either: the routes refuse them with
their own codes (``invalid_k``, ``too_many_ids``), which clients rely on. This module writes
the same numbers into the generated schema, once, so that the documented bounds are the
enforced ones.
"""

from __future__ import annotations

from typing import Any

from embrecall.errors import require_extra
from embrecall.service.routes import MAX_SEARCH_TEXT
from embrecall.service.settings import Settings

require_extra("fastapi", "server")

from fastapi import FastAPI  # noqa: E402
from fastapi.openapi.utils import get_openapi  # noqa: E402

_REQUEST_MODELS = ("BatchRequest", "RecommendBatchRequest", "SearchRequest")


def install_openapi(app: FastAPI, settings: Settings) -> None:
    """Make ``app.openapi()`` return the schema with ``settings``' limits."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            add_limits(schema, settings)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def add_limits(schema: dict[str, Any], settings: Settings) -> None:
    """Write ``settings``' limits into ``schema`` (in place)."""
    k = {"minimum": 1, "maximum": settings.max_k}
    search = {"minimum": 1, "maximum": settings.max_search_param}
    query_params = {
        "k": k,
        "limit": k,
        "nprobe": search,
        "ef_search": search,
        "q": {"minLength": 1, "maxLength": MAX_SEARCH_TEXT},
        # repeated values; each may hold several ids separated by commas, counted one by one
        "exclude": {"maxItems": settings.max_exclude},
    }
    for item in schema.get("paths", {}).values():
        for operation in item.values():
            for param in operation.get("parameters", ()):
                if param.get("in") == "query" and param["name"] in query_params:
                    _constrain(param["schema"], query_params[param["name"]])
            body = operation.get("requestBody")
            if body is not None:
                body["description"] = (
                    f"At most {settings.max_body_bytes} bytes (413 body_too_large over it)."
                )
    models = schema.get("components", {}).get("schemas", {})
    per_query = {"maxItems": settings.max_exclude}
    for name in _REQUEST_MODELS:
        props = models.get(name, {}).get("properties", {})
        for field, bounds in (("k", k), ("nprobe", search), ("ef_search", search)):
            if field in props:
                _constrain(props[field], bounds)
        for field in ("ids", "vectors"):
            if field in props:
                _constrain(props[field], {"maxItems": settings.max_batch})
        if "exclude" in props:
            for branch in props["exclude"].get("anyOf", ()):
                if branch.get("type") != "array":
                    continue
                inner = branch.get("items", {})
                if inner.get("type") == "array":  # one list per query
                    branch["maxItems"] = settings.max_batch
                    inner.update(per_query)
                else:  # one list for every query
                    branch.update(per_query)


def _constrain(node: dict[str, Any], bounds: dict[str, Any]) -> None:
    """Put ``bounds`` on ``node``, or on its branches of the kind they apply to (``int | None``
    is an ``anyOf``)."""
    kind = "array" if "maxItems" in bounds else "string" if "maxLength" in bounds else None
    branches = node.get("anyOf")
    if not branches:
        node.update(bounds)
        return
    for branch in branches:
        if branch.get("type") == kind or (kind is None and branch.get("type") == "integer"):
            branch.update(bounds)
