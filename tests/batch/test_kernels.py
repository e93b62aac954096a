"""The exact top-k kernels and the packed value format, against the numpy oracle."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from embrecall.batch.codec import pack_rows, unpack, value_bytes
from embrecall.batch.gpu import cuda_available
from embrecall.batch.topk import csr_from_lists, gather_rows, topk_exact
from embrecall.errors import InputFormatError, InvalidArgumentError
from embrecall.index import exact_search


def _random_case(seed: int, n: int = 700, m: int = 40, d: int = 12):
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((n, d)).astype(np.float32)
    base *= rng.lognormal(0, 0.4, (n, 1)).astype(np.float32)  # skewed norms, as MF vectors
    queries = rng.standard_normal((m, d)).astype(np.float32)
    exclude = [rng.choice(n, rng.integers(0, min(n, 200)), replace=False) for _ in range(m)]
    return base, queries, exclude


def assert_same_topk(scores, rows, ref_scores, ref_rows, rtol=1e-5):
    """Equal results, ties tolerated: the scores agree, and where rows differ the scores tie."""
    assert rows.shape == ref_rows.shape
    np.testing.assert_array_equal(rows < 0, ref_rows < 0)
    valid = ref_rows >= 0
    np.testing.assert_allclose(scores[valid], ref_scores[valid], rtol=rtol, atol=1e-5)
    differ = valid & (rows != ref_rows)
    np.testing.assert_allclose(scores[differ], ref_scores[differ], rtol=rtol, atol=1e-5)


@pytest.mark.parametrize("metric", ["ip", "cosine", "l2"])
@pytest.mark.parametrize("chunk", [64, 100_000])
def test_topk_exact_equals_the_oracle_with_exclusions(metric, chunk):
    base, queries, exclude = _random_case(seed=1)
    scores, rows = topk_exact(
        queries, base, 25, metric, exclude=csr_from_lists(exclude), base_chunk=chunk
    )
    ref_scores, ref_rows = exact_search(base, queries, 25, metric, exclude=exclude)
    assert_same_topk(scores, rows, ref_scores, ref_rows)
    for q, excluded in enumerate(exclude):
        assert not np.isin(rows[q], excluded).any()


def test_topk_pads_when_exclusions_leave_fewer_than_k():
    base, queries, _ = _random_case(seed=2, n=30, m=3)
    exclude = [np.arange(25), np.arange(30), np.array([], dtype=np.int64)]
    scores, rows = topk_exact(queries, base, 10, "ip", exclude=csr_from_lists(exclude))
    assert (rows[0] >= 0).sum() == 5 and (rows[1] >= 0).sum() == 0 and (rows[2] >= 0).all()
    assert np.isnan(scores[rows < 0]).all() and np.isfinite(scores[rows >= 0]).all()
    assert set(rows[0][rows[0] >= 0]) == set(range(25, 30))


def test_topk_k_beyond_the_base_returns_the_base():
    base, queries, _ = _random_case(seed=3, n=7, m=2)
    scores, rows = topk_exact(queries, base, 50, "ip")
    assert rows.shape == (2, 7)
    assert sorted(rows[0]) == list(range(7))
    assert (np.diff(scores, axis=1) <= 0).all()  # best first


def test_topk_refuses_bad_arguments():
    base, queries, _ = _random_case(seed=4, n=10, m=2)
    with pytest.raises(InvalidArgumentError, match="k must be a positive integer"):
        topk_exact(queries, base, 0, "ip")
    with pytest.raises(InvalidArgumentError, match="metric"):
        topk_exact(queries, base, 3, "dot")
    with pytest.raises(InvalidArgumentError, match="exclusions cover 1 queries, not 2"):
        topk_exact(queries, base, 3, "ip", exclude=csr_from_lists([np.array([1])]))


def test_gather_rows_takes_csr_rows_in_the_order_asked():
    indptr, cols = csr_from_lists([np.array([1, 2]), np.array([], np.int64), np.array([7, 8, 9])])
    sub_ptr, sub_cols = gather_rows(indptr, cols, np.array([2, 0, 1, 2]))
    assert sub_ptr.tolist() == [0, 3, 5, 5, 8]
    assert sub_cols.tolist() == [7, 8, 9, 1, 2, 7, 8, 9]


@pytest.mark.parametrize("n", [700, 20_001])  # 20,001: the grouped selection, a ragged group
def test_torch_kernel_equals_the_cpu_kernel(n):
    pytest.importorskip("torch", reason="torch is not installed (embrecall[gpu])")
    from embrecall.batch.gpu import TorchExact
    from embrecall.index.exact import prepare

    base, queries, exclude = _random_case(seed=5, n=n)
    exclude[0] = np.arange(n - 4)  # leaves 4: fewer than k, padded
    for metric in ("ip", "cosine", "l2"):
        ref_scores, ref_rows = exact_search(base, queries, 25, metric, exclude=exclude)
        for chunk, select in ((None, "grouped"), (8192, "grouped"), (None, "topk")):
            engine = TorchExact(
                prepare(base, metric), metric, device="cpu", base_chunk=chunk, select=select
            )
            scores, rows = engine.search(prepare(queries, metric), 25, csr_from_lists(exclude))
            assert_same_topk(scores, rows, ref_scores, ref_rows, rtol=1e-4)
            assert (rows[0] >= 0).sum() == 4


@pytest.mark.skipif(not cuda_available(), reason="no CUDA GPU here (torch sees none)")
def test_torch_kernel_on_cuda_equals_the_oracle():
    from embrecall.batch.gpu import TorchExact
    from embrecall.index.exact import prepare

    base, queries, exclude = _random_case(seed=6, n=5000, m=300)
    engine = TorchExact(prepare(base, "ip"), "ip", device="cuda")
    scores, rows = engine.search(queries, 50, csr_from_lists(exclude))
    ref_scores, ref_rows = exact_search(base, queries, 50, "ip", exclude=exclude)
    assert_same_topk(scores, rows, ref_scores, ref_rows, rtol=1e-4)


# -- packed values -----------------------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(
        st.lists(st.integers(-(2**63), 2**63 - 1).filter(lambda x: x != -1), max_size=6),
        min_size=1,
        max_size=5,
    )
)
def test_int_values_round_trip(rows):
    width = max(1, max(len(r) for r in rows))
    ids = np.full((len(rows), width), -1, dtype=np.int64)
    scores = np.full((len(rows), width), np.nan, dtype=np.float32)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = r
        scores[i, : len(r)] = np.arange(len(r), 0, -1)
    counts = np.array([len(r) for r in rows])
    for i, value in enumerate(pack_rows(ids, scores, counts)):
        got_ids, got_scores = unpack(value)
        assert got_ids.tolist() == rows[i]
        assert got_scores.tolist() == list(range(len(rows[i]), 0, -1))
        assert len(value) == value_bytes(len(rows[i]), "int")


def test_string_values_round_trip_and_corrupt_values_are_refused():
    ids = np.array([["é-1", "b"], ["only", None]], dtype=object)
    scores = np.array([[0.5, 0.25], [1.0, np.nan]], dtype=np.float32)
    values = pack_rows(ids, scores, np.array([2, 1]))
    got = unpack(values[0])
    assert got[0].tolist() == ["é-1", "b"] and got[1].tolist() == [0.5, 0.25]
    assert unpack(values[1])[0].tolist() == ["only"]
    with pytest.raises(InputFormatError, match="too short"):
        unpack(b"\x01")
    with pytest.raises(InputFormatError, match="format"):
        unpack(b"\x09i" + values[0][2:])
    with pytest.raises(InputFormatError, match="trailing"):
        unpack(values[0] + b"x")
