"""Every exact top-k entry point gives the numpy oracle's answer, ties tolerated."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from embrecall.batch.topk import topk_exact
from embrecall.evaluate.oracle import exact_topk as old_exact_topk
from embrecall.index import exact_search
from embrecall.index.exact import exact_topk
from embrecall.index.kernel import ExactKernel, csr_from_lists, exact_knn
from embrecall.index.recall import recall_at_k
from embrecall.index.tuning import exact_rows

K = 15


def _case(seed: int = 3, n: int = 600, m: int = 30, d: int = 10):
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((n, d)).astype(np.float32)
    base *= rng.lognormal(0, 0.4, (n, 1)).astype(np.float32)  # skewed norms, as MF vectors
    base[300:320] = base[0]  # planted exact ties, as identical ALS factors give
    queries = rng.standard_normal((m, d)).astype(np.float32)
    queries[0] = base[0]
    exclude = [rng.choice(n, rng.integers(0, 150), replace=False) for _ in range(m)]
    exclude[1] = np.arange(n - K + 3)  # fewer than K left: padded with -1 / NaN
    return base, queries, exclude


def _torch_cpu_knn(base, queries, k, metric, exclude):
    pytest.importorskip("torch")
    return exact_knn(base, queries, k, metric, exclude=csr_from_lists(exclude), device="cpu")


ENTRY_POINTS = {
    "exact_topk": lambda b, q, k, m, ex: exact_topk(b, q, k, m, ex, block_bytes=1 << 14),
    "evaluate.oracle.exact_topk": lambda b, q, k, m, ex: old_exact_topk(b, q, k, m, ex),
    "exact_knn": lambda b, q, k, m, ex: exact_knn(b, q, k, m, exclude=csr_from_lists(ex)),
    "exact_knn chunked": lambda b, q, k, m, ex: exact_knn(
        b, q, k, m, exclude=csr_from_lists(ex), base_chunk=64
    ),
    "ExactKernel": lambda b, q, k, m, ex: ExactKernel(b, m).search(q, k, csr_from_lists(ex)),
    "exact_knn torch cpu": _torch_cpu_knn,
    "batch.topk.topk_exact": lambda b, q, k, m, ex: topk_exact(
        q, b, k, m, exclude=csr_from_lists(ex)
    ),
}


@pytest.mark.parametrize("metric", ["ip", "cosine", "l2"])
@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
def test_every_exact_entry_point_equals_the_oracle(entry, metric):
    base, queries, exclude = _case()
    want_s, want_r = exact_search(base, queries, K, metric, exclude)
    got_s, got_r = ENTRY_POINTS[entry](base, queries, K, metric, exclude)
    assert got_r.shape == want_r.shape
    np.testing.assert_array_equal(got_r < 0, want_r < 0)
    assert recall_at_k(base, queries, got_r, want_r, metric).min() == 1.0
    np.testing.assert_allclose(got_s, want_s, rtol=1e-4, atol=1e-4)  # NaN where padded
    for rows, ex in zip(got_r, exclude):
        assert not np.isin(rows, ex).any()


@pytest.mark.parametrize("metric", ["ip", "cosine", "l2"])
def test_tuning_truth_equals_the_oracle_without_the_query_row(metric):
    base, _, _ = _case()
    own = np.arange(0, 600, 20)
    queries = base[own]
    want_s, want_r = exact_search(base, queries, K, metric, [np.array([r]) for r in own])
    got_r = exact_rows(base, queries, K, metric, own, device="faiss")
    assert recall_at_k(base, queries, got_r, want_r, metric).min() == 1.0
    assert not (got_r == own[:, None]).any()


def test_importing_the_index_package_loads_no_batch_module():
    code = (
        "import sys, embrecall.index, embrecall.index.tuning, embrecall.index.kernel; "
        "print(sorted(m for m in sys.modules if m.startswith('embrecall.batch')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
