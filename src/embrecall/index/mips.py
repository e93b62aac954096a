"""Maximum inner product search through nearest-neighbour search: the norm augmentation.

Matrix-factorisation and two-tower item vectors have very different norms (popular items are
long), and inner product is not a metric: an IVF index clusters and probes by geometry, so on raw
inner product it misses the long vectors that win. The augmentation (Bachrach et al., 2014) maps
every item ``x`` to ``[x, sqrt(M^2 - |x|^2)]`` (``M`` the largest norm) and every query ``q`` to
``[q, 0]``; then ``|q' - x'|^2 = |q|^2 + M^2 - 2 q.x``, so the nearest neighbour in L2 is the
largest inner product, and the inner product is recovered exactly from the distance.

Measured on skewed-norm recommender vectors (``benchmarks/bench_scale.py``), it lifts IVF recall
at the same ``nprobe`` (0.58 -> 0.92 at nprobe 16 of 1024 lists) but lowers HNSW recall (the extra
coordinate dominates and flattens the graph's neighbourhoods), so it is used for IVF kinds and HNSW
keeps faiss's native inner-product graph.
"""

from __future__ import annotations

from dataclasses import dataclass

import faiss
import numpy as np

from embrecall.errors import InvalidArgumentError

_PAD_MULTIPLES = (2, 4, 8, 16, 32, 64)
_MIN_MARGIN = 1e-6  # keeps sqrt(M^2 - |x|^2) real for the longest vector under float rounding


@dataclass(frozen=True)
class NormAugmentation:
    """The transform of one index: the original dimension, ``M`` and the padded dimension.

    ``index_dim`` is ``dim + 1``, or more when the index's factory string needs a dimension that
    divides its product quantizer (``PQ32`` on 64 dims: 66 is not a multiple of 32, 96 is); the
    padding is zeros on both sides, which changes no distance.
    """

    dim: int
    max_norm: float
    index_dim: int

    @classmethod
    def fit(cls, vectors: np.ndarray, index_dim: int) -> NormAugmentation:
        norms = np.linalg.norm(vectors, axis=1) if len(vectors) else np.zeros(1)
        max_norm = float(norms.max()) * (1 + _MIN_MARGIN) + _MIN_MARGIN
        return cls(int(vectors.shape[1]), max_norm, int(index_dim))

    def items(self, vectors: np.ndarray) -> np.ndarray:
        """``[x, sqrt(M^2 - |x|^2), 0...]`` for every row: all rows now have norm ``M``."""
        n = vectors.shape[0]
        out = np.zeros((n, self.index_dim), dtype=np.float32)
        out[:, : self.dim] = vectors
        sq = np.einsum("ij,ij->i", vectors, vectors, dtype=np.float64)
        out[:, self.dim] = np.sqrt(np.maximum(self.max_norm**2 - sq, 0.0))
        return out

    def queries(self, queries: np.ndarray) -> np.ndarray:
        """``[q, 0, 0...]``."""
        out = np.zeros((queries.shape[0], self.index_dim), dtype=np.float32)
        out[:, : self.dim] = queries
        return out

    def inner_products(self, distances: np.ndarray, queries: np.ndarray) -> np.ndarray:
        """``q.x`` from the squared L2 distances between augmented queries and items, in place.

        float32 throughout, with a scalar path for one query (this runs on every search: the
        generic einsum path cost 9 us a call, this one 5): the rounding, about 1e-7 of ``M^2``, is
        far below the distances' own error in any compressed index.
        """
        m_sq = self.max_norm**2
        if len(queries) == 1:
            offset = float(queries[0] @ queries[0]) + m_sq
        else:
            offset = (queries * queries).sum(axis=1, keepdims=True) + np.float32(m_sq)
        np.subtract(offset, distances, out=distances)
        distances *= 0.5
        return distances

    def to_manifest(self) -> dict:
        return {
            "transform": "norm-augmentation",
            "max_norm": self.max_norm,
            "index_dim": self.index_dim,
        }

    @classmethod
    def from_manifest(cls, meta: dict | None, dim: int) -> NormAugmentation | None:
        if not meta:
            return None
        if meta.get("transform") != "norm-augmentation":
            raise InvalidArgumentError(f"unknown inner-product transform {meta.get('transform')!r}")
        return cls(int(dim), float(meta["max_norm"]), int(meta["index_dim"]))


MODES = ("auto", "augment", "native")


def augmented_dim(dim: int, spec: str, metric: str, mode: str = "auto") -> int | None:
    """The dimension an index of ``spec`` is built in under the augmentation, or None when it
    searches the raw vectors (any metric but ``ip``, graph and flat kinds, or ``mode="native"``).
    """
    if mode not in MODES:
        raise InvalidArgumentError(f"mips must be one of {', '.join(MODES)}, not {mode!r}")
    if metric != "ip" or mode == "native":
        return None
    try:
        index_dim = padded_dim(dim + 1, spec, faiss.METRIC_L2)
    except InvalidArgumentError:
        if mode == "augment":
            raise
        return None
    if mode == "augment" or wants_augmentation(faiss.index_factory(index_dim, spec)):
        return index_dim
    return None


def padded_dim(dim: int, spec: str, faiss_metric: int) -> int:
    """The smallest dimension >= ``dim`` that the factory string ``spec`` accepts."""
    for candidate in [dim] + [-(-dim // m) * m for m in _PAD_MULTIPLES]:
        try:
            faiss.index_factory(candidate, spec, faiss_metric)
        except RuntimeError:
            continue
        return candidate
    raise InvalidArgumentError(
        f"index spec {spec!r} accepts no dimension near {dim} for the inner-product transform"
    )


def wants_augmentation(index: faiss.Index) -> bool:
    """IVF kinds gain from the augmentation; graphs and flat codes search inner product natively."""
    from embrecall.index.structure import core_index

    return isinstance(core_index(index), faiss.IndexIVF)
