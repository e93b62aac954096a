"""The single-query path (a service's hot path) answers exactly as the batch path does.

One query takes shortcuts a batch does not: faiss's C++ search called directly, exclusions
read from an over-fetched answer until k survive, one cosine query normalised without numpy's
norm. Each is checked here against the batch path or the exact oracle, on real faiss indexes.
"""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from embrecall.embeddings import Embeddings, check_query_vectors
from embrecall.errors import DimensionMismatchError, InputFormatError, UnknownIdError
from embrecall.index import VectorIndex
from embrecall.index.faiss_index import _first_outside, _prepare
from embrecall.recommender import Recommender
from helpers import planted_clusters, require_native

K = 10


@pytest.fixture(scope="module")
def vectors():
    return planted_clusters(n=1500, dim=16)[0]


@pytest.fixture(scope="module", params=["Flat", "IVF16,Flat", "HNSW16"])
def index(request, vectors):
    built = VectorIndex.build(vectors, "ip", request.param, mips="native", progress=False)
    if "IVF" in request.param:
        built.search_params = {"nprobe": 4}
    return built


def _exclusions(n: int, seed: int) -> list:
    rng = np.random.default_rng(seed)
    some = rng.integers(0, n, 40)
    return [
        some,  # unsorted, with repeats
        np.sort(np.unique(some)),
        np.array([-1, 3, n + 5, 3], dtype=np.int64),  # rows not held are ignored
        [int(r) for r in some[:5]],  # a plain list
        np.empty(0, dtype=np.int64),
    ]


def test_one_query_answers_as_its_row_of_a_batch(index, vectors):
    queries = vectors[:6] * np.float32(1.5)
    for j, exclude in enumerate(_exclusions(len(vectors), seed=3)):
        batch_s, batch_r = index.search(queries, K, exclude=[exclude] * len(queries))
        for i in range(len(queries)):
            s, r = index.search(queries[i : i + 1], K, exclude=[exclude])
            assert s.shape == r.shape == (1, K)
            assert r[0].tolist() == batch_r[i].tolist(), (j, i)
            np.testing.assert_array_equal(s[0], batch_s[i])
            held = {int(x) for x in np.asarray(exclude)}
            assert not held & set(r[0].tolist())


def test_one_query_with_most_rows_excluded_still_returns_what_exists(index, vectors):
    n = len(vectors)
    exclude = np.arange(3, n)  # beyond the over-fetch limit: the selector path
    s, r = index.search(vectors[:1], K, exclude=[exclude])
    found = r[0][r[0] >= 0].tolist()
    if "HNSW" in index.spec:  # a graph cut down to 3 nodes may not reach all of them
        assert found and set(found) <= {0, 1, 2}
    else:
        assert sorted(found) == [0, 1, 2]
    assert np.isnan(s[0][r[0] < 0]).all() and r[0][: len(found)].min() >= 0


def test_one_query_widens_when_the_over_fetch_finds_too_few(vectors):
    index = VectorIndex.build(vectors, "ip", "IVF16,Flat", mips="native", progress=False)
    index.search_params = {"nprobe": 1}
    one_list = faiss.SearchParametersIVF(nprobe=1)  # what a search with nprobe 1 scans
    scanned = index.index.search(vectors[:1], len(vectors), params=one_list)[1][0]
    scanned = scanned[scanned >= 0]
    assert K < len(scanned) <= 256 + K  # one list: the over-fetch reaches its end
    exclude = scanned[: len(scanned) - 3]  # 3 survive there: the search must widen
    s, r = index.search(vectors[:1], K, exclude=[exclude])
    kept = r[0].tolist()
    assert min(kept) >= 0 and len(set(kept)) == K and not set(kept) & set(exclude.tolist())
    assert np.isfinite(s).all()


def test_first_outside_reads_until_k_survive():
    rows = np.array([[5, 7, 1, 9, -1, -1]])
    scores = np.array([[9.0, 8.0, 7.0, 6.0, np.nan, np.nan]], dtype=np.float32)
    s, r = _first_outside(scores, rows, np.array([7]), 2)
    assert r.tolist() == [[5, 1]] and s.tolist() == [[9.0, 7.0]]
    s, r = _first_outside(scores, rows, [-1, 42], 3)  # none of the top 3 excluded: a view
    assert r.tolist() == [[5, 7, 1]] and s.shape == (1, 3)
    assert _first_outside(scores, rows, [5], 4) is None  # padding reached: fewer than k
    assert _first_outside(scores, rows, [5, 7, 1], 2) is None


def test_a_query_of_the_wrong_shape_never_reaches_faiss(index):
    with pytest.raises(DimensionMismatchError, match=r"\(m, 16\)"):
        index.search(np.ones((1, 12), dtype=np.float32), K)
    with pytest.raises(DimensionMismatchError):
        index.search(np.ones(16, dtype=np.float32), K)


def test_one_cosine_query_is_normalised_to_the_same_bits_as_a_batch():
    rng = np.random.default_rng(0)
    for d in (3, 16, 64, 129):
        x = (rng.standard_normal((50, d)) * rng.lognormal(0, 2, (50, 1))).astype(np.float32)
        x[7] = 0
        batch = _prepare(x, "cosine")
        for i in range(len(x)):
            one = _prepare(x[i : i + 1], "cosine")
            assert one.flags.c_contiguous and one.dtype == np.float32
            np.testing.assert_array_equal(one, batch[i : i + 1])
            assert one is not x  # a copy: the caller's vector is left alone


def test_single_vector_checks_hold_at_the_edges():
    tiny = np.full(8, 1e-30, dtype=np.float32)  # its squared norm underflows float32, not 0
    out, single = check_query_vectors(tiny, 8, nonzero=True)
    assert single and out.shape == (1, 8)
    with pytest.raises(Exception, match="too large"):
        check_query_vectors(np.full(8, 3e19, dtype=np.float32), 8)
    with pytest.raises(Exception, match="NaN"):
        check_query_vectors(np.array([1, np.nan, 0, 0], dtype=np.float32), 4)
    with pytest.raises(Exception, match="zeros|zero"):
        check_query_vectors(np.zeros(4, dtype=np.float32), 4, nonzero=True)


def test_one_id_finds_its_row_in_every_form():
    space = Embeddings([40, 10, 30], np.eye(3, dtype=np.float32) + 1)
    for form in (10, np.int64(10), np.int32(10), "10", " 10"):
        assert space.row_of(form) == 1
    with pytest.raises(UnknownIdError, match="unknown user id 7"):
        space.row_of(7, what="user id")
    with pytest.raises(UnknownIdError):
        space.row_of(2**70)
    for bad in (True, 1.5, "ten"):
        with pytest.raises(InputFormatError):
            space.row_of(bad)
    words = Embeddings(["b", "a"], np.eye(2, dtype=np.float32) + 1)
    assert words.row_of("a") == 1 and words.row_of(np.str_("b")) == 0


def test_recommender_single_ids_answer_as_a_batch(vectors):
    items = Embeddings(np.arange(len(vectors)) * 3 + 1, vectors)
    users = Embeddings(np.arange(40) + 7, vectors[:40] + np.float32(0.1))
    rec = Recommender.build(items, users, index="IVF16,Flat", progress=False)
    user_ids = users.ids[:8].tolist()
    listed = items.ids[[0, 5, 9, 100]].tolist() + [-5, 10**20]  # unknown ids are ignored
    batch = rec.recommend(user_ids, K, exclude=listed)
    for i, user in enumerate(user_ids):
        for form in (user, np.int64(user)):
            one = rec.recommend(form, K, exclude=listed)
            assert one.ids.tolist() == batch.ids[i].tolist()
            assert not set(one.ids.tolist()) & set(listed)
    same = rec.similar_items(items.ids[:5].tolist(), K)
    for i, item in enumerate(items.ids[:5].tolist()):
        assert rec.similar_items(item, K).ids.tolist() == same.ids[i].tolist()
        assert item not in rec.similar_items(item, K).ids


def test_a_graph_reads_a_short_exclusion_off_its_beam_and_uses_a_selector_beyond_it(vectors):
    """Within efSearch, k + |excluded| walks the same graph: the over-fetched answer less the
    excluded rows is the selector's answer. Beyond it, the selector path answers."""
    graph = VectorIndex.build(vectors, "ip", "HNSW16", mips="native", progress=False)
    graph.search_params = {"efSearch": 48}
    rng = np.random.default_rng(4)
    for row in rng.integers(0, len(vectors), 30).tolist():
        q = vectors[row : row + 1]
        for excluded in ([row], rng.integers(0, len(vectors), 5).tolist()):
            assert graph._scans_alike(K + len(excluded), graph.search_params)
            s, r = graph.search(q, K, exclude=[np.asarray(excluded)])
            assert not set(r[0].tolist()) & set(excluded) and (r[0] >= 0).all()
            beam, graph._beam = graph._beam, None  # the selector path, for the same query
            try:
                s_sel, r_sel = graph.search(q, K, exclude=[np.asarray(excluded)])
            finally:
                graph._beam = beam
            # the same graph walk: the same scores (rows may differ only between exact ties)
            np.testing.assert_allclose(s[0], s_sel[0], rtol=1e-5)
        many = rng.choice(len(vectors), 60, replace=False)
        assert not graph._scans_alike(K + len(many), graph.search_params)
        _, r = graph.search(q, K, exclude=[many])
        assert not set(r[0].tolist()) & set(many.tolist()) and (r[0] >= 0).all()


@pytest.mark.parametrize("marking", ["bitmap", "batch"])
def test_reused_selector_kits_answer_as_a_fresh_faiss_selector_on_concurrent_threads(
    vectors, marking
):
    """Exclusions inside faiss reuse a pooled IDSelectorNot and its parameters per query: on 8
    threads at once, each query's answer is raw faiss's with its own freshly made selector, and
    the pool keeps no more kits than searches ran at once. With the C loops a kit marks rows in
    its bitmap and clears them after: no kit comes back with a row still marked."""
    from concurrent.futures import ThreadPoolExecutor

    from embrecall.index.exclusion import _POOL_MAX, ExclusionSelectors
    from embrecall.index.structure import search_parameters

    if marking == "bitmap":
        require_native()
    graph = VectorIndex.build(vectors, "ip", "HNSW16", mips="native", progress=False)
    graph.search_params = {"efSearch": 32}
    graph._exclusions = ExclusionSelectors(graph._make_params, bitmaps=marking == "bitmap")
    rng = np.random.default_rng(9)
    cases = []
    for i in range(200):
        rows = rng.integers(0, len(vectors), int(rng.integers(30, 120)))
        if i % 5 == 0:  # rows the index does not hold, and repeats, do no harm
            rows = np.concatenate([rows, [-7, len(vectors) + 3], rows[:4]])
        cases.append((int(rng.integers(0, len(vectors))), rows, 16 + 8 * (i % 3)))

    def expected(row, rows, ef):
        held = rows[(rows >= 0) & (rows < len(vectors))]
        sel = faiss.IDSelectorNot(faiss.IDSelectorBatch(held))
        params = search_parameters(graph.index, {"efSearch": ef}, sel)
        return graph.index.search(vectors[row : row + 1], K, params=params)

    def ours(case):
        row, rows, ef = case
        return graph.search(vectors[row : row + 1], K, exclude=[rows], params={"efSearch": ef})

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(ours, cases * 3))
    for (row, rows, ef), (s, r) in zip(cases * 3, answers, strict=True):
        want_s, want_r = expected(row, rows, ef)
        assert not set(r[0].tolist()) & set(rows.tolist())
        np.testing.assert_allclose(s[0], want_s[0], rtol=1e-5)  # rows may differ on exact ties
    kits = graph._exclusions._free
    assert 1 <= len(kits) <= min(8, _POOL_MAX)
    for kit in kits:
        assert (kit.bitmap is not None) == (marking == "bitmap")
        assert kit.bitmap is None or not kit.bitmap.any()
