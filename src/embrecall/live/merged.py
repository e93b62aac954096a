"""The ``k`` best of a version's main index and its pending changes, per query.

The main index's answer (less the rows deleted or replaced since the build) and an exact search
of the upserted vectors are merged by score. Each is read as a best-first list of (score, id),
in plain Python: a query reads about ``k`` entries of each, and after a search has evicted the
caches, each numpy call costs several microseconds, more than those few steps.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from collections.abc import Set as AbstractSet
from operator import itemgetter
from typing import Any

import numpy as np

from embrecall.index.faiss_index import _search_on_threads
from embrecall.live.delta import SpaceDelta

# how much deeper than k the main index is asked before hidden rows are excluded inside it
_OVERFETCH_HIDDEN = 1024
# up to this many queries, the delta is scored by one BLAS product (see delta_answers)
_PRODUCT_MAX_QUERIES = 16

Ranked = list[tuple[float, Any]]  # (score, id), best first


def base_answers(
    rec, kind, queries, k: int, excluded_rows, params, delta: SpaceDelta, filter=None
) -> tuple[list[Ranked], Any]:
    """Per query, the main index's best ``k`` without the rows deleted or replaced since the
    build; and the filter the search applied.

    Those rows are dropped from a slightly deeper answer rather than excluded inside each
    search: they are a small share of a catalogue, and a search that excludes thousands of rows
    costs far more than fetching a few more than ``k``. When too many of them crowd a query's
    top, the search is repeated deeper, and at last with them excluded inside the search.
    """
    excluded = [union_rows(rows) for rows in excluded_rows]
    hidden = delta.hidden_set
    if not hidden:
        found = rec._run(kind, queries, k, excluded, params, False, filter)
        return [_ranked(ids, scores, k) for ids, scores in _rows(found)], found.filter
    ntotal = len(rec.target_space(kind))
    fetch = k + 4 + math.ceil(2 * k * len(hidden) / max(ntotal, 1))
    while fetch < min(ntotal, k + _OVERFETCH_HIDDEN):
        found = rec._run(kind, queries, fetch, excluded, params, False, filter)
        answers, complete = [], True
        for ids, scores in _rows(found):
            kept = _ranked(ids, scores, k, hidden)
            exhausted = len(scores) < fetch or math.isnan(scores[-1])  # nothing deeper
            complete = complete and (len(kept) >= k or exhausted)
            answers.append(kept)
        if complete:
            return answers, found.filter
        fetch *= 4
    excluded = [union_rows([e, delta.hidden_rows]) for e in excluded]
    found = rec._run(kind, queries, k, excluded, params, False, filter)
    return [_ranked(ids, scores, k) for ids, scores in _rows(found)], found.filter


def delta_answers(
    delta: SpaceDelta,
    metric: str,
    queries: np.ndarray,
    k: int,
    excluded_ids: Sequence[set],
    floors: Sequence[float | None] | None = None,
) -> list[Ranked]:
    """Per query, the best ``k`` upserted vectors by exact search, less ``excluded_ids``.

    ``floors`` are, per query, the score of the main index's k-th answer when it has k: an
    upserted vector scoring worse cannot enter the merged top ``k``.

    A few queries by inner product (or cosine) take one BLAS product with the delta's
    transposed vectors and keep only the slots at or above their floor, about twice as fast as
    faiss's flat scan with its heap. Batches and L2 use a faiss flat index, asked deep enough to
    cover the excluded ids it holds, which are then read past.
    """
    m = len(queries)
    n = delta.size
    if n == 0:
        return [[] for _ in range(m)]
    q = np.ascontiguousarray(queries, dtype=np.float32)
    if metric == "cosine":
        norms = np.linalg.norm(q, axis=1, keepdims=True)
        q = q / np.where(norms == 0, 1, norms)
    if m <= _PRODUCT_MAX_QUERIES and metric != "l2":
        scores = q @ delta.columns(metric)
        return [
            _best_slots(delta, scores[i], k, out, floors[i] if floors else None)
            for i, out in enumerate(excluded_ids)
        ]
    held = max(len(delta.slot_of.keys() & out) for out in excluded_ids)
    scores, slots = _search_on_threads(delta.flat(metric), q, min(n, k + held), None)
    return [
        _ranked(delta.ids[slots[i]].tolist(), scores[i].tolist(), k, out)
        for i, out in enumerate(excluded_ids)
    ]


def _best_slots(
    delta: SpaceDelta, scores: np.ndarray, k: int, out: set, floor: float | None
) -> Ranked:
    """The best ``k`` of one query's delta ``scores`` (higher first) outside ``out`` and not
    under ``floor``; equal scores in slot order."""
    want = min(delta.size, k + (len(delta.slot_of.keys() & out) if out else 0))
    slots = np.flatnonzero(scores >= floor) if floor is not None else np.arange(delta.size)
    if slots.size > want:  # the best `want` of them, still in slot order
        cut = slots.size - want
        slots = slots[np.sort(np.argpartition(scores[slots], cut)[cut:])]
    best = slots[np.argsort(-scores[slots], kind="stable")]
    return _ranked(delta.ids[best].tolist(), scores[best].tolist(), k, out)


def merge_ranked(answers: Sequence[Ranked], k: int, higher: bool) -> Ranked:
    """The best ``k`` of best-first lists; on a tie, the earlier list's entry comes first.

    One stable sort of the joined lists: they are runs already sorted, which the sort merges in
    a single pass, several times faster than :func:`heapq.merge` on a few dozen entries. (A
    reversed sort is stable too: equal scores keep their order.)"""
    nonempty = [a for a in answers if a]
    if len(nonempty) <= 1:
        return nonempty[0][:k] if nonempty else []
    joined = [entry for ranked in nonempty for entry in ranked]
    return sorted(joined, key=_score, reverse=higher)[:k]


_score = itemgetter(0)


def to_arrays(answers: list[Ranked], id_dtype, single: bool) -> tuple[np.ndarray, np.ndarray]:
    """Merged answers as a result's arrays: one query's (n,) ids and scores, or (m, width)
    padded with -1 / None and NaN past each query's end."""
    if single:
        ranked = answers[0]
        ids = np.empty(len(ranked), dtype=id_dtype)
        ids[:] = [i for _, i in ranked]
        return ids, np.array([s for s, _ in ranked], dtype=np.float32)
    width = max((len(a) for a in answers), default=0)
    pad = None if np.dtype(id_dtype) == np.dtype(object) else -1
    ids = np.full((len(answers), width), pad, dtype=id_dtype)
    scores = np.full((len(answers), width), np.nan, dtype=np.float32)
    for row, ranked in enumerate(answers):
        if ranked:
            scores[row, : len(ranked)] = [s for s, _ in ranked]
            ids[row, : len(ranked)] = [i for _, i in ranked]
    return ids, scores


def _rows(found) -> Iterator[tuple[list, list]]:
    """A batch result's rows as (ids, scores) lists."""
    ids, scores = found.ids, found.scores
    for i in range(len(ids)):
        yield ids[i].tolist(), scores[i].tolist()


def _ranked(ids: list, scores: list, k: int, hidden: AbstractSet = frozenset()) -> Ranked:
    """The first ``k`` of one answer that are results (a NaN score ends it) and not hidden."""
    if scores and scores[-1] != scores[-1]:  # NaN: padding after the last result, at the end
        end = next(n for n, score in enumerate(scores) if score != score)
        ids, scores = ids[:end], scores[:end]
    if not hidden:
        return list(zip(scores[:k], ids[:k]))
    return [(score, i) for score, i in zip(scores, ids) if i not in hidden][:k]


def union_rows(parts: list[np.ndarray]) -> np.ndarray:
    """One sorted, unique array of the rows of ``parts`` (a lone part as it is)."""
    parts = [p for p in parts if p.size]
    if not parts:
        return np.empty(0, dtype=np.int64)
    if len(parts) == 1:
        return parts[0]
    return np.unique(np.concatenate(parts))
