"""Batch recall throughput: exact and ANN on CPUs, torch on a GPU, Redis writes, Spark vs ALS.

    python benchmarks/bench_batch.py cpu   --items 1000000 --users 100000 --sample 8192
    python benchmarks/bench_batch.py gpu   --items 1000000 --users 200000
    python benchmarks/bench_batch.py redis --url redis://127.0.0.1:6379/0 --users 100000
    python benchmarks/bench_batch.py spark --items 1000000 --users 2000

Data: synthetic MF-like vectors (64 dims, skewed item norms) with ``--seen`` seen items per user,
excluded inside the search as online ``recommend`` does; top-``k`` (default 100), inner product.
``--sample`` users are timed out of ``--users``; a figure for all users is then an extrapolation
and is labelled so in the output. Each run prints one JSON object (and writes it to ``--json``)
with the machine it ran on.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from embrecall.batch import plan_batch, run_batch  # noqa: E402
from embrecall.batch.compute import exclusions  # noqa: E402
from embrecall.embeddings import Embeddings  # noqa: E402
from embrecall.index.kernel import exact_knn  # noqa: E402
from embrecall.index.recall import recall_at_k as tie_tolerant_recall  # noqa: E402
from embrecall.interactions import SeenItems  # noqa: E402
from embrecall.recommender import Recommender  # noqa: E402


def synthetic(n_items: int, n_users: int, dim: int, seen: int, seed: int = 0):
    """Clustered vectors, as trained embeddings are (taste groups), with lognormal item norms
    (popular items score high, as in MF); users near the same centres; a seen-items CSR.

    Pure gaussian noise has no neighbourhood structure, which no ANN index (nor real model
    output) has to cope with; 1,024 centres with noise of the same size give a realistic mix.
    """
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((1024, dim), dtype=np.float32)
    items = centres[rng.integers(0, 1024, n_items)]
    items += rng.standard_normal((n_items, dim), dtype=np.float32)
    items *= rng.lognormal(0, 0.5, (n_items, 1)).astype(np.float32)
    users = centres[rng.integers(0, 1024, n_users)]
    users += rng.standard_normal((n_users, dim), dtype=np.float32)
    cols = np.sort(rng.integers(0, n_items, (n_users, seen)), axis=1)
    # Unique per user (a repeat would be one seen item): drop repeats, keep CSR order.
    keep = np.ones_like(cols, dtype=bool)
    keep[:, 1:] = cols[:, 1:] != cols[:, :-1]
    indptr = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(keep.sum(axis=1), out=indptr[1:])
    return items, users, SeenItems(indptr, cols[keep], n_items=n_items)


def recommender(items, users, seen, index: str = "Flat") -> Recommender:
    item_emb = Embeddings(np.arange(len(items)), items, source="items")
    user_emb = Embeddings(np.arange(len(users)) + 10_000_000, users, source="users")
    specs = {"recommend": index, "similar_items": "Flat", "similar_users": "Flat"}
    rec = Recommender.build(item_emb, user_emb, index=specs, progress=False)
    rec.seen = seen
    return rec


def machine() -> dict:
    info = {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": sys.version[:6]}
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        info["cpu"] = names[0] if names else platform.processor()
    except OSError:
        info["cpu"] = platform.processor()
    return info


def timed_run(rec, k, sample, out, block_size=4096, **plan_options) -> dict:
    users = rec.users.ids[:sample]
    plan = plan_batch(rec, k, user_ids=users, block_size=block_size, **plan_options)
    report = run_batch(plan, out, progress=False, restart=True)
    return {
        "users": len(users),
        "seconds": round(report.seconds, 3),
        "users_per_s": round(report.queries_per_second, 1),
        "device": report.device,
        "search": report.search,
        "sink": "parquet (local disk)",
        "block_size": block_size,
    }


def recall_at_k(rec, k, sample, params) -> float:
    """Mean recall@k of the ANN index against exact, ties at the k-th score tolerated."""
    rows = np.arange(min(sample, 2048))
    ex = exclusions(plan_batch(rec, k), plan_batch(rec, k).tasks[0], rows)
    queries = rec.users.vectors[rows]
    _, exact_rows = exact_knn(rec.items.vectors, queries, k, "ip", exclude=ex)
    index = rec.indexes[rec.query_kinds["recommend"].index_name]
    excluded = [ex[1][ex[0][i] : ex[0][i + 1]] for i in range(len(rows))]
    _, ann_rows = index.search(queries, k, exclude=excluded, params=params)
    return float(tie_tolerant_recall(rec.items.vectors, queries, ann_rows, exact_rows, "ip").mean())


# -- commands --------------------------------------------------------------------------------
def bench_cpu(args) -> dict:
    t0 = time.perf_counter()
    items, users, seen = synthetic(args.items, args.users, args.dim, args.seen)
    rec = recommender(items, users, seen)
    out: dict = {"data_seconds": round(time.perf_counter() - t0, 1)}
    with tempfile.TemporaryDirectory() as tmp:
        exact = timed_run(rec, args.k, args.sample, f"{tmp}/exact", device="cpu")
        out["exact"] = exact
        if args.sample < args.users:
            exact["all_users_seconds_extrapolated"] = round(args.users / exact["users_per_s"])
        if args.ann:
            t1 = time.perf_counter()
            ann = recommender(items, users, seen, index=args.ann)
            out["ann_build_seconds"] = round(time.perf_counter() - t1, 1)
            out["ann"] = []
            for nprobe in args.nprobe:
                params = {"nprobe": nprobe} if "IVF" in args.ann else {}
                result = timed_run(
                    ann, args.k, args.sample, f"{tmp}/ann{nprobe}", search="index", params=params
                )
                result.update(
                    index=args.ann,
                    params=params,
                    recall_at_k=round(recall_at_k(ann, args.k, args.sample, params), 4),
                )
                if args.sample < args.users:
                    result["all_users_seconds_extrapolated"] = round(
                        args.users / result["users_per_s"]
                    )
                out["ann"].append(result)
    return out


def bench_gpu(args) -> dict:
    import torch

    from embrecall.index.torch_exact import TorchExact

    device = args.torch_device
    items, users, seen = synthetic(args.items, args.users, args.dim, args.seen)
    out: dict = {
        "device_name": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "torch": torch.__version__,
    }
    rec = recommender(items, users, seen)
    plan = plan_batch(rec, args.k)
    task = plan.tasks[0]
    block = args.block
    blocks = [np.arange(lo, min(args.users, lo + block)) for lo in range(0, args.users, block)]
    excl = [exclusions(plan, task, rows) for rows in blocks]
    for select in ("grouped", "topk"):  # the two-stage selection, and plain torch.topk
        engine = TorchExact(items, "ip", device=device, select=select)
        engine.search(users[blocks[0]], args.k, excl[0])  # warm up: kernels, allocator
        for with_seen in (True, False):
            if device == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            for rows, ex in zip(blocks, excl):
                engine.search(users[rows], args.k, ex if with_seen else None)
            seconds = time.perf_counter() - t
            key = f"kernel_{select}_{'seen_excluded' if with_seen else 'no_exclusions'}"
            out[key] = {
                "users": args.users,
                "seconds": round(seconds, 3),
                "users_per_s": round(args.users / seconds, 1),
            }
        del engine
        if device == "cuda":
            torch.cuda.empty_cache()
    # Same results: a sample of users on the GPU kernel against the CPU kernel.
    rows = np.arange(min(2048, args.users))
    ex = exclusions(plan, task, rows)
    gpu_s, gpu_r = TorchExact(items, "ip", device=device).search(users[rows], args.k, ex)
    cpu_s, cpu_r = exact_knn(items, users[rows], args.k, "ip", exclude=ex)
    same = gpu_r == cpu_r
    ties = np.isclose(gpu_s, cpu_s, rtol=1e-5, atol=1e-5)
    out["same_as_cpu"] = {
        "users": len(rows),
        "ids_equal_fraction": round(float(same.mean()), 6),
        "differing_ids_all_tied_scores": bool(ties[~same].all()),
        "max_abs_score_diff": float(np.nanmax(np.abs(gpu_s - cpu_s))),
    }
    with tempfile.TemporaryDirectory() as tmp:
        gpu = device if device == "cuda" else "cpu"
        for block_size in (4096, 16384):
            out[f"end_to_end_gpu_block_{block_size}"] = timed_run(
                rec, args.k, args.users, f"{tmp}/g{block_size}", block_size, device=gpu
            )
        out["end_to_end_cpu"] = timed_run(rec, args.k, args.sample, f"{tmp}/c", device="cpu")
    return out


def bench_redis(args) -> dict:
    import redis

    from embrecall.batch.sinks import open_sink

    items, users, seen = synthetic(args.items, args.users, args.dim, args.seen)
    rec = recommender(items, users, seen)
    client = redis.Redis.from_url(args.url)
    prefix = f"bench{int(time.time())}"
    sink = open_sink(f"{args.url}?prefix={prefix}", old_ttl=0)
    plan = plan_batch(rec, args.k, block_size=4096)
    # Compute first, then time the writes alone: keys/s of the sink, not of the search.
    blocks = []
    from embrecall.batch.compute import BlockSearcher, _to_ids

    searcher = BlockSearcher(plan)
    for b in plan.blocks():
        scores, rows = searcher.search(b)
        ids, counts = _to_ids(rec.items, rows)
        blocks.append((b, rec.users.ids[b.rows], ids, scores, counts))
    before = client.info("memory")["used_memory"]
    run = sink.open_run(plan.fingerprint, plan.meta(), restart=True)
    t = time.perf_counter()
    for b, qids, ids, scores, counts in blocks:
        run.write_block(b.name, "u2i", qids, ids, scores, counts)
    seconds = time.perf_counter() - t
    run.commit()
    run.close()
    used = client.info("memory")["used_memory"] - before
    estimate = sink.estimate_bytes(args.users, plan.value_bytes(plan.tasks[0]), 8)
    out = {
        "keys": args.users,
        "k": args.k,
        "value_bytes": plan.value_bytes(plan.tasks[0]),
        "write_seconds": round(seconds, 3),
        "keys_per_s": round(args.users / seconds, 1),
        "MB_per_s": round(args.users * plan.value_bytes(plan.tasks[0]) / seconds / 1e6, 1),
        "redis_used_memory_bytes": used,
        "estimate_bytes": estimate,
        "redis_version": client.info("server")["redis_version"],
    }
    sink.delete_version(run.version)
    client.delete(f"{prefix}:current", f"{prefix}:versions", f"{prefix}:pending")
    return out


def bench_spark(args) -> dict:
    from pyspark.ml.recommendation import ALSModel
    from pyspark.sql import SparkSession

    from embrecall.batch.spark import recall_dataframe

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    spark = (
        SparkSession.builder.master(args.master)
        .config("spark.ui.enabled", "false")
        .config("spark.driver.memory", args.driver_memory)
        .config("spark.sql.shuffle.partitions", "8")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    args.seen = 0  # recommendForAllUsers has no exclusions: compare like with like
    items, users, _ = synthetic(args.items, args.users, args.dim, 0)
    user_df = spark.createDataFrame(
        [(int(i), u.tolist()) for i, u in enumerate(users)], "id int, features array<float>"
    )
    item_pdf = __import__("pandas").DataFrame(
        {"id": np.arange(len(items), dtype=np.int32), "features": list(items)}
    )
    item_df = spark.createDataFrame(item_pdf, "id int, features array<float>").repartition(8)
    item_df = item_df.cache()
    user_df = user_df.cache()
    item_df.count()
    user_df.count()
    # An ALSModel over the same factors, as `ALS.fit` would return it (its constructor is
    # Scala-private but public in bytecode).
    java_model = spark._jvm.org.apache.spark.ml.recommendation.ALSModel(
        "als-bench", args.dim, user_df._jdf, item_df._jdf
    )
    java_model.setUserCol("user").setItemCol("item")
    model = ALSModel(java_model)
    out: dict = {"master": args.master, "spark": spark.version}
    t = time.perf_counter()
    model.recommendForAllUsers(args.k).write.mode("overwrite").format("noop").save()
    seconds = time.perf_counter() - t
    out["als_recommendForAllUsers"] = {
        "users": args.users,
        "seconds": round(seconds, 2),
        "users_per_s": round(args.users / seconds, 1),
    }
    t = time.perf_counter()
    recall_dataframe(user_df, item_df, args.k).write.mode("overwrite").format("noop").save()
    seconds = time.perf_counter() - t
    out["embrecall_spark"] = {
        "users": args.users,
        "seconds": round(seconds, 2),
        "users_per_s": round(args.users / seconds, 1),
    }
    spark.stop()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("what", choices=("cpu", "gpu", "redis", "spark"))
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--sample", type=int, default=8192, help="users timed (cpu)")
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("-k", type=int, default=100)
    parser.add_argument("--seen", type=int, default=30, help="seen items per user")
    parser.add_argument("--ann", default="IVF4096,Flat", help="faiss spec of the ANN run ('' off)")
    parser.add_argument(
        "--nprobe",
        default="64,256",
        type=lambda t: [int(x) for x in t.split(",")],
        help="IVF lists to visit, comma-separated: one ANN run each",
    )
    parser.add_argument("--block", type=int, default=8192, help="users per GPU kernel call")
    parser.add_argument("--torch-device", default="cuda", help="gpu: cuda, or cpu for a dry run")
    parser.add_argument("--url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--driver-memory", default="6g")
    parser.add_argument("--json", help="also write the result here")
    args = parser.parse_args()
    t0 = time.perf_counter()
    measured = globals()[f"bench_{args.what}"](args)
    result = {
        "benchmark": args.what,
        "items": args.items,
        "users": args.users,
        "dim": args.dim,
        "k": args.k,
        "seen_per_user": args.seen,
        "machine": machine(),
        **measured,
        "total_seconds": round(time.perf_counter() - t0, 1),
    }
    text = json.dumps(result, indent=2)
    print(text, flush=True)
    if args.json:
        Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
