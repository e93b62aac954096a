"""Exact brute-force search in numpy: the oracle that tests, evaluation and canaries trust.

It shares no code with the faiss path on purpose, so that a bug there cannot hide here.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def prepare(vectors: np.ndarray, metric: str) -> np.ndarray:
    """Vectors as the metric compares them: unit length for cosine, unchanged otherwise."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if metric != "cosine":
        return vectors
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms == 0, 1, norms)


def exact_search(
    base: np.ndarray,
    queries: np.ndarray,
    k: int,
    metric: str,
    exclude: Sequence[np.ndarray | None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k rows of ``base`` for each query, by brute force.

    Parameters
    ----------
    base : (n, d) float array
    queries : (m, d) float array
    k : int
    metric : "ip" | "cosine" | "l2"
        ip and cosine: higher score is better; l2: the score is the squared distance (lower is
        better).
    exclude : list of m arrays of rows (or None), optional
        Rows never returned for that query.

    Returns
    -------
    scores : (m, k') float32, rows : (m, k') int64, where k' = min(k, n); a query left with
    fewer than k' candidates is padded with row -1 and score NaN.
    """
    base_p = prepare(base, metric).astype(np.float64)
    q_p = prepare(queries, metric).astype(np.float64)
    if metric == "l2":
        # |q - b|^2 expanded, in float64 so the cancellation stays harmless.
        scores = (q_p**2).sum(1)[:, None] - 2 * q_p @ base_p.T + (base_p**2).sum(1)[None, :]
        np.maximum(scores, 0, out=scores)
        order_scores = -scores
    else:
        scores = q_p @ base_p.T
        order_scores = scores.copy()
    if exclude is not None:
        for qi, rows in enumerate(exclude):
            if rows is not None and len(rows):
                order_scores[qi, np.asarray(rows, dtype=np.int64)] = -np.inf
    kk = min(k, base_p.shape[0])
    m = q_p.shape[0]
    out_rows = np.full((m, kk), -1, dtype=np.int64)
    out_scores = np.full((m, kk), np.nan, dtype=np.float32)
    for qi in range(m):
        # Partial selection first: a full sort of a million scores per query is the slow part.
        top = np.argpartition(-order_scores[qi], kk - 1)[:kk] if kk < base_p.shape[0] else None
        order = np.arange(base_p.shape[0]) if top is None else top
        order = order[np.argsort(-order_scores[qi, order], kind="stable")]
        order = order[np.isfinite(order_scores[qi, order])]
        out_rows[qi, : len(order)] = order
        out_scores[qi, : len(order)] = scores[qi, order]
    return out_scores, out_rows
