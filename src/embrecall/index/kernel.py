"""Exact top-k of many queries against a base, in blocks, with per-query excluded rows.

The fast member of the exact family (batch recall, tuning's ground truth); the numpy oracle in
:mod:`embrecall.index.exact` checks it and shares no code with it. On CPUs: one BLAS matrix
product per (query block, base chunk), the excluded cells of that product set to -inf, and the
chunk folded into one faiss heap per query (``HeapArray.addn``, OpenMP-parallel over queries).
It is what faiss's own flat search does, with one difference that matters here: exclusions are
applied exactly inside the product, so nobody has to guess how far to over-fetch. On a GPU (or
when asked), torch meets the same contract (:mod:`embrecall.index.torch_exact`). Nothing here
knows external ids.
"""

from __future__ import annotations

import faiss
import numpy as np

from embrecall.errors import InvalidArgumentError
from embrecall.index.exact import prepare

# Base rows per matrix product: a (1024 x 65,536) float32 block of scores is 256 MiB, which keeps
# the working set bounded whatever the catalogue size while staying large enough for BLAS.
DEFAULT_BASE_CHUNK = 65_536
# Bytes of scores one CPU matrix product may take (query block x base chunk x 4) when the caller
# leaves the chunk to the kernel.
_CPU_SCORE_BYTES = 256 << 20


def gather_rows(indptr: np.ndarray, cols: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, ...]:
    """The CSR rows ``rows`` of ``(indptr, cols)`` as a new, compact CSR.

    Parameters
    ----------
    indptr : (n + 1,) int64
    cols : (nnz,) int64
    rows : (b,) int64
        Rows to take, in the order wanted.

    Returns
    -------
    sub_indptr : (b + 1,) int64, sub_cols : (nnz',) int64
    """
    rows = np.asarray(rows, dtype=np.int64)
    starts, ends = indptr[rows], indptr[rows + 1]
    lengths = ends - starts
    sub_indptr = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(lengths, out=sub_indptr[1:])
    # One vectorised gather: position i of the output reads cols[starts[row(i)] + offset(i)].
    offsets = np.arange(sub_indptr[-1], dtype=np.int64) - np.repeat(sub_indptr[:-1], lengths)
    return sub_indptr, cols[np.repeat(starts, lengths) + offsets]


def csr_from_lists(lists: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per-query row arrays as CSR ``(indptr (b + 1,), cols (nnz,))``."""
    indptr = np.zeros(len(lists) + 1, dtype=np.int64)
    np.cumsum([len(x) for x in lists], out=indptr[1:])
    cols = np.concatenate(lists).astype(np.int64) if indptr[-1] else np.empty(0, np.int64)
    return indptr, cols


class ExactKernel:
    """Exact search of one base, prepared once and searched by many query blocks.

    Parameters
    ----------
    base : (n, d) float array
    metric : {"ip", "cosine", "l2"}
    device : str, optional
        ``None``: the BLAS kernel on CPUs (see the module notes). A torch device (``"cuda"``,
        ``"cuda:1"``, ``"cpu"``): :class:`~embrecall.index.torch_exact.TorchExact` there.
    prepared : bool
        ``base`` is already unit length (cosine); skips normalising again.
    base_sqnorms : (n,) float32, optional
        Squared norms of ``base`` for l2 on CPUs, when the caller holds them already.
    """

    def __init__(
        self,
        base: np.ndarray,
        metric: str,
        *,
        device: str | None = None,
        prepared: bool = False,
        base_sqnorms: np.ndarray | None = None,
    ) -> None:
        if metric not in ("ip", "cosine", "l2"):
            raise InvalidArgumentError(f"metric must be ip, cosine or l2, not {metric!r}")
        self.metric, self.device = metric, device
        base = base if prepared else prepare(base, metric)
        self.base = np.ascontiguousarray(base, dtype=np.float32)
        self.torch = None
        if device is not None:
            from embrecall.index.torch_exact import TorchExact

            self.torch = TorchExact(self.base, metric, device=device)
        elif metric == "l2" and base_sqnorms is None:
            base_sqnorms = np.einsum("ij,ij->i", self.base, self.base)
        self.sqnorms = base_sqnorms

    def search(
        self,
        queries: np.ndarray,
        k: int,
        exclude: tuple[np.ndarray, np.ndarray] | None = None,
        *,
        prepared: bool = False,
        base_chunk: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` base rows of each query; see :func:`exact_knn`."""
        if k < 1:
            raise InvalidArgumentError(f"k must be a positive integer, got {k}")
        queries = queries if prepared else prepare(queries, self.metric)
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if self.torch is not None:
            return self.torch.search(queries, k, exclude)
        if base_chunk is None:
            # The score block (queries x chunk x 4 bytes) stays near _CPU_SCORE_BYTES.
            per_query = 4 * max(1, len(queries))
            base_chunk = max(1024, min(DEFAULT_BASE_CHUNK * 4, _CPU_SCORE_BYTES // per_query))
        return _blas_topk(queries, self.base, k, self.metric, exclude, base_chunk, self.sqnorms)


def exact_knn(
    base: np.ndarray,
    queries: np.ndarray,
    k: int,
    metric: str,
    *,
    exclude: tuple[np.ndarray, np.ndarray] | None = None,
    device: str | None = None,
    base_chunk: int | None = None,
    prepared: bool = False,
    base_sqnorms: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` base rows of each query, never returning an excluded row.

    The fast member of the exact family; :func:`~embrecall.index.exact_search` is its oracle.

    Parameters
    ----------
    base : (n, d) float32
    queries : (b, d) float32
    k : int, >= 1
    metric : {"ip", "cosine", "l2"}
        ip and cosine: higher is better; l2: the score is the squared distance, lower is better.
    exclude : (indptr (b + 1,), cols (nnz,)), optional
        CSR of the base rows each query must not get back (seen items, the query itself).
    device : str, optional
        ``None``: BLAS products folded into faiss heaps on CPUs; a torch device: torch there.
    base_chunk : int, optional
        Base rows per matrix product (CPU); by default sized to the number of queries.
    prepared : bool
        ``queries`` and ``base`` are already unit length (cosine); skips normalising again.
    base_sqnorms : (n,) float32, optional
        Squared norms of ``base`` for l2, computed once by the caller for many blocks.

    Returns
    -------
    scores : (b, k') float32, rows : (b, k') int64, with ``k' = min(k, n)``, best first. A
    query left with fewer candidates than k' is padded with row -1 and score NaN.
    """
    kernel = ExactKernel(base, metric, device=device, prepared=prepared, base_sqnorms=base_sqnorms)
    return kernel.search(queries, k, exclude, prepared=prepared, base_chunk=base_chunk)


def _blas_topk(queries, base, k, metric, exclude, base_chunk, base_sqnorms):
    """The CPU kernel: ``queries`` and ``base`` prepared, float32, C-contiguous; l2 needs
    ``base_sqnorms``."""
    b, n = queries.shape[0], base.shape[0]
    kk = min(int(k), n)
    best_s = np.full((b, kk), -np.inf, dtype=np.float32)
    best_r = np.full((b, kk), -1, dtype=np.int64)
    if b == 0 or kk == 0:
        return best_s, best_r
    ex_rows, ex_cols = _exclusion_pairs(exclude, b)
    heaps = _MaxHeaps(best_s, best_r)
    for start in range(0, n, base_chunk):
        stop = min(n, start + base_chunk)
        block = queries @ base[start:stop].T  # (b, c): the BLAS call that does the work
        if metric == "l2":
            # Rank by 2 q.x - |x|^2 (higher is better); |q|^2 is the same for every x.
            block *= 2
            block -= base_sqnorms[start:stop]
        if ex_cols.size:
            hit = (ex_cols >= start) & (ex_cols < stop)
            block[ex_rows[hit], ex_cols[hit] - start] = -np.inf
        heaps.add(block, start)
    heaps.finish()
    missing = best_r < 0  # never filled: every remaining candidate was excluded
    if metric == "l2":
        best_s = np.einsum("ij,ij->i", queries, queries)[:, None] - best_s
    best_s[missing] = np.nan
    return best_s, best_r


def _exclusion_pairs(exclude, b: int) -> tuple[np.ndarray, np.ndarray]:
    if exclude is None:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    indptr, cols = exclude
    if len(indptr) != b + 1:
        raise InvalidArgumentError(f"exclusions cover {len(indptr) - 1} queries, not {b}")
    rows = np.repeat(np.arange(b, dtype=np.int64), np.diff(indptr))
    return rows, np.asarray(cols, dtype=np.int64)


class _MaxHeaps:
    """One faiss min-heap per query holding its k largest scores, written into given arrays.

    A heap starts full of the lowest float with row -1 and only takes a score strictly above
    its smallest, so a -inf (excluded) cell never enters and an unfilled slot keeps row -1.
    """

    def __init__(self, scores: np.ndarray, rows: np.ndarray) -> None:
        # Every slot equal (lowest float, row -1) is already a valid heap, so faiss's heapify
        # is not called: like reorder, it is an OpenMP region, and on a small block the
        # threads' start-up and spinning cost more than the work (measured 10 ms a call).
        scores.fill(np.finfo(np.float32).min)
        rows.fill(-1)
        self._arrays = (scores, rows)  # the heaps hold raw pointers into these arrays
        self._heaps = faiss.float_minheap_array_t()
        self._heaps.nh, self._heaps.k = scores.shape
        self._heaps.val = faiss.swig_ptr(scores)
        self._heaps.ids = faiss.swig_ptr(rows)

    def add(self, block: np.ndarray, first_row: int) -> None:
        """Fold ``block`` (b, c) float32, C-contiguous, of base rows first_row.. into the heaps."""
        block = np.ascontiguousarray(block, dtype=np.float32)
        self._heaps.addn(block.shape[1], faiss.swig_ptr(block), first_row, 0, block.shape[0])

    def finish(self) -> None:
        """Sort each heap best first, in place in the arrays given (numpy: see __init__)."""
        scores, rows = self._arrays
        order = np.argsort(-scores, axis=1, kind="stable")
        scores[:] = np.take_along_axis(scores, order, axis=1)
        rows[:] = np.take_along_axis(rows, order, axis=1)
