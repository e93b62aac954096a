"""Build time, load time and single-query latency of embrecall against raw faiss, same run.

    python benchmarks/bench_core.py                 # 100k and 1M items x 64 dims
    python benchmarks/bench_core.py --items 100000  # one size

For each size: synthetic MF-like vectors (skewed norms), an exact (Flat) artifact built with
`Recommender.build` and saved, then `recommend(user, k)` latency (p50/p99 over single queries,
with 100 seen items excluded inside the search) next to raw `faiss.IndexFlatIP.search` on the same
vectors: without exclusions, and with the same exclusions as an IDSelector (with faiss's default
OpenMP threads, and on one thread as embrecall runs single queries). Variants are timed
round-robin per query so that load drift hits all of them alike. The ratio is the overhead
embrecall adds (id mapping, exclusions, checks). Results go to stdout and
benchmarks/results/core.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np

import embrecall
from embrecall.embeddings import Embeddings
from embrecall.recommender import Recommender

RESULTS = Path(__file__).parent / "results" / "core.json"


def synthetic(n_items: int, n_users: int, dim: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    items = rng.standard_normal((n_items, dim)).astype(np.float32)
    items *= rng.lognormal(0, 0.5, (n_items, 1)).astype(np.float32)
    users = (rng.standard_normal((n_users, dim)) + 0.5).astype(np.float32)
    return items, users


def percentiles(samples_s: list[float]) -> dict[str, float]:
    ms = np.array(samples_s) * 1e3
    return {
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "mean_ms": float(ms.mean()),
    }


def time_interleaved(variants: dict, queries) -> dict[str, list[float]]:
    """Time each variant on each query, round-robin, so that load drift hits all alike; the
    variant that goes first rotates from query to query, as a later one finds the caches warm
    from the same query."""
    out: dict[str, list[float]] = {name: [] for name in variants}
    for q in queries[:5]:
        for fn in variants.values():
            fn(q)  # warm up
    order = list(variants.items())
    for i, q in enumerate(queries):
        start = i % len(order)
        for name, fn in order[start:] + order[:start]:
            t = time.perf_counter()
            fn(q)
            out[name].append(time.perf_counter() - t)
    return out


def run(n_items: int, n_users: int, dim: int, k: int, queries: int, seen_per_user: int) -> dict:
    items_v, users_v = synthetic(n_items, n_users, dim)
    item_ids = np.arange(n_items, dtype=np.int64) * 3 + 1  # not row numbers: mapping is exercised
    user_ids = np.arange(n_users, dtype=np.int64) + 10
    rng = np.random.default_rng(1)
    seen = rng.integers(0, n_items, (n_users, seen_per_user))

    tmp = Path(tempfile.mkdtemp(prefix="embrecall-bench-"))
    try:
        import pandas as pd

        ratings = tmp / "ratings.csv"
        pd.DataFrame(
            {"userId": np.repeat(user_ids, seen_per_user), "movieId": item_ids[seen.ravel()]}
        ).to_csv(ratings, index=False)
        t0 = time.perf_counter()
        rec = Recommender.build(
            Embeddings(item_ids, items_v),
            Embeddings(user_ids, users_v),
            interactions=embrecall.read_interactions(ratings),
            index="Flat",  # this benchmark measures exact search; bench_scale.py the ANN choice
            progress=False,
        )
        build_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        rec.save(tmp / "artifact")
        save_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        rec = embrecall.load(tmp / "artifact")
        load_s = time.perf_counter() - t0
        size = sum(p.stat().st_size for p in (tmp / "artifact").rglob("*") if p.is_file())

        picked = rng.choice(n_users, queries, replace=False)
        raw = faiss.IndexFlatIP(dim)
        raw.add(items_v)

        def raw_plain(p):
            return raw.search(users_v[p : p + 1], k)

        def raw_selector(p):
            sel = faiss.IDSelectorNot(faiss.IDSelectorBatch(np.unique(seen[p]).astype(np.int64)))
            return raw.search(users_v[p : p + 1], k, params=faiss.SearchParameters(sel=sel))

        def raw_selector_one_thread(p):
            before = faiss.omp_get_max_threads()
            faiss.omp_set_num_threads(1)
            try:
                return raw_selector(p)
            finally:
                faiss.omp_set_num_threads(before)

        variants = {
            "embrecall_recommend": lambda p: rec.recommend(int(user_ids[p]), k=k),
            "raw_faiss_idselector": raw_selector,
            "raw_faiss_idselector_1thread": raw_selector_one_thread,
            "raw_faiss_no_exclusion": raw_plain,
        }
        timings = time_interleaved(variants, picked)
        # Same answers, or the comparison means nothing.
        for p in picked[:20]:
            ids, _ = rec.recommend(int(user_ids[p]), k=k)
            _, rows = raw_selector(p)
            assert ids.tolist() == item_ids[rows[0]].tolist()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    result = {
        "items": n_items,
        "users": n_users,
        "dim": dim,
        "k": k,
        "queries": queries,
        "seen_per_user": seen_per_user,
        "build_s": build_s,
        "save_s": save_s,
        "load_verify_s": load_s,
        "artifact_bytes": size,
        **{name: percentiles(samples) for name, samples in timings.items()},
    }
    result["overhead_vs_raw_idselector_p50"] = (
        result["embrecall_recommend"]["p50_ms"] / result["raw_faiss_idselector"]["p50_ms"]
    )
    return result


def machine() -> dict:
    with open("/proc/cpuinfo") as f:
        cpuinfo = f.read().splitlines()
    cpu = next(
        (line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")),
        platform.processor(),
    )
    import os

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "faiss": faiss.__version__,
        "embrecall": embrecall.__version__,
        "faiss_threads": faiss.omp_get_max_threads(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--items",
        type=int,
        action="append",
        help="item count (repeatable; default 100000 and 1000000)",
    )
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("-k", type=int, default=30)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--seen", type=int, default=100, help="seen items excluded per user")
    args = parser.parse_args()
    report = {"machine": machine(), "runs": []}
    for n in args.items or [100_000, 1_000_000]:
        r = run(n, args.users, args.dim, args.k, args.queries, args.seen)
        report["runs"].append(r)
        print(
            f"\n{n:,} items x {args.dim}, Flat (exact), k={args.k}, {args.seen} seen items excluded"
        )
        print(
            f"  build {r['build_s']:.2f}s  save {r['save_s']:.2f}s  "
            f"load+verify {r['load_verify_s']:.2f}s  artifact {r['artifact_bytes'] / 1e6:.0f} MB"
        )
        for name in (
            "embrecall_recommend",
            "raw_faiss_idselector",
            "raw_faiss_idselector_1thread",
            "raw_faiss_no_exclusion",
        ):
            p = r[name]
            print(f"  {name:<30} p50 {p['p50_ms']:7.3f} ms  p99 {p['p99_ms']:7.3f} ms")
        print(
            "  overhead vs raw faiss with the same IDSelector (p50): "
            f"{r['overhead_vs_raw_idselector_p50']:.2f}x"
        )
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {RESULTS}")


if __name__ == "__main__":
    main()
