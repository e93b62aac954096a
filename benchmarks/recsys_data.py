"""Synthetic recommender-like embeddings for the benchmarks.

Items come from "topics" of Zipf-distributed popularity with lognormal norms (long vectors for
popular items, as matrix factorisation learns them); users mix two topics, shifted, so queries
follow a different distribution from the items: the case where inner-product search is hard for
ANN indexes. Seeded: the same arguments give the same vectors.

The defaults (256 diffuse topics, norm sigma 0.6) are the benchmarks' long-standing synthetic set;
``topics``, ``spread`` and ``norm_sigma`` make the other families of ``bench_scale.py``.
"""

from __future__ import annotations

import numpy as np

TOPICS = 256


def recsys_vectors(
    n_items: int,
    n_users: int,
    dim: int = 64,
    seed: int = 0,
    *,
    topics: int = TOPICS,
    spread: float = 0.6,
    norm_sigma: float = 0.6,
) -> tuple[np.ndarray, np.ndarray]:
    """(items (n_items, dim), users (n_users, dim)) float32.

    ``topics``: how many cluster centres; ``spread``: the items' Gaussian noise around their
    centre (per dimension, centres are unit-variance); ``norm_sigma``: sigma of the items'
    lognormal norms (0.2 mild skew, 1.0 heavy).
    """
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((topics, dim)).astype(np.float32)
    popularity = 1 / np.arange(1, topics + 1) ** 0.8
    popularity /= popularity.sum()
    items = np.empty((n_items, dim), dtype=np.float32)
    for start in range(0, n_items, 1_000_000):  # in blocks: 10M items stay within memory
        stop = min(n_items, start + 1_000_000)
        topic = rng.choice(topics, stop - start, p=popularity)
        block = centers[topic]
        block += spread * rng.standard_normal((stop - start, dim), dtype=np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        block *= rng.lognormal(0, norm_sigma, (stop - start, 1)).astype(np.float32)
        items[start:stop] = block
    user_topics = rng.choice(topics, (n_users, 2), p=popularity)
    users = centers[user_topics].mean(axis=1) + 0.8 * rng.standard_normal((n_users, dim)) + 0.3
    users *= rng.lognormal(0, 0.3, (n_users, 1))
    return items, users.astype(np.float32)
