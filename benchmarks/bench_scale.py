"""Recall against latency at scale: embrecall's chosen index, the same faiss index called
directly, hnswlib and usearch, all in one run on the same vectors and queries.

    python benchmarks/bench_scale.py                          # real ALS, 100k and 1M x 64
    python benchmarks/bench_scale.py --sizes 10000000 --libs none   # the longer 10M run

For each data set: items with skewed norms and user queries from another distribution
(``recsys_data.py``; the real Spark ALS embeddings of ../shared/data when present), inner product,
k=10. embrecall chooses the index (``choose_index``) and tunes it to ``--target`` recall@10
(``tune_to_recall``); then every engine is swept over its search parameter and measured:

- recall@10 against exact search (1,000 queries),
- single-query latency p50/p99 (500 queries, one thread each; the engines that share a parameter
  take turns over blocks of 25 queries, so load drift hits them alike and no engine inherits a
  cache warmed by another on the same query),
- batch throughput (all queries in one call, all threads),
- build time and bytes per vector.

"raw faiss" is the very index embrecall built, searched with ``index.search`` and the same
parameters: the ratio of the two is embrecall's in-process overhead. hnswlib and usearch build
HNSW graphs with inner product (M=32, efConstruction=40, faiss's default) and are swept over ef.
The norm augmentation's effect on recall (inner product through L2) is measured on IVF and HNSW
at the smaller sizes.

Results: a table on stdout, benchmarks/results/scale.json and benchmarks/results/scale.png.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import faiss
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from recsys_data import recsys_vectors  # noqa: E402

from embrecall.index import VectorIndex  # noqa: E402
from embrecall.index.choice import choose_index, ivf_lists  # noqa: E402
from embrecall.index.memory import format_size  # noqa: E402
from embrecall.index.recall import recall_at_k  # noqa: E402
from embrecall.index.structure import tunable_param  # noqa: E402
from embrecall.index.tuning import exact_rows, tune_to_recall  # noqa: E402

RESULTS = Path(__file__).parent / "results"
SHARED_ALS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "spark-als"
EF_SWEEP = (10, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536)
NPROBE_SWEEP = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)
HNSW_M, HNSW_EF_CONSTRUCTION = 32, 40
_BLOCK = 25  # queries each engine runs in a row during latency timing


@dataclass
class Point:
    engine: str
    param: dict
    recall: float
    p50_ms: float = float("nan")
    p99_ms: float = float("nan")
    batch_qps: float = float("nan")
    # embrecall only: median over query blocks of (its block median / raw faiss's block median),
    # each pair timed on the same 25 queries moments apart, so host noise between blocks cancels
    paired_overhead: float | None = None


@dataclass
class Engine:
    """One searchable index: ``one(q, value)`` answers a single query, ``batch(Q, value)`` many."""

    name: str
    param: str | None
    one: object
    batch: object
    build_s: float
    bytes_per_vector: float
    notes: dict = field(default_factory=dict)


# -- engines ---------------------------------------------------------------------------------
def embrecall_engines(items: np.ndarray, spec: str, mips: str = "auto") -> tuple[Engine, Engine]:
    """embrecall's VectorIndex and the same faiss index called directly."""
    t0 = time.perf_counter()
    index = VectorIndex.build(items, "ip", spec, mips=mips, progress=len(items) >= 1_000_000)
    build_s = time.perf_counter() - t0
    param = tunable_param(index.index)
    bpv = (
        len(faiss.serialize_index(index.index)) / len(items)
        if len(items) <= 2_000_000
        else (index.memory_bytes / len(items))
    )

    def params_for(value):  # read live: tuning changes the index's parameters after this
        return dict(index.search_params) if value is None else {**index.search_params, param: value}

    def ours_one(q, value):
        return index.search(q[None, :], 10, params=params_for(value))[1][0]

    def ours_batch(queries, value):
        return index.search(queries, 10, params=params_for(value))[1]

    raw = index.index
    transform = index.mips
    from embrecall.index.structure import search_parameters

    def raw_one(q, value, _cache={}):  # noqa: B006 - per-engine parameter objects, made once
        key = value
        if key not in _cache:
            _cache[key] = search_parameters(raw, params_for(value), None)
        x = transform.queries(q[None, :]) if transform is not None else q[None, :]
        return raw.search(x, 10, params=_cache[key])[1][0]

    def raw_batch(queries, value):
        x = transform.queries(queries) if transform is not None else queries
        return raw.search(x, 10, params=search_parameters(raw, params_for(value), None))[1]

    notes = {"spec": spec, "mips": transform.to_manifest() if transform else None}
    ours = Engine("embrecall", param, ours_one, ours_batch, build_s, bpv, notes)
    direct = Engine("raw faiss", param, raw_one, raw_batch, build_s, bpv, notes)
    ours.notes["index"] = index
    return ours, direct


def hnswlib_engine(items: np.ndarray) -> Engine | None:
    try:
        import hnswlib
    except ImportError:
        print("  hnswlib not installed: pip install -e '.[bench]'")
        return None
    t0 = time.perf_counter()
    index = hnswlib.Index(space="ip", dim=items.shape[1])
    index.init_index(len(items), M=HNSW_M, ef_construction=HNSW_EF_CONSTRUCTION, random_seed=1)
    index.add_items(items, np.arange(len(items)), num_threads=os.cpu_count())
    build_s = time.perf_counter() - t0
    size = _saved_size(index.save_index)

    def one(q, ef):
        index.set_ef(ef)
        return index.knn_query(q, k=10, num_threads=1)[0][0]

    def batch(queries, ef):
        index.set_ef(ef)
        return index.knn_query(queries, k=10, num_threads=os.cpu_count())[0]

    return Engine("hnswlib", "ef", one, batch, build_s, size / len(items))


def usearch_engine(items: np.ndarray) -> Engine | None:
    try:
        from usearch.index import Index
    except ImportError:
        print("  usearch not installed: pip install -e '.[bench]'")
        return None
    t0 = time.perf_counter()
    index = Index(
        ndim=items.shape[1],
        metric="ip",
        dtype="f32",
        connectivity=HNSW_M,
        expansion_add=HNSW_EF_CONSTRUCTION,
    )
    index.add(np.arange(len(items)), items, threads=os.cpu_count())
    build_s = time.perf_counter() - t0
    size = _saved_size(index.save)

    def one(q, ef):
        index.expansion_search = ef
        return index.search(q, 10, threads=1).keys

    def batch(queries, ef):
        index.expansion_search = ef
        return index.search(queries, 10, threads=os.cpu_count()).keys

    return Engine("usearch", "ef", one, batch, build_s, size / len(items))


def _saved_size(save) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "index.bin")
        save(path)
        return os.path.getsize(path)


# -- measuring -------------------------------------------------------------------------------
@dataclass
class Truth:
    """The exact top-k rows of the queries, with what is needed to judge ties."""

    base: np.ndarray
    queries: np.ndarray
    rows: np.ndarray


def recall_of(rows: np.ndarray, truth: Truth) -> float:
    """Mean recall@k with ties at the k-th score tolerated (embrecall's one measure), the same
    for every engine."""
    return float(recall_at_k(truth.base, truth.queries, rows, truth.rows, "ip").mean())


def sweep(
    schedule: dict[str, tuple[Engine, list]], queries, truth, latency_queries: int, target: float
) -> list[Point]:
    """Every engine over its own parameter values: recall, single-query latency, batch QPS.

    Step i measures every engine still going at its i-th value, the engines taking turns over
    blocks of queries (the order rotating per block), so that load drift hits them alike and no
    engine inherits a cache warmed by another on the same query. An engine stops two steps after
    passing ``target + 0.04``, or at the end of its values.
    """
    points: list[Point] = []
    single = queries[:latency_queries]
    passed = dict.fromkeys(schedule, 0)
    for step in range(max(len(values) for _, values in schedule.values())):
        active = [
            (engine, values[step])
            for name, (engine, values) in schedule.items()
            if step < len(values) and passed[name] < 2
        ]
        if not active:
            break
        timings = {engine.name: [] for engine, _ in active}
        block_medians: dict[str, list[float]] = {engine.name: [] for engine, _ in active}
        faiss.omp_set_num_threads(1)
        for q in single[:20]:
            for engine, value in active:
                engine.one(q, value)  # warm up caches and parameter objects
        for b, start in enumerate(range(0, len(single), _BLOCK)):
            block = single[start : start + _BLOCK]
            turn = b % len(active)
            for engine, value in active[turn:] + active[:turn]:
                took = []
                for q in block:
                    t = time.perf_counter()
                    engine.one(q, value)
                    took.append(time.perf_counter() - t)
                timings[engine.name].extend(took)
                block_medians[engine.name].append(float(np.median(took)))
        faiss.omp_set_num_threads(os.cpu_count())
        for engine, value in active:
            t = time.perf_counter()
            rows = engine.batch(queries, value)
            qps = len(queries) / (time.perf_counter() - t)
            ms = np.array(timings[engine.name]) * 1e3
            point = Point(
                engine.name,
                {} if value is None else {engine.param: value},
                recall_of(rows, truth),
                float(np.percentile(ms, 50)),
                float(np.percentile(ms, 99)),
                qps,
            )
            if engine.name == "embrecall" and "raw faiss" in block_medians:
                ratios = np.divide(block_medians["embrecall"], block_medians["raw faiss"])
                point.paired_overhead = round(float(np.median(ratios)), 3)
            points.append(point)
            passed[engine.name] += point.recall >= target + 0.04
    return points


def best_at(points: list[Point], engine: str, target: float) -> Point | None:
    """The fastest (p50) setting of ``engine`` that reaches ``target`` recall."""
    ok = [p for p in points if p.engine == engine and p.recall >= target]
    return min(ok, key=lambda p: p.p50_ms) if ok else None


def mips_comparison(items, queries, truth, nlist: int) -> list[dict]:
    """Recall@10 of IVF (the chosen number of lists, and 4x as many) and HNSW with and without
    the norm augmentation, at the same parameters."""
    rows = []
    for spec, param, values in (
        (f"IVF{nlist},Flat", "nprobe", (4, 8, 16, 32, 64)),
        (f"IVF{4 * nlist},Flat", "nprobe", (4, 8, 16, 32, 64, 128)),
        ("HNSW32", "efSearch", (16, 32, 64, 128)),
    ):
        built = {
            mode: VectorIndex.build(items, "ip", spec, mips=mode) for mode in ("native", "augment")
        }
        for value in values:
            row = {"spec": spec, param: value}
            for mode, index in built.items():
                found = index.search(queries, 10, params={param: value})[1]
                row[mode] = round(recall_of(found, truth), 4)
            rows.append(row)
    return rows


# -- one data set ----------------------------------------------------------------------------
def run_dataset(name, items, users, args) -> dict:
    n, d = items.shape
    print(f"\n== {name}: {n:,} items x {d}, {len(users):,} queries, inner product, k=10")
    queries = np.ascontiguousarray(users[: args.queries], dtype=np.float32)
    t0 = time.perf_counter()
    truth = Truth(items, queries, exact_rows(items, queries, 10, "ip", None))
    print(f"  exact answers in {time.perf_counter() - t0:.1f}s")
    choice = choose_index(n, d, "ip")
    print(f"  embrecall chooses {choice.spec}: {choice.reason}")
    ours, direct = embrecall_engines(items, choice.spec)
    index = ours.notes["index"]
    t0 = time.perf_counter()
    tuning = tune_to_recall(index, items, users, target=args.target, k=10)
    print(
        f"  built in {ours.build_s:.1f}s; tuned to {tuning.params} "
        f"(recall@10 {tuning.recall:.3f}) in {time.perf_counter() - t0:.1f}s"
    )
    engines = [ours, direct]
    if args.libs != "none":
        for make in (hnswlib_engine, usearch_engine):
            if args.libs in ("all", make.__name__.split("_")[0]):
                engine = make(items)
                if engine is not None:
                    print(f"  {engine.name} built in {engine.build_s:.1f}s")
                    engines.append(engine)
    if ours.param is None:
        ours_values = [None]
    elif ours.param == "efSearch":
        ours_values = sorted({*EF_SWEEP, tuning.params["efSearch"]})
    else:
        nlist = faiss.extract_index_ivf(index.index).nlist
        ours_values = sorted({*(v for v in NPROBE_SWEEP if v <= nlist), tuning.params["nprobe"]})
    schedule = {
        e.name: (e, ours_values if e in (ours, direct) else list(EF_SWEEP)) for e in engines
    }
    points = sweep(schedule, queries, truth, args.latency_queries, args.target)
    result = {
        "name": name,
        "n": n,
        "dim": d,
        "queries": len(queries),
        "latency_queries": min(args.latency_queries, len(queries)),
        "choice": choice.to_dict(),
        "tuning": tuning.to_dict(),
        "engines": {
            e.name: {
                "build_s": round(e.build_s, 2),
                "bytes_per_vector": round(e.bytes_per_vector, 1),
            }
            for e in engines
        },
        "points": [p.__dict__ for p in points],
    }
    result["at_target"] = {
        e.name: (best.__dict__ if (best := best_at(points, e.name, args.target)) else None)
        for e in engines
    }
    tuned_value = tuning.params.get(ours.param) if ours.param else None
    pair = [p for p in points if ours.param is None or p.param.get(ours.param) == tuned_value]
    ratio = _ratio(pair)
    if ratio is None:  # the tuned value was not in the sweep: compare at every swept value
        ratio = _ratio(points)
    result["overhead_p50"] = ratio
    paired = [p.paired_overhead for p in pair if p.paired_overhead is not None]
    result["overhead_paired"] = paired[0] if paired else None
    result["index_memory_bytes"] = index.memory_bytes
    result["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if n <= args.mips_up_to:
        nlist = ivf_lists(n)
        result["mips"] = mips_comparison(items, queries, truth, nlist)
    print_dataset(result, args.target)
    return result


def _ratio(points: list[Point]) -> float | None:
    ours = {json.dumps(p.param): p.p50_ms for p in points if p.engine == "embrecall"}
    raw = {json.dumps(p.param): p.p50_ms for p in points if p.engine == "raw faiss"}
    ratios = [ours[k] / raw[k] for k in ours if k in raw and raw[k] > 0]
    return round(float(np.median(ratios)), 3) if ratios else None


def print_dataset(result: dict, target: float) -> None:
    print(f"  {'engine':<10} {'param':<16} {'recall@10':>9} {'p50 ms':>8} {'p99 ms':>8} {'QPS':>9}")
    for p in result["points"]:
        param = ", ".join(f"{k}={v}" for k, v in p["param"].items()) or "-"
        print(
            f"  {p['engine']:<10} {param:<16} {p['recall']:>9.3f} {p['p50_ms']:>8.3f} "
            f"{p['p99_ms']:>8.3f} {p['batch_qps']:>9.0f}"
        )
    print(f"  fastest at recall@10 >= {target}:")
    for engine, best in result["at_target"].items():
        meta = result["engines"][engine]
        if best is None:
            print(f"    {engine:<10} never reached it")
            continue
        param = ", ".join(f"{k}={v}" for k, v in best["param"].items()) or "-"
        print(
            f"    {engine:<10} {param:<14} recall {best['recall']:.3f}  p50 {best['p50_ms']:.3f} ms"
            f"  p99 {best['p99_ms']:.3f} ms  {best['batch_qps']:.0f} QPS  build "
            f"{meta['build_s']:.1f}s  {meta['bytes_per_vector']:.0f} B/vector"
        )
    print(
        f"  embrecall / raw faiss p50 (same index, same parameters): {result['overhead_p50']}; "
        f"paired by query block: {result['overhead_paired']}"
    )
    print(
        f"  index memory {result['index_memory_bytes'] / 2**30:.2f} GiB; peak process RSS so far "
        f"{result['peak_rss_bytes'] / 2**30:.2f} GiB (vectors, exact answers, other libraries)"
    )
    for row in result.get("mips", []):
        print(f"  norm augmentation: {row}")


def markdown(results: list[dict], target: float) -> str:
    """The summary tables the docs quote: fastest setting at the target, and the augmentation."""
    lines = [
        "| data | engine | index | setting | recall@10 | p50 ms | p99 ms | batch QPS | build s "
        "| bytes/vector |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        data = f"{r['name']} {r['n']:,} x {r['dim']}"
        for engine, best in r["at_target"].items():
            meta = r["engines"][engine]
            index = r["choice"]["spec"] if engine in ("embrecall", "raw faiss") else "HNSW32 (ip)"
            if best is None:
                lines.append(f"| {data} | {engine} | {index} | never reached {target} | | | | | |")
                continue
            setting = ", ".join(f"{k}={v}" for k, v in best["param"].items()) or "-"
            lines.append(
                f"| {data} | {engine} | {index} | {setting} | {best['recall']:.3f} "
                f"| {best['p50_ms']:.3f} | {best['p99_ms']:.3f} | {best['batch_qps']:,.0f} "
                f"| {meta['build_s']:.1f} | {meta['bytes_per_vector']:.0f} |"
            )
    lines += [
        "",
        "| data | embrecall / raw faiss: p50s | paired by block | index memory | peak RSS |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in results:
        lines.append(
            f"| {r['name']} {r['n']:,} | {r['overhead_p50']} | {r.get('overhead_paired')} | "
            f"{format_size(r['index_memory_bytes'])} | {format_size(r['peak_rss_bytes'])} |"
        )
    for r in results:
        if not r.get("mips"):
            continue
        lines += [
            "",
            f"{r['name']} {r['n']:,} x {r['dim']}: recall@10, native inner product "
            "-> norm augmentation",
            "",
            "| index | setting | native | augmented |",
            "| --- | --- | --- | --- |",
        ]
        for row in r["mips"]:
            param = "nprobe" if "nprobe" in row else "efSearch"
            lines.append(
                f"| {row['spec']} | {param}={row[param]} | {row['native']:.3f} "
                f"| {row['augment']:.3f} |"
            )
    return "\n".join(lines) + "\n"


def plot(results: list[dict], path: Path, target: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, NullFormatter

    fig, axes = plt.subplots(1, len(results), figsize=(5.5 * len(results), 4.5), squeeze=False)
    for ax, result in zip(axes[0], results):
        for engine in result["engines"]:
            pts = [p for p in result["points"] if p["engine"] == engine]
            ax.plot(
                [p["p50_ms"] for p in pts],
                [p["recall"] for p in pts],
                marker="o",
                markersize=3,
                label=engine,
            )
        ax.axhline(target, color="grey", linestyle=":", linewidth=1)
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("single-query latency p50 (ms, log)")
        ax.set_ylabel("recall@10")
        spec = result["choice"]["spec"]
        ax.set_title(
            f"{result['name']}: {result['n']:,} x {result['dim']} (ip, {spec})", fontsize=9
        )
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"\nplot: {path}")


def load_als():
    from embrecall.io import read_embeddings

    items_csv = SHARED_ALS / "movielens_sparkals_item_embedding.csv"
    users_csv = SHARED_ALS / "movielens_sparkals_user_embedding.csv"
    if not items_csv.exists():
        print(f"(no real ALS embeddings at {SHARED_ALS}: skipped)")
        return None
    return read_embeddings(items_csv).vectors, read_embeddings(users_csv).vectors


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[100_000, 1_000_000])
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--latency-queries", type=int, default=500)
    parser.add_argument("--target", type=float, default=0.95)
    parser.add_argument(
        "--libs",
        choices=("all", "hnswlib", "usearch", "none"),
        default="all",
        help="other libraries to compare",
    )
    parser.add_argument("--no-als", action="store_true", help="skip the real ALS embeddings")
    parser.add_argument(
        "--mips-up-to",
        type=int,
        default=1_000_000,
        help="measure the augmentation's recall effect up to this many items",
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "scale.json")
    parser.add_argument(
        "--plot",
        type=lambda text: Path(text) if text else None,
        default=RESULTS / "scale.png",
        help="PNG to write ('' for none)",
    )
    args = parser.parse_args(argv)

    results = []
    if not args.no_als and (als := load_als()) is not None:
        results.append(run_dataset("Spark ALS (MovieLens)", *als, args))
    for n in args.sizes:
        items, users = recsys_vectors(n, args.queries, args.dim, seed=0)
        results.append(run_dataset("synthetic", items, users, args))
    report = {
        "machine": {
            "processor": _cpu_model(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "faiss": faiss.__version__,
            "loadavg_at_end": os.getloadavg(),
        },
        "target_recall": args.target,
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=_json_default) + "\n")
    print(f"results: {args.out}")
    summary = args.out.with_suffix(".md")
    summary.write_text(markdown(results, args.target))
    print(f"summary: {summary}")
    if args.plot:
        plot(results, args.plot, args.target)
    return 0


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _json_default(value):
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    raise TypeError(type(value))


if __name__ == "__main__":
    raise SystemExit(main())
