"""Which faiss graph closes the gap to hnswlib on heavy norm skew? A focused side run of
``bench_scale.py``'s ``lognormal`` family.

    python benchmarks/bench_hnsw_skew.py                     # 200k x 64, about 10 minutes
    python benchmarks/bench_hnsw_skew.py --n 300000 --m 16 24 32

At 1M x 64 with lognormal norms (sigma 1.0), the race's faiss ``HNSW32`` (native inner product,
efConstruction 200) answered at about 1.6x hnswlib's p50 (M 16, efConstruction 200) at recall@10
0.95. This script builds, on the same vectors, faiss ``HNSW{M}`` as embrecall builds them
(``VectorIndex.build``: native inner product, efConstruction 200) for each ``--m``, and hnswlib
M 16 / efConstruction 200; tunes each on the tuning queries to the smallest efSearch (ef) that
reaches the target; then times single queries on one thread, interleaved in blocks of 25 on
held-out queries, each system in its own order (``bench_scale.interleaved``). faiss graphs are
timed through ``VectorIndex.search``, the path a recommender takes, and raw on the same index.

Results: stdout and benchmarks/results/hnsw-skew.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import faiss
import numpy as np
from bench_core import machine
from bench_scale import (
    CPUS,
    EF_LADDER,
    K,
    System,
    Truth,
    _saved_bytes,
    family_vectors,
    headline,
    hnswlib_system,
    tune_peer,
)

from embrecall.index import VectorIndex

RESULTS = Path(__file__).parent / "results" / "hnsw-skew.json"


def faiss_graph(items: np.ndarray, m: int) -> tuple[System, System]:
    """``HNSW{m}`` as embrecall builds it, searched through ``VectorIndex`` and raw."""
    faiss.omp_set_num_threads(CPUS)
    t0 = time.perf_counter()
    index = VectorIndex.build(items, "ip", f"HNSW{m}", mips="native", progress=False)
    build_s = time.perf_counter() - t0
    bpv = _saved_bytes(lambda path: faiss.write_index(index.index, path)) / len(items)
    raw = index.index

    def ours(setting):
        params = {"efSearch": int(setting["efSearch"])}
        return lambda q: index.search(q[None, :], K, params=params)[1][0]

    def raw_one(setting):
        params = faiss.SearchParametersHNSW(efSearch=int(setting["efSearch"]))
        return lambda q: raw.search(q[None, :], K, params=params)[1][0]

    def batch(queries, setting):
        return index.search(queries, K, params={"efSearch": int(setting["efSearch"])})[1]

    spec = f"HNSW{m} efC=200 (ip)"
    common = dict(ladder=list(EF_LADDER))
    mine = System(f"embrecall HNSW{m}", spec, "efSearch", ours, batch, build_s, bpv, **common)
    direct = System(f"raw faiss HNSW{m}", spec, "efSearch", raw_one, batch, build_s, bpv, **common)
    direct.peer = False
    return mine, direct


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--m", type=int, nargs="+", default=[16, 24, 32], help="faiss HNSW M")
    parser.add_argument("--queries", type=int, default=1000, help="tuning and held-out each")
    parser.add_argument("--target", type=float, default=0.95)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    items, tune_q, held_q, what = family_vectors("lognormal", args.n, args.dim, args.queries)
    print(f"lognormal {args.n:,} x {args.dim} ({what}); inner product, k={K}")
    tuning, heldout = Truth.of(items, tune_q), Truth.of(items, held_q)
    systems: list[System] = []
    for m in args.m:
        mine, direct = faiss_graph(items, m)
        tune_peer(mine, tuning, args.target)
        direct.tuned, direct.tuning = dict(mine.tuned), dict(mine.tuning)
        systems += [mine, direct]
        print(f"  HNSW{m}: built in {mine.build_s:.1f}s, tuned to {mine.tuned}")
    peer = hnswlib_system(items)
    if peer is not None:
        tune_peer(peer, tuning, args.target)
        systems.append(peer)
        print(f"  hnswlib: built in {peer.build_s:.1f}s, tuned to {peer.tuned}")
    result = headline(systems, heldout, tune_q, args.target)
    best_peer = result.get("hnswlib", {}).get("p50_ms")
    print(f"\n  held-out queries, target recall@{K} {args.target}")
    for name, r in result.items():
        ratio = f"  x{r['p50_ms'] / best_peer:.2f} hnswlib" if best_peer else ""
        print(
            f"  {name:<20} {str(r['setting']):<20} recall {r['heldout_recall']:.3f}"
            f"  p50 {r['p50_ms']:.3f} ms  p99 {r['p99_ms']:.3f} ms"
            f"  build {r['build_s']:6.1f} s  {r['bytes_per_vector']:6.1f} B/vec{ratio}"
        )
        r.pop("blocks_s")
    report = {"machine": machine(), "args": {**vars(args), "out": str(args.out)}}
    report["systems"] = result
    args.out.parent.mkdir(exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
