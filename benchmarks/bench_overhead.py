"""Single-query overhead of embrecall against raw faiss on the very same index object.

    python benchmarks/bench_overhead.py                    # 200k items x 64, a few minutes
    python benchmarks/bench_overhead.py --items 1000000    # searches long enough to hide it

For each index kind (Flat, IVF1024,Flat on native inner product, HNSW32 by default) one
recommender is built in memory; then each case times embrecall next to ``index.search`` on the
recommender's own ``VectorIndex.index``, with the same faiss SearchParameters, one query at a
time, on one OpenMP thread, round-robin per query (each system asks its own query ids, and the
system that starts a round rotates), so that load drift and cache state hit all systems alike:

* ``plain``: recommend by id (seen items not excluded), recommend_by_vector, against raw faiss
  without a selector;
* ``self``: similar_items by id (the item itself excluded; cosine) against raw faiss with a
  prebuilt selector of that one row, on the query's unit vector;
* ``excluded``: recommend by id with ``--excluded`` seen items, and with the same number of ids
  given as ``exclude=`` (a list of Python ints, as a service parses them), against raw faiss with
  a prebuilt ``IDSelectorNot(IDSelectorBatch(rows))``.

Flat scans take milliseconds, so their ratio is near 1 whatever the overhead; the ANN kinds
(tenths of a millisecond) show it. Results: stdout and benchmarks/results/overhead.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import faiss
import numpy as np
from bench_core import machine, synthetic

from embrecall.embeddings import Embeddings
from embrecall.index.structure import search_parameters
from embrecall.interactions import Interactions
from embrecall.recommender import Recommender

RESULTS = Path(__file__).parent / "results" / "overhead.json"
SPECS = ("Flat", "IVF1024,Flat", "HNSW32")


def time_round_robin(systems: dict, queries: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Seconds per call of each system; round i calls every system once, each on its own query,
    starting one system further along each round (so that none always runs first, after the
    others' work has evicted the caches)."""
    n = len(next(iter(queries.values())))
    for name, fn in systems.items():
        for q in queries[name][:10]:
            fn(q)  # warm up
    out = {name: np.empty(n) for name in systems}
    clock = time.perf_counter
    order = list(systems.items())
    for i in range(n):
        start = i % len(order)
        for name, fn in order[start:] + order[:start]:
            q = queries[name][i]
            t = clock()
            fn(q)
            out[name][i] = clock() - t
    return out


def summary(samples: np.ndarray) -> dict[str, float]:
    us = samples * 1e6
    return {"p50_us": float(np.median(us)), "p99_us": float(np.percentile(us, 99))}


def run_spec(spec: str, args, items_v, users_v, item_ids, user_ids, interactions) -> dict:
    t0 = time.perf_counter()
    rec = Recommender.build(
        Embeddings(item_ids, items_v),
        Embeddings(user_ids, users_v),
        interactions=interactions,
        index={"recommend": spec, "similar_items": spec, "similar_users": "Flat"},
        mips="native",  # raw faiss on the same index: no query transform in between
        progress=False,
    )
    build_s = time.perf_counter() - t0
    faiss.omp_set_num_threads(1)  # single queries, one thread: raw faiss and embrecall alike
    k = args.k
    rng = np.random.default_rng(2)
    n = args.queries
    ip = rec.indexes[rec.query_kinds["recommend"].index_name]
    cos = rec.indexes[rec.query_kinds["similar_items"].index_name]
    ip_params = search_parameters(ip.index, ip.search_params, None)
    unit_items = items_v / np.linalg.norm(items_v, axis=1, keepdims=True)

    def picks(count: int) -> np.ndarray:
        return rng.choice(count, n, replace=False)

    def not_rows(params: dict, index, rows: np.ndarray):
        # the selector objects must outlive the search: keep them with the parameters
        sel = faiss.IDSelectorBatch(rows)
        not_sel = faiss.IDSelectorNot(sel)
        return search_parameters(index, params, not_sel), (sel, not_sel)

    # per-query inputs, prepared before timing (what a caller of raw faiss would hold)
    seen_sel, excluded_rows, self_sel, exclude_lists = {}, {}, {}, {}

    def raw_plain(u):
        return ip.index.search(users_v[u : u + 1], k, params=ip_params)

    def raw_seen(u):
        if u not in seen_sel:
            seen_sel[u] = not_rows(ip.search_params, ip.index, rec.seen.rows_for(u))
        return ip.index.search(users_v[u : u + 1], k, params=seen_sel[u][0])

    def rows_excluded(u):
        if u not in excluded_rows:
            rows = np.unique(np.random.default_rng(u).integers(0, len(item_ids), args.excluded))
            excluded_rows[u] = (rows, not_rows(ip.search_params, ip.index, rows))
        return excluded_rows[u]

    def raw_excluded(u):
        return ip.index.search(users_v[u : u + 1], k, params=rows_excluded(u)[1][0])

    def raw_self(i):
        if i not in self_sel:
            self_sel[i] = not_rows(cos.search_params, cos.index, np.array([i], dtype=np.int64))
        return cos.index.search(unit_items[i : i + 1], k, params=self_sel[i][0])

    def exclude_ids(u):
        if u not in exclude_lists:
            exclude_lists[u] = item_ids[rows_excluded(u)[0]].tolist()
        return exclude_lists[u]

    uid = user_ids.tolist()
    iid = item_ids.tolist()
    cases = {
        "plain": {
            "raw_faiss": (raw_plain, "users"),
            "recommend_by_id": (lambda u: rec.recommend(uid[u], k, exclude_seen=False), "users"),
            "recommend_by_vector": (lambda u: rec.recommend_by_vector(users_v[u], k), "users"),
        },
        "self": {
            "raw_faiss_1_excluded": (raw_self, "items"),
            "similar_items_by_id": (lambda i: rec.similar_items(iid[i], k), "items"),
        },
        "excluded": {
            "raw_faiss_seen": (raw_seen, "users"),
            "recommend_seen": (lambda u: rec.recommend(uid[u], k), "users"),
            "raw_faiss_listed": (raw_excluded, "users"),
            "recommend_exclude_list": (
                lambda u: rec.recommend(uid[u], k, exclude=exclude_ids(u), exclude_seen=False),
                "users",
            ),
        },
    }
    # the same answers, or the comparison means nothing
    for u in range(20):
        assert rec.recommend(uid[u], k, exclude_seen=False).ids.tolist() == (
            item_ids[raw_plain(u)[1][0]].tolist()
        )
        assert rec.recommend(uid[u], k).ids.tolist() == item_ids[raw_seen(u)[1][0]].tolist()
        got = rec.recommend(uid[u], k, exclude=exclude_ids(u), exclude_seen=False).ids
        assert got.tolist() == item_ids[raw_excluded(u)[1][0]].tolist()
        assert rec.similar_items(iid[u], k).ids.tolist() == item_ids[raw_self(u)[1][0]].tolist()
    out = {"spec": spec, "search_params": ip.search_params, "build_s": build_s, "cases": {}}
    sizes = {"users": len(user_ids), "items": len(item_ids)}
    for case, systems in cases.items():
        queries = {name: picks(sizes[space]) for name, (_, space) in systems.items()}
        for name, q in queries.items():  # selectors are prebuilt outside the timed calls
            for j in q:
                if name == "raw_faiss_seen":
                    raw_seen(j)
                elif name in ("raw_faiss_listed", "recommend_exclude_list"):
                    exclude_ids(j)
                elif name == "raw_faiss_1_excluded":
                    raw_self(j)
        timed = time_round_robin({name: fn for name, (fn, _) in systems.items()}, queries)
        out["cases"][case] = {name: summary(s) for name, s in timed.items()}
    for case, raw, mine in RATIOS:
        stats = out["cases"][case]
        stats[mine]["ratio_p50"] = stats[mine]["p50_us"] / stats[raw]["p50_us"]
        stats[mine]["ratio_p99"] = stats[mine]["p99_us"] / stats[raw]["p99_us"]
    return out


#: (case, raw faiss system, embrecall system) whose p50 ratio is the overhead
RATIOS = (
    ("plain", "raw_faiss", "recommend_by_id"),
    ("plain", "raw_faiss", "recommend_by_vector"),
    ("self", "raw_faiss_1_excluded", "similar_items_by_id"),
    ("excluded", "raw_faiss_seen", "recommend_seen"),
    ("excluded", "raw_faiss_listed", "recommend_exclude_list"),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=200_000)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--queries", type=int, default=2_000, help="timed queries per system")
    parser.add_argument("--excluded", type=int, default=100, help="ids excluded per query")
    parser.add_argument("--index", action="append", help=f"faiss spec (default {SPECS})")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    threads = faiss.omp_get_max_threads()  # builds use every core; the timed queries one
    items_v, users_v = synthetic(args.items, args.users, args.dim)
    item_ids = np.arange(args.items, dtype=np.int64) * 3 + 1  # ids are not rows
    user_ids = np.arange(args.users, dtype=np.int64) + 10
    seen = np.random.default_rng(1).integers(0, args.items, (args.users, args.excluded))
    interactions = Interactions(np.repeat(user_ids, args.excluded), item_ids[seen.ravel()])
    report = {
        "machine": machine(),
        "args": {**vars(args), "out": str(args.out)},
        "build_threads": threads,
        "query_threads": 1,
        "runs": [],
    }
    for spec in args.index or SPECS:
        faiss.omp_set_num_threads(threads)
        r = run_spec(spec, args, items_v, users_v, item_ids, user_ids, interactions)
        report["runs"].append(r)
        print(f"\n{spec} {r['search_params']} over {args.items:,} x {args.dim}, k={args.k}")
        for case, stats in r["cases"].items():
            for name, s in stats.items():
                ratio = (
                    f"  x{s['ratio_p50']:.3f} (p99 x{s['ratio_p99']:.2f})"
                    if ("ratio_p50" in s)
                    else ""
                )
                print(
                    f"  {case:<9} {name:<24} p50 {s['p50_us']:9.1f} us"
                    f"  p99 {s['p99_us']:9.1f} us{ratio}"
                )
    args.out.parent.mkdir(exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
