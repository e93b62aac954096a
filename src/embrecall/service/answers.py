"""Answers as JSON bytes: call the served version's Recommender and shape its results.

These run in the search worker threads. They hold no search logic (the Recommender does the
searching, the exclusions and the title search, and its :class:`~embrecall.neighbors.Neighbors`
say what they answer) and no HTTP (the routes validate and respond); they only put the library's
results into the API's JSON shape, the same ``results: [{"id", "score", ...}]`` as the CLI's
``--json``, plus the version that answered.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from embrecall.errors import InvalidArgumentError, require_extra
from embrecall.neighbors import Neighbors
from embrecall.queries import ID_WHAT
from embrecall.service.metrics import Metrics
from embrecall.service.monitor import LiveRecallMonitor
from embrecall.service.registry import Served

require_extra("orjson", "server")

import orjson  # noqa: E402


def by_id(
    served: Served,
    query: str,
    raw_id: str,
    k: int,
    *,
    exclude: Sequence | None = None,
    exclude_seen: bool = True,
    params: Mapping[str, int] | None = None,
    filter: Sequence[str] | None = None,
    metrics: Metrics | None = None,
    monitor: LiveRecallMonitor | None = None,
) -> bytes:
    """One query id: ``{"version", "query", "id", "k", "metric", "score", "returned",
    "results"}``, and ``filter`` when one applied.

    With a ``monitor``, a sample of these queries (unfiltered ones) is re-answered exactly in
    the background.
    """
    rec = served.rec
    kind = _kind(served, query)
    qid = rec.query_space(kind).coerce_id(raw_id, what=ID_WHAT[kind.query_space])
    options = _options(kind, exclude, exclude_seen, params, filter)
    answer = getattr(rec, query)(qid, k, **options)
    _count_plan(metrics, answer)
    if monitor is not None and answer.filter is None and not _pending(rec):
        monitor.observe(
            query,
            answer.ids,
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
            **_results(answer),
            **_filter(answer),
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
    filter: Sequence[str] | None = None,
    metrics: Metrics | None = None,
) -> bytes:
    """A batch of query ids: ``{..., "batch": [{"id", "results"}, ...]}`` in request order."""
    rec = served.rec
    kind = _kind(served, query)
    space = rec.query_space(kind)
    # parsed, not coerced: the search names every unknown id at once, those beyond int64 too
    qids = [space.parse_id(i) for i in raw_ids]
    options = _options(kind, exclude, exclude_seen, params, filter)
    answer = getattr(rec, query)(qids, k, **options)
    _count_plan(metrics, answer)
    return orjson.dumps(
        {
            "version": served.version,
            "query": query,
            "k": k,
            **served.queries[query],
            "batch": [{"id": q, **_results(r)} for q, r in zip(qids, answer.rows())],
            **_filter(answer),
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
    filter: Sequence[str] | None = None,
    metrics: Metrics | None = None,
    monitor: LiveRecallMonitor | None = None,
) -> bytes:
    """Raw vectors: one (d,) vector gives ``results``, a (m, d) batch gives ``batch``."""
    rec = served.rec
    # a value beyond float32 becomes inf and is refused as such; numpy's overflow warning on
    # that cast would only fill the server log (np.errstate is per thread)
    with np.errstate(over="ignore"):
        found = rec.search(query, vectors, k, **_options(None, exclude, True, params, filter))
    _count_plan(metrics, found)
    answer: dict[str, Any] = {
        "version": served.version,
        "query": query,
        "space": found.space,
        "k": k,
        **served.queries[query],
    }
    if not found.is_batch:
        answer.update(_results(found))
        if monitor is not None and found.filter is None and not _pending(rec):
            monitor.observe(query, found.ids, vector=vectors, k=k, exclude=exclude, recommender=rec)
    else:
        answer["batch"] = [_results(r) for r in found.rows()]
    answer.update(_filter(found))
    return orjson.dumps(answer)


def seen(served: Served, raw_id: str, *, details: bool = False) -> bytes:
    """Items a user has seen: ``{"version", "id", "items"}``.

    With ``details``, also ``records`` (each item's id and catalog fields) and
    ``interactions_loaded`` (without interactions every history is empty, which is not the same
    as a user who has seen nothing).
    """
    users = served.rec.users
    if users is None:
        raise InvalidArgumentError(_NO_USERS.format("seen items"))
    uid = users.coerce_id(raw_id, what="user id")
    if served.rec.live is None or not served.rec.live.active:
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
    live = served.rec.live
    if live is not None and live.active:  # an item added, changed or removed since the build
        metadata = live.item_record(served.rec, iid)
        return orjson.dumps({"version": served.version, "id": iid, "metadata": metadata})
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
    found, has_more = served.rec.find_items(text, limit)
    return orjson.dumps(
        {
            "version": served.version,
            "q": text,
            "limit": limit,
            "results": _records(served, found),
            "has_more": has_more,
        }
    )


_NO_USERS = "{} needs user embeddings, and this version has none"


def _pending(rec) -> bool:
    """Whether live changes shaped the answer: the monitor's exact reference is the artifact
    alone, so such answers are not offered to it."""
    return rec.live is not None and rec.live.active


def _kind(served: Served, query: str):
    kind = served.rec.query_kinds.get(query)
    if kind is None:
        raise InvalidArgumentError(_NO_USERS.format(query))
    return kind


def _records(served: Served, ids: list) -> list[dict[str, Any]]:
    """``[{"id", <catalog fields>}]`` for item ids (just the id without a catalog)."""
    catalog = served.rec.catalog
    metadata = catalog.records(ids) if catalog is not None else [{} for _ in ids]
    return [{"id": i, **m} for i, m in zip(ids, metadata)]


def _results(answer: Neighbors) -> dict[str, Any]:
    """``results`` of one query and how many there are: fewer than k when fewer items exist to
    answer (``k`` stays the k asked, as in the CLI's ``--json``)."""
    results = answer.to_records()
    return {"returned": len(results), "results": results}


def _filter(answer: Neighbors) -> dict[str, Any]:
    """``{"filter": {expressions, passing, plan}}`` when a filter applied, else nothing."""
    return {} if answer.filter is None else {"filter": answer.filter}


def _count_plan(metrics: Metrics | None, answer: Neighbors) -> None:
    if metrics is not None and answer.filter is not None:
        metrics.filtered.labels(answer.query, answer.filter["plan"]).inc()


def _options(kind, exclude, exclude_seen: bool, params, filter=None) -> dict[str, Any]:
    """Keyword arguments of a query method; ``kind`` is None for a raw-vector search."""
    options: dict[str, Any] = {}
    if exclude:
        options["exclude"] = exclude
    if params:
        options["params"] = params
    if filter:
        options["filter"] = filter
    if kind is not None and kind.excludes_seen:
        options["exclude_seen"] = exclude_seen
    return options
