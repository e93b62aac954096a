"""One contract, every index kind: checked against the numpy exact oracle.

Exact kinds must match the oracle (ties tolerated: equal score lists); approximate kinds must meet
the stated recall floor. Every kind must honour exclusions and return k whenever k exist.

Each test is generated only for the (kind, metric) pairs it applies to, so nothing here skips.
Product-quantized kinds train on a smaller planted-cluster set: their training time grows with the
set, and the floor still separates a working index from a broken one (see the weak-setting tests).
"""

from __future__ import annotations

import contextlib
import functools
from unittest import mock

import faiss
import numpy as np
import pytest

from embrecall.errors import InvalidArgumentError
from embrecall.index import VectorIndex, exact_search
from embrecall.index.recall import recall_at_k
from helpers import planted_clusters

# (factory string, recall@10 floor against exact on planted clusters, is exact, data set)
KINDS = [
    ("Flat", 1.0, True, "full"),
    ("IVF32,Flat", 0.9, False, "full"),
    ("HNSW32", 0.9, False, "full"),
    ("SQ8", 0.9, False, "full"),
    ("PQ16x4", 0.6, False, "small"),
    ("IVF32,SQ8", 0.85, False, "full"),
    ("OPQ16,IVF32,PQ16x4", 0.6, False, "small"),
    ("IVF32,PQ8x4fs,RFlat", 0.7, False, "small"),
]
METRICS = ["ip", "cosine", "l2"]
K = 10


@functools.cache
def _vectors(data: str) -> np.ndarray:
    """The planted clusters a kind is checked on: 2,000 x 16, or 800 x 16 for PQ kinds."""
    return planted_clusters(n=2000 if data == "full" else 800)[0]


# OPQ's rotation is learnt by alternating PQ training: 50 rounds by default, after a first PQ of
# 40 k-means iterations. A few rounds are enough on planted clusters, and many times cheaper.
OPQ_ROUNDS = 4
ANNEALING_STEPS = 10_000  # polysemous code reordering: 500,000 by default
_ANNEALING = faiss.PolysemousTraining()
_ANNEALING.n_iter = ANNEALING_STEPS


@contextlib.contextmanager
def _cheap_training():
    """Train on one OpenMP thread (on a busy 2-core machine, two threads spinning on each other
    made a PQ training 50x slower), with fewer OPQ rounds and annealing steps."""
    made = []

    def index_factory(*args):
        index = plain_factory(*args)
        chain = getattr(index, "chain", None)  # an IndexPreTransform: OPQ first
        for i in range(chain.size() if chain is not None else 0):
            opq = faiss.downcast_VectorTransform(chain.at(i))
            if isinstance(opq, faiss.OPQMatrix):
                opq.niter, opq.niter_pq_0 = OPQ_ROUNDS, OPQ_ROUNDS
                made.append(opq)
        # Polysemous training only reorders the codes for Hamming filtering, which these searches
        # do not use; its annealing is most of a PQ build.
        ivf = faiss.try_extract_index_ivf(index)
        ivf = faiss.downcast_index(ivf) if ivf is not None else None
        if isinstance(ivf, faiss.IndexIVFPQ) and ivf.do_polysemous_training:
            ivf.polysemous_training = _ANNEALING  # a pointer: the object must outlive training
            made.append(ivf)
        pq = faiss.downcast_index(index)
        if isinstance(pq, faiss.IndexPQ) and pq.do_polysemous_training:
            pq.polysemous_training.n_iter = ANNEALING_STEPS
            made.append(pq)
        return index

    plain_factory, threads = faiss.index_factory, faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        with mock.patch.object(faiss, "index_factory", index_factory):
            yield made
    finally:
        faiss.omp_set_num_threads(threads)


@functools.cache
def _built(spec: str, metric: str) -> tuple[VectorIndex, np.ndarray]:
    """One index per (kind, metric), built on first use and shared by the tests of this module."""
    vectors = _vectors(_kind(spec)[3])
    with _cheap_training() as opqs:
        index = VectorIndex.build(vectors, metric, spec)
    assert bool(opqs) == spec.startswith(("OPQ", "PQ")), "the training was not cut"
    return index, vectors


def _kind(spec: str):
    return next(kind for kind in KINDS if kind[0] == spec)


def _search_param(spec: str) -> str | None:
    return "nprobe" if "IVF" in spec else "efSearch" if "HNSW" in spec else None


def _cases(applies=lambda spec, metric: True):
    """The (kind, metric) pairs a test applies to, as pytest parameters."""
    return [
        pytest.param(spec, metric, id=f"{spec}-{metric}")
        for spec, *_ in KINDS
        for metric in METRICS
        if applies(spec, metric)
    ]


def _recall(base, queries, got, truth, metric) -> float:
    """Mean recall@k, ties tolerated: the library's one measure."""
    return float(recall_at_k(base, queries, got, truth, metric).mean())


@pytest.mark.parametrize("spec, metric", _cases())
def test_matches_exact_or_meets_recall_floor(spec, metric):
    index, vectors = _built(spec, metric)
    queries = vectors[::20]
    scores, rows = index.search(queries, K)
    o_scores, o_rows = exact_search(vectors, queries, K, metric)
    _, floor, exact, _ = _kind(spec)
    if exact:
        np.testing.assert_allclose(scores, o_scores, rtol=1e-4, atol=1e-4)
        assert _recall(vectors, queries, rows, o_rows, metric) == 1.0  # ties may swap ids
    else:
        recall = _recall(vectors, queries, rows, o_rows, metric)
        assert recall >= floor, f"{spec}/{metric} below its recall floor {floor}"


@pytest.mark.parametrize("spec, metric", _cases())
def test_scores_are_ordered_best_first(spec, metric):
    index, vectors = _built(spec, metric)
    scores, _ = index.search(vectors[:50], K)
    diffs = np.diff(scores, axis=1)
    # Approximate codes re-rank loosely; the order of what is returned must still be monotone.
    assert (diffs <= 1e-5).all() if metric != "l2" else (diffs >= -1e-5).all()


@pytest.mark.parametrize("spec, metric", _cases())
def test_exclusions_never_returned_and_k_still_returned(spec, metric):
    index, vectors = _built(spec, metric)
    rng = np.random.default_rng(1)
    queries = vectors[:20]
    exact_top = exact_search(vectors, queries, 50, metric)[1]
    # Exclude each query's own true neighbourhood: the hardest case for "fetch k then drop".
    exclude = [
        np.concatenate([exact_top[i], rng.choice(len(vectors), 100, replace=False)])
        for i in range(20)
    ]
    scores, rows = index.search(queries, K, exclude=exclude)
    for r, e in zip(rows, exclude):
        assert (r >= 0).sum() == K
        assert not np.isin(r, e).any()


@pytest.mark.parametrize("spec, metric", _cases())
def test_excluding_almost_everything_returns_what_is_left(spec, metric):
    index, vectors = _built(spec, metric)
    n = len(vectors)
    keep = np.array([3, n // 4, n - 1])
    exclude = [np.setdiff1d(np.arange(n), keep)]
    _, rows = index.search(vectors[:1], K, exclude=exclude)
    assert sorted(rows[0][rows[0] >= 0]) == sorted(keep)


@pytest.mark.parametrize("spec, metric", _cases())
def test_k_larger_than_index_returns_everything(spec, metric):
    index, vectors = _built(spec, metric)
    scores, rows = index.search(vectors[:2], len(vectors) + 50)
    assert rows.shape == (2, len(vectors))
    if _kind(spec)[2]:
        assert sorted(rows[0]) == list(range(len(vectors)))


@pytest.mark.parametrize("spec, metric", _cases(lambda spec, _: _search_param(spec) is not None))
def test_per_call_params_do_not_touch_the_shared_index(spec, metric):
    index, vectors = _built(spec, metric)
    before = dict(index.search_params)
    index.search(vectors[:3], K, params={_search_param(spec): 2})
    assert index.search_params == before


@pytest.mark.parametrize("spec, metric", _cases())
def test_bad_arguments_are_refused(spec, metric):
    index, vectors = _built(spec, metric)
    with pytest.raises(InvalidArgumentError, match="k must be"):
        index.search(vectors[:1], 0)
    with pytest.raises(InvalidArgumentError, match="unknown search parameter"):
        index.search(vectors[:1], 3, params={"nlist": 3})


def test_invalid_spec_and_untrainable_index_are_clear_errors():
    vectors = _vectors("full")
    with pytest.raises(InvalidArgumentError, match="not a valid faiss factory string"):
        VectorIndex.build(vectors, "ip", "NoSuchIndex99")
    with pytest.raises(InvalidArgumentError, match="cannot train"):
        VectorIndex.build(vectors[:100], "ip", "IVF4096,Flat")
    with pytest.raises(InvalidArgumentError, match="metric"):
        VectorIndex.build(vectors, "dot", "Flat")


def test_low_nprobe_scores_lower_than_exact():
    """A deliberately weak setting must be measurably worse: the floors above are not vacuous."""
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


@pytest.mark.parametrize("metric", METRICS)
def test_a_coarse_product_quantizer_falls_below_the_pq_floor(metric):
    """On the smaller set the PQ kinds are checked on, a far coarser code (2 sub-quantizers of
    4 bits) misses the floor: that floor still tells a working quantizer from a broken one."""
    vectors = _vectors("small")
    queries = vectors[::20]
    truth = exact_search(vectors, queries, K, metric)[1]
    with _cheap_training():
        weak = VectorIndex.build(vectors, metric, "PQ2x4")
    recall = _recall(vectors, queries, weak.search(queries, K)[1], truth, metric)
    assert recall < _kind("PQ16x4")[1] - 0.1, recall  # measured: 0.3-0.45


# The exact kernels against faiss's own brute force (IndexFlatIP / IndexFlatL2).


def _faiss_flat(base: np.ndarray, queries: np.ndarray, k: int, metric: str):
    if metric == "cosine":
        base = base / np.linalg.norm(base, axis=1, keepdims=True)
        queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    flat = faiss.IndexFlatL2(base.shape[1]) if metric == "l2" else faiss.IndexFlatIP(base.shape[1])
    flat.add(np.ascontiguousarray(base, dtype=np.float32))
    return flat.search(np.ascontiguousarray(queries, dtype=np.float32), k)


@pytest.mark.parametrize("metric", METRICS)
def test_exact_search_agrees_with_faiss_flat(metric):
    vectors = _vectors("full")
    queries = np.concatenate([vectors[::40], vectors[:5] * 3.0])  # members and scaled copies
    scores, rows = exact_search(vectors, queries, K, metric)
    f_scores, f_rows = _faiss_flat(vectors, queries, K, metric)
    np.testing.assert_allclose(scores, f_scores, rtol=1e-4, atol=1e-3)
    assert _recall(vectors, queries, rows, f_rows, metric) == 1.0


@pytest.mark.parametrize("metric", METRICS)
def test_exact_search_exclusions_match_faiss_flat_over_what_is_left(metric):
    vectors = _vectors("full")
    queries = vectors[:8]
    rng = np.random.default_rng(3)
    exclude = [rng.choice(len(vectors), 300, replace=False) for _ in range(len(queries))]
    scores, rows = exact_search(vectors, queries, K, metric, exclude=exclude)
    for qi, dropped in enumerate(exclude):
        left = np.setdiff1d(np.arange(len(vectors)), dropped)
        f_scores, f_rows = _faiss_flat(vectors[left], queries[qi : qi + 1], K, metric)
        assert not np.isin(rows[qi], dropped).any()
        np.testing.assert_allclose(scores[qi], f_scores[0], rtol=1e-4, atol=1e-3)
        assert _recall(vectors, queries[qi : qi + 1], rows[qi : qi + 1], left[f_rows], metric) == 1


def test_exact_search_breaks_ties_and_pads_like_the_contract_says():
    """Identical vectors tie: any of them is right. Fewer rows than k: padded with -1 and NaN."""
    base = np.repeat(np.eye(4, dtype=np.float32), 5, axis=0)  # 4 groups of 5 identical rows
    scores, rows = exact_search(base, base[:1], 3, "ip")
    assert set(rows[0]) <= set(range(5)) and np.allclose(scores, 1.0)
    scores, rows = exact_search(base[:2], base[:1], 5, "l2", exclude=[np.array([1])])
    assert rows.shape == (1, 2) and rows[0, 0] == 0 and rows[0, 1] == -1
    assert np.isnan(scores[0, 1])
