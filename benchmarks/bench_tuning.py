"""Does a tuned index keep its recall target on queries it never saw?

For each index kind, `tune_to_recall` picks `nprobe` / `efSearch` for a target recall@10 on a
tuning sample, confirms it on a disjoint held-out sample (the held-out mean must clear the target
by its sampling error: a one-sided 95% lower confidence bound), and the result is then measured
on a third, fresh sample that neither saw. For comparison the same is done without the held-out step
(`max_queries` queries, the setting that just reaches the target on them), as embrecall tuned
before. Recall is tie-tolerant (`embrecall.index.recall`).

    python benchmarks/bench_tuning.py                     # 200k x 64, IVF and HNSW, inner product
    python benchmarks/bench_tuning.py --items 1000000 --json benchmarks/results/tuning-1m.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from recsys_data import recsys_vectors  # noqa: E402

from embrecall.index import VectorIndex  # noqa: E402
from embrecall.index.choice import ivf_lists  # noqa: E402
from embrecall.index.recall import recall_at_k  # noqa: E402
from embrecall.index.tuning import exact_rows, tune_to_recall  # noqa: E402


def fresh_recall(index, items, fresh, truth, params) -> float:
    rows = index.search(fresh, 10, params=params)[1]
    return float(recall_at_k(items, fresh, rows, truth, "ip").mean())


def run(args) -> dict:
    items, users = recsys_vectors(args.items, 2 * args.queries + args.fresh, args.dim, seed=3)
    tuning_users, fresh = users[: 2 * args.queries], users[2 * args.queries :]
    truth = exact_rows(items, fresh, 10, "ip", None)
    rows = []
    for spec in (f"IVF{ivf_lists(len(items))},Flat", "HNSW32"):
        t0 = time.perf_counter()
        index = VectorIndex.build(items, "ip", spec, progress=False)
        built = time.perf_counter() - t0
        for seed in range(args.seeds):
            # Without a held-out check: the setting that just reaches the target on `queries`.
            alone = tune_to_recall(
                index, items, tuning_users, target=args.target, seed=seed,
                max_queries=args.queries, holdout_queries=0, progress=False,
            )  # fmt: skip
            # The default: tuned on `queries`, confirmed on `queries` others.
            confirmed = tune_to_recall(
                index, items, tuning_users, target=args.target, seed=seed,
                max_queries=args.queries, progress=False,
            )  # fmt: skip
            for name, t in (("tune only", alone), ("tune + held out", confirmed)):
                rows.append(
                    {
                        "index": spec,
                        "seed": seed,
                        "tuning": name,
                        "params": t.params,
                        "tune_recall": t.recall,
                        "holdout_recall": t.holdout_recall,
                        "holdout_bound": t.holdout_bound,
                        "fresh_recall": round(
                            fresh_recall(index, items, fresh, truth, t.params), 4
                        ),
                        "build_s": round(built, 1),
                    }
                )
                print(json.dumps(rows[-1]), flush=True)
    return {
        "items": args.items,
        "dim": args.dim,
        "target": args.target,
        "queries": args.queries,
        "fresh": args.fresh,
        "machine": f"{platform.processor() or platform.machine()}, {platform.python_version()}",
        "rows": rows,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--items", type=int, default=200_000)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--queries", type=int, default=1000, help="per tuning sample")
    p.add_argument("--fresh", type=int, default=2000, help="queries neither sample saw")
    p.add_argument("--target", type=float, default=0.95)
    p.add_argument("--seeds", type=int, default=3, help="sampling seeds per index")
    p.add_argument("--json", help="write the report here")
    args = p.parse_args(argv)
    report = run(args)
    for r in report["rows"]:
        miss = " MISSED" if r["fresh_recall"] < args.target else ""
        print(
            f"{r['index']:>14} seed {r['seed']} {r['tuning']:<16} {r['params']} "
            f"tune {r['tune_recall']:.3f} held-out {r['holdout_recall'] or '-'} "
            f"(bound {r['holdout_bound'] or '-'}) "
            f"fresh {r['fresh_recall']:.3f}{miss}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
