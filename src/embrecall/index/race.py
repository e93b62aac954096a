"""``--index auto`` by measurement: race candidate index kinds on a sample of the real vectors.

Each candidate of :func:`~embrecall.index.choice.race_candidates` that fits the memory budget at
full size is built on a seeded sample of at most ``RACE_SAMPLE`` target vectors, tuned to the
recall target on real queries (:func:`~embrecall.index.tuning.tune_to_recall`: a tuning sample
and a held-out check), then timed on other queries: single queries on one thread, the
candidates taking turns query by query, each on its own order of queries, so that load drift
hits all alike and none inherits a cache warmed by another on the same query.

A candidate's p50 on the sample is scaled to the full size by how its kind grows: an exact scan
linearly in ``n``, IVF (about sqrt(n) lists, so list lengths grow as sqrt(n)) as sqrt(n), an HNSW
graph as log(n). The fastest estimate among the candidates that reached the target wins, and only
it is then built at full size (and tuned there again by the build). The race's figures go into
the manifest, so ``inspect`` and ``/v1/info`` say why the index is what it is.
"""

from __future__ import annotations

import logging
import math
import time

import numpy as np
from tqdm.auto import tqdm

from embrecall._progress import bar_disabled
from embrecall.errors import InvalidArgumentError
from embrecall.index.choice import (
    Candidate,
    IndexChoice,
    choose_index,
    estimate_bytes,
    race_candidates,
)
from embrecall.index.faiss_index import VectorIndex
from embrecall.index.memory import format_size
from embrecall.index.tuning import tune_to_recall

log = logging.getLogger("embrecall")

DEFAULT_TARGET_RECALL = 0.95
RACE_SAMPLE = 100_000
TUNING_QUERIES = 300  # tuning sample; as many again are held out to confirm it
TIMED_QUERIES = 200


def auto_choice(
    target: np.ndarray,
    queries: np.ndarray | None,
    metric: str,
    *,
    k: int = 10,
    target_recall: float | None = None,
    max_memory: int | None = None,
    max_latency_ms: float | None = None,
    mips: str = "auto",
    race: bool = True,
    progress: bool | None = None,
) -> IndexChoice:
    """What ``--index auto`` builds for ``target``: exact search when a scan fits the latency
    target, else the winner of :func:`race_index` (or, with ``race=False`` or when no raced kind
    fits the budget, the size ladder of :func:`~embrecall.index.choice.choose_index`)."""
    n, d = target.shape
    choice = choose_index(n, d, metric, max_memory=max_memory, max_latency_ms=max_latency_ms)
    if not race or choice.spec == "Flat":
        return choice
    won = race_index(
        target,
        queries,
        metric,
        k=k,
        target_recall=target_recall,
        max_memory=max_memory,
        mips=mips,
        progress=progress,
    )
    return won or choice


def race_index(
    target: np.ndarray,
    queries: np.ndarray | None,
    metric: str,
    *,
    k: int = 10,
    target_recall: float | None = None,
    max_memory: int | None = None,
    mips: str = "auto",
    sample: int = RACE_SAMPLE,
    progress: bool | None = None,
    seed: int = 0,
) -> IndexChoice | None:
    """The fastest candidate kind for ``target`` (n, d) at ``target_recall`` recall@k.

    Parameters
    ----------
    target : the vectors the index will hold
    queries : (m, d) the vectors it will be asked with, or None when the queries are the target
        vectors themselves (similar items: each query's own row is left out, as the service does)
    max_memory : bytes an index may take at full size; candidates that cannot fit are not built
    mips : the build's inner-product mode; anything but ``"auto"`` applies to every candidate

    Returns None when no candidate fits the budget (the caller keeps the size ladder's choice).
    """
    target_recall = DEFAULT_TARGET_RECALL if target_recall is None else float(target_recall)
    t0 = time.perf_counter()
    n, d = target.shape
    rng = np.random.default_rng(seed)
    base = target
    if n > sample:
        base = np.ascontiguousarray(target[np.sort(rng.choice(n, sample, replace=False))])
    s = len(base)
    want = 2 * TUNING_QUERIES + TIMED_QUERIES
    if queries is None:
        self_rows = rng.choice(s, min(s, want), replace=False)
        asked = base[self_rows]
    else:
        self_rows = None
        asked = queries[rng.choice(len(queries), min(len(queries), want), replace=False)]
    asked = np.ascontiguousarray(asked, dtype=np.float32)
    # the last TIMED_QUERIES are timed only (all of them when there are few queries)
    tune_end = max(len(asked) - TIMED_QUERIES, (len(asked) + 1) // 2)
    timed = slice(tune_end if tune_end < len(asked) else 0, len(asked))

    entries: list[dict] = []
    built: list[tuple[dict, VectorIndex]] = []
    candidates = race_candidates(n, d, metric, mips)
    bar = tqdm(candidates, desc="racing index kinds", unit="kind", disable=bar_disabled(progress))
    for candidate in bar:
        bar.set_postfix_str(candidate.label)
        entry, index = _run_candidate(
            candidate,
            base,
            asked[:tune_end],
            self_rows,
            n,
            d,
            metric,
            k,
            target_recall,
            max_memory,
        )
        entries.append(entry)
        if index is not None:
            built.append((entry, index))
    bar.close()
    if not built:
        return None
    _time_single_queries(built, asked[timed], None if self_rows is None else self_rows[timed], k)
    for entry, _ in built:
        factor = _growth(entry["family"], n, s)
        entry["p50_ms_at_n"] = round(entry["p50_ms"] * factor, 4)
    winner = _winner([entry for entry, _ in built])
    winner["won"] = True
    seconds = time.perf_counter() - t0
    reached = "reached" if winner["reached"] else "came closest to"
    reason = (
        f"fastest in a race of {len(built)} kinds on {s:,} of {n:,} vectors: {winner['label']} "
        f"{reached} recall@{k} {target_recall:g} (held out {winner['holdout_recall']}) at "
        f"{winner['p50_ms']:.3f} ms p50, about {winner['p50_ms_at_n']:.3f} ms at full size; "
        f"about {format_size(winner['memory_bytes'])}"
    )
    log.info("index race (%.1fs): %s", seconds, reason)
    return IndexChoice(
        winner["spec"],
        reason,
        winner["memory_bytes"],
        winner["memory_bytes"] / max(n, 1),
        mips=winner["mips"],
        race={
            "target_recall": target_recall,
            "k": k,
            "sample": s,
            "vectors": n,
            "timed_queries": len(asked[timed]),
            "seconds": round(seconds, 1),
            "candidates": entries,
        },
    )


def _run_candidate(
    candidate: Candidate, base, queries, self_rows, n, d, metric, k, target_recall, max_memory
) -> tuple[dict, VectorIndex | None]:
    """Build and tune one candidate on the sample; (its race entry, the index or None)."""
    spec = candidate.spec(n)
    memory = estimate_bytes(spec, n, d, metric, candidate.mips)
    entry: dict = {
        "label": candidate.label,
        "family": candidate.family,
        "spec": spec,
        "sample_spec": candidate.spec(len(base)),
        "mips": candidate.mips,
        "memory_bytes": int(memory),
        "fits": max_memory is None or memory <= max_memory,
        "won": False,
    }
    if not entry["fits"]:
        return entry, None
    t0 = time.perf_counter()
    try:
        index = VectorIndex.build(
            base, metric, entry["sample_spec"], mips=candidate.mips, progress=False
        )
    except InvalidArgumentError as exc:  # e.g. too few vectors to train its lists
        entry["error"] = str(exc)
        return entry, None
    entry["build_s"] = round(time.perf_counter() - t0, 2)
    if index.is_exact:
        entry.update(params={}, recall=1.0, holdout_recall=1.0, reached=True)
        return entry, index
    tuning = tune_to_recall(
        index,
        base,
        queries,
        target=target_recall,
        k=k,
        self_rows=None if self_rows is None else self_rows[: len(queries)],
        max_queries=TUNING_QUERIES,
        progress=False,
        warn=False,
    )
    entry.update(
        params=dict(tuning.params),
        recall=tuning.recall,
        holdout_recall=tuning.holdout_recall,
        reached=tuning.reached,
        tune_s=tuning.seconds,
    )
    return entry, index


def _time_single_queries(built, queries, self_rows, k: int) -> None:
    """p50 of single-query searches, the candidates taking turns, each on its own query order."""
    rng = np.random.default_rng(1)
    orders = [rng.permutation(len(queries)) for _ in built]
    times: list[list[float]] = [[] for _ in built]
    one = [queries[i : i + 1] for i in range(len(queries))]
    own = None if self_rows is None else [np.array([r], dtype=np.int64) for r in self_rows]
    for step in range(len(queries)):
        for j, (_, index) in enumerate(built):
            i = orders[j][step]
            exclude = None if own is None else [own[i]]
            t = time.perf_counter()
            index.search(one[i], k, exclude=exclude)
            times[j].append(time.perf_counter() - t)
    for (entry, _), samples in zip(built, times):
        entry["p50_ms"] = round(float(np.median(samples)) * 1e3, 4)


def single_query_p50_ms(
    index: VectorIndex, queries: np.ndarray, k: int, self_rows: np.ndarray | None = None
) -> float:
    """Median single-query latency of ``index`` (one thread per query, as a server runs them)."""
    built = [({}, index)]
    _time_single_queries(built, np.ascontiguousarray(queries, dtype=np.float32), self_rows, k)
    return built[0][0]["p50_ms"]


def _growth(family: str, n: int, s: int) -> float:
    """How much slower a single query gets from ``s`` to ``n`` vectors, by kind of index."""
    if n <= s:
        return 1.0
    if family == "flat":
        return n / s
    if family == "ivf":
        return math.sqrt(n / s)
    return math.log(n) / math.log(s)


def _winner(entries: list[dict]) -> dict:
    """The fastest at full size among those that reached the target; else the most accurate."""
    reached = [e for e in entries if e["reached"]]
    if reached:
        return min(reached, key=lambda e: e["p50_ms_at_n"])
    return max(entries, key=lambda e: (e["holdout_recall"] or e["recall"], -e["p50_ms_at_n"]))
