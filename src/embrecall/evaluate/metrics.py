"""The arithmetic of evaluation: recall against an exact answer (ties tolerated) and ranking
metrics on held-out items. Pure numpy on row numbers; no ids, no indexes, no I/O."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from embrecall.errors import InvalidArgumentError
from embrecall.index.exact import prepare

# Two scores this close count as a tie: float32 index scores against float64 exact ones.
_TIE_RTOL = 1e-5
_TIE_ATOL = 1e-6


def true_scores(base: np.ndarray, queries: np.ndarray, rows: np.ndarray, metric: str) -> np.ndarray:
    """Exact scores of given result rows, recomputed in float64.

    Parameters
    ----------
    base : (n, d) float array
        The vectors searched.
    queries : (m, d) float array
    rows : (m, k) int array
        Result rows per query; -1 marks no result.
    metric : "ip" | "cosine" | "l2"

    Returns
    -------
    (m, k) float64: inner product / cosine, or squared l2 distance; NaN where ``rows`` is -1.
    """
    b = prepare(base, metric).astype(np.float64)
    q = prepare(queries, metric).astype(np.float64)
    valid = rows >= 0
    picked = b[np.where(valid, rows, 0)]  # (m, k, d)
    if metric == "l2":
        scores = ((picked - q[:, None, :]) ** 2).sum(axis=2)
    else:
        scores = np.einsum("mkd,md->mk", picked, q)
    scores[~valid] = np.nan
    return scores


def recall_against_exact(
    found_rows: np.ndarray,
    found_scores: np.ndarray,
    exact_rows: np.ndarray,
    exact_scores: np.ndarray,
) -> np.ndarray:
    """Recall@k of each query's results against the exact top-k, with ties tolerated.

    A found row counts when it is in the exact top-k, or when its true score ties the exact k-th
    score (within float tolerance): among tied candidates any choice is right.

    Parameters
    ----------
    found_rows : (m, k) int
        Rows the index returned, -1 padded.
    found_scores : (m, k) float
        Their true scores (see :func:`true_scores`), NaN where padded.
    exact_rows, exact_scores : (m, k) int, float
        The exact answer, best first, -1 / NaN padded where fewer than k exist.

    Returns
    -------
    (m,) float64 in [0, 1]; 1.0 for a query whose exact answer is empty.
    """
    m, k = exact_rows.shape
    if found_rows.shape[1] < k:
        pad = np.full((m, k - found_rows.shape[1]), -1, dtype=np.int64)
        found_rows = np.hstack([found_rows, pad])
        found_scores = np.hstack([found_scores, np.full(pad.shape, np.nan)])
    found_rows, found_scores = found_rows[:, :k], found_scores[:, :k]
    n_exact = (exact_rows >= 0).sum(axis=1)
    out = np.ones(m, dtype=np.float64)
    for i in range(m):
        want = int(n_exact[i])
        if want == 0:
            continue
        got = found_rows[i] >= 0
        in_exact = np.isin(found_rows[i], exact_rows[i, :want]) & got
        kth = float(exact_scores[i, want - 1])
        tol = _TIE_ATOL + _TIE_RTOL * abs(kth)
        # Only a true tie with the k-th counts: a row scoring strictly better than the k-th yet
        # missing from the exact answer was excluded (a seen item, the query itself), and
        # serving it is an error, not a tie.
        with np.errstate(invalid="ignore"):
            tie = np.abs(found_scores[i] - kth) <= tol
        hits = int((in_exact | (tie & got)).sum())
        out[i] = min(hits, want) / want
    return out


def ranking_metrics(
    hits: np.ndarray, n_relevant: np.ndarray, ks: tuple[int, ...] | list[int]
) -> dict[int, dict[str, float]]:
    """HitRate@K, Recall@K and NDCG@K (binary relevance) averaged over users.

    Parameters
    ----------
    hits : (u, K) bool
        ``hits[i, r]``: the item at rank r + 1 for user i is relevant. K >= max(ks).
    n_relevant : (u,) int
        How many relevant (held-out) items user i has, all >= 1; items the model cannot
        recommend still count, so they lower recall.
    ks : cut-offs

    Returns
    -------
    {k: {"hit_rate", "recall", "ndcg"}}: means over the u users.
    """
    n_relevant = np.asarray(n_relevant, dtype=np.int64)
    if hits.shape[0] == 0:
        nan = float("nan")
        return {k: {"hit_rate": nan, "recall": nan, "ndcg": nan} for k in ks}
    discounts = 1.0 / np.log2(np.arange(2, hits.shape[1] + 2))
    ideal = np.cumsum(discounts)
    out = {}
    for k in ks:
        top = hits[:, :k]
        found = top.sum(axis=1)
        dcg = (top * discounts[:k]).sum(axis=1)
        idcg = ideal[np.minimum(k, n_relevant) - 1]
        out[k] = {
            "hit_rate": float((found > 0).mean()),
            "recall": float((found / n_relevant).mean()),
            "ndcg": float((dcg / idcg).mean()),
        }
    return out


def coverage(recommended_rows: np.ndarray, n_items: int, k: int) -> float:
    """Share of the catalogue's ``n_items`` items that appear in at least one top-k list.

    Parameters
    ----------
    recommended_rows : (u, K) int, -1 padded
    """
    top = recommended_rows[:, :k]
    return float(len(np.unique(top[top >= 0])) / n_items) if n_items else float("nan")


def check_ks(ks: Sequence[int]) -> tuple[int, ...]:
    """Cut-offs as a sorted tuple of distinct positive ints, or :class:`InvalidArgumentError`."""
    out = set()
    for k in ks:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise InvalidArgumentError(f"every k must be a positive integer, got {k!r}")
        out.add(int(k))
    if not out:
        raise InvalidArgumentError("no k given to measure at")
    return tuple(sorted(out))
