"""Writing an artifact into Milvus: which index kind each space gets and how it is tuned.

An exact faiss index becomes a Milvus ``FLAT`` field (the same lists, ties allowed); an
approximate one becomes ``HNSW`` (M 16, efConstruction 200, as embrecall builds its own graphs)
whose ``ef`` is tuned against exact search to the same recall target the artifact was tuned to
(0.95 when it records none), on a seeded sample of the query kind's own queries.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import numpy as np

import embrecall
from embrecall.errors import InvalidArgumentError
from embrecall.index.exact import exact_topk
from embrecall.index.recall import recall_at_k
from embrecall.milvus import store
from embrecall.milvus.index import MilvusIndex

if TYPE_CHECKING:
    from embrecall.recommender import Recommender

log = logging.getLogger("embrecall")

KINDS = ("auto", "FLAT", "HNSW", "IVF_FLAT")
DEFAULT_TARGET_RECALL = 0.95
_HNSW_BUILD = {"M": 16, "efConstruction": 200}
_EF_LADDER = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 1024, 2048, 4096)
_NPROBE_LADDER = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
_TUNE_QUERIES = 200
_TUNE_K = 10


def milvus_index_name(q: Any, kind: str) -> str:
    """The index name a query kind searches on Milvus (the rule of ``QueryKind.index_name``)."""
    from embrecall.queries import QueryKind

    return QueryKind(q.name, q.query_space, q.target_space, q.metric, f"milvus:{kind}").index_name


def plan_indexes(rec: Recommender, kind: str) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """(Milvus index name -> {space, metric, kind, build params, target recall}, query kind ->
    Milvus index name): one index per space, metric and Milvus kind."""
    if kind not in KINDS:
        raise InvalidArgumentError(f"Milvus index kind must be one of {', '.join(KINDS)}")
    plans: dict[str, dict[str, Any]] = {}
    of_query: dict[str, str] = {}
    for q in rec.query_kinds.values():
        faiss_index = rec.indexes[q.index_name]
        chosen = kind
        if chosen == "auto":
            chosen = "FLAT" if faiss_index.is_exact else "HNSW"
        name = milvus_index_name(q, chosen)
        of_query[q.name] = name
        if name in plans:
            continue
        n = faiss_index.ntotal
        build: dict[str, int] = {}
        if chosen == "HNSW":
            build = dict(_HNSW_BUILD)
        elif chosen == "IVF_FLAT":
            build = {"nlist": int(max(1, min(65_536, 4 * np.sqrt(n))))}
        tuning = faiss_index.notes.get("tuning") or {}
        plans[name] = {
            "space": q.target_space,
            "metric": q.metric,
            "kind": chosen,
            "build_params": build,
            "field": f"v_{q.metric}_{chosen.lower()}",
            "target_recall": float(tuning.get("target_recall", DEFAULT_TARGET_RECALL)),
            "query_kind": q.name,
            "faiss_spec": faiss_index.spec,
        }
    return plans, of_query


def write_version(
    client: Any,
    prefix: str,
    version: str,
    rec: Recommender,
    kind: str,
    placement: dict[str, int | None] | None = None,
) -> dict:
    """Create the collections of ``version`` and return its manifest (state ``ready``)."""
    plans, of_query = plan_indexes(rec, kind)
    spaces_meta: dict[str, Any] = {}
    catalog_meta = None
    for space in ("items", "users"):
        emb = rec.items if space == "items" else rec.users
        if emb is None:
            continue
        fields = {
            p["field"]: (p["metric"], p["kind"], p["build_params"])
            for p in plans.values()
            if p["space"] == space
        }
        if not fields:  # Milvus needs a vector field; the raw vectors still have to be kept
            fields = {"v_raw": ("l2", "FLAT", {})}
        name = store.collection_name(prefix, version, space)
        catalog = None
        if space == "items" and rec.catalog is not None:
            catalog = store.catalog_fields(rec.catalog, emb.ids)
            catalog_meta = catalog["manifest"]
        store.write_space(
            client, name, np.asarray(emb.ids), emb.vectors, fields, catalog, placement
        )
        spaces_meta[space] = {
            "collection": name,
            "count": len(emb),
            "dim": emb.dim,
            "id_kind": "str" if np.asarray(emb.ids).dtype == object else "int",
            "vector_field": next(iter(fields)),
            "source": getattr(emb, "source", space),
        }
    seen_meta = None
    if rec.seen is not None:
        name = store.collection_name(prefix, version, "seen")
        store.write_seen(client, name, rec.seen.indptr, rec.seen.item_rows, placement)
        seen_meta = {
            "collection": name,
            "nnz": int(rec.seen.item_rows.size),
            "chunks": int(sum(-(-int(c) // store._SEEN_CHUNK) for c in np.diff(rec.seen.indptr))),
        }
    indexes = {}
    for name, p in plans.items():
        space = spaces_meta[p["space"]]
        index = MilvusIndex(
            client,
            space["collection"],
            p["field"],
            p["metric"],
            p["kind"],
            space["count"],
            space["dim"],
            notes={"build_params": p["build_params"]},
        )
        tuning = _tune(rec, p, index)
        indexes[name] = {
            "collection": space["collection"],
            "field": p["field"],
            "metric": p["metric"],
            "kind": p["kind"],
            "build_params": p["build_params"],
            "search_params": dict(tuning["params"]),
            "ntotal": space["count"],
            "dim": space["dim"],
            "choice": {"from_faiss": p["faiss_spec"], "reason": _reason(p)},
        }
        if p["kind"] != "FLAT":
            indexes[name]["tuning"] = tuning
    queries = {}
    for q in rec.query_kinds.values():
        queries[q.name] = {
            "query_space": q.query_space,
            "target_space": q.target_space,
            "metric": q.metric,
            "index": of_query[q.name],
        }
    return {
        "format": store.FORMAT,
        "format_version": store.FORMAT_VERSION,
        "embrecall_version": embrecall.__version__,
        "version": version,
        "created_at": rec.info.get("created_at"),
        "written_at": _now(),
        "state": "ready",
        "spaces": spaces_meta,
        "indexes": indexes,
        "queries": queries,
        "catalog": catalog_meta,
        "seen": seen_meta,
        "placement": dict(placement or {}),
    }


def _tune(rec: Recommender, plan: dict, index: MilvusIndex) -> dict[str, Any]:
    """The smallest ``ef`` / ``nprobe`` whose recall@10 against exact search reaches the
    target on a seeded sample of the query kind's queries; nothing to tune for FLAT."""
    if plan["kind"] == "FLAT":
        return {"params": {}}
    kind = rec.query_kinds[plan["query_kind"]]
    source, target = rec.query_space(kind), rec.target_space(kind)
    rng = np.random.default_rng(0)
    rows = np.sort(rng.choice(len(source), min(_TUNE_QUERIES, len(source)), replace=False))
    queries = source.vectors[rows]
    k = min(_TUNE_K, len(target))
    _, exact_rows = exact_topk(target.vectors, queries, k, kind.metric)
    name, ladder = (
        ("efSearch", _EF_LADDER) if plan["kind"] == "HNSW" else ("nprobe", _NPROBE_LADDER)
    )
    limit = plan["build_params"].get("nlist", max(ladder))
    recall = 0.0
    value = ladder[0]
    for value in (v for v in ladder if v <= limit):
        _, found = index.search(queries, k, params={name: value})
        recall = float(recall_at_k(target.vectors, queries, found, exact_rows, kind.metric).mean())
        if recall >= plan["target_recall"]:
            break
    log.info("tuned Milvus %s %s=%d: recall@%d %.3f", plan["kind"], name, value, k, recall)
    return {
        "params": {name: int(value)},
        "target_recall": plan["target_recall"],
        "recall": round(recall, 4),
        "reached": recall >= plan["target_recall"],
        "k": k,
        "queries": len(rows),
        "query_kind": kind.name,
    }


def _reason(plan: dict) -> str:
    if plan["kind"] == "FLAT":
        return f"Milvus FLAT (exact), as the artifact's {plan['faiss_spec']}"
    return (
        f"Milvus {plan['kind']} {plan['build_params']} for the artifact's {plan['faiss_spec']}, "
        f"tuned to recall {plan['target_recall']}"
    )


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
