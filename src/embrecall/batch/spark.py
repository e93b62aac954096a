"""Batch recall on Spark, straight from ALS output: ``userFactors`` / ``itemFactors``.

The item factors are collected once on the driver, checked (finite, unique ids), prepared for
the metric and broadcast. Users stay distributed: ``mapInPandas`` runs the same exact kernel as
the local path (:func:`~embrecall.index.kernel.exact_knn`: BLAS products folded into faiss heaps,
seen items excluded inside the product) over each Arrow batch of a partition. The broadcast
arrays are turned into a base once per Python worker and cached there (Spark reuses workers), not
once per batch. Results are the same as the local path's, up to float rounding and ties.

Writing goes straight from the executors into the sink (Redis pipelines, parquet part files, or
SQLite on a path they all reach), under a new version that the driver makes current once every
task has finished, exactly as a local run does. Spark retries failed tasks itself, so a Spark run
is not resumed block by block: a rerun starts a new version.

Needs the ``spark`` extra (``pyspark``) and Java; executors need embrecall installed.
"""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from embrecall.batch.compute import BatchReport
from embrecall.batch.sinks import Sink, open_sink
from embrecall.embeddings import Embeddings
from embrecall.errors import InputFormatError, InvalidArgumentError, require_extra
from embrecall.index.exact import prepare
from embrecall.index.kernel import DEFAULT_BASE_CHUNK, csr_from_lists, exact_knn
from embrecall.interactions import ITEM_COLUMNS, USER_COLUMNS
from embrecall.neighbors import score_text

_METRICS = ("ip", "cosine", "l2")

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

# The base built on this worker, by run token: a worker serves many batches and tasks. Only the
# latest is kept, so that a long-lived worker does not hoard the items of finished runs.
_BASES: dict[str, _Base] = {}


def read_factors(spark: SparkSession, source: DataFrame | str | os.PathLike) -> DataFrame:
    """ALS factors as a DataFrame: a DataFrame as is, or a path to their parquet output."""
    pyspark_sql = require_extra("pyspark.sql", "spark")
    if isinstance(source, pyspark_sql.DataFrame):
        return source
    return spark.read.parquet(str(source))


def load_als(spark: SparkSession, model) -> tuple[DataFrame, DataFrame]:
    """``(userFactors, itemFactors)`` of an ``ALSModel`` or of a folder ``ALSModel.save`` wrote."""
    if hasattr(model, "userFactors") and hasattr(model, "itemFactors"):
        return model.userFactors, model.itemFactors
    path = str(model)
    return spark.read.parquet(f"{path}/userFactors"), spark.read.parquet(f"{path}/itemFactors")


def recall_dataframe(
    users: DataFrame,
    items: DataFrame,
    k: int = 100,
    *,
    seen: DataFrame | None = None,
    metric: str = "ip",
    id_column: str = "id",
    features_column: str = "features",
    seen_user_column: str | None = None,
    seen_item_column: str | None = None,
) -> DataFrame:
    """Top-``k`` items of every user as a DataFrame ``id, ids (array), scores (array<float>)``.

    Parameters
    ----------
    users, items : DataFrame
        ``id`` and ``features`` (array of numbers or an ML vector), as ALS writes them.
    k : int
        Results per user, >= 1.
    seen : DataFrame, optional
        Interactions (``userId``/``user``..., ``movieId``/``item``...) to exclude, as online
        ``recommend`` excludes seen items.
    metric : {"ip", "cosine", "l2"}
        ``ip`` is how ALS scores (``recommendForAllUsers``).

    Returns
    -------
    DataFrame, lazily computed: one row per user, results best first.
    """
    columns = _Columns(id_column, features_column, seen_user_column, seen_item_column)
    return _recall(users, items, k, seen, metric, columns, writer=None)[0]


def run_spark_batch(
    users: DataFrame,
    items: DataFrame,
    sink: Sink | str,
    k: int = 100,
    *,
    seen: DataFrame | None = None,
    metric: str = "ip",
    id_column: str = "id",
    features_column: str = "features",
    seen_user_column: str | None = None,
    seen_item_column: str | None = None,
    catalog_artifact: str | None = None,
) -> BatchReport:
    """Compute on Spark and write to a sink from the executors; then flip the sink's pointer.

    Parameters are those of :func:`recall_dataframe`, plus ``sink`` (an address or a sink; a
    SQLite or parquet path must be reachable from every executor) and ``catalog_artifact``, an
    artifact whose catalog ``embrecall cached`` joins onto the results.

    Returns
    -------
    BatchReport
    """
    sink = open_sink(sink)
    sink.check()  # before any Spark job: an unreachable sink fails fast
    t0 = time.perf_counter()
    meta = {
        "k": int(k),
        "fingerprint": uuid.uuid4().hex,
        "search": "exact",
        "engine": "spark",
        "params": {},
        "blocks": {"u2i": 0},  # known once the job ran: one block per Arrow batch
        "artifact": catalog_artifact,
        "id_kinds": {
            "users": _id_kind(users, id_column),
            "items": _id_kind(items, id_column),
        },
        "queries": {
            "recommend": {
                "key": "u2i",
                "count": None,
                "metric": metric,
                "score": score_text(metric != "l2") if metric in _METRICS else "",
                "exclude_seen": seen is not None,
                "exclude_self": False,
            }
        },
    }
    columns = _Columns(id_column, features_column, seen_user_column, seen_item_column)
    run = sink.open_run(meta["fingerprint"], meta, restart=True)
    try:
        frame, _ = _recall(users, items, k, seen, metric, columns, writer=run)
        written = frame.collect()
        n_users = int(sum(row["n"] for row in written))
        run.meta["blocks"] = {"u2i": len(written)}
        run.meta["queries"]["recommend"]["count"] = n_users
        run.commit()
    finally:
        run.close()
    seconds = time.perf_counter() - t0
    return BatchReport(
        version=run.version,
        sink=sink.url,
        device="spark",
        search="exact",
        queries={"recommend": n_users},
        blocks_computed=len(written),
        blocks_resumed=0,
        seconds=seconds,
        queries_per_second=n_users / seconds if seconds > 0 else 0.0,
    )


# -- internals -------------------------------------------------------------------------------
@dataclass
class _Base:
    """The item side on a worker: ids, prepared vectors, their row index."""

    ids: np.ndarray
    vectors: np.ndarray
    index: pd.Index
    sqnorms: np.ndarray | None


@dataclass(frozen=True)
class _Columns:
    """The column names of a call: factors' id and features, the seen interactions' user/item."""

    id: str
    features: str
    seen_user: str | None
    seen_item: str | None


def _recall(users, items, k, seen, metric, columns: _Columns, writer):
    id_column, features_column = columns.id, columns.features
    functions = require_extra("pyspark.sql.functions", "spark")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise InvalidArgumentError(f"k must be a positive integer, got {k!r}")
    if metric not in _METRICS:
        raise InvalidArgumentError(f"metric must be ip, cosine or l2, not {metric!r}")
    spark = users.sparkSession
    item_emb = _collect_items(items, id_column, features_column)
    # A worker-side Broadcast has no id of its own, so the cache key travels with the value.
    broadcast = spark.sparkContext.broadcast(
        (uuid.uuid4().hex, item_emb.ids, prepare(item_emb.vectors, metric), metric)
    )
    frame = users.select(
        functions.col(id_column).alias("id"),
        _as_array(users, features_column).alias("features"),
    )
    with_seen = seen is not None
    if with_seen:
        user_col = columns.seen_user or _pick(seen, USER_COLUMNS, "user")
        item_col = columns.seen_item or _pick(seen, ITEM_COLUMNS, "item")
        lists = seen.groupBy(functions.col(user_col).alias("id")).agg(
            functions.collect_set(functions.col(item_col)).alias("seen")
        )
        frame = frame.join(lists, on="id", how="left")
    user_type = users.schema[id_column].dataType.simpleString()
    item_type = items.schema[id_column].dataType.simpleString()
    kk = int(k)
    if writer is None:
        schema = f"id {user_type}, ids array<{item_type}>, scores array<float>"

        def compute(batches):
            for pdf in batches:
                ids, scores, counts = _topk_batch(pdf, broadcast, kk, with_seen)
                yield pd.DataFrame(
                    {
                        "id": pdf["id"].to_numpy(),
                        "ids": [r[:n] for r, n in zip(ids, counts)],
                        "scores": [s[:n] for s, n in zip(scores, counts)],
                    }
                )

        return frame.mapInPandas(compute, schema), item_emb

    def compute_and_write(batches):
        from pyspark import TaskContext

        partition = TaskContext.get().partitionId()
        for number, pdf in enumerate(batches):
            ids, scores, counts = _topk_batch(pdf, broadcast, kk, with_seen)
            # Block numbers are unique per (partition, batch) and the same when Spark retries a
            # task, so a retry rewrites the same keys and files instead of adding new ones.
            block = partition * 100_000 + number
            writer.write_block(f"u2i:{block}", "u2i", pdf["id"].to_numpy(), ids, scores, counts)
            yield pd.DataFrame({"block": [block], "n": [len(pdf)]})

    return frame.mapInPandas(compute_and_write, "block long, n long"), item_emb


def _topk_batch(pdf: pd.DataFrame, broadcast, k: int, with_seen: bool):
    """One Arrow batch of users: result ids (b, k') padded, scores (b, k'), counts (b,)."""
    base = _worker_base(broadcast)
    metric = broadcast.value[3]
    queries = prepare(np.stack(pdf["features"].to_numpy()).astype(np.float32), metric)
    exclude = None
    if with_seen:
        lists = []
        for items in pdf["seen"].to_numpy():
            if items is None or len(items) == 0:
                lists.append(np.empty(0, np.int64))
                continue
            rows = base.index.get_indexer(pd.Index(list(items)))
            lists.append(rows[rows >= 0])  # an item ALS never saw has no vector to exclude
        exclude = csr_from_lists(lists)
    scores, rows = exact_knn(
        base.vectors,
        queries,
        k,
        metric,
        exclude=exclude,
        base_chunk=DEFAULT_BASE_CHUNK,
        prepared=True,
        base_sqnorms=base.sqnorms,
    )
    valid = rows >= 0
    if base.ids.dtype == object:
        ids = np.empty(rows.shape, dtype=object)
        ids[valid] = base.ids[rows[valid]]
    else:
        ids = np.where(valid, base.ids[np.where(valid, rows, 0)], -1)
    return ids, scores, valid.sum(axis=1)


def _worker_base(broadcast) -> _Base:
    token, ids, vectors, metric = broadcast.value
    base = _BASES.get(token)
    if base is None:
        sqnorms = np.einsum("ij,ij->i", vectors, vectors) if metric == "l2" else None
        _BASES.clear()
        base = _BASES[token] = _Base(ids, vectors, pd.Index(ids), sqnorms)
    return base


def _collect_items(items: DataFrame, id_column: str, features_column: str) -> Embeddings:
    """Item factors on the driver, validated like any embeddings (finite, unique ids)."""
    functions = require_extra("pyspark.sql.functions", "spark")
    rows = items.select(
        functions.col(id_column).alias("id"), _as_array(items, features_column).alias("f")
    ).toPandas()
    if rows.empty:
        raise InputFormatError("item factors: no rows")
    try:
        vectors = np.stack(rows["f"].to_numpy()).astype(np.float32)
    except ValueError as exc:
        raise InputFormatError(f"item factors: vectors of different lengths ({exc})") from None
    return Embeddings(rows["id"].to_numpy(), vectors, source="item factors")


def _as_array(frame: DataFrame, column: str):
    """The features column as an array of floats (ALS writes arrays; ML pipelines vectors)."""
    functions = require_extra("pyspark.sql.functions", "spark")
    if column not in frame.columns:
        raise InputFormatError(f"factors have no column {column!r}; columns: {frame.columns}")
    if frame.schema[column].dataType.typeName() == "vector":
        from pyspark.ml.functions import vector_to_array

        return vector_to_array(functions.col(column), "float32")
    return functions.col(column).cast("array<float>")


def _pick(frame: DataFrame, candidates: tuple[str, ...], what: str) -> str:
    folded = {c.lower().replace("_", ""): c for c in frame.columns}
    for name in candidates:
        if name.lower().replace("_", "") in folded:
            return folded[name.lower().replace("_", "")]
    raise InputFormatError(
        f"seen interactions have no {what} column (looked for {', '.join(candidates)}); "
        f"name it with seen_{what}_column"
    )


def _id_kind(frame: DataFrame, column: str) -> str:
    name = frame.schema[column].dataType.typeName()
    return "int" if name in ("integer", "long", "short", "byte") else "str"
