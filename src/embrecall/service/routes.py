"""HTTP routes: read endpoints (/v1/...), operations (/healthz, /readyz, /metrics), admin.

Routes validate, pick the served version once, hand the work to a search thread and respond.
Search, exclusion and id logic live in the library; JSON shaping in ``answers``.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from typing import Annotated

from embrecall import __version__
from embrecall.errors import InvalidArgumentError, require_extra
from embrecall.service import answers
from embrecall.service.errors import ApiError
from embrecall.service.metrics import CONTENT_TYPE
from embrecall.service.registry import VersionRefused, describe_source
from embrecall.service.runtime import Service, key_matches, respond
from embrecall.service.schemas import (
    FILTER_HELP,
    BatchRequest,
    BatchResponse,
    ItemResponse,
    ItemSearchResponse,
    LoadResponse,
    QueryResponse,
    ReadyResponse,
    RecommendBatchRequest,
    SearchRequest,
    SearchResponse,
    SeenResponse,
    errors,
)
from embrecall.versions import check_version_id

require_extra("fastapi", "server")
require_extra("orjson", "server")

import anyio.to_thread  # noqa: E402
import orjson  # noqa: E402
from fastapi import APIRouter, Depends, Query, Request, Security  # noqa: E402
from fastapi.security import APIKeyHeader  # noqa: E402
from starlette.responses import Response  # noqa: E402

K = Annotated[
    int | None, Query(description="How many results (default: default_k, at most max_k).")
]
EXCLUDE = Annotated[
    list[str] | None,
    Query(description="Ids to leave out; repeat the parameter or separate ids with commas."),
]
FILTER = Annotated[
    list[str] | None,
    Query(alias="filter", description=FILTER_HELP + " Repeat the parameter for several."),
]
NPROBE = Annotated[int | None, Query(description="IVF lists to visit (approximate indexes).")]
EF_SEARCH = Annotated[int | None, Query(description="HNSW efSearch (approximate indexes).")]
MAX_SEARCH_TEXT = 200  # characters of a title search; longer text is a mistake, not a title


def build_routes(service: Service) -> list[APIRouter]:
    """The app's routers; the read endpoints behind the read API key when one is set."""
    settings = service.settings
    guard = [Depends(_read_key)] if settings.api_key is not None else []
    # 401 only where a key is asked for; every read can be refused before the first load
    common = {**(errors(401) if settings.api_key is not None else {}), **errors(503)}
    reads = APIRouter(dependencies=guard, responses=common)
    reads.include_router(read_router)
    from embrecall.service.live import live_router

    return [reads, ops_router, admin_router, live_router(_admin_key)]


def get_service(request: Request) -> Service:
    """The app's :class:`Service` (made by the app factory)."""
    return request.app.state.service


ServiceDep = Annotated[Service, Depends(get_service)]
_READ_KEY = APIKeyHeader(name="X-API-Key", scheme_name="ApiKey", auto_error=False)


def _read_key(service: ServiceDep, key: Annotated[str | None, Security(_READ_KEY)]) -> None:
    if not key_matches(key, service.settings.api_key):
        raise ApiError(401, "unauthorized", "missing or wrong API key (send it as X-API-Key)")


# -- read endpoints --------------------------------------------------------------------------
read_router = APIRouter(prefix="/v1", tags=["recall"])
_BY_ID = errors(404, 422)
_BATCH = errors(400, 404, 413, 422)


@dataclass(frozen=True)
class ByIdQuery:
    """The query parameters the by-id reads share."""

    k: int | None
    exclude: list[str] | None
    nprobe: int | None
    ef_search: int | None
    filter: list[str] | None = None


def by_id_query(
    k: K = None,
    exclude: EXCLUDE = None,
    nprobe: NPROBE = None,
    ef_search: EF_SEARCH = None,
    filter_: FILTER = None,
) -> ByIdQuery:
    """k, exclude, the search parameters and the filter of a by-id read."""
    return ByIdQuery(k, exclude, nprobe, ef_search, filter_)


ByIdQueryDep = Annotated[ByIdQuery, Depends(by_id_query)]


# its own parameters, not ByIdQueryDep: FastAPI lists an operation's own query parameters before
# those of its dependencies, which would move exclude_seen in the OpenAPI document
@read_router.get("/users/{user_id}/recommendations", response_model=QueryResponse, responses=_BY_ID)
async def recommend(
    service: ServiceDep,
    user_id: str,
    k: K = None,
    exclude: EXCLUDE = None,
    exclude_seen: bool = True,
    nprobe: NPROBE = None,
    ef_search: EF_SEARCH = None,
    filter_: FILTER = None,
) -> Response:
    """Top-k items for a user (u2i); their seen items are left out unless exclude_seen=false."""
    query = ByIdQuery(k, exclude, nprobe, ef_search, filter_)
    return await _by_id(service, "recommend", user_id, query, exclude_seen)


@read_router.get("/users/{user_id}/similar", response_model=QueryResponse, responses=_BY_ID)
async def similar_users(service: ServiceDep, user_id: str, query: ByIdQueryDep) -> Response:
    """Users most like a user (u2u), the user itself left out."""
    return await _by_id(service, "similar_users", user_id, query, True)


@read_router.get("/items/{item_id}/similar", response_model=QueryResponse, responses=_BY_ID)
async def similar_items(service: ServiceDep, item_id: str, query: ByIdQueryDep) -> Response:
    """Items most like an item (i2i), the item itself left out."""
    return await _by_id(service, "similar_items", item_id, query, True)


@read_router.get("/users/{user_id}/seen", response_model=SeenResponse, responses=_BY_ID)
async def seen(
    service: ServiceDep,
    user_id: str,
    details: Annotated[
        bool, Query(description="Add each item's catalog fields and interactions_loaded.")
    ] = False,
) -> Response:
    """Items the user has interacted with (the ones recommend leaves out)."""
    served = service.served()
    return respond(await service.run(answers.seen, served, user_id, details=details), served)


# before /items/{item_id}, which would take "search" for an id
@read_router.get("/items/search", response_model=ItemSearchResponse, responses=errors(422))
async def find_items(
    service: ServiceDep,
    q: Annotated[str, Query(description="Text the title contains; case is ignored.")],
    limit: Annotated[int, Query(description="Most items to list (at most max_k).")] = 20,
) -> Response:
    """Items whose title contains ``q``, in catalog order (only items this version holds)."""
    served = service.served()
    text = q.strip()
    if not text:
        raise ApiError(422, "invalid_argument", "q must not be empty")
    if len(text) > MAX_SEARCH_TEXT:
        raise ApiError(
            422, "invalid_argument", f"q is over {MAX_SEARCH_TEXT} characters ({len(text)})"
        )
    if not 1 <= limit <= service.settings.max_k:
        message = f"limit must be between 1 and {service.settings.max_k}, got {limit}"
        raise ApiError(422, "invalid_argument", message)
    return respond(await service.run(answers.find_items, served, text, limit), served)


@read_router.get("/items/{item_id}", response_model=ItemResponse, responses=_BY_ID)
async def item(service: ServiceDep, item_id: str) -> Response:
    """An item's own catalog fields (title, genres, ...); 404 for an item not held."""
    served = service.served()
    return respond(await service.run(answers.item, served, item_id), served)


@read_router.post("/users/recommendations", response_model=BatchResponse, responses=_BATCH)
async def recommend_batch(service: ServiceDep, body: RecommendBatchRequest) -> Response:
    """Recommendations for many users in one request."""
    return await _batch(service, "recommend", body, body.exclude_seen)


@read_router.post("/users/similar", response_model=BatchResponse, responses=_BATCH)
async def similar_users_batch(service: ServiceDep, body: BatchRequest) -> Response:
    """Similar users for many users in one request."""
    return await _batch(service, "similar_users", body, True)


@read_router.post("/items/similar", response_model=BatchResponse, responses=_BATCH)
async def similar_items_batch(service: ServiceDep, body: BatchRequest) -> Response:
    """Similar items for many items in one request."""
    return await _batch(service, "similar_items", body, True)


@read_router.post("/search", response_model=SearchResponse, responses=errors(400, 413, 422))
async def search(service: ServiceDep, body: SearchRequest) -> Response:
    """Search by raw vector (a two-tower user vector, an item vector...): ``vector`` for one
    query, ``vectors`` for a batch."""
    served = service.served()
    k = service.check_k(body.k)
    params = service.params(body.nprobe, body.ef_search)
    if (body.vector is None) == (body.vectors is None):
        raise ApiError(422, "invalid_request", "give exactly one of vector or vectors")
    if body.vectors is not None:
        service.check_batch(len(body.vectors), "vectors")
    _check_exclude(service, body.exclude)
    query = served.rec.vector_query(body.space, body.query)
    vectors = body.vector if body.vector is not None else body.vectors
    data = await service.run(
        answers.by_vector,
        served,
        query,
        vectors,
        k,
        exclude=body.exclude,
        params=params,
        filter=body.filter,
        metrics=service.metrics,
        monitor=service.monitor,
    )
    return respond(data, served)


@read_router.get("/info", tags=["operations"])
async def info(service: ServiceDep) -> Response:
    """Served version, available versions, counts, dimensions, metrics, index kinds, limits,
    the process id of the server process that answered (one of `serve --workers N`), and how
    many filtered queries each plan answered in this process."""
    served = service.registry.current
    registry = service.registry
    body = {
        "embrecall_version": __version__,
        "pid": os.getpid(),
        "version": served.version if served else None,
        "loaded_at": served.loaded_at if served else None,
        "loading": registry.loading,
        "versions": describe_source(registry.source),
        "last_load": registry.last_load,
        "canary": served.canary if served else None,
        "artifact": served.description if served else None,
        "limits": service.settings.public(),
        "live_recall": service.monitor.snapshot() if service.monitor else None,
        "filter_plans": service.metrics.filter_plans(),
        "live_changes": served.feed.describe() if served and served.feed else None,
    }
    return Response(orjson.dumps(body), media_type="application/json")


async def _by_id(
    service: Service, kind: str, raw_id: str, query: ByIdQuery, exclude_seen: bool
) -> Response:
    served = service.served()
    k = service.check_k(query.k)
    params = service.params(query.nprobe, query.ef_search)
    excluded = _split(query.exclude)
    if excluded:
        service.check_exclude(len(excluded))
    data = await service.run(
        answers.by_id,
        served,
        kind,
        raw_id,
        k,
        exclude=excluded,
        exclude_seen=exclude_seen,
        params=params,
        filter=query.filter,
        metrics=service.metrics,
        monitor=service.monitor,
    )
    return respond(data, served)


async def _batch(service: Service, query: str, body: BatchRequest, exclude_seen: bool) -> Response:
    served = service.served()
    k = service.check_k(body.k)
    params = service.params(body.nprobe, body.ef_search)
    service.check_batch(len(body.ids))
    _check_exclude(service, body.exclude)
    data = await service.run(
        answers.by_ids,
        served,
        query,
        body.ids,
        k,
        exclude=body.exclude,
        exclude_seen=exclude_seen,
        params=params,
        filter=body.filter,
        metrics=service.metrics,
    )
    return respond(data, served)


def _split(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    return [v for value in values for v in value.split(",") if v]


def _check_exclude(service: Service, exclude) -> None:
    """Exclusion lists are capped too: each excluded id costs work in every query."""
    if not exclude:
        return
    lists = exclude if isinstance(exclude[0], list) else [exclude]
    service.check_exclude(max(len(e) for e in lists))


# -- operations ------------------------------------------------------------------------------
ops_router = APIRouter(tags=["operations"])


@ops_router.get("/healthz")
async def healthz() -> Response:
    """Liveness: the process answers."""
    return Response(b'{"status":"ok"}', media_type="application/json")


@ops_router.get("/readyz", response_model=ReadyResponse, responses={503: {"model": ReadyResponse}})
async def readyz(service: ServiceDep) -> Response:
    """Readiness: a version is loaded (a refused new version does not change this)."""
    served = service.registry.current
    if served is None:
        last = service.registry.last_load or {}
        body = {
            "status": "not ready",
            "loading": service.registry.loading,
            "last_failure": last.get("reason"),
        }
        return Response(orjson.dumps(body), status_code=503, media_type="application/json")
    return Response(
        orjson.dumps({"status": "ready", "version": served.version}),
        media_type="application/json",
    )


@ops_router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def metrics(service: ServiceDep) -> Response:
    """Prometheus metrics."""
    service.registry.release_retired()  # so the in-memory gauge is current when scraped
    return Response(service.metrics.render(), media_type=CONTENT_TYPE)


# -- admin -----------------------------------------------------------------------------------
_ADMIN_KEY = APIKeyHeader(name="X-API-Key", scheme_name="AdminKey", auto_error=False)


def _admin_key(service: ServiceDep, key: Annotated[str | None, Security(_ADMIN_KEY)]) -> None:
    admin_api_key = service.settings.admin_api_key
    if admin_api_key is None:
        raise ApiError(
            403, "admin_disabled", "admin endpoints are off: set EMBRECALL_ADMIN_API_KEY"
        )
    if not key_matches(key, admin_api_key):
        raise ApiError(401, "unauthorized", "missing or wrong admin API key (send it as X-API-Key)")


admin_router = APIRouter(
    prefix="/v1/admin",
    dependencies=[Depends(_admin_key)],
    tags=["admin"],
    responses=errors(401, 403),
)
_REFUSED = errors(404, 409, e404="The root has no such version (unknown_version).")


@admin_router.post(
    "/versions/{version}/load",
    response_model=LoadResponse,
    responses={
        **_REFUSED,
        **errors(422, e422="Not a version id (invalid_version_id), or a bad query string."),
    },
)
async def load_version(service: ServiceDep, version: str, force: bool = False) -> Response:
    """Load, verify and canary-check a version of the root, then swap it in.

    The old version answers until the swap; a version that fails a check is refused (409)
    and the old one keeps serving. Only a version id is accepted, never a path.
    """
    try:
        check_version_id(version)
    except InvalidArgumentError as exc:
        raise ApiError(422, "invalid_version_id", str(exc)) from None
    return await _admin_load(service, service.registry.load, version, force=force)


@admin_router.post("/reload", response_model=LoadResponse, responses=_REFUSED)
async def reload(service: ServiceDep) -> Response:
    """Load the version the root's CURRENT pointer names now (retries a refused one)."""
    return await _admin_load(service, service.registry.reload)


@admin_router.get("/versions")
async def versions(service: ServiceDep) -> Response:
    """The root's versions, pointer and history, and the last load's outcome."""
    registry = service.registry
    body = {
        **describe_source(registry.source),
        "served": registry.current.version if registry.current else None,
        "history": await anyio.to_thread.run_sync(_history, registry.source),
        "last_load": registry.last_load,
    }
    return Response(orjson.dumps(body), media_type="application/json")


async def _admin_load(service: Service, fn, *args, **kwargs) -> Response:
    try:
        # in the registry's low-priority loader thread, never in a search thread
        outcome = await asyncio.wrap_future(service.registry.submit(fn, *args, **kwargs))
    except VersionRefused as refused:
        if refused.reason == "unknown_version":
            raise ApiError(404, "unknown_version", refused.message) from None
        raise ApiError(
            409,
            "version_refused",
            refused.message,
            reason=refused.reason,
            **({"canary": refused.details} if refused.details else {}),
        ) from None
    body = {
        "version": outcome.version,
        "status": outcome.status,
        "previous": outcome.previous,
        "seconds": round(outcome.seconds, 3),
        "canary": outcome.canary,
    }
    return Response(orjson.dumps(body), media_type="application/json")


def _history(source) -> dict | None:
    history = getattr(source, "history", None)
    return history() if history is not None else None
