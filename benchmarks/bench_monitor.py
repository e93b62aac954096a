"""What live recall monitoring costs: observe() on the request path, and one exact check.

    python benchmarks/bench_monitor.py                    # 100k items x 64 dims
    python benchmarks/bench_monitor.py --items 1000000

observe() is timed on the calling thread (a coin flip, and for a sampled query a copy and a
put_nowait); the exact check is timed in the worker (how many samples per second one
background thread can keep up with before the queue starts dropping).
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np

from embrecall.embeddings import Embeddings
from embrecall.recommender import Recommender
from embrecall.service.monitor import LiveRecallMonitor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--checks", type=int, default=50)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((args.items, args.dim)).astype(np.float32)
    items = Embeddings(np.arange(args.items), vectors)
    users = Embeddings(np.arange(1000), rng.standard_normal((1000, args.dim)).astype(np.float32))
    rec = Recommender.build(items, users, index="Flat")  # the exact-search case it measures
    served = [rec.recommend(int(u), k=10)[0] for u in range(args.checks)]

    def time_observe(rate: float) -> float:
        monitor = LiveRecallMonitor(rec, sample_rate=rate, max_queue=100_000, start=False, seed=0)
        t = time.perf_counter()
        for i in range(20_000):
            monitor.observe("recommend", served[i % args.checks], query_id=i % args.checks, k=10)
        elapsed = (time.perf_counter() - t) / 20_000
        monitor.close()
        return elapsed * 1e6

    print(f"{platform.processor() or platform.machine()}, {args.items} items x {args.dim}")
    print(f"observe(), not sampled (rate 0.0001): {time_observe(0.0001):.2f} us per call")
    print(f"observe(), always sampled (rate 1):   {time_observe(1.0):.2f} us per call")
    monitor = LiveRecallMonitor(rec, sample_rate=1.0, max_queue=args.checks)
    t = time.perf_counter()
    for u in range(args.checks):
        monitor.observe("recommend", served[u], query_id=u, k=10)
    monitor.flush()
    per_check = (time.perf_counter() - t) / args.checks
    snap = monitor.snapshot()
    monitor.close()
    recall = snap["query_kinds"]["recommend"]["recall"]
    print(
        f"exact check in the worker: {per_check * 1e3:.1f} ms per sample "
        f"(~{1 / per_check:.0f} samples/s per worker); recall {recall}"
    )


if __name__ == "__main__":
    main()
