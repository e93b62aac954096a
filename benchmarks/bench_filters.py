"""Filtered recall at selectivities from 0.1% to 100%: embrecall against over-fetch + post-filter.

    python benchmarks/bench_filters.py                        # 1M x 64, HNSW32 and IVF, ~20 min
    python benchmarks/bench_filters.py --items 200000 --spec HNSW32   # a few minutes

Items are the scale benchmark's clustered family (2,048 tight centres, mild norm skew; the
queries are user vectors drawn like them). Each item gets a catalogue field ``bucket``, an
integer 0..999 drawn independently of its vector, so that ``bucket<N`` passes exactly N/1000 of
the items. One recommender per index spec is built in memory and tuned to recall@10 0.95 on
tuning queries; every figure below comes from other, held-out queries.

For each selectivity, single queries on one thread, round-robin per query (each system asks its
own queries, so that none warms another's cache):

* ``filtered``: ``recommend_by_vector(q, k, filter=...)``, the plan embrecall picks;
* ``unfiltered``: the same call without a filter (the issue's reference p50);
* ``post-filter``: the naive way: search unfiltered for ``k / selectivity`` results (at most
  2,000), then drop the ones that fail;
* ``scan``: an exact numpy scan of the passing rows (gather, one product, a partial sort).

Recall@10 is against the exact filtered top-10 (numpy, float64), ties at the 10th score
tolerated. The goal per selectivity: recall >= 0.95, p50 <= max(1.5 x unfiltered, scan), and no
result that fails the filter. Results: stdout, benchmarks/results/filters.{json,md,png}.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
from bench_core import machine
from bench_scale import family_vectors

from embrecall.catalog import Catalog
from embrecall.embeddings import Embeddings
from embrecall.index.recall import recall_against_exact
from embrecall.recommender import Recommender

RESULTS = Path(__file__).parent / "results"
SELECTIVITIES = (0.001, 0.01, 0.1, 0.5, 1.0)
NAIVE_MAX_FETCH = 2_000
BUCKETS = 1000


def exact_filtered(items: np.ndarray, queries: np.ndarray, rows: np.ndarray, k: int):
    """Exact top-k rows and float64 scores of inner product over ``rows`` only."""
    sub = items[rows].astype(np.float64)
    out_rows = np.full((len(queries), k), -1, dtype=np.int64)
    out_scores = np.full((len(queries), k), np.nan)
    for start in range(0, len(queries), 64):
        scores = queries[start : start + 64].astype(np.float64) @ sub.T
        take = min(k, rows.size)
        part = np.argpartition(-scores, take - 1, axis=1)[:, :take]
        for i, cand in enumerate(part):
            best = cand[np.argsort(-scores[i, cand])]
            out_rows[start + i, :take] = rows[best]
            out_scores[start + i, :take] = scores[i, best]
    return out_rows, out_scores


def recall(items, queries, found: list[np.ndarray], exact_rows, exact_scores, k) -> float:
    rows = np.full((len(found), k), -1, dtype=np.int64)
    for i, f in enumerate(found):
        rows[i, : min(k, f.size)] = f[:k]
    safe = np.where(rows >= 0, rows, 0)
    scores = np.einsum("mkd,md->mk", items[safe].astype(np.float64), queries.astype(np.float64))
    scores[rows < 0] = np.nan
    return float(recall_against_exact(rows, scores, exact_rows, exact_scores).mean())


def _systems(rec, index, items, expression, allowed, fetch: int, k: int, plans: set) -> dict:
    """The four ways to answer one filtered query, each a function of the query vector."""
    mask, passing = allowed.mask, allowed.rows

    def filtered(q):
        answer = rec.recommend_by_vector(q, k, filter=[expression])
        plans.add(answer.filter["plan"])
        return answer.ids

    def unfiltered(q):
        return rec.recommend_by_vector(q, k).ids

    def post_filter(q):
        _, r = index.search(q[None], fetch)
        r = r[0]
        return r[(r >= 0) & mask[np.maximum(r, 0)]][:k]

    def scan(q):
        s = items.take(passing, axis=0) @ q
        top = np.argpartition(-s, min(k, s.size) - 1)[:k]
        return passing[top[np.argsort(-s[top])]]

    return {
        "filtered": filtered,
        "unfiltered": unfiltered,
        "post-filter": post_filter,
        "scan": scan,
    }


def run_spec(spec: str, items, tune_q, held_q, bucket, args) -> dict:
    n = len(items)
    ids = np.arange(n, dtype=np.int64)
    catalog = Catalog(pd.DataFrame({"bucket": bucket}, index=pd.Index(ids, name="id")))
    t0 = time.perf_counter()
    rec = Recommender.build(
        Embeddings(ids, items),
        Embeddings(np.arange(len(tune_q), dtype=np.int64), tune_q),
        catalog=catalog,
        index={"recommend": spec, "similar_items": "Flat", "similar_users": "Flat"},
        target_recall=0.95 if spec != "Flat" else None,
        progress=True,
    )
    build_s = time.perf_counter() - t0
    index = rec.indexes[rec.query_kinds["recommend"].index_name]
    print(f"\n{spec}: built and tuned in {build_s:.0f} s, params {index.search_params}")
    k = args.k
    rows_out = []
    for sel in SELECTIVITIES:
        expression = f"bucket<{round(sel * BUCKETS)}"
        t = time.perf_counter()
        allowed = rec.compile_filter("items", [expression])
        compile_ms = (time.perf_counter() - t) * 1e3
        passing = allowed.rows
        queries = held_q[: args.queries]
        exact_rows, exact_scores = exact_filtered(items, queries, passing, k)
        fetch = min(NAIVE_MAX_FETCH, n, math.ceil(k / sel))
        mask = allowed.mask
        plans: set[str] = set()
        systems = _systems(rec, index, items, expression, allowed, fetch, k, plans)
        times = {name: [] for name in systems}
        for q in queries[:5]:
            for fn in systems.values():
                fn(q)
        # each system its own query order, round-robin, the system that starts a round
        # rotating: no system warms another's cache, nor always finds it cold
        orders = {
            name: np.random.default_rng(j).permutation(len(queries))
            for j, name in enumerate(systems)
        }
        answers = {name: [None] * len(queries) for name in systems}
        turns = list(systems.items())
        for i in range(len(queries)):
            start = i % len(turns)
            for name, fn in turns[start:] + turns[:start]:
                qi = orders[name][i]
                t = time.perf_counter()
                got = fn(queries[qi])
                times[name].append(time.perf_counter() - t)
                answers[name][qi] = np.asarray(got)
        violations = sum(int((~mask[a]).sum()) for a in answers["filtered"])
        short = sum(int(a.size < min(k, passing.size)) for a in answers["filtered"])
        p50 = {name: float(np.median(t) * 1e3) for name, t in times.items()}
        bound = max(1.5 * p50["unfiltered"], p50["scan"])
        row = {
            "selectivity": sel,
            "expression": expression,
            "passing": int(allowed.count),
            "plan": "/".join(sorted(plans)),
            "compile_ms": compile_ms,
            "recall": recall(items, queries, answers["filtered"], exact_rows, exact_scores, k),
            "post_filter_recall": recall(
                items, queries, answers["post-filter"], exact_rows, exact_scores, k
            ),
            "post_filter_fetch": fetch,
            "p50_ms": p50,
            "bound_ms": bound,
            "violations": violations,
            "short_answers": short,
        }
        row["met"] = row["recall"] >= 0.95 and p50["filtered"] <= bound and violations == 0
        rows_out.append(row)
        print(
            f"  {sel:>6.1%} {expression:<12} {row['plan']:<5} recall {row['recall']:.3f} "
            f"(post-filter {row['post_filter_recall']:.3f}) p50 {p50['filtered']:.3f} ms "
            f"(unfiltered {p50['unfiltered']:.3f}, post-filter {p50['post-filter']:.3f}, "
            f"scan {p50['scan']:.3f}; bound {bound:.3f}) {'met' if row['met'] else 'MISSED'}"
        )
    return {
        "spec": spec,
        "search_params": dict(index.search_params),
        "build_s": build_s,
        "rows": rows_out,
    }


def markdown(result: dict) -> str:
    lines = [
        f"Filtered recall@{result['k']}, {result['items']:,} x {result['dim']} items, "
        f"{result['queries']} held-out single queries per selectivity, {result['machine']['cpu']}"
        f" ({result['machine']['cores']} cores).",
        "",
        "| index | selectivity | passing | plan | recall@10 | post-filter recall | p50 ms "
        "| unfiltered p50 | post-filter p50 | scan p50 | bound | goal |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for spec in result["specs"]:
        for r in spec["rows"]:
            p = r["p50_ms"]
            lines.append(
                f"| {spec['spec']} | {r['selectivity']:.1%} | {r['passing']:,} | {r['plan']} | "
                f"{r['recall']:.3f} | {r['post_filter_recall']:.3f} | {p['filtered']:.3f} | "
                f"{p['unfiltered']:.3f} | {p['post-filter']:.3f} | {p['scan']:.3f} | "
                f"{r['bound_ms']:.3f} | {'met' if r['met'] else 'missed'} |"
            )
    return "\n".join(lines) + "\n"


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_t, ax_r) = plt.subplots(1, 2, figsize=(11, 4))
    for spec in result["specs"]:
        sel = [r["selectivity"] for r in spec["rows"]]
        for name, style in (("filtered", "-o"), ("post-filter", ":x"), ("scan", "--s")):
            label = f"{spec['spec']} {name}" if name != "scan" else f"exact scan ({spec['spec']})"
            ax_t.plot(sel, [r["p50_ms"][name] for r in spec["rows"]], style, label=label)
        ax_r.plot(sel, [r["recall"] for r in spec["rows"]], "-o", label=f"{spec['spec']} filtered")
        ax_r.plot(
            sel,
            [r["post_filter_recall"] for r in spec["rows"]],
            ":x",
            label=f"{spec['spec']} post-filter",
        )
    for ax in (ax_t, ax_r):
        ax.set_xscale("log")
        ax.set_xlabel("selectivity (share of items passing)")
        ax.grid(True, alpha=0.3)
    ax_t.set_yscale("log")
    ax_t.set_ylabel("p50 latency, ms (single query, 1 thread)")
    ax_r.set_ylabel("recall@10 against the exact filtered top-10")
    ax_r.axhline(0.95, color="grey", lw=0.8)
    ax_t.legend(fontsize=7)
    ax_r.legend(fontsize=7)
    fig.suptitle(f"Filtered recall, {result['items']:,} x {result['dim']}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument(
        "--spec", action="append", help="index spec (repeatable; default HNSW32 and IVF4096,Flat)"
    )
    parser.add_argument("--queries", type=int, default=300, help="held-out queries")
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--out", default=str(RESULTS / "filters"))
    args = parser.parse_args(argv)
    items, tune_q, held_q, family = family_vectors("clustered", args.items, args.dim, 1000)
    bucket = np.random.default_rng(7).integers(0, BUCKETS, args.items)
    result = {
        "items": args.items,
        "dim": args.dim,
        "k": args.k,
        "queries": args.queries,
        "family": family,
        "machine": machine(),
        "specs": [
            run_spec(spec, items, tune_q, held_q, bucket, args)
            for spec in (args.spec or ["HNSW32", "IVF4096,Flat"])
        ],
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(result))
    plot(result, out.with_suffix(".png"))
    print(f"\nwrote {out}.json, .md, .png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
