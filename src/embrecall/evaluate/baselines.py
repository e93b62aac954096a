"""Baselines a trained model must beat to be worth serving: the most popular unseen items."""

from __future__ import annotations

import numpy as np

from embrecall.interactions import SeenItems


def popularity_order(seen: SeenItems, n_items: int) -> np.ndarray:
    """Item rows by how many training users interacted with them, most popular first.

    Parameters
    ----------
    seen : SeenItems
        The training interactions as (user row, item row) pairs, each pair once.
    n_items : int

    Returns
    -------
    (n_items,) int64; ties keep row order, so the ranking is deterministic.
    """
    counts = np.bincount(seen.item_rows, minlength=n_items)
    return np.argsort(-counts, kind="stable").astype(np.int64)


def recommend_popular(
    order: np.ndarray, seen: SeenItems, user_rows: np.ndarray, k: int
) -> np.ndarray:
    """Top-``k`` popular items per user, excluding what the user has seen in training.

    Parameters
    ----------
    order : (n_items,) int
        From :func:`popularity_order`.
    seen : SeenItems
    user_rows : (u,) int
    k : int

    Returns
    -------
    (u, k) int64 item rows, -1 padded when fewer than k unseen items exist.
    """
    out = np.full((len(user_rows), k), -1, dtype=np.int64)
    for i, u in enumerate(user_rows):
        rows = seen.rows_for(int(u))
        # Only the first k + |seen| popular items can hold the answer.
        head = order[: k + len(rows)]
        picked = head[~np.isin(head, rows, assume_unique=True)][:k]
        out[i, : len(picked)] = picked
    return out
