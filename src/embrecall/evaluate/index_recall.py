"""How close each index is to exact search: recall@k and single-query latency per query kind.

For every query kind of a :class:`~embrecall.recommender.Recommender`, a seeded sample of its own
ids is asked through the public verbs (``recommend``, ``similar_items``, ``similar_users``), one
query at a time as a service would, and the answers are compared with
:func:`embrecall.index.exact_search` under the same exclusions: the user's seen items for
``recommend`` (when the recommender has them), the query item or user itself for ``similar_*``.
Optionally each approximate index is swept over its search parameter (``nprobe`` for IVF,
``efSearch`` for HNSW) to draw a recall-latency curve.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from embrecall._progress import bar_disabled
from embrecall.errors import InvalidArgumentError
from embrecall.evaluate.metrics import check_ks
from embrecall.index.exact import exact_topk
from embrecall.index.recall import recall_against_exact, true_scores
from embrecall.index.structure import nlist_of
from embrecall.recommender import QueryKind, Recommender

log = logging.getLogger("embrecall")

DEFAULT_KS: tuple[int, ...] = (10, 50, 100)
EF_SEARCH_SWEEP: tuple[int, ...] = (16, 32, 64, 128, 256, 512)
_EXACT_QUERIES_PER_STEP = 32  # exact answers per progress-bar step


@dataclass(frozen=True)
class RecallPoint:
    """Recall@k and latency of one query kind's index at one setting of its search parameters.

    ``recall`` is the mean over the sampled queries; latencies are of single calls of the
    public verb (id lookup, exclusions and search included), in milliseconds.
    """

    query_kind: str
    index: str
    spec: str
    metric: str
    exact_index: bool
    params: dict[str, int]
    k: int
    recall: float
    recall_min: float
    p50_ms: float
    p99_ms: float
    queries: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _Sample:
    """The sampled queries of one kind, with their exact answer at the largest k."""

    kind: QueryKind
    ids: np.ndarray  # (m,) query ids
    vectors: np.ndarray  # (m, d) query vectors
    exclude: list[np.ndarray]  # m arrays of excluded target rows
    exact_rows: np.ndarray  # (m, K)
    exact_scores: np.ndarray  # (m, K)
    target_ids: pd.Index = field(repr=False)


def measure_index_recall(
    rec: Recommender,
    *,
    ks: Sequence[int] = DEFAULT_KS,
    n_queries: int = 200,
    query_kinds: Iterable[str] | None = None,
    params: Mapping[str, int] | None = None,
    sweep: bool = False,
    seed: int = 0,
    progress: bool | None = None,
) -> list[RecallPoint]:
    """Recall@k of every query kind's index against exact search, with latency.

    Parameters
    ----------
    rec : Recommender
    ks : cut-offs, each >= 1
    n_queries : how many ids of each query space to sample (all of them when fewer exist)
    query_kinds : names to measure; default all of ``rec.query_kinds``
    params : {"nprobe": int, "efSearch": int}, optional
        Search parameters for every query (only those an index knows apply to it).
    sweep : bool
        Also measure each approximate index over a range of its search parameter
        (``nprobe`` 1, 2, 4, ... nlist for IVF; ``efSearch`` 16 ... 512 for HNSW).
    seed : seeds the query sample
    progress : show a progress bar; ``None``: only on a terminal

    Returns
    -------
    list of RecallPoint, one per (query kind, parameter setting, k).
    """
    ks = check_ks(ks)
    if isinstance(n_queries, bool) or not isinstance(n_queries, (int, np.integer)) or n_queries < 1:
        raise InvalidArgumentError(f"n_queries must be a positive integer, got {n_queries!r}")
    names = list(rec.query_kinds) if query_kinds is None else list(query_kinds)
    for name in names:
        if name not in rec.query_kinds:
            raise InvalidArgumentError(
                f"unknown query kind {name!r}; this recommender has {', '.join(rec.query_kinds)}"
            )
    rng = np.random.default_rng(seed)
    points: list[RecallPoint] = []
    for name in names:
        t0 = time.perf_counter()
        sample = _sample(rec, rec.query_kinds[name], n_queries, max(ks), rng, progress)
        settings = _settings(rec, sample.kind, params, sweep)
        combos = [(setting, k) for setting in settings for k in ks]
        bar = tqdm(
            total=len(combos) * len(sample.ids),
            desc=f"recall of {name}",
            unit="query",
            disable=bar_disabled(progress),
        )
        points.extend(_measure(rec, sample, combos, bar))
        bar.close()
        log.info(
            "index recall of %s: %d settings x %d k in %.2fs",
            name,
            len(settings),
            len(ks),
            time.perf_counter() - t0,
        )
    return points


# -- sampling and the exact answer -----------------------------------------------------------
def _sample(
    rec: Recommender,
    kind: QueryKind,
    n: int,
    k: int,
    rng: np.random.Generator,
    progress: bool | None,
) -> _Sample:
    space = rec.query_space(kind)
    target = rec.target_space(kind)
    rows = np.sort(rng.choice(len(space), size=min(n, len(space)), replace=False))
    exclude = rec.exclusion_lists(kind, rows)  # seen items for recommend, self for similar_*
    vectors = space.vectors[rows]
    exact_scores, exact_rows = _exact(
        target.vectors,
        vectors,
        k,
        kind.metric,
        exclude,
        desc=f"exact {kind.name}",
        progress=progress,
    )
    return _Sample(
        kind, space.ids[rows], vectors, exclude, exact_rows, exact_scores, pd.Index(target.ids)
    )


def _exact(
    base: np.ndarray,
    queries: np.ndarray,
    k: int,
    metric: str,
    exclude: list[np.ndarray],
    *,
    desc: str = "exact",
    progress: bool | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The exact answer of every query, in bounded memory, with a progress bar."""
    bar = tqdm(total=len(queries), desc=desc, unit="query", disable=bar_disabled(progress))
    parts = []
    for i in range(0, len(queries), _EXACT_QUERIES_PER_STEP):
        stop = i + _EXACT_QUERIES_PER_STEP
        parts.append(exact_topk(base, queries[i:stop], k, metric, exclude[i:stop]))
        bar.update(len(parts[-1][0]))
    bar.close()
    return np.vstack([p[0] for p in parts]), np.vstack([p[1] for p in parts])


# -- measuring -------------------------------------------------------------------------------
def _measure(
    rec: Recommender, sample: _Sample, combos: list[tuple[dict[str, int], int]], bar
) -> list[RecallPoint]:
    """One RecallPoint per (search parameters, k), timing single calls of the public verb.

    Queries run in the outer loop and settings in the inner one, so that a burst of load on a
    shared machine slows every setting alike instead of skewing the one it happens to hit.
    """
    kind = sample.kind
    verb = getattr(rec, kind.name)
    m = len(sample.ids)
    widths = [min(k, sample.exact_rows.shape[1]) for _, k in combos]
    found = [np.full((m, w), -1, dtype=np.int64) for w in widths]
    latencies = np.empty((len(combos), m))
    for params, k in combos:  # warm up: first calls pay for lazy allocations
        verb(sample.ids[0], k=k, params=params or None)
    for i, query_id in enumerate(sample.ids):
        # Rotate which setting goes first: the first call after a new query vector pays for
        # cold caches, and that cost must not always land on the same setting.
        start = i % len(combos)
        for c in [*range(start, len(combos)), *range(start)]:
            params, k = combos[c]
            t = time.perf_counter()
            ids, _ = verb(query_id, k=k, params=params or None)
            latencies[c, i] = time.perf_counter() - t
            rows = sample.target_ids.get_indexer(ids)[: widths[c]]
            found[c][i, : len(rows)] = rows
        bar.update(len(combos))
    return [
        _point(rec, sample, params, k, found[c], latencies[c])
        for c, (params, k) in enumerate(combos)
    ]


def _point(
    rec: Recommender,
    sample: _Sample,
    params: dict[str, int],
    k: int,
    found: np.ndarray,
    latencies: np.ndarray,
) -> RecallPoint:
    kind = sample.kind
    target = rec.target_space(kind)
    kk = found.shape[1]
    scores = true_scores(target.vectors, sample.vectors, found, kind.metric)
    recall = recall_against_exact(
        found, scores, sample.exact_rows[:, :kk], sample.exact_scores[:, :kk]
    )
    index = rec.indexes[kind.index_name]
    ms = latencies * 1e3
    return RecallPoint(
        query_kind=kind.name,
        index=kind.index_name,
        spec=index.spec,
        metric=kind.metric,
        exact_index=index.is_exact,
        params={**index.search_params, **params},
        k=k,
        recall=float(recall.mean()),
        recall_min=float(recall.min()),
        p50_ms=float(np.percentile(ms, 50)),
        p99_ms=float(np.percentile(ms, 99)),
        queries=len(found),
    )


def _settings(
    rec: Recommender, kind: QueryKind, params: Mapping[str, int] | None, sweep: bool
) -> list[dict[str, int]]:
    """The search-parameter settings to measure one query kind's index at."""
    index = rec.indexes[kind.index_name]
    known = set(index.search_params)
    given = {k: int(v) for k, v in (params or {}).items() if k in known}
    if not sweep:
        return [given]
    if "nprobe" in known:
        nlist = nlist_of(index.index)
        values = [v for v in (2**i for i in range(32)) if v < nlist] + [nlist]
        return [{**given, "nprobe": v} for v in values]
    if "efSearch" in known:
        return [{**given, "efSearch": v} for v in EF_SEARCH_SWEEP]
    return [given]
