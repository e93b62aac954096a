"""Milvus Lite against the faiss engine on the same data, the same queries and the same recall.

    python benchmarks/bench_milvus.py                      # 20k items x 32, 2k users, minutes
    python benchmarks/bench_milvus.py --items 100000

One artifact per index family is built with faiss (``Flat``; ``HNSW32`` tuned to recall 0.95)
and published into a fresh Milvus Lite file (``FLAT``; ``HNSW`` M 16 tuned to the same 0.95
against exact search). Then, for each engine: recall@10 of ``recommend`` against exact search
on every user (ties tolerated), single-query latency (p50/p99 of ``recommend`` by id, seen items
excluded, one query at a time, engines interleaved query by query so that load drift hits both),
and batch throughput (queries per second of ``recommend_by_vector`` over all users at once).
Publish time is the full ``publish`` (write, index, tune, canary). Milvus Lite runs in this
process: its numbers are an in-process gRPC round trip plus its own search, not a cluster's.
Results: stdout and benchmarks/results/milvus.json. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_core import machine, synthetic

import embrecall
from embrecall.embeddings import Embeddings
from embrecall.index.exact import exact_topk
from embrecall.index.recall import recall_at_k
from embrecall.interactions import Interactions
from embrecall.milvus.versions import MilvusVersions
from embrecall.recommender import Recommender
from embrecall.service.canary import check_canary

RESULTS = Path(__file__).parent / "results" / "milvus.json"
K = 10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--users", type=int, default=2_000)
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--queries", type=int, default=300, help="single queries timed")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    items, users = synthetic(args.items, args.users, args.dim)
    rng = np.random.default_rng(1)
    seen_users = np.repeat(np.arange(args.users), 20)
    seen_items = rng.integers(0, args.items, seen_users.size)
    item_ids, user_ids = np.arange(args.items) + 1, np.arange(args.users) + 1_000_000
    interactions = Interactions(user_ids[seen_users], item_ids[seen_items])
    _, exact = exact_topk(items, users, K, "ip")  # seen items not excluded: index recall only
    results = {"machine": machine(), "items": args.items, "users": args.users, "dim": args.dim}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for family, spec, milvus_kind in (("exact", "Flat", "FLAT"), ("hnsw", "HNSW32", "HNSW")):
            rec = Recommender.build(
                Embeddings(item_ids, items),
                Embeddings(user_ids, users),
                interactions=interactions,
                index=spec,
                target_recall=0.95 if family == "hnsw" else None,
                progress=False,
            )
            path = Path(tmp) / f"artifact-{family}"
            rec.save(str(path))
            target = f"milvus-lite:{tmp}/{family}.db"
            t0 = time.perf_counter()
            MilvusVersions(target).publish(
                str(path),
                family,
                index=milvus_kind,
                check=lambda r, v: check_canary(r, queries=50, k=K, min_recall=0.9),
            )
            publish_s = time.perf_counter() - t0
            engines = {"faiss": embrecall.load(path), "milvus-lite": embrecall.load(target)}
            picks = rng.choice(args.users, min(args.queries, args.users), replace=False)
            latency = {name: [] for name in engines}
            for u in picks:  # interleaved
                for name, engine in engines.items():
                    t = time.perf_counter()
                    engine.recommend(int(user_ids[u]), K)
                    latency[name].append(time.perf_counter() - t)
            for name, engine in engines.items():
                found, _ = engine.recommend_by_vector(users[:50], K)  # warm
                t = time.perf_counter()
                found, _ = engine.recommend_by_vector(users, K)
                batch_s = time.perf_counter() - t
                recall = recall_at_k(items, users, np.asarray(found) - 1, exact, "ip").mean()
                index = engine.indexes[engine.query_kinds["recommend"].index_name]
                ms = np.array(latency[name]) * 1e3
                rows.append(
                    {
                        "family": family,
                        "engine": name,
                        "index": index.spec,
                        "params": dict(index.search_params),
                        "recall_at_10": round(float(recall), 4),
                        "p50_ms": round(float(np.percentile(ms, 50)), 3),
                        "p99_ms": round(float(np.percentile(ms, 99)), 3),
                        "batch_qps": round(args.users / batch_s, 1),
                        "publish_s": round(publish_s, 1) if name == "milvus-lite" else None,
                    }
                )
                print(json.dumps(rows[-1]))
    results["rows"] = rows
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
