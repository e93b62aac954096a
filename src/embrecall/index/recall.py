"""Recall@k against an exact answer, ties tolerated: the one measure every comparison uses.

Real embeddings tie. Spark ALS factors hold many identical vectors (in the MovieLens run, 462
groups of items share one vector, the largest has 100 members), so the exact top-k is one of many
equally right lists whenever a tied group straddles the k-th place. Counting plain set overlap
calls a correct index wrong there. Tuning, canaries, evaluation, the live monitor and the tests
all measure through this module, on row numbers (no ids, no indexes).
"""

from __future__ import annotations

import numpy as np

from embrecall.index.exact import prepare

# Two scores this close count as a tie: float32 index scores against float64 exact ones.
TIE_RTOL = 1e-5
TIE_ATOL = 1e-6


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
    rows = np.asarray(rows, dtype=np.int64)
    q = prepare(queries, metric).astype(np.float64)
    valid = rows >= 0
    # Only the rows picked are prepared, not the whole base: tuning calls this once per setting.
    picked = prepare(base[np.where(valid, rows, 0).ravel()], metric).astype(np.float64)
    picked = picked.reshape(rows.shape + (base.shape[1],))  # (m, k, d)
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
    got = found_rows >= 0
    # (m, k, k) comparisons, vectorised: tuning measures 1,000 queries per setting it tries.
    in_exact = (found_rows[:, :, None] == exact_rows[:, None, :]).any(axis=2) & got
    # A row returned twice counts once.
    earlier = np.tril(np.ones((k, k), dtype=bool), -1)
    repeat = ((found_rows[:, :, None] == found_rows[:, None, :]) & earlier).any(axis=2)
    last = np.maximum(n_exact - 1, 0)
    kth = np.take_along_axis(exact_scores.astype(np.float64), last[:, None], axis=1)
    tol = TIE_ATOL + TIE_RTOL * np.abs(kth)
    # Only a true tie with the k-th counts: a row scoring strictly better than the k-th yet
    # missing from the exact answer was excluded (a seen item, the query itself), and serving
    # it is an error, not a tie.
    with np.errstate(invalid="ignore"):
        tie = np.abs(found_scores - kth) <= tol
    hits = ((in_exact | (tie & got)) & ~repeat).sum(axis=1)
    out = np.ones(m, dtype=np.float64)
    some = n_exact > 0
    out[some] = np.minimum(hits[some], n_exact[some]) / n_exact[some]
    return out


def recall_at_k(
    base: np.ndarray,
    queries: np.ndarray,
    found_rows: np.ndarray,
    exact_rows: np.ndarray,
    metric: str,
) -> np.ndarray:
    """Tie-tolerant recall@k of ``found_rows`` against ``exact_rows``, both scored exactly here.

    The convenience form of :func:`recall_against_exact` for callers that hold the exact rows but
    not trustworthy scores (faiss's float32 brute force, a batch kernel): both sides are scored in
    float64 from ``base``, so a tie is judged on one scale.

    Parameters
    ----------
    base : (n, d) the vectors searched (raw; cosine is normalised here)
    queries : (m, d)
    found_rows, exact_rows : (m, k) int, -1 padded; ``exact_rows`` best first
    metric : "ip" | "cosine" | "l2"

    Returns
    -------
    (m,) float64 in [0, 1].
    """
    found_rows = np.asarray(found_rows, dtype=np.int64)
    exact_rows = np.asarray(exact_rows, dtype=np.int64)
    return recall_against_exact(
        found_rows,
        true_scores(base, queries, found_rows, metric),
        exact_rows,
        true_scores(base, queries, exact_rows, metric),
    )
