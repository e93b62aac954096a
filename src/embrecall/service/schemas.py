"""Request and response shapes of the HTTP API, separate from the library's internals.

Request models validate bodies; response models document the answers in the OpenAPI schema
(the routes write the JSON themselves with orjson, which is faster than re-validating it).
"""

from __future__ import annotations

from typing import Any, Literal

from embrecall.errors import require_extra

require_extra("fastapi", "server")

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr  # noqa: E402

# Strict: a JSON true is not the id 1, and 1.5 is not an id at all.
Id = StrictInt | StrictStr
QueryName = Literal["recommend", "similar_items", "similar_users"]


FILTER_HELP = (
    "Keep only results whose catalogue fields pass every expression (ANDed): FIELD=VALUE, "
    "FIELD=A|B, FIELD!=VALUE, FIELD>=N, FIELD<=N, FIELD>N, FIELD<N; e.g. genres=Comedy, "
    "year>=2000. /v1/info lists the fields."
)


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")

    k: int | None = Field(None, description="How many results per query (default: default_k).")
    nprobe: int | None = Field(None, description="IVF lists to visit (approximate indexes).")
    ef_search: int | None = Field(None, description="HNSW efSearch (approximate indexes).")
    filter: list[str] | None = Field(None, description=FILTER_HELP, max_length=32)


class BatchRequest(_Request):
    """Many query ids in one request."""

    ids: list[Id] = Field(..., min_length=1, description="Query ids, at most max_batch.")
    exclude: list[Id] | list[list[Id]] | None = Field(
        None,
        description="Ids to leave out: one list for every query, or one list per query.",
    )


class RecommendBatchRequest(BatchRequest):
    exclude_seen: bool = Field(True, description="Leave out the items each user has seen.")


class SearchRequest(_Request):
    """Search by raw vector: ``vector`` for one query, ``vectors`` for a batch."""

    vector: list[float] | None = Field(
        None, description="One query vector of the index's dimension."
    )
    vectors: list[list[float]] | None = Field(None, description="A batch of query vectors.")
    space: Literal["items", "users"] | None = Field(
        None,
        description="The space to search; items by default.",
    )
    query: QueryName | None = Field(
        None,
        description="Which query kind's index and metric: recommend (default for items, "
        "the user-item score), similar_items, or similar_users (default for users).",
    )
    exclude: list[Id] | list[list[Id]] | None = Field(
        None,
        description="Ids to leave out: one list for every query, or one list per query.",
    )


class Result(BaseModel):
    """One result: id, score, then the catalog's fields (title, genres, ...)."""

    model_config = ConfigDict(extra="allow")

    id: Id
    score: float


class _Answer(BaseModel):
    version: str = Field(..., description="The index version that answered.")
    query: QueryName
    k: int = Field(..., description="The k asked (at most max_k).")
    metric: str
    score: str = Field(..., description="The score's direction, e.g. 'higher is better'.")


class FilterApplied(BaseModel):
    """Which filter applied, how many rows passed it, and which plan answered."""

    expressions: list[str]
    passing: int = Field(..., description="Rows of the searched space that pass the filter.")
    plan: Literal["scan", "index"] = Field(
        ...,
        description="scan: the passing rows were scored exactly; index: the index was searched "
        "with a selector of the passing rows.",
    )


class QueryResponse(_Answer):
    id: Id
    returned: int = Field(..., description="How many results: fewer than k when fewer exist.")
    results: list[Result]
    filter: FilterApplied | None = Field(None, description="Present when a filter applied.")


class BatchEntry(BaseModel):
    id: Id | None = None
    returned: int = Field(..., description="How many results: fewer than k when fewer exist.")
    results: list[Result]


class BatchResponse(_Answer):
    batch: list[BatchEntry]
    filter: FilterApplied | None = Field(None, description="Present when a filter applied.")


class SearchResponse(_Answer):
    space: str
    returned: int | None = Field(None, description="With vector: how many results.")
    results: list[Result] | None = None
    batch: list[BatchEntry] | None = None
    filter: FilterApplied | None = Field(None, description="Present when a filter applied.")


class CatalogRecord(BaseModel):
    """An item's id and its catalog fields (title, genres, ...)."""

    model_config = ConfigDict(extra="allow")

    id: Id


class SeenResponse(BaseModel):
    version: str
    id: Id
    items: list[Id]
    interactions_loaded: bool | None = Field(
        None, description="With details=true: false when this version has no interactions."
    )
    records: list[CatalogRecord] | None = Field(
        None, description="With details=true: each seen item with its catalog fields."
    )


class ItemResponse(BaseModel):
    version: str
    id: Id
    metadata: dict[str, Any] = Field(
        ..., description="The item's catalog fields; {} when the catalog lacks it."
    )


class ItemSearchResponse(BaseModel):
    version: str
    q: str
    limit: int
    results: list[CatalogRecord]
    has_more: bool = Field(..., description="More items match than limit.")


class ErrorBody(BaseModel):
    """A refusal: a stable code, a message for people, and details for some codes."""

    model_config = ConfigDict(extra="allow")

    code: str = Field(..., description="Stable, e.g. unknown_id, invalid_k, malformed_json.")
    message: str
    ids: list[Id] | None = Field(None, description="unknown_id: the ids the version lacks.")


class ErrorResponse(BaseModel):
    error: ErrorBody


class ReadyResponse(BaseModel):
    status: Literal["ready", "not ready"]
    version: str | None = Field(None, description="The served version, when ready.")
    loading: bool | None = Field(None, description="When not ready: a version is loading.")
    last_failure: str | None = Field(None, description="When not ready: why the last load failed.")


class LoadResponse(BaseModel):
    version: str
    status: Literal["swapped", "unchanged"]
    previous: str | None
    seconds: float
    canary: dict[str, Any] | None


# What each refusal means, for the OpenAPI schema; a route lists the ones it can give.
ERROR_TEXT = {
    400: "The body is not JSON (malformed_json).",
    401: "Missing or wrong API key in X-API-Key (unauthorized).",
    403: "Admin endpoints are off: EMBRECALL_ADMIN_API_KEY is unset (admin_disabled).",
    404: "An id the served version does not hold (unknown_id; `ids` lists them).",
    409: "The version failed a check; the old one keeps serving (version_refused).",
    413: "The body is over max_body_bytes (body_too_large).",
    422: "A parameter or body that does not fit: invalid_k, too_many_ids, invalid_id, "
    "invalid_argument, invalid_request, dimension_mismatch, invalid_vector.",
    503: "No index version is loaded yet (not_ready).",
}


def errors(*statuses: int, **text: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for these refusals, all in the :class:`ErrorResponse` shape;
    ``text`` overrides a description (``e404="..."``)."""
    return {
        status: {"model": ErrorResponse, "description": text.get(f"e{status}", ERROR_TEXT[status])}
        for status in statuses
    }
