"""The blockwise exact answer equals exact_search's, whatever the block size."""

from __future__ import annotations

import numpy as np
import pytest

from embrecall.evaluate.oracle import exact_topk
from embrecall.index import exact_search


@pytest.mark.parametrize("metric", ["ip", "cosine", "l2"])
@pytest.mark.parametrize("block_bytes", [1, 4096, 1 << 30])
def test_blockwise_matches_exact_search(metric, block_bytes):
    rng = np.random.default_rng(3)
    base = (rng.standard_normal((700, 12)) * rng.lognormal(0, 0.4, (700, 1))).astype(np.float32)
    queries = rng.standard_normal((9, 12)).astype(np.float32)
    exclude = [rng.choice(700, size=int(rng.integers(0, 40)), replace=False) for _ in range(9)]
    exclude[2] = None
    want_s, want_r = exact_search(base, queries, 25, metric, exclude)
    got_s, got_r = exact_topk(base, queries, 25, metric, exclude, block_bytes=block_bytes)
    np.testing.assert_array_equal(got_r, want_r)
    np.testing.assert_allclose(got_s, want_s, rtol=1e-6)


def test_padding_when_exclusions_leave_fewer_than_k():
    base = np.eye(4, dtype=np.float32)
    scores, rows = exact_topk(base, base[:1], 4, "ip", [np.array([0, 1])], block_bytes=1)
    assert rows.tolist() == [[2, 3, -1, -1]]  # a tie keeps row order, as exact_search does
    assert np.isnan(scores[0, 2:]).all()
