"""Offline batch recall: top-K for every user (and item) into Redis, SQLite or parquet.

>>> import embrecall
>>> from embrecall.batch import plan_batch, run_batch, cached
>>> rec = embrecall.load("artifacts/movies")                            # doctest: +SKIP
>>> plan = plan_batch(rec, k=100, queries=["recommend", "similar_items"])  # doctest: +SKIP
>>> report = run_batch(plan, "redis://localhost:6379/0?prefix=recs")     # doctest: +SKIP
>>> ids, scores = cached(42, "redis://localhost:6379/0?prefix=recs")     # doctest: +SKIP

Exact search is a blocked matrix product plus top-k (BLAS + faiss heaps on CPUs, torch on a
GPU) with the same exclusions as online ``recommend`` (seen items, the query itself), so the
stored lists equal what an exact artifact answers online. Runs write under a new version and
flip one pointer at the end; an interrupted run resumes block by block. ``embrecall.batch.spark``
does the same on a Spark cluster from ALS output.
"""

from embrecall.batch.compute import BatchReport, run_batch
from embrecall.batch.plan import BatchPlan, plan_batch
from embrecall.batch.reader import CachedRecall, cached
from embrecall.batch.sinks import SinkError, open_sink

__all__ = [
    "BatchPlan",
    "BatchReport",
    "CachedRecall",
    "SinkError",
    "cached",
    "open_sink",
    "plan_batch",
    "run_batch",
]
