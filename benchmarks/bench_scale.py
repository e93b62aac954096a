"""Recall against latency at scale: embrecall against faiss, hnswlib and usearch, each built at
its own documented good settings and tuned to the same recall, measured interleaved.

    python benchmarks/bench_scale.py                                   # all families, 1M x 64
    python benchmarks/bench_scale.py --family clustered --sizes 100000 # one family, smaller

Data (inner product, k = 10), one family or all (``--family``):

- ``clustered``: a Gaussian mixture of 2,048 tight centres, mild norm skew (lognormal sigma 0.2);
- ``lognormal``: 256 diffuse topics with heavy norm skew (lognormal sigma 1.0);
- ``als``: the real Spark ALS MovieLens factors (../shared/data/spark-als, rank 10) tiled to the
  size: copy 0 is the real items, every further copy adds Gaussian noise (0.1 of each dimension's
  spread) that is the same for every member of a group of identical real vectors, so each copy
  keeps the real file's duplicates (a third of the rows, groups of up to 100). Queries are real
  user factors plus the same kind of noise.

For synthetic families, queries are users that mix two topics, shifted: another distribution than
the items. The ``als`` tuning queries come from one half of the real users, the held-out ones
from the other half.

Systems, every one built here on the same vectors with all cores:

- ``embrecall``: what ``--index auto --target-recall`` gives a user: ``auto_choice`` (a race of
  candidate kinds on a sample of the items and the tuning queries), ``VectorIndex`` build,
  ``tune_to_recall`` on the tuning queries only; searched through ``VectorIndex.search``.
  Its build time is the whole of it (choice + build + tuning), also shown in parts.
- ``raw faiss``: embrecall's very index object, searched with ``index.search`` and embrecall's
  tuned parameters (and its augmented queries): the overhead pair, not a peer.
- ``hnswlib``: M=16, ef_construction=200, space ip: the values of hnswlib's README example (its
  ALGO_PARAMS.md: M 12-48 suits most uses; ef_construction is high enough once recall at
  ef = ef_construction passes 0.9). 200, the top of the usual 100-200, rather than a cheaper
  build, because inner product with skewed norms is the hard case for graphs.
- ``usearch``: its defaults (connectivity 16, expansion_add 128), metric ip, dtype f32.
- ``faiss IVF-Flat``: ``IVF{4 sqrt(n) as a power of two},Flat`` on native inner product (faiss's
  guideline, 4-16 sqrt(n) lists), trained on 64 x nlist vectors.
- ``faiss HNSW32``: ``HNSW32`` on native inner product, efConstruction 40 (faiss's default; 80
  would about double a build that is already among the longest).
- ``faiss IVF-PQ-RFlat``: ``IVF{nlist},PQ{d/2}x4fs,RFlat`` on native inner product (fast-scan
  4-bit codes re-ranked on the exact vectors), the same nlist.

Fairness:

- Tuning / reporting split: the queries are split into a tuning sample (``--tune-queries``) and a
  disjoint held-out sample (``--report-queries``). Every system is tuned on the tuning sample
  only: the peers to the smallest ef / nprobe / efSearch whose recall@10 reaches ``--target``
  (ladder, then bisection to the integer; IVF-PQ-RFlat for each k_factor from 4 up to 256
  until three reach it, keeping the fastest pair on tuning queries), embrecall by its own
  ``tune_to_recall`` (which holds part of the tuning sample out to confirm its choice). Recall
  and latency are reported on the held-out sample only. Recall is tie-tolerant
  (``embrecall.index.recall``) for every system: the ALS factors hold many identical vectors.
- Interleaving: single queries on one thread (faiss ``omp_set_num_threads(1)``, hnswlib
  ``set_num_threads(1)``, usearch ``threads=1``); systems take turns over blocks of 25 queries,
  the order rotating per block, and each system runs the held-out queries in its own random
  order, so no system follows another on the same query (no warmed cache) and load drift hits all
  alike. Warm-up runs on tuning queries. Held-out recall is measured on the answers timed.
- Reported per system: held-out recall@10, p50/p99, batch QPS (all queries, all threads), build
  time, bytes per vector (saved size), and its p50 over the best peer's (peers that reached the
  target on their tuning sample). embrecall / raw faiss on the same index: the ratio of p50s and
  the median over blocks of the ratio of block medians (``overhead_p50``, ``overhead_paired``).
- The sweep: every system over its search parameter (other parameters at their tuned values),
  held-out recall (batch) against interleaved single-query p50, drawn per family.

Results: a table per family on stdout, benchmarks/results/scale.json (all families),
scale.md (``markdown()``, for the docs) and scale.png (one panel per family and size).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import faiss
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from recsys_data import recsys_vectors  # noqa: E402

from embrecall.index import VectorIndex  # noqa: E402
from embrecall.index.choice import ivf_lists  # noqa: E402
from embrecall.index.memory import format_size  # noqa: E402
from embrecall.index.race import auto_choice  # noqa: E402
from embrecall.index.recall import recall_at_k  # noqa: E402
from embrecall.index.structure import search_parameters, tunable_param  # noqa: E402
from embrecall.index.tuning import exact_rows, tune_to_recall  # noqa: E402

RESULTS = Path(__file__).parent / "results"
SHARED_ALS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "spark-als"
FAMILIES = ("clustered", "lognormal", "als")
K = 10
EF_LADDER = (10, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048)
NPROBE_LADDER = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024)
K_FACTORS = (4, 8, 16, 32, 64, 128, 256)  # as embrecall's tuning tries them
HNSWLIB_M, HNSWLIB_EF_CONSTRUCTION = 16, 200
FAISS_HNSW_M, FAISS_HNSW_EF_CONSTRUCTION = 32, 40
BLOCK = 25  # queries each system runs in a row during latency timing
CPUS = os.cpu_count() or 1

Setting = dict  # a system's search parameters, e.g. {"ef": 96}, {"nprobe": 32, "k_factor": 8}


# -- data ------------------------------------------------------------------------------------
def family_vectors(family: str, n: int, dim: int, m: int, seed: int = 0):
    """(items (n, d), tuning queries (m, d), held-out queries (m, d), description)."""
    if family == "clustered":
        items, users = recsys_vectors(n, 2 * m, dim, seed, topics=2048, spread=0.3, norm_sigma=0.2)
        return items, users[:m], users[m:], "2,048 tight centres, norms lognormal sigma 0.2"
    if family == "lognormal":
        items, users = recsys_vectors(n, 2 * m, dim, seed, norm_sigma=1.0)
        return items, users[:m], users[m:], "256 diffuse topics, norms lognormal sigma 1.0"
    if family == "als":
        return als_vectors(n, m, seed)
    raise ValueError(family)


def als_vectors(n: int, m: int, seed: int = 0):
    from embrecall.io import read_embeddings

    items_csv = SHARED_ALS / "movielens_sparkals_item_embedding.csv"
    users_csv = SHARED_ALS / "movielens_sparkals_user_embedding.csv"
    if not items_csv.exists():
        print(f"(no real ALS embeddings at {SHARED_ALS}: the als family is skipped)")
        return None
    real = read_embeddings(items_csv).vectors
    users = read_embeddings(users_csv).vectors
    rng = np.random.default_rng(seed)
    unique, group, counts = np.unique(real, axis=0, return_inverse=True, return_counts=True)
    group = group.ravel()
    item_noise = 0.1 * real.std(axis=0)
    items = np.empty((n, real.shape[1]), dtype=np.float32)
    for start in range(0, n, len(real)):
        stop = min(n, start + len(real))
        items[start:stop] = real[: stop - start]
        if start:  # one draw per group of identical vectors: the copy keeps the duplicates
            noise = rng.standard_normal(unique.shape, dtype=np.float32) * item_noise
            items[start:stop] += noise[group[: stop - start]]
    order = rng.permutation(len(users))
    half = len(users) // 2
    user_noise = 0.1 * users.std(axis=0)

    def queries(pool):
        picked = users[pool[rng.integers(len(pool), size=m)]]
        return (picked + rng.standard_normal(picked.shape) * user_noise).astype(np.float32)

    shared = counts[counts > 1].sum() / len(real)
    what = f"{len(real):,} real items tiled, noise 0.1 sd; {shared:.0%} of rows in identical groups"
    return items, queries(order[:half]), queries(order[half:]), what


@dataclass
class Truth:
    """The exact top-k rows of some queries, with what is needed to judge ties."""

    base: np.ndarray
    queries: np.ndarray
    rows: np.ndarray

    @classmethod
    def of(cls, base, queries) -> Truth:
        return cls(base, queries, exact_rows(base, queries, K, "ip", None))

    def recall(self, found: np.ndarray, picked: np.ndarray | None = None) -> float:
        """Mean tie-tolerant recall@k of ``found`` (rows of ``queries[picked]``)."""
        queries = self.queries if picked is None else self.queries[picked]
        exact = self.rows if picked is None else self.rows[picked]
        return float(recall_at_k(self.base, queries, found, exact, "ip").mean())


# -- systems ---------------------------------------------------------------------------------
@dataclass
class System:
    """One searchable index.

    ``searcher(setting)`` returns a function answering one query (d,) with its k rows;
    ``batch(queries, setting)`` answers many on all threads. ``param`` is the parameter tuned
    and swept; ``settings()`` the tuning ladder, each a full setting.
    """

    name: str
    index: str
    param: str | None
    searcher: Callable[[Setting], Callable[[np.ndarray], np.ndarray]]
    batch: Callable[[np.ndarray, Setting], np.ndarray]
    build_s: float
    bytes_per_vector: float
    ladder: list[int] = field(default_factory=list)
    peer: bool = True
    tuned: Setting = field(default_factory=dict)
    tuning: dict = field(default_factory=dict)
    notes: dict = field(default_factory=dict)

    def at(self, value: int | None) -> Setting:
        """The tuned setting with the swept parameter at ``value``."""
        return dict(self.tuned) if value is None else {**self.tuned, self.param: value}


def build_embrecall(items, tune_q, target, progress) -> tuple[System, System]:
    """embrecall as ``--index auto --target-recall`` builds the recommend index, and the very
    same faiss index called directly."""
    n, d = items.shape
    t0 = time.perf_counter()
    choice = auto_choice(items, tune_q, "ip", k=K, target_recall=target, progress=progress)
    t1 = time.perf_counter()
    choice_dict = choice.to_dict()
    index = VectorIndex.build(
        items, "ip", choice.spec, mips=choice.mips, progress=progress, notes={"choice": choice_dict}
    )
    t2 = time.perf_counter()
    tuning = tune_to_recall(index, items, tune_q, target=target, k=K, progress=progress)
    t3 = time.perf_counter()
    parts = {"choose_s": round(t1 - t0, 2), "build_s": round(t2 - t1, 2)}
    parts["tune_s"] = round(t3 - t2, 2)
    bpv = _saved_bytes(lambda path: faiss.write_index(index.index, path)) / n
    param = tunable_param(index.index)
    ladder = _ladder(param, index.index)
    tuned = dict(index.search_params)

    def ours(setting):
        params = None if setting == index.search_params else setting
        return lambda q: index.search(q[None, :], K, params=params)[1][0]

    def ours_batch(queries, setting):
        return index.search(queries, K, params=setting)[1]

    raw, transform = index.index, index.mips

    def raw_one(setting):
        params = search_parameters(raw, setting, None)
        if transform is None:
            return lambda q: raw.search(q[None, :], K, params=params)[1][0]
        return lambda q: raw.search(transform.queries(q[None, :]), K, params=params)[1][0]

    def raw_batch(queries, setting):
        x = transform.queries(queries) if transform is not None else queries
        return raw.search(x, K, params=search_parameters(raw, setting, None))[1]

    choice_dict = index.notes.get("choice") or choice_dict  # as the index records it
    race = (choice_dict.get("race") or {}).get("candidates")
    notes = {"choice": choice_dict, "race": race, "build_parts": parts}
    notes["mips"] = transform.to_manifest() if transform is not None else None
    notes["memory_bytes"] = index.memory_bytes
    build_s = t3 - t0
    reached = {"reached": tuning.reached, "recall": tuning.recall, "seconds": tuning.seconds}
    reached["holdout_recall"] = tuning.holdout_recall
    common = dict(ladder=ladder, tuned=tuned, tuning=reached, notes=notes)
    ours_sys = System("embrecall", choice.spec, param, ours, ours_batch, build_s, bpv, **common)
    ours_sys.peer = False
    direct = System("raw faiss", choice.spec, param, raw_one, raw_batch, t2 - t1, bpv, **common)
    direct.peer = False
    direct.notes = {"same index as": "embrecall"}
    return ours_sys, direct


def faiss_system(name: str, items: np.ndarray, spec: str, train_size: int | None) -> System:
    """A faiss index built by faiss's own guidelines on native inner product."""
    n, d = items.shape
    t0 = time.perf_counter()
    faiss.omp_set_num_threads(CPUS)
    index = faiss.index_factory(d, spec, faiss.METRIC_INNER_PRODUCT)
    if not index.is_trained:
        pick = np.random.default_rng(1).choice(n, min(n, train_size or n), replace=False)
        index.train(items[np.sort(pick)])
    index.add(items)
    build_s = time.perf_counter() - t0
    bpv = _saved_bytes(lambda path: faiss.write_index(index, path)) / n
    ivf = faiss.try_extract_index_ivf(index)
    param = "nprobe" if ivf is not None else "efSearch"

    def params_of(setting):
        if ivf is None:
            return faiss.SearchParametersHNSW(efSearch=int(setting["efSearch"]))
        ivf_params = faiss.SearchParametersIVF(nprobe=int(setting["nprobe"]))
        if "k_factor" not in setting:
            return ivf_params
        refine = faiss.IndexRefineSearchParameters(base_index_params=ivf_params)
        refine.k_factor = float(setting["k_factor"])
        return refine

    def one(setting):
        params = params_of(setting)
        return lambda q: index.search(q[None, :], K, params=params)[1][0]

    def batch(queries, setting):
        return index.search(queries, K, params=params_of(setting))[1]

    ladder = _ladder(param, index)
    return System(name, spec, param, one, batch, build_s, bpv, ladder=ladder)


def hnswlib_system(items: np.ndarray) -> System | None:
    try:
        import hnswlib
    except ImportError:
        print("  hnswlib not installed: pip install -e '.[bench]'")
        return None
    n, d = items.shape
    t0 = time.perf_counter()
    index = hnswlib.Index(space="ip", dim=d)
    index.init_index(n, M=HNSWLIB_M, ef_construction=HNSWLIB_EF_CONSTRUCTION, random_seed=1)
    index.add_items(items, np.arange(n), num_threads=CPUS)
    build_s = time.perf_counter() - t0
    index.set_num_threads(1)
    bpv = _saved_bytes(index.save_index) / n

    def one(setting):
        index.set_ef(setting["ef"])  # each system searches its own index: the setting stays
        return lambda q: index.knn_query(q, k=K, num_threads=1)[0][0].astype(np.int64)

    def batch(queries, setting):
        index.set_ef(setting["ef"])
        return index.knn_query(queries, k=K, num_threads=CPUS)[0].astype(np.int64)

    spec = f"HNSW M={HNSWLIB_M} efC={HNSWLIB_EF_CONSTRUCTION} (ip)"
    return System("hnswlib", spec, "ef", one, batch, build_s, bpv, ladder=list(EF_LADDER))


def usearch_system(items: np.ndarray) -> System | None:
    try:
        from usearch.index import Index
    except ImportError:
        print("  usearch not installed: pip install -e '.[bench]'")
        return None
    n, d = items.shape
    t0 = time.perf_counter()
    index = Index(ndim=d, metric="ip", dtype="f32")  # defaults: connectivity 16, expansion 128
    index.add(np.arange(n), items, threads=CPUS)
    build_s = time.perf_counter() - t0
    bpv = _saved_bytes(index.save) / n

    def rows(keys, counts):
        out = np.asarray(keys).astype(np.int64).reshape(-1, K)
        out[np.arange(K)[None, :] >= np.asarray(counts).reshape(-1, 1)] = -1
        return out

    def one(setting):
        index.expansion_search = setting["ef"]

        return lambda q: index.search(q, K, threads=1).keys.astype(np.int64)  # k or fewer

    def batch(queries, setting):
        index.expansion_search = setting["ef"]
        found = index.search(queries, K, threads=CPUS)
        return rows(found.keys, found.counts)

    spec = f"HNSW M={index.connectivity} efC={index.expansion_add} (ip)"
    return System("usearch", spec, "ef", one, batch, build_s, bpv, ladder=list(EF_LADDER))


def _ladder(param: str | None, index) -> list[int]:
    if param is None:
        return []
    if param == "nprobe":
        nlist = faiss.extract_index_ivf(index).nlist
        return [v for v in NPROBE_LADDER if v < nlist] + [nlist]
    return list(EF_LADDER)


def _saved_bytes(save) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "index.bin")
        save(path)
        return os.path.getsize(path)


# -- tuning the peers ------------------------------------------------------------------------
def tune_peer(system: System, truth: Truth, target: float) -> None:
    """The smallest value of the system's parameter whose recall@10 on the tuning queries
    reaches ``target``; for re-ranked IVF-PQ, that nprobe for each k_factor, keeping the pair
    fastest on the tuning queries."""
    t0 = time.perf_counter()
    faiss.omp_set_num_threads(CPUS)
    bases = [{"k_factor": kf} for kf in K_FACTORS] if "RFlat" in system.index else [{}]
    found = []
    for base in bases:
        value, recall = _smallest(system, truth, target, base)
        found.append(({**base, system.param: value}, recall))
        if sum(r >= target for _, r in found) == 3:  # deeper re-ranking, fewer lists: enough
            break
    reaching = [(s, r) for s, r in found if r >= target]
    if len(reaching) > 1:
        timed = [(_probe_p50(system, s, truth.queries), s, r) for s, r in reaching]
        _, setting, recall = min(timed, key=lambda t: t[0])
    elif reaching:
        setting, recall = reaching[0]
    else:
        setting, recall = max(found, key=lambda sr: sr[1])
    system.tuned = setting
    system.tuning = {"reached": recall >= target, "recall": round(recall, 4)}
    system.tuning["seconds"] = round(time.perf_counter() - t0, 2)


def _smallest(system, truth, target, base) -> tuple[int, float]:
    measured: dict[int, float] = {}

    def recall(value):
        if value not in measured:
            measured[value] = truth.recall(
                system.batch(truth.queries, {**base, system.param: value})
            )
        return measured[value]

    previous = None
    for value in system.ladder:
        if recall(value) >= target:
            low, high = (previous or value - 1), value
            while high - low > 1:  # recall grows with the parameter: bisect to the integer
                mid = (low + high) // 2
                low, high = (low, mid) if recall(mid) >= target else (mid, high)
            return high, measured[high]
        previous = value
    best = max(measured, key=lambda v: (measured[v], -v))
    return best, measured[best]


def _probe_p50(system: System, setting: Setting, queries: np.ndarray, m: int = 200) -> float:
    faiss.omp_set_num_threads(1)
    search = system.searcher(setting)
    took = []
    for q in queries[:m]:
        t = time.perf_counter()
        search(q)
        took.append(time.perf_counter() - t)
    faiss.omp_set_num_threads(CPUS)
    return float(np.median(took))


# -- measuring -------------------------------------------------------------------------------
def interleaved(
    runs: list[tuple[System, Setting]], queries: np.ndarray, m: int, warm: np.ndarray, seed: int
) -> dict[str, dict]:
    """Single-query latency of each (system, setting), taking turns over blocks of ``BLOCK``
    queries, the order rotating per block; each system runs its own random order of the first
    ``m`` queries. Returns per system: the timings (s), its block medians and the rows found
    (in query order), on one thread."""
    faiss.omp_set_num_threads(1)
    rng = np.random.default_rng(seed)
    m = min(m, len(queries))
    out = {}
    searchers = []
    for system, setting in runs:
        search = system.searcher(setting)
        for q in warm[:20]:
            search(q)  # parameter objects, code paths; tuning queries, never the measured ones
        order = rng.permutation(m)
        out[system.name] = {"order": order, "took": np.empty(m), "blocks": []}
        out[system.name]["rows"] = np.full((m, K), -1, dtype=np.int64)
        searchers.append((system.name, search))
    for b, start in enumerate(range(0, m, BLOCK)):
        turn = b % len(searchers)
        for name, search in searchers[turn:] + searchers[:turn]:
            r = out[name]
            for i in r["order"][start : start + BLOCK]:
                q = queries[i]
                t = time.perf_counter()
                found = search(q)
                r["took"][i] = time.perf_counter() - t
                r["rows"][i, : len(found)] = found[:K]
            r["blocks"].append(float(np.median(r["took"][r["order"][start : start + BLOCK]])))
    faiss.omp_set_num_threads(CPUS)
    return out


def headline(systems: list[System], truth: Truth, warm: np.ndarray, target: float) -> dict:
    """Every system at its tuned setting, interleaved over all held-out queries."""
    runs = [(s, s.tuned) for s in systems]
    timed = interleaved(runs, truth.queries, len(truth.queries), warm, seed=1)
    out = {}
    for system in systems:
        r = timed[system.name]
        ms = r["took"] * 1e3
        t = time.perf_counter()
        system.batch(truth.queries, system.tuned)
        qps = len(truth.queries) / (time.perf_counter() - t)
        out[system.name] = {
            "index": system.index,
            "peer": system.peer,
            "setting": system.tuned,
            "tuning": system.tuning,
            "heldout_recall": round(truth.recall(r["rows"]), 4),
            "p50_ms": round(float(np.percentile(ms, 50)), 4),
            "p99_ms": round(float(np.percentile(ms, 99)), 4),
            "batch_qps": round(qps),
            "build_s": round(system.build_s, 2),
            "bytes_per_vector": round(system.bytes_per_vector, 1),
            "blocks_s": r["blocks"],
        }
    return out


def sweep(systems: list[System], truth: Truth, warm, m: int, target: float) -> list[dict]:
    """Held-out recall (batch) against single-query p50 (interleaved) over each system's
    parameter; a system stops two steps after passing ``target + 0.04``."""
    values = {}
    for s in systems:
        tuned = s.tuned.get(s.param) if s.param else None
        values[s.name] = sorted({*s.ladder, tuned}) if s.param else [None]
    passed = dict.fromkeys(values, 0)
    points = []
    for step in range(max(len(v) for v in values.values())):
        runs = [
            (s, s.at(values[s.name][step]))
            for s in systems
            if step < len(values[s.name]) and passed[s.name] < 2
        ]
        if not runs:
            break
        timed = interleaved(runs, truth.queries, m, warm, seed=100 + step)
        for system, setting in runs:
            faiss.omp_set_num_threads(CPUS)
            recall = truth.recall(system.batch(truth.queries, setting))
            ms = timed[system.name]["took"] * 1e3
            points.append(
                {
                    "system": system.name,
                    "param": setting,
                    "recall": round(recall, 4),
                    "p50_ms": round(float(np.percentile(ms, 50)), 4),
                    "p99_ms": round(float(np.percentile(ms, 99)), 4),
                }
            )
            passed[system.name] += recall >= target + 0.04
    return points


def p50_at_recall(points: list[dict], system: str, target: float) -> float | None:
    """p50 of ``system`` at exactly ``target`` held-out recall, interpolated between the last
    swept setting below it and the first at or above it; None when no setting reached it."""
    mine = [p for p in points if p["system"] == system]
    for i, point in enumerate(mine):
        if point["recall"] >= target:
            if i == 0 or mine[i - 1]["recall"] >= point["recall"]:
                return round(point["p50_ms"], 4)
            low = mine[i - 1]
            share = (target - low["recall"]) / (point["recall"] - low["recall"])
            return round(low["p50_ms"] + share * (point["p50_ms"] - low["p50_ms"]), 4)
    return None


# -- one family ------------------------------------------------------------------------------
def run_family(family: str, n: int, args) -> dict | None:
    t_start = time.perf_counter()
    data = family_vectors(family, n, args.dim, max(args.tune_queries, args.report_queries))
    if data is None:
        return None
    items, tune_q, report_q, what = data
    tune_q, report_q = tune_q[: args.tune_queries], report_q[: args.report_queries]
    n, d = items.shape
    print(f"\n== {family}: {n:,} x {d} ({what}); inner product, k={K}")
    print(f"   {len(tune_q):,} tuning queries, {len(report_q):,} held-out queries")
    faiss.omp_set_num_threads(CPUS)
    t0 = time.perf_counter()
    tune_truth, report_truth = Truth.of(items, tune_q), Truth.of(items, report_q)
    print(f"  exact answers in {time.perf_counter() - t0:.1f}s")

    progress = n >= 1_000_000
    ours, direct = build_embrecall(items, tune_q, args.target, progress)
    parts = ours.notes["build_parts"]
    print(
        f"  embrecall: {ours.index} in {ours.build_s:.1f}s (choice {parts['choose_s']}s, build "
        f"{parts['build_s']}s, tuning {parts['tune_s']}s); tuned to {ours.tuned} "
        f"(recall@10 {ours.tuning['recall']} on its tuning queries)"
    )
    print(f"    {ours.notes['choice']['reason']}")
    systems = [ours, direct]
    nlist = _pow2(4 * math.sqrt(n))
    while nlist > 1 and nlist * 39 > n:  # faiss wants 39 training vectors per list at least
        nlist //= 2
    peers = []
    if "faiss" in args.peers:
        code_m = max(1, d // 2)
        for name, spec, train in (
            ("faiss IVF-Flat", f"IVF{nlist},Flat", 64 * nlist),
            ("faiss HNSW32", f"HNSW{FAISS_HNSW_M}", None),
            ("faiss IVF-PQ-RFlat", f"IVF{nlist},PQ{code_m}x4fs,RFlat", 64 * nlist),
        ):
            peers.append(
                lambda name=name, spec=spec, train=train: faiss_system(name, items, spec, train)
            )
    if "hnswlib" in args.peers:
        peers.append(lambda: hnswlib_system(items))
    if "usearch" in args.peers:
        peers.append(lambda: usearch_system(items))
    for make in peers:
        faiss.omp_set_num_threads(CPUS)
        system = make()
        if system is None:
            continue
        tune_peer(system, tune_truth, args.target)
        print(
            f"  {system.name}: {system.index} built in {system.build_s:.1f}s; tuned to "
            f"{system.tuned} (recall@10 {system.tuning['recall']} on tuning queries, "
            f"{system.tuning['seconds']}s)"
        )
        systems.append(system)

    at_target = headline(systems, report_truth, tune_q, args.target)
    points = sweep(systems, report_truth, tune_q, args.sweep_queries, args.target)
    result = {
        "family": family,
        "data": what,
        "n": n,
        "dim": d,
        "tune_queries": len(tune_q),
        "report_queries": len(report_q),
        "choice": ours.notes["choice"],
        "race": ours.notes["race"],
        "embrecall_build": {**parts, "total_s": round(ours.build_s, 2)},
        "systems": at_target,
        "points": points,
    }
    ok_peers = [name for name, s in at_target.items() if s["peer"] and s["tuning"]["reached"]]
    best = min(ok_peers, key=lambda name: at_target[name]["p50_ms"]) if ok_peers else None
    result["best_peer"] = best
    result["vs_best_peer"] = (
        round(at_target["embrecall"]["p50_ms"] / at_target[best]["p50_ms"], 3) if best else None
    )
    # The tuned settings meet the target on the tuning queries; on held-out ones some land a
    # hair under it. So also compare every system at exactly 0.95 held-out recall, read off its
    # sweep (linear between the two settings around the target): no one gains from a margin.
    at_heldout = {name: p50_at_recall(points, name, args.target) for name in at_target}
    result["p50_at_heldout_target"] = at_heldout
    peers_there = [n for n in ok_peers if at_heldout.get(n) is not None]
    best_there = min(peers_there, key=lambda n: at_heldout[n]) if peers_there else None
    result["best_peer_at_heldout_target"] = best_there
    result["vs_best_peer_at_heldout_target"] = (
        round(at_heldout["embrecall"] / at_heldout[best_there], 3)
        if best_there and at_heldout.get("embrecall")
        else None
    )
    ours_ms, raw_ms = at_target["embrecall"], at_target["raw faiss"]
    result["overhead_p50"] = round(ours_ms["p50_ms"] / raw_ms["p50_ms"], 3)
    ratios = np.divide(ours_ms["blocks_s"], raw_ms["blocks_s"])
    result["overhead_paired"] = round(float(np.median(ratios)), 3)
    for s in at_target.values():
        del s["blocks_s"]
    result["index_memory_bytes"] = ours.notes["memory_bytes"]
    result["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if n <= args.mips_up_to:
        result["mips"] = mips_comparison(items, report_truth, ivf_lists(n))
    result["seconds"] = round(time.perf_counter() - t_start, 1)
    print_family(result, args.target)
    return result


def _pow2(x: float) -> int:
    return int(2 ** round(math.log2(max(x, 1))))


def mips_comparison(items, truth: Truth, nlist: int) -> list[dict]:
    """Held-out recall@10 of IVF (embrecall's number of lists, and 4x as many) and HNSW with
    and without the norm augmentation, at the same parameters."""
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
                found = index.search(truth.queries, K, params={param: value})[1]
                row[mode] = round(truth.recall(found), 4)
            rows.append(row)
    return rows


# -- output ----------------------------------------------------------------------------------
def _setting(setting: dict) -> str:
    return ", ".join(f"{k}={v:g}" for k, v in setting.items()) or "-"


def print_family(result: dict, target: float) -> None:
    print(
        f"\n  {result['family']} {result['n']:,} x {result['dim']}: held-out queries, "
        f"each system at its tuned setting (target recall@10 {target})"
    )
    head = f"  {'system':<19} {'index':<26} {'setting':<24} {'recall':>6} {'p50 ms':>7} "
    print(head + f"{'p99 ms':>7} {'QPS':>7} {'build s':>8} {'B/vec':>6}")
    for name, s in result["systems"].items():
        flag = "" if s["tuning"]["reached"] else " (target NOT reached in tuning)"
        print(
            f"  {name:<19} {s['index'][:26]:<26} {_setting(s['setting']):<24} "
            f"{s['heldout_recall']:>6.3f} {s['p50_ms']:>7.3f} {s['p99_ms']:>7.3f} "
            f"{s['batch_qps']:>7,} {s['build_s']:>8.1f} {s['bytes_per_vector']:>6.0f}{flag}"
        )
    b = result["embrecall_build"]
    print(
        f"  embrecall build {b['total_s']}s = choice {b['choose_s']}s + build {b['build_s']}s "
        f"+ tuning {b['tune_s']}s"
    )
    if not result["systems"]["embrecall"]["tuning"]["reached"]:
        print("  embrecall did NOT reach the target in tuning: its ratio compares unequal recall")
    print(
        f"  embrecall / best peer ({result['best_peer']}) p50: {result['vs_best_peer']}; at "
        f"exactly {target} held-out recall (from the sweep): "
        f"{result.get('vs_best_peer_at_heldout_target')} against "
        f"{result.get('best_peer_at_heldout_target')}; "
        f"embrecall / raw faiss (same index, same parameters) p50: {result['overhead_p50']}, "
        f"paired by block: {result['overhead_paired']}"
    )
    if result.get("race"):
        print("  embrecall's race of candidate kinds:")
        print(
            f"    {'candidate':<30} {'params':<22} {'recall':>6} {'p50 ms':>7} "
            f"{'memory':>10} {'build s':>8} won"
        )
        for c in result["race"]:
            print(
                f"    {str(c.get('spec'))[:30]:<30} {_setting(c.get('params') or {})[:22]:<22} "
                f"{_num(c.get('recall'), 3):>6} {_num(c.get('p50_ms'), 3):>7} "
                f"{_size(c.get('memory_bytes')):>10} {_num(c.get('build_s'), 1):>8} "
                f"{'yes' if c.get('won') else ''}"
            )
    else:
        print("  embrecall ran no race of candidate kinds (chose by rule)")
    print(
        f"  embrecall index memory {format_size(result['index_memory_bytes'])}; peak process RSS"
        f" so far {format_size(result['peak_rss_bytes'])}; {result['seconds']}s for this family"
    )
    for row in result.get("mips", []):
        print(f"  norm augmentation: {row}")


def _num(value, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _size(value) -> str:
    return "-" if value is None else format_size(value)


def markdown(results: list[dict], target: float) -> str:
    """The tables the docs quote: each system at its tuned setting on held-out queries, the
    ratios, and embrecall's race when it ran one."""
    lines = [
        f"Each system tuned on its tuning queries to recall@10 >= {target}, measured on held-out "
        "queries (single queries, one thread, interleaved).",
        "",
        "| data | system | index | setting | held-out recall@10 | p50 ms | p99 ms | batch QPS "
        "| build s | bytes/vector |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        data = f"{r['family']} {r['n']:,} x {r['dim']}"
        for name, s in r["systems"].items():
            miss = "" if s["tuning"]["reached"] else " (target NOT reached in tuning)"
            lines.append(
                f"| {data} | {name} | `{s['index']}` | {_setting(s['setting'])}{miss} "
                f"| {s['heldout_recall']:.3f} | {s['p50_ms']:.3f} | {s['p99_ms']:.3f} "
                f"| {s['batch_qps']:,} | {s['build_s']:.1f} | {s['bytes_per_vector']:.0f} |"
            )
    lines += [
        "",
        "| data | embrecall build (choice + build + tuning) | best peer | embrecall / best peer "
        "p50 | at 0.95 held out: best peer, embrecall / it | embrecall / raw faiss p50 "
        "| paired by block | index memory | peak RSS |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        b = r["embrecall_build"]
        ratio = f"{r['vs_best_peer']}"
        if not r["systems"]["embrecall"]["tuning"]["reached"]:
            ratio += " (embrecall short of the target)"
        lines.append(
            f"| {r['family']} {r['n']:,} | {b['total_s']:.1f} s ({b['choose_s']:.1f} + "
            f"{b['build_s']:.1f} + {b['tune_s']:.1f}) | {r['best_peer']} | {ratio} "
            f"| {r.get('best_peer_at_heldout_target')}, "
            f"{r.get('vs_best_peer_at_heldout_target')} "
            f"| {r['overhead_p50']} | {r['overhead_paired']} "
            f"| {format_size(r['index_memory_bytes'])} | {format_size(r['peak_rss_bytes'])} |"
        )
    for r in results:
        if not r.get("race"):
            continue
        lines += [
            "",
            f"embrecall's race, {r['family']} {r['n']:,} x {r['dim']}:",
            "",
            "| candidate | params | recall@10 | p50 ms | memory | build s | won |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for c in r["race"]:
            lines.append(
                f"| `{c.get('spec')}` | {_setting(c.get('params') or {})} "
                f"| {_num(c.get('recall'), 3)} | {_num(c.get('p50_ms'), 3)} "
                f"| {_size(c.get('memory_bytes'))} | {_num(c.get('build_s'), 1)} "
                f"| {'yes' if c.get('won') else ''} |"
            )
    for r in results:
        if not r.get("mips"):
            continue
        lines += [
            "",
            f"{r['family']} {r['n']:,} x {r['dim']}: held-out recall@10, native inner product "
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
        for i, (name, s) in enumerate(result["systems"].items()):
            pts = [p for p in result["points"] if p["system"] == name]
            color = f"C{i}"
            ax.plot(
                [p["p50_ms"] for p in pts],
                [p["recall"] for p in pts],
                marker="o",
                markersize=3,
                color=color,
                label=name,
                linestyle="--" if name == "raw faiss" else "-",
            )
            ax.plot(s["p50_ms"], s["heldout_recall"], marker="*", markersize=10, color=color)
        ax.axhline(target, color="grey", linestyle=":", linewidth=1)
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("single-query latency p50 (ms, log)")
        ax.set_ylabel("recall@10, held-out queries")
        ax.set_title(
            f"{result['family']}: {result['n']:,} x {result['dim']} "
            f"(ip; embrecall {result['choice']['spec']}; * tuned)",
            fontsize=9,
        )
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"\nplot: {path}")


# -- main ------------------------------------------------------------------------------------
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--family",
        "--families",
        dest="families",
        nargs="+",
        choices=(*FAMILIES, "all"),
        default=["all"],
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--dim", type=int, default=64, help="dimension of synthetic families")
    parser.add_argument("--tune-queries", type=int, default=1000)
    parser.add_argument("--report-queries", type=int, default=1000, help="held out")
    parser.add_argument(
        "--sweep-queries", type=int, default=300, help="held-out queries timed per sweep point"
    )
    parser.add_argument("--target", type=float, default=0.95)
    parser.add_argument(
        "--peers",
        nargs="*",
        choices=("faiss", "hnswlib", "usearch"),
        default=["faiss", "hnswlib", "usearch"],
        help="peers to compare (none: embrecall and raw faiss only)",
    )
    parser.add_argument(
        "--mips-up-to",
        type=int,
        default=0,
        help="also measure the norm augmentation's recall effect up to this many items",
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "scale.json")
    parser.add_argument(
        "--plot",
        type=lambda text: Path(text) if text else None,
        default=RESULTS / "scale.png",
        help="PNG to write ('' for none)",
    )
    args = parser.parse_args(argv)
    families = FAMILIES if "all" in args.families else tuple(dict.fromkeys(args.families))

    t0 = time.perf_counter()
    results = []
    for n in args.sizes:
        for family in families:
            result = run_family(family, n, args)
            if result is not None:
                results.append(result)
    report = {
        "machine": {
            "processor": _cpu_model(),
            "cpus": CPUS,
            "python": platform.python_version(),
            "faiss": faiss.__version__,
            "hnswlib": _version("hnswlib"),
            "usearch": _version("usearch"),
            "loadavg_at_end": os.getloadavg(),
        },
        "argv": sys.argv[1:] if argv is None else list(argv),
        "target_recall": args.target,
        "seconds": round(time.perf_counter() - t0, 1),
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=_json_default) + "\n")
    print(f"\nresults: {args.out} ({report['seconds']}s)")
    summary = args.out.with_suffix(".md")
    summary.write_text(markdown(results, args.target))
    print(f"summary: {summary}")
    if args.plot and results:
        plot(results, args.plot, args.target)
    return 0


def _version(module: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(module)
    except metadata.PackageNotFoundError:
        return None


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
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(type(value))


if __name__ == "__main__":
    raise SystemExit(main())
