"""One contract, every index kind: checked against the numpy exact oracle.

Exact kinds must match the oracle (ties tolerated: equal score lists); approximate kinds must meet
the stated recall floor. Every kind must honour exclusions and return k whenever k exist.
"""

from __future__ import annotations

import numpy as np
import pytest

from embrecall.errors import InvalidArgumentError
from embrecall.index import VectorIndex, exact_search
from embrecall.index.recall import recall_at_k

# (factory string, recall@10 floor against exact on planted clusters, is exact)
KINDS = [
    ("Flat", 1.0, True),
    ("IVF32,Flat", 0.9, False),
    ("HNSW32", 0.9, False),
    ("SQ8", 0.9, False),
    ("PQ16x4", 0.6, False),
    ("IVF32,SQ8", 0.85, False),
    ("OPQ16,IVF32,PQ16x4", 0.6, False),
    ("IVF32,PQ8x4fs,RFlat", 0.7, False),
]
METRICS = ["ip", "cosine", "l2"]
K = 10


def _recall(base, queries, got, truth, metric) -> float:
    """Mean recall@k, ties tolerated: the library's one measure."""
    return float(recall_at_k(base, queries, got, truth, metric).mean())


@pytest.fixture(
    scope="module",
    params=[(s, m) for s, _, _ in KINDS for m in METRICS],
    ids=lambda p: f"{p[0]}-{p[1]}",
)
def built(request, clusters):
    spec, metric = request.param
    vectors = clusters[0]
    return spec, metric, VectorIndex.build(vectors, metric, spec), vectors


def _floor(spec):
    return next((floor, exact) for s, floor, exact in KINDS if s == spec)


def test_matches_exact_or_meets_recall_floor(built):
    spec, metric, index, vectors = built
    queries = vectors[::20]
    scores, rows = index.search(queries, K)
    o_scores, o_rows = exact_search(vectors, queries, K, metric)
    floor, exact = _floor(spec)
    if exact:
        np.testing.assert_allclose(scores, o_scores, rtol=1e-4, atol=1e-4)
        assert _recall(vectors, queries, rows, o_rows, metric) == 1.0  # ties may swap ids
    else:
        recall = _recall(vectors, queries, rows, o_rows, metric)
        assert recall >= floor, f"{spec}/{metric} below its recall floor {floor}"


def test_scores_are_ordered_best_first(built):
    _, metric, index, vectors = built
    scores, _ = index.search(vectors[:50], K)
    diffs = np.diff(scores, axis=1)
    # Approximate codes re-rank loosely; the order of what is returned must still be monotone.
    assert (diffs <= 1e-5).all() if metric != "l2" else (diffs >= -1e-5).all()


def test_exclusions_never_returned_and_k_still_returned(built):
    _, _, index, vectors = built
    rng = np.random.default_rng(1)
    queries = vectors[:20]
    exact_top = exact_search(vectors, queries, 50, built[1])[1]
    # Exclude each query's own true neighbourhood: the hardest case for "fetch k then drop".
    exclude = [
        np.concatenate([exact_top[i], rng.choice(len(vectors), 100, replace=False)])
        for i in range(20)
    ]
    scores, rows = index.search(queries, K, exclude=exclude)
    for r, e in zip(rows, exclude):
        assert (r >= 0).sum() == K
        assert not np.isin(r, e).any()


def test_excluding_almost_everything_returns_what_is_left(built):
    _, _, index, vectors = built
    n = len(vectors)
    keep = np.array([3, 500, 1999])
    exclude = [np.setdiff1d(np.arange(n), keep)]
    _, rows = index.search(vectors[:1], K, exclude=exclude)
    assert sorted(rows[0][rows[0] >= 0]) == sorted(keep)


def test_k_larger_than_index_returns_everything(built):
    _, _, index, vectors = built
    scores, rows = index.search(vectors[:2], len(vectors) + 50)
    assert rows.shape == (2, len(vectors))
    if _floor(built[0])[1]:
        assert sorted(rows[0]) == list(range(len(vectors)))


def test_per_call_params_do_not_touch_the_shared_index(built):
    spec, _, index, vectors = built
    before = dict(index.search_params)
    name = "nprobe" if "IVF" in spec else "efSearch" if "HNSW" in spec else None
    if name is None:
        pytest.skip("no search parameter for this kind")
    index.search(vectors[:3], K, params={name: 2})
    assert index.search_params == before


def test_bad_arguments_are_refused(built):
    _, _, index, vectors = built
    with pytest.raises(InvalidArgumentError, match="k must be"):
        index.search(vectors[:1], 0)
    with pytest.raises(InvalidArgumentError, match="unknown search parameter"):
        index.search(vectors[:1], 3, params={"nlist": 3})


def test_invalid_spec_and_untrainable_index_are_clear_errors(clusters):
    vectors = clusters[0]
    with pytest.raises(InvalidArgumentError, match="not a valid faiss factory string"):
        VectorIndex.build(vectors, "ip", "NoSuchIndex99")
    with pytest.raises(InvalidArgumentError, match="cannot train"):
        VectorIndex.build(vectors[:100], "ip", "IVF4096,Flat")
    with pytest.raises(InvalidArgumentError, match="metric"):
        VectorIndex.build(vectors, "dot", "Flat")


def test_low_nprobe_scores_lower_than_exact(clusters):
    """A deliberately weak setting must be measurably worse: the floors above are not vacuous."""
    vectors = clusters[0]
    rng = np.random.default_rng(5)
    noise = rng.standard_normal((2000, 16)).astype(np.float32)  # no clusters: IVF must probe widely
    index = VectorIndex.build(noise, "l2", "IVF64,Flat")
    truth = exact_search(noise, noise[:100], K, "l2")[1]
    weak = _recall(
        noise, noise[:100], index.search(noise[:100], K, params={"nprobe": 1})[1], truth, "l2"
    )
    strong = _recall(
        noise, noise[:100], index.search(noise[:100], K, params={"nprobe": 64})[1], truth, "l2"
    )
    assert strong == pytest.approx(1.0) and weak < 0.8
    assert vectors.shape[0] == 2000
