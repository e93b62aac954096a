"""The batch CPU kernel's old home; it lives in :mod:`embrecall.index.kernel` now.

Kept so that ``from embrecall.batch.topk import topk_exact`` (benchmarks, older scripts) still
works. ``topk_exact`` keeps its old argument order, queries first; new code calls
:func:`~embrecall.index.kernel.exact_knn` (base first, as every exact function of ``index``).
"""

from __future__ import annotations

import numpy as np

from embrecall.index.kernel import DEFAULT_BASE_CHUNK, csr_from_lists, exact_knn, gather_rows

__all__ = ["DEFAULT_BASE_CHUNK", "csr_from_lists", "gather_rows", "topk_exact"]


def topk_exact(
    queries: np.ndarray,
    base: np.ndarray,
    k: int,
    metric: str,
    *,
    exclude: tuple[np.ndarray, np.ndarray] | None = None,
    base_chunk: int = DEFAULT_BASE_CHUNK,
    prepared: bool = False,
    base_sqnorms: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``exact_knn(base, queries, ...)`` under its old name and argument order."""
    return exact_knn(
        base,
        queries,
        k,
        metric,
        exclude=exclude,
        base_chunk=base_chunk,
        prepared=prepared,
        base_sqnorms=base_sqnorms,
    )
