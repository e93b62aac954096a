"""Search restricted to the rows a filter passes: the exact filtered top-k, planned per query.

Which rows pass is known exactly before the search (a :class:`~embrecall.filters.RowFilter`:
a row mask, its count and a packed bitmap), so the plan is picked from the count:

- ``scan``: few rows pass. Their vectors are scored exactly (one BLAS product), which is
  cheaper than steering an approximate index towards a few needles and is exact.
- ``index``: many pass. An IVF index is searched with a faiss ``IDSelectorBitmap`` of the
  passing, non-excluded rows, ``nprobe`` widened by ``1 / selectivity`` so that it meets as many
  passing candidates as an unfiltered search meets candidates; a query that still comes back
  short is widened further, then scanned. A graph (HNSW), only when at least 30% pass, is
  searched unfiltered for about ``2k / selectivity`` neighbours (efSearch widened by
  ``1 / selectivity`` squared), and those that fail are dropped: faiss's graph search with a
  selector measured recall@10 0.64 at efSearch 3,200 with 2% passing (200k clustered vectors).
  Too few survivors: four times as many, then a scan.

Exclusions (seen items, the query itself, a request's list) combine with the filter: an
excluded row is cleared from the bitmap, or scored out in a scan. So ``k`` results come back
whenever ``k`` rows pass and are not excluded, and never a row that fails the filter.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Literal

import faiss
import numpy as np

from embrecall.errors import InvalidArgumentError
from embrecall.index.faiss_index import (
    VectorIndex,
    _check_params,
    _clean_rows,
    _drop_excluded,
    _prepare,
)
from embrecall.index.structure import core_index, widen

if TYPE_CHECKING:
    from embrecall.filters import RowFilter

Plan = Literal["scan", "index"]
PLANS: tuple[str, ...] = ("scan", "index")
# The planner compares work in "rows scanned" (a gathered vector and its dot product):
# - a scan: one per passing row;
# - IVF with a selector, nprobe widened by 1 / selectivity: every code of the lists it visits is
#   checked against the bitmap (a few ns, _IVF_CHECK of a row) and the passing ones scored
#   (sequential codes, _IVF_CODE of a row);
# - a graph, its beam widened by 1 / selectivity squared: each efSearch step costs about
#   _GRAPH_STEP rows (its neighbours' distances, at random places in memory; measured at 1M x 64).
# The weights are rough; benchmarks/bench_filters.py checks the plans they pick at 1M.
_IVF_CHECK = 0.05
_IVF_CODE = 0.5
_GRAPH_STEP = 96
# Below this share a graph's deeper ranks are not accurate enough, whatever the beam costs: at
# 1M x 64 (HNSW32 tuned to recall@10 0.95) the filtered top-10 of 10% of the items came back
# with recall 0.79 at efSearch x 10, where 50% passing gave 0.96. A scan is exact.
_GRAPH_MIN_SHARE = 0.3
SCAN_MIN_ROWS = 1024  # so few rows always scan
# A scan of an exact index's passing rows beats faiss's full scan with a selector up to here.
EXACT_SCAN_SHARE = 0.5
# A graph search fetches at most this many neighbours before a filter falls back to a scan.
_GRAPH_FETCH_MAX = 4096
_CORE: weakref.WeakKeyDictionary[VectorIndex, faiss.Index] = weakref.WeakKeyDictionary()


def plan_for(
    index: VectorIndex, allowed: RowFilter, params: Mapping[str, int] | None = None
) -> Plan:
    """``scan`` or ``index`` for a filter passing ``allowed.count`` of ``index.ntotal`` rows:
    whichever is estimated to do less work (see the weights above)."""
    if allowed.count <= SCAN_MIN_ROWS or not isinstance(index, VectorIndex):
        return "scan"  # another engine (Milvus): the passing rows are scored here
    core = _core(index)
    params = params if params is not None else index.search_params
    sel = allowed.selectivity
    if isinstance(core, faiss.IndexIVF):
        visited = index.ntotal * min(1.0, int(params.get("nprobe", core.nprobe)) / core.nlist)
        work = visited * (_IVF_CODE + _IVF_CHECK / sel)
    elif isinstance(core, faiss.IndexHNSW):
        if sel < _GRAPH_MIN_SHARE:
            return "scan"
        work = _GRAPH_STEP * int(params.get("efSearch", core.hnsw.efSearch)) / sel**2
    elif isinstance(core, faiss.IndexFlat):  # exact
        work = EXACT_SCAN_SHARE * index.ntotal
    else:
        work = float(index.ntotal)  # other kinds: a scan of the passing rows does no more
    if allowed.count <= work or not index._selectors_supported:
        return "scan"
    return "index"


def filtered_search(
    index: VectorIndex,
    base: np.ndarray,
    queries: np.ndarray,
    k: int,
    allowed: RowFilter,
    *,
    exclude: Sequence[np.ndarray | None] | None = None,
    params: Mapping[str, int] | None = None,
    plan: Plan | None = None,
) -> tuple[np.ndarray, np.ndarray, Plan]:
    """Top-``k`` rows among those ``allowed`` passes, never an excluded one.

    Parameters
    ----------
    index : the space's index (its metric and search parameters)
    base : (n, d) float32, the raw vectors the index was built from (scored by a scan)
    queries : (m, d) float32, validated by the caller
    k : int >= 1
    allowed : the compiled filter over the ``n`` rows
    exclude : m int64 row arrays (or None), optional
    params : per-call search parameters, optional
    plan : ``"scan"`` or ``"index"`` to force one (benchmarks, tests); default: :func:`plan_for`

    Returns
    -------
    scores : (m, k') float32, rows : (m, k') int64, k' = min(k, n), padded with -1 / NaN at the
    end when fewer pass; and the plan that answered.
    """
    merged = dict(index.search_params)
    if params:
        _check_params(params)
        merged.update(params)
    m = queries.shape[0]
    kk = min(int(k), index.ntotal)
    excluded = [
        _clean_rows(exclude[i] if exclude is not None else None, index.ntotal) for i in range(m)
    ]
    if plan is None:
        plan = plan_for(index, allowed, merged)
    elif plan not in PLANS:
        raise InvalidArgumentError(f"plan must be one of {', '.join(PLANS)}, not {plan!r}")
    if plan == "scan" or kk == 0:
        sub = allowed.subset(base, index.metric, _prepare) if kk else None
        scores, rows = scan(index.metric, base, queries, kk, allowed.rows, excluded, sub)
        return scores, rows, "scan"
    if allowed.count == index.ntotal:  # every row passes: the plain search is the answer
        scores, rows = index.search(queries, kk, exclude=excluded, params=params)
        return scores, rows, "index"
    scores = np.full((m, kk), np.nan, dtype=np.float32)
    rows = np.full((m, kk), -1, dtype=np.int64)
    q = _prepare(queries, index.metric)
    if isinstance(_core(index), faiss.IndexHNSW):
        for i in range(m):
            found = _graph_overfetch(index, q[i : i + 1], kk, allowed, excluded[i], merged)
            if found is None:  # too few passed among the widest fetch: score the rows instead
                s, r = scan(index.metric, base, queries[i : i + 1], kk, allowed.rows, excluded[i:])
                found = s[0], r[0]
            scores[i], rows[i] = found
        scores[rows < 0] = np.nan
        return scores, rows, "index"
    wide = widened(index, merged, allowed.selectivity, kk)
    shared = None
    if not any(e.size for e in excluded):  # one selector for the whole batch
        shared = faiss.IDSelectorBitmap(allowed.packed)
        s, r = index._faiss_search(q, kk, wide, selector=shared)
        scores[:], rows[:] = s, r
    for i in range(m):
        left = allowed.count - int(np.count_nonzero(allowed.mask[excluded[i]]))
        want = min(kk, left)
        if shared is not None and (want == 0 or rows[i, want - 1] >= 0):
            continue
        r = None
        if left > SCAN_MIN_ROWS:  # else so few remain that scoring them is the cheaper search
            packed = allowed.packed_without(excluded[i]) if shared is None else allowed.packed
            # exclusions thin out the passing rows further: widen for what is left
            thinner = left < allowed.count
            wider = widened(index, merged, left / index.ntotal, kk) if thinner else wide
            s, r = _search_until(index, q[i : i + 1], kk, wider, packed, want)
        if r is None:  # the widest search still came back short: score the rows themselves
            s, r = scan(index.metric, base, queries[i : i + 1], kk, allowed.rows, excluded[i:])
            s, r = s[0], r[0]
        scores[i], rows[i] = s, r
    scores[rows < 0] = np.nan
    return scores, rows, "index"


def widened(index: VectorIndex, params: dict, selectivity: float, k: int) -> dict:
    """IVF search parameters that meet as many passing rows as ``params`` meet rows unfiltered."""
    core = _core(index)
    if isinstance(core, faiss.IndexIVF):
        nprobe = int(params.get("nprobe", core.nprobe))
        grow = 1.0 / max(selectivity, 1e-9)
        return {**params, "nprobe": min(core.nlist, math.ceil(nprobe * grow))}
    return dict(params)


def _core(index: VectorIndex) -> faiss.Index:
    """The index under its wrappers (a SWIG walk: done once per index)."""
    core = _CORE.get(index)
    if core is None:
        core = _CORE[index] = core_index(index.index)
    return core


def _graph_overfetch(
    index: VectorIndex,
    q: np.ndarray,
    k: int,
    allowed: RowFilter,
    excluded: np.ndarray,
    params: dict,
) -> tuple[np.ndarray, np.ndarray] | None:
    """One query on a graph: the unfiltered top ``fetch`` with those failing or excluded dropped,
    ``fetch`` about twice what should hold ``k`` passing rows; None when even the widest fetch
    (``_GRAPH_FETCH_MAX``) held too few."""
    live = excluded[allowed.mask[excluded]] if excluded.size else excluded
    want = min(k, allowed.count - live.size)
    if want <= 0:
        return np.full(k, np.nan, dtype=np.float32), np.full(k, -1, dtype=np.int64)
    grow = 1 / max(allowed.selectivity, 1e-9)
    fetch = math.ceil(2 * (k + live.size) * grow)
    # the filtered top-k sits about 1 / selectivity times deeper in the unfiltered ranking, and
    # a graph's recall falls with depth: the beam grows with the square (x4 at half passing)
    ef = math.ceil(int(params.get("efSearch", _core(index).hnsw.efSearch)) * grow * grow)
    while fetch <= min(_GRAPH_FETCH_MAX, index.ntotal):
        wide = {**params, "efSearch": min(max(ef, fetch), index.ntotal)}
        s, r = index._faiss_search(q, fetch, wide, None)
        found = _drop_excluded(s[0], r[0], live, k, want, passing=allowed.mask)
        if found is not None:
            return found
        if fetch >= index.ntotal:
            break
        fetch *= 4
    return None


def _search_until(
    index: VectorIndex, q: np.ndarray, k: int, params: dict, packed: np.ndarray, want: int
) -> tuple[np.ndarray, np.ndarray | None]:
    """One query with a bitmap selector, widened until ``want`` rows come back (None if never)."""
    selector = faiss.IDSelectorBitmap(packed)
    current = params
    while True:
        s, r = index._faiss_search(q, k, current, selector=selector)
        if want == 0 or r[0, want - 1] >= 0:
            return s[0], r[0]
        wider = widen(index.index, current, k)
        if wider is None:
            return s[0], None
        current = wider


def scan(
    metric: str,
    base: np.ndarray,
    queries: np.ndarray,
    k: int,
    rows: np.ndarray,
    excluded: Sequence[np.ndarray],
    sub: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` of ``queries`` over the sorted ``rows`` of ``base``, minus ``excluded``.

    ``sub``: those rows already gathered (and unit-normalised for cosine), e.g.
    :meth:`~embrecall.filters.RowFilter.subset`. Returns (m, k) float32 scores and int64 rows,
    best first, padded with NaN / -1.
    """
    m = queries.shape[0]
    out_s = np.full((m, k), np.nan, dtype=np.float32)
    out_r = np.full((m, k), -1, dtype=np.int64)
    if rows.size == 0 or k == 0:
        return out_s, out_r
    if sub is None:
        sub = base.take(rows, axis=0)
        if metric == "cosine":
            sub = _prepare(sub, "cosine")
    q = queries if metric != "cosine" else _prepare(queries, "cosine")
    higher = metric != "l2"
    # (c, m): one BLAS product for the batch, a column per query; one query: a matrix-vector one
    all_scores = (sub @ q[0])[:, None] if m == 1 else sub @ q.T
    if not higher:  # squared L2: |x|^2 - 2 x.q + |q|^2
        all_scores *= -2
        all_scores += np.einsum("ij,ij->i", sub, sub)[:, None]
        all_scores += np.einsum("ij,ij->i", q, q)[None, :]
    for i in range(m):
        scores = all_scores[:, i]
        # the sort key: smaller is better
        key = -scores if higher else scores.copy()
        ex = excluded[i] if i < len(excluded) else None
        if ex is not None and ex.size:
            at = np.minimum(np.searchsorted(rows, ex), rows.size - 1)
            key[at[rows[at] == ex]] = np.inf
        take = min(k, rows.size)
        best = np.argpartition(key, take - 1)[:take] if take < rows.size else np.arange(take)
        best = best[np.argsort(key[best], kind="stable")]
        best = best[key[best] != np.inf]
        out_s[i, : best.size] = scores[best]
        out_r[i, : best.size] = rows[best]
    return out_s, out_r
