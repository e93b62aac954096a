"""Tuning to a recall target: the smallest setting that reaches it, measured honestly."""

from __future__ import annotations

import numpy as np
import pytest

from embrecall.errors import InvalidArgumentError
from embrecall.index import VectorIndex
from embrecall.index.tuning import exact_rows, tune_to_recall
from helpers import skewed_recsys


@pytest.fixture(scope="module")
def skewed():
    return skewed_recsys(n_items=20_000, n_users=400, dim=32, seed=1)


def _recall(index, queries, truth, params, exclude=None):
    rows = index.search(queries, truth.shape[1], params=params, exclude=exclude)[1]
    return float(np.mean([len(np.intersect1d(r, t)) / len(t) for r, t in zip(rows, truth)]))


@pytest.mark.parametrize("spec, param", [("IVF256,Flat", "nprobe"), ("HNSW16", "efSearch")])
def test_tuning_picks_the_smallest_setting_that_reaches_the_target(skewed, spec, param):
    items, users = skewed
    index = VectorIndex.build(items, "ip", spec)
    tuning = tune_to_recall(index, items, users, target=0.95, k=10)
    assert tuning.reached and tuning.recall >= 0.95
    assert index.search_params[param] == tuning.params[param]
    # Checked independently on the same queries: the chosen value reaches it...
    truth = exact_rows(items, users, 10, "ip", None)
    assert _recall(index, users, truth, {}) >= 0.95
    # ...and the largest value tried below it did not, re-measured here; the steps were
    # narrowed to within about 5% of the chosen value.
    chosen = tuning.params[param]
    below = [step["params"][param] for step in tuning.sweep if step["params"][param] < chosen]
    if below:
        assert max(below) >= chosen * 0.9 - 1
        narrower = {**index.search_params, param: max(below)}
        assert _recall(index, users, truth, narrower) < 0.95


def test_same_space_queries_leave_themselves_out(skewed):
    items, _ = skewed
    index = VectorIndex.build(items, "cosine", "IVF256,Flat")
    rows = np.arange(len(items))
    tuning = tune_to_recall(index, items, items, target=0.9, k=10, self_rows=rows, max_queries=200)
    assert tuning.reached and tuning.queries == 200
    truth = exact_rows(items, items[:50], 10, "cosine", rows[:50])
    assert all(r not in t for r, t in zip(rows[:50], truth))


def test_refined_compressed_indexes_also_tune_their_reranking_depth(skewed):
    items, users = skewed
    index = VectorIndex.build(items, "ip", "IVF128,PQ8x4fs,RFlat")
    tuning = tune_to_recall(index, items, users, target=0.9, k=10)
    assert tuning.reached, tuning.sweep[-3:]
    assert tuning.params["k_factor"] >= 4 and "nprobe" in tuning.params


def test_an_unreachable_target_keeps_the_best_setting_and_says_so(skewed):
    items, users = skewed
    index = VectorIndex.build(items, "ip", "PQ4x4")  # 2 bytes a vector: cannot reach 0.99
    tuning = tune_to_recall(index, items, users, target=0.99, k=10)
    assert not tuning.reached and 0 < tuning.recall < 0.99


def test_exact_indexes_measure_one_point(skewed):
    items, users = skewed
    index = VectorIndex.build(items[:3000], "ip", "Flat")
    tuning = tune_to_recall(index, items[:3000], users, target=0.95)
    assert tuning.reached and tuning.recall == 1.0 and tuning.params == {}


@pytest.mark.parametrize("target", [0, 1.5, -0.1])
def test_a_target_outside_zero_one_is_refused(skewed, target):
    items, users = skewed
    index = VectorIndex.build(items[:2000], "ip", "Flat")
    with pytest.raises(InvalidArgumentError, match="target recall"):
        tune_to_recall(index, items[:2000], users, target=target)


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_torch_exact_answers_equal_faiss_brute_force(skewed, device):
    torch = pytest.importorskip("torch")
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("no CUDA GPU here (torch sees none)")
    items, users = skewed
    rows = np.arange(len(items))
    for metric, queries, own in (("ip", users, None), ("cosine", items[:200], rows[:200])):
        by_faiss = exact_rows(items, queries, 10, metric, own, device="faiss")
        by_torch = exact_rows(items, queries, 10, metric, own, device=device)
        same = np.mean([len(np.intersect1d(a, b)) for a, b in zip(by_faiss, by_torch)]) / 10
        assert same >= 0.999  # only float-rounding ties may differ
