"""The delta's own search: one query's product with its vectors against faiss's flat scan."""

from __future__ import annotations

import numpy as np
import pytest

from embrecall.embeddings import Embeddings
from embrecall.live.delta import LiveState
from embrecall.live.merged import delta_answers

DIM = 8


@pytest.fixture(scope="module")
def delta():
    """300 upserted items over a 50-item artifact, in groups of identical vectors (ties)."""
    rng = np.random.default_rng(2)
    base = Embeddings(np.arange(50), rng.standard_normal((50, DIM)).astype(np.float32))
    shared = rng.standard_normal((100, DIM))
    records = [
        {"op": "upsert", "space": "items", "id": 1000 + i, "vector": shared[i % 100].tolist()}
        for i in range(300)
    ]
    return LiveState(base, None).apply(records).spaces["items"]


def _exact(delta, metric, q, k, out, floor):
    """Brute force: every slot's score, best first, ties by slot, outside ``out``."""
    vectors = delta.unit if metric == "cosine" else delta.vectors
    if metric == "cosine":
        q = q / np.linalg.norm(q)
    scores = vectors.astype(np.float64) @ q.astype(np.float64)
    order = sorted(range(delta.size), key=lambda s: (-scores[s], s))
    kept = [s for s in order if int(delta.ids[s]) not in out]
    if floor is not None:
        kept = [s for s in kept if scores[s] >= floor]
    return scores, kept


@pytest.mark.parametrize("metric", ["ip", "cosine"])
@pytest.mark.parametrize("k", [1, 7, 40, 400])
def test_one_query_by_product_keeps_the_exact_best_outside_its_exclusions(delta, metric, k):
    rng = np.random.default_rng(k)
    for trial in range(30):
        q = rng.standard_normal((1, DIM)).astype(np.float32)
        out = set((1000 + rng.choice(300, trial * 3, replace=False)).tolist())
        scores, kept = _exact(delta, metric, q[0], k, out, None)
        # a floor a little under one entry's score (float32 products round differently)
        floor = None if trial % 3 == 0 else float(scores[kept[min(trial, len(kept) - 1)]]) - 1e-4
        (got,) = delta_answers(delta, metric, q, k, [out], [floor])
        _, want = _exact(delta, metric, q[0], k, out, floor)
        want = want[:k]
        assert len(got) == len(want)
        assert not {i for _, i in got} & out
        got_scores = np.array([s for s, _ in got])
        assert np.all(np.diff(got_scores) <= 0)  # best first
        # the same scores (ties may swap ids of equal score), and each id's own score
        np.testing.assert_allclose(got_scores, scores[want], rtol=1e-5, atol=1e-5)
        for score, key in got:
            np.testing.assert_allclose(score, scores[delta.slot_of[key]], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("metric", ["ip", "cosine"])
def test_a_batch_by_flat_scan_answers_as_single_queries_do(delta, metric):
    rng = np.random.default_rng(9)
    q = rng.standard_normal((40, DIM)).astype(np.float32)
    outs = [set((1000 + rng.choice(300, 20, replace=False)).tolist()) for _ in range(40)]
    batch = delta_answers(delta, metric, q, 25, outs)
    for i in range(40):
        (one,) = delta_answers(delta, metric, q[i : i + 1], 25, [outs[i]])
        np.testing.assert_allclose([s for s, _ in one], [s for s, _ in batch[i]], rtol=1e-5)
