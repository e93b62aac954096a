"""The arithmetic of evaluation: ranking metrics on held-out items, and (re-exported from
:mod:`embrecall.index.recall`, its one home) recall against an exact answer with ties tolerated.
Pure numpy on row numbers; no ids, no indexes, no I/O."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from embrecall.errors import InvalidArgumentError
from embrecall.index.recall import recall_against_exact, true_scores

__all__ = [
    "check_ks",
    "coverage",
    "ranking_metrics",
    "recall_against_exact",
    "true_scores",
]


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
