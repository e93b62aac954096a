"""Inner product through the norm augmentation: exact scores back, better IVF recall."""

from __future__ import annotations

import numpy as np
import pytest

from embrecall.index import VectorIndex, exact_search
from embrecall.index.mips import NormAugmentation, augmented_dim, padded_dim
from embrecall.index.recall import recall_at_k
from helpers import skewed_recsys


@pytest.fixture(scope="module")
def skewed():
    return skewed_recsys(n_items=20_000, n_users=300, dim=32)


def _recall(rows, truth, items, users):
    return float(recall_at_k(items, users, rows, truth, "ip").mean())


def test_augmented_exact_search_returns_exact_inner_products(skewed):
    items, users = skewed
    index = VectorIndex.build(items, "ip", "Flat", mips="augment")
    assert index.mips is not None and index.index.d == 33 and index.dim == 32
    scores, rows = index.search(users[:50], 10)
    o_scores, o_rows = exact_search(items, users[:50], 10, "ip")
    np.testing.assert_allclose(scores, o_scores, rtol=1e-4, atol=1e-3)
    assert _recall(rows, o_rows, items, users[:50]) == 1.0


def test_ivf_is_augmented_and_beats_raw_inner_product_at_the_same_nprobe(skewed):
    items, users = skewed
    _, truth = exact_search(items, users, 10, "ip")
    augmented = VectorIndex.build(items, "ip", "IVF256,Flat")  # auto: IVF -> augmented
    native = VectorIndex.build(items, "ip", "IVF256,Flat", mips="native")
    assert augmented.mips is not None and native.mips is None
    params = {"nprobe": 8}
    r_aug = _recall(augmented.search(users, 10, params=params)[1], truth, items, users)
    r_nat = _recall(native.search(users, 10, params=params)[1], truth, items, users)
    assert r_aug >= r_nat + 0.1, (r_aug, r_nat)
    # Scores are inner products again, not distances: they match the exact ones where found.
    scores, rows = augmented.search(users[:20], 10, params={"nprobe": 256})
    np.testing.assert_allclose(
        scores, np.einsum("qd,qkd->qk", users[:20], items[rows]), rtol=1e-4, atol=1e-3
    )


def test_graphs_and_other_metrics_search_natively():
    assert augmented_dim(64, "HNSW32", "ip") is None
    assert augmented_dim(64, "IVF64,Flat", "cosine") is None
    assert augmented_dim(64, "IVF64,Flat", "ip") == 65
    assert augmented_dim(64, "IVF64,Flat", "ip", mode="native") is None
    assert augmented_dim(64, "HNSW32", "ip", mode="augment") == 65


def test_product_quantizers_get_a_dimension_they_divide():
    assert padded_dim(65, "IVF64,PQ32x4fs", 1) == 96
    assert padded_dim(65, "IVF64,PQ33x4fs", 1) == 66
    assert padded_dim(65, "IVF64,Flat", 1) == 65


def test_exclusions_and_the_widening_fallback_hold_under_the_transform(skewed):
    items, users = skewed
    index = VectorIndex.build(items, "ip", "IVF256,PQ16x4fs,RFlat")
    top = index.search(users[:1], 50, params={"nprobe": 256, "k_factor": 64})[1][0]
    scores, rows = index.search(users[:1], 10, exclude=[top], params={"nprobe": 1})
    assert (rows >= 0).all() and not np.isin(rows, top).any()
    assert np.all(np.diff(scores[0]) <= 1e-4)  # best first, as inner products


def test_the_transform_round_trips_through_its_manifest_entry():
    t = NormAugmentation(dim=8, max_norm=3.5, index_dim=16)
    assert NormAugmentation.from_manifest(t.to_manifest(), 8) == t
    assert NormAugmentation.from_manifest(None, 8) is None
