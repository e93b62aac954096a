"""Answers as JSON bytes: call the served version's Recommender and shape its results.

These run in the search worker threads. They hold no search logic (the Recommender does the
searching and the exclusions) and no HTTP (the routes validate and respond); they only put the
library's results into the API's JSON shape, the same ``results: [{"id", "score", ...}]`` as the
CLI's ``--json``, plus the version that answered.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from embrecall.errors import InvalidArgumentError, require_extra
from embrecall.service.monitor import LiveRecallMonitor
from embrecall.service.registry import Served

require_extra("orjson", "server")

import orjson  # noqa: E402

# query kind -> (space its query ids come from, space its results come from)
SPACES = {
    "recommend": ("users", "items"),
    "similar_items": ("items", "items"),
    "similar_users": ("users", "users"),
}
_WHAT = {"users": "user id", "items": "item id"}


def by_id(
    served: Served,
    query: str,
    raw_id: str,
    k: int,
    *,
    exclude: Sequence | None = None,
    exclude_seen: bool = True,
    params: Mapping[str, int] | None = None,
    monitor: LiveRecallMonitor | None = None,
) -> bytes:
    """One query id: ``{"version", "query", "id", "k", "metric", "score", "returned",
    "results"}``.

    With a ``monitor``, a sample of these queries is re-answered exactly in the background.
    """
    rec = served.rec
    source, target = SPACES[query]
    qid = _space(served, source, query).coerce_id(raw_id, what=_WHAT[source])
    ids, scores = getattr(rec, query)(qid, k, **_options(query, exclude, exclude_seen, params))
    if monitor is not None:
        monitor.observe(
            query,
            ids,
            query_id=qid,
            k=k,
            exclude=exclude,
            exclude_seen=exclude_seen,
            recommender=rec,
        )
    return orjson.dumps(
        {
            "version": served.version,
            "query": query,
            "id": qid,
            "k": k,
            **served.queries[query],
            **_results(rec.results(ids, scores, space=target)),
        }
    )


def by_ids(
    served: Served,
    query: str,
    raw_ids: Sequence,
    k: int,
    *,
    exclude: Sequence | None = None,
    exclude_seen: bool = True,
    params: Mapping[str, int] | None = None,
) -> bytes:
    """A batch of query ids: ``{..., "batch": [{"id", "results"}, ...]}`` in request order."""
    rec = served.rec
    source, target = SPACES[query]
    space = _space(served, source, query)
    # every unknown id named at once (those beyond int64 too), as the search would
    space.rows_of(raw_ids, what=_WHAT[source])
    qids = [space.coerce_id(i) for i in raw_ids]
    ids, scores = getattr(rec, query)(qids, k, **_options(query, exclude, exclude_seen, params))
    return orjson.dumps(
        {
            "version": served.version,
            "query": query,
            "k": k,
            **served.queries[query],
            "batch": [
                {"id": q, **_results(r)} for q, r in zip(qids, _rows(rec, ids, scores, target))
            ],
        }
    )


def by_vector(
    served: Served,
    query: str,
    vectors: Sequence,
    k: int,
    *,
    exclude: Sequence | None = None,
    params: Mapping[str, int] | None = None,
    monitor: LiveRecallMonitor | None = None,
) -> bytes:
    """Raw vectors: one (d,) vector gives ``results``, a (m, d) batch gives ``batch``."""
    rec = served.rec
    _, target = SPACES[query]
    # a value beyond float32 becomes inf and is refused as such; numpy's overflow warning on
    # that cast would only fill the server log (np.errstate is per thread)
    with np.errstate(over="ignore"):
        ids, scores = rec.search(query, vectors, k, **_options("search", exclude, True, params))
    answer: dict[str, Any] = {
        "version": served.version,
        "query": query,
        "space": target,
        "k": k,
        **served.queries[query],
    }
    if ids.ndim == 1:
        answer.update(_results(rec.results(ids, scores, space=target)))
        if monitor is not None:
            monitor.observe(query, ids, vector=vectors, k=k, exclude=exclude, recommender=rec)
    else:
        answer["batch"] = [_results(r) for r in _rows(rec, ids, scores, target)]
    return orjson.dumps(answer)


def seen(served: Served, raw_id: str, *, details: bool = False) -> bytes:
    """Items a user has seen: ``{"version", "id", "items"}``.

    With ``details``, also ``records`` (each item's id and catalog fields) and
    ``interactions_loaded`` (without interactions every history is empty, which is not the same
    as a user who has seen nothing).
    """
    users = _space(served, "users", "seen items")
    uid = users.coerce_id(raw_id, what="user id")
    users.row_of(uid, what="user id")  # 404 for an unknown user, with or without interactions
    items = served.rec.seen_items(uid).tolist()
    answer: dict[str, Any] = {"version": served.version, "id": uid, "items": items}
    if details:
        answer["interactions_loaded"] = served.rec.seen is not None
        answer["records"] = _records(served, items)
    return orjson.dumps(answer)


def item(served: Served, raw_id: str) -> bytes:
    """One item's own catalog fields: ``{"version", "id", "metadata"}``; 404 when the version
    does not hold the item (``metadata`` is ``{}`` for an item the catalog lacks)."""
    items = served.rec.items
    iid = items.coerce_id(raw_id, what="item id")
    items.row_of(iid, what="item id")
    catalog = served.rec.catalog
    metadata = catalog.record(iid) if catalog is not None else {}
    return orjson.dumps({"version": served.version, "id": iid, "metadata": metadata})


def find_items(served: Served, text: str, limit: int) -> bytes:
    """Items whose title contains ``text`` (any case), in catalog order:
    ``{"version", "q", "limit", "results": [{"id", <catalog fields>}], "has_more"}``.

    Only items this version can query (they have embeddings) are listed, so each result can be
    asked for similar items.
    """
    catalog = served.rec.catalog
    if catalog is None:
        raise InvalidArgumentError("this version has no catalog to search")
    matches = catalog.find(text)
    found: list = []
    step = 4 * (limit + 1)  # a chunk at a time: a short query can match most of the catalog
    for start in range(0, len(matches), step):
        chunk = matches[start : start + step]
        held = chunk[served.rec.items.lookup_rows(chunk) >= 0]
        found.extend(held[: limit + 1 - len(found)].tolist())
        if len(found) > limit:
            break
    return orjson.dumps(
        {
            "version": served.version,
            "q": text,
            "limit": limit,
            "results": _records(served, found[:limit]),
            "has_more": len(found) > limit,
        }
    )


def _space(served: Served, name: str, query: str):
    space = served.rec.items if name == "items" else served.rec.users
    if space is None:
        raise InvalidArgumentError(f"{query} needs user embeddings, and this version has none")
    return space


def _records(served: Served, ids: list) -> list[dict[str, Any]]:
    """``[{"id", <catalog fields>}]`` for item ids (just the id without a catalog)."""
    catalog = served.rec.catalog
    metadata = catalog.records(ids) if catalog is not None else [{} for _ in ids]
    return [{"id": i, **m} for i, m in zip(ids, metadata)]


def _results(results: list[dict[str, Any]]) -> dict[str, Any]:
    """``results`` and how many there are: fewer than k when fewer items exist to answer
    (``k`` stays the k asked, as in the CLI's ``--json``)."""
    return {"returned": len(results), "results": results}


def _options(query: str, exclude, exclude_seen: bool, params) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if exclude:
        options["exclude"] = exclude
    if params:
        options["params"] = params
    if query == "recommend":
        options["exclude_seen"] = exclude_seen
    return options


def _rows(rec, ids: np.ndarray, scores: np.ndarray, space: str) -> list[list[dict[str, Any]]]:
    """Per-query result lists of a 2-D answer, without the batch's padding (score NaN)."""
    out = []
    for row_ids, row_scores in zip(ids, scores):
        valid = ~np.isnan(row_scores)
        out.append(rec.results(row_ids[valid], row_scores[valid], space=space))
    return out
