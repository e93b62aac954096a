"""Exact brute-force search in numpy: the oracle that tests, evaluation and canaries trust.

It shares no code with the faiss path on purpose, so that a bug there cannot hide here.
``exact_search`` works in float64 on the whole base at once, which for a million 64-d vectors is
a 512 MB scratch copy per call. Evaluation asks it many times and the live monitor asks it from
inside a server, so they call :func:`exact_topk`: the same oracle over blocks of the base rows,
the per-block top-k merged (every score still comes from ``exact_search``).

The fast member of the family, for batch recall and tuning, is :mod:`embrecall.index.kernel`.
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


BLOCK_BYTES = 32 << 20  # float64 scratch one exact_search call may hold


def exact_topk(
    base: np.ndarray,
    queries: np.ndarray,
    k: int,
    metric: str,
    exclude: Sequence[np.ndarray | None] | None = None,
    *,
    block_bytes: int = BLOCK_BYTES,
) -> tuple[np.ndarray, np.ndarray]:
    """The same answer as ``exact_search(base, queries, k, metric, exclude)``, block by block.

    Parameters
    ----------
    base : (n, d) float array
    queries : (m, d) float array
    k : int >= 1
    metric : "ip" | "cosine" | "l2"
    exclude : m arrays of base rows never returned (or None), optional
    block_bytes : float64 scratch one ``exact_search`` call may use

    Returns
    -------
    scores : (m, k') float32, rows : (m, k') int64 with k' = min(k, n), best first; -1 / NaN
    padded where fewer than k' rows are left after exclusions (as ``exact_search``).
    """
    n, d = base.shape
    m = len(queries)
    # float64 bytes exact_search holds per base row: its copy of the row, two score columns
    # per query, and for l2 the broadcast differences.
    per_row = 8 * (d + 2 * m + (m * d if metric == "l2" else 0))
    block = max(k, int(block_bytes // per_row))
    if block >= n:
        return exact_search(base, queries, k, metric, exclude)
    kk = min(k, n)
    excluded = [
        np.empty(0, np.int64)
        if exclude is None or exclude[i] is None
        else np.asarray(exclude[i], dtype=np.int64)
        for i in range(m)
    ]
    all_scores, all_rows = [], []
    for start in range(0, n, block):
        stop = min(n, start + block)
        local = [e[(e >= start) & (e < stop)] - start for e in excluded]
        s, r = exact_search(base[start:stop], queries, kk, metric, local)
        all_scores.append(s)
        all_rows.append(np.where(r >= 0, r + start, -1))
    scores = np.hstack(all_scores)
    rows = np.hstack(all_rows)
    key = scores.astype(np.float64) if metric == "l2" else -scores.astype(np.float64)
    key[~np.isfinite(key)] = np.inf  # padding sorts last
    order = np.argsort(key, axis=1, kind="stable")[:, :kk]
    out_scores = np.take_along_axis(scores, order, axis=1)
    out_rows = np.take_along_axis(rows, order, axis=1)
    out_scores[out_rows < 0] = np.nan
    return out_scores, out_rows
