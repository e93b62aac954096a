"""Seeded interaction data with planted tastes, for the evaluation tests.

Items fall into clusters and have skewed popularity; each user favours one cluster. Interactions
are drawn mostly from the favourite cluster (weighted by popularity) and otherwise from the whole
catalogue, at random times. A model that learns the clusters must beat a popularity ranking, and
the held-out part of each user is known to follow the same taste.
"""

from __future__ import annotations

import numpy as np

from embrecall.interactions import Interactions


def planted_interactions(
    n_users: int = 300,
    n_items: int = 400,
    clusters: int = 8,
    per_user: tuple[int, int] = (20, 40),
    taste: float = 0.85,
    seed: int = 0,
) -> tuple[Interactions, np.ndarray, np.ndarray]:
    """Returns (interactions, favourite cluster per user, cluster per item).

    User ids are ``100 + u``, item ids ``5000 + 3 * i`` (never row numbers, so id mapping is
    exercised); ratings are 3.0 or 5.0 (5.0 inside the favourite cluster); timestamps are
    distinct per user.
    """
    rng = np.random.default_rng(seed)
    item_cluster = rng.integers(0, clusters, n_items)
    popularity = rng.lognormal(0.0, 1.0, n_items)
    favourite = rng.integers(0, clusters, n_users)
    users, items, ratings, times = [], [], [], []
    for u in range(n_users):
        count = int(rng.integers(per_user[0], per_user[1] + 1))
        n_fav = int(rng.binomial(count, taste))
        fav_pool = np.flatnonzero(item_cluster == favourite[u])
        n_fav = min(n_fav, len(fav_pool))
        p = popularity[fav_pool] / popularity[fav_pool].sum()
        picked = list(rng.choice(fav_pool, n_fav, replace=False, p=p))
        rest = np.setdiff1d(np.arange(n_items), picked)
        p = popularity[rest] / popularity[rest].sum()
        picked += list(rng.choice(rest, count - n_fav, replace=False, p=p))
        picked = np.array(picked)
        rng.shuffle(picked)
        users.append(np.full(count, 100 + u))
        items.append(5000 + 3 * picked)
        ratings.append(np.where(item_cluster[picked] == favourite[u], 5.0, 3.0))
        times.append(1_500_000_000 + rng.choice(10_000_000, count, replace=False))
    inter = Interactions(
        np.concatenate(users),
        np.concatenate(items),
        np.concatenate(ratings),
        np.concatenate(times),
        source="planted",
    )
    return inter, favourite, item_cluster


def small_recommender(*, string_ids: bool = False, metrics=None, seed: int = 0):
    """500 items in 8 planted clusters (skewed norms), 60 users who each like one cluster and
    have seen 20 of its items; exact (Flat) indexes, seen items loaded."""
    from embrecall.embeddings import Embeddings
    from embrecall.recommender import Recommender

    rng = np.random.default_rng(seed)
    centres = np.linalg.qr(rng.standard_normal((16, 16)))[0][:8]
    labels = rng.integers(0, 8, 500)
    norms = rng.lognormal(0.0, 0.3, (500, 1))
    item_vectors = (centres[labels] + 0.15 * rng.standard_normal((500, 16))) * norms
    favourite = rng.integers(0, 8, 60)
    user_vectors = 1.5 * centres[favourite] + 0.1 * rng.standard_normal((60, 16))
    item_ids = np.arange(500) * 7 + 3
    user_ids = np.arange(1000, 1060)
    if string_ids:
        item_ids = np.array([f"item-{i:04d}" for i in range(500)], dtype=object)
        user_ids = np.array([f"user-{u}" for u in range(60)], dtype=object)
    seen = [rng.choice(np.flatnonzero(labels == f), 20, replace=False) for f in favourite]
    seen_ids = np.concatenate([item_ids[s] for s in seen])
    interactions = Interactions(np.repeat(user_ids, 20), seen_ids)
    return Recommender.build(
        Embeddings(item_ids, item_vectors.astype(np.float32)),
        Embeddings(user_ids, user_vectors.astype(np.float32)),
        interactions=interactions,
        metrics=metrics,
    )
