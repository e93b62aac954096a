"""Index recall: exact indexes score 1.0 under the same exclusions; a starved IVF scores lower."""

from __future__ import annotations

import numpy as np
import pytest
from eval_data import small_recommender

from embrecall.embeddings import Embeddings
from embrecall.errors import InvalidArgumentError
from embrecall.evaluate.index_recall import measure_index_recall
from embrecall.recommender import Recommender


@pytest.fixture(scope="module")
def exact_rec():
    return small_recommender()


@pytest.fixture(scope="module")
def ivf_rec():
    """Unstructured vectors (no clusters for IVF cells to align with), 64 lists per space."""
    rng = np.random.default_rng(5)
    items = Embeddings(np.arange(3000) * 2 + 7, rng.standard_normal((3000, 24)).astype(np.float32))
    users = Embeddings(np.arange(2500) + 1, rng.standard_normal((2500, 24)).astype(np.float32))
    return Recommender.build(items, users, index="IVF64,Flat")


def test_exact_index_scores_recall_one_with_seen_items_and_self_excluded(exact_rec):
    assert exact_rec.seen is not None  # recommend excludes seen items: the oracle must too
    points = measure_index_recall(exact_rec, ks=(10, 50, 100), n_queries=40, seed=1)
    assert {(p.query_kind, p.k) for p in points} == {
        (kind, k) for kind in ("recommend", "similar_items", "similar_users") for k in (10, 50, 100)
    }
    for p in points:
        assert p.exact_index and p.recall == 1.0 and p.recall_min == 1.0, p
        assert p.queries == 40 and 0 < p.p50_ms <= p.p99_ms


def test_exact_index_with_string_ids_and_l2():
    rec = small_recommender(string_ids=True, metrics={"similar_items": "l2"})
    points = measure_index_recall(rec, ks=(10,), n_queries=25)
    assert [p.recall for p in points] == [1.0, 1.0, 1.0]
    assert {p.metric for p in points} == {"ip", "l2", "cosine"}


def test_tiny_nprobe_scores_measurably_lower_and_full_nprobe_is_exact(ivf_rec):
    weak = measure_index_recall(ivf_rec, ks=(10,), n_queries=60, params={"nprobe": 1})
    full = measure_index_recall(ivf_rec, ks=(10,), n_queries=60, params={"nprobe": 64})
    for w, f in zip(weak, full):
        assert w.params["nprobe"] == 1 and f.params["nprobe"] == 64
        assert w.recall < 0.6, w
        assert f.recall == 1.0, f


def test_sweep_walks_nprobe_up_to_nlist_and_recall_rises(ivf_rec):
    points = measure_index_recall(
        ivf_rec, ks=(10,), n_queries=40, sweep=True, query_kinds=["recommend"]
    )
    assert [p.params["nprobe"] for p in points] == [1, 2, 4, 8, 16, 32, 64]
    recalls = [p.recall for p in points]
    assert recalls[-1] == 1.0 and recalls[0] < recalls[3] < recalls[-1]


def test_sample_is_seeded(ivf_rec):
    a = measure_index_recall(ivf_rec, ks=(10,), n_queries=30, seed=3, params={"nprobe": 2})
    b = measure_index_recall(ivf_rec, ks=(10,), n_queries=30, seed=3, params={"nprobe": 2})
    assert [p.recall for p in a] == [p.recall for p in b]


def test_refusals(exact_rec):
    with pytest.raises(InvalidArgumentError, match="unknown query kind 'u2i'"):
        measure_index_recall(exact_rec, query_kinds=["u2i"])
    with pytest.raises(InvalidArgumentError, match="positive integer"):
        measure_index_recall(exact_rec, ks=(0,))
    with pytest.raises(InvalidArgumentError, match="n_queries"):
        measure_index_recall(exact_rec, n_queries=0)
