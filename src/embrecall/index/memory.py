"""How much memory an index will take, before it is built, and what a size like ``8G`` means.

The estimate walks the (empty) faiss index a factory string makes: per-vector codes, ids and
graph links, plus what does not grow with ``n`` (centroids, codebooks, transforms). It is checked
against the built size in the tests (within 25%); it exists so that a build that cannot fit is
refused before an hour of training, not after.
"""

from __future__ import annotations

import re

import faiss

from embrecall.errors import InvalidArgumentError

_UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?\s*$", re.IGNORECASE)
_ID_BYTES = 8  # faiss stores an int64 id per vector in IVF lists
_FAST_SCAN_BLOCK = 32  # fast-scan codes are packed in blocks of 32 vectors


def parse_size(text: str | int) -> int:
    """``"8G"``, ``"512M"``, ``"1.5GiB"``, ``"2000000"`` -> bytes (binary units)."""
    if isinstance(text, int) and not isinstance(text, bool):
        if text <= 0:
            raise InvalidArgumentError(f"a memory size must be positive, got {text}")
        return text
    match = _SIZE.match(str(text))
    if not match:
        raise InvalidArgumentError(
            f"cannot read {text!r} as a memory size; write e.g. 8G, 512M or 2000000 (bytes)"
        )
    size = int(float(match.group(1)) * _UNITS[match.group(2).upper()])
    if size <= 0:
        raise InvalidArgumentError(f"a memory size must be positive, got {text!r}")
    return size


def format_size(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(size) < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def estimate_index_bytes(index: faiss.Index, n: int) -> int:
    """Bytes that ``index`` (empty, from ``faiss.index_factory``) will hold with ``n`` vectors."""
    inner = faiss.downcast_index(index)
    if isinstance(inner, faiss.IndexPreTransform):
        fixed = 0
        for i in range(inner.chain.size()):
            vt = faiss.downcast_VectorTransform(inner.chain.at(i))
            fixed += 4 * vt.d_in * vt.d_out
        return fixed + estimate_index_bytes(inner.index, n)
    if isinstance(inner, faiss.IndexRefine):
        return estimate_index_bytes(inner.base_index, n) + estimate_index_bytes(
            inner.refine_index, n
        )
    if isinstance(inner, faiss.IndexHNSW):
        m = inner.hnsw.nb_neighbors(1)
        # level 0 keeps 2M links; the upper levels add about one level's M links in 1/M of
        # the vectors; plus an offset (8) and a level (4) per vector.
        links = 4 * (2 * m + 1) + 12
        return estimate_index_bytes(inner.storage, n) + n * links
    if isinstance(inner, faiss.IndexIVF):
        quantizer = estimate_index_bytes(inner.quantizer, inner.nlist)
        per_vector = _code_bytes(inner) + _ID_BYTES
        padding = 0
        if isinstance(inner, faiss.IndexIVFFastScan):
            padding = inner.nlist * _FAST_SCAN_BLOCK * _code_bytes(inner) // 2
        return quantizer + n * per_vector + padding + _codebook_bytes(inner)
    if isinstance(inner, faiss.IndexFlatCodes) or hasattr(inner, "code_size"):
        return n * _code_bytes(inner) + _codebook_bytes(inner)
    return n * 4 * inner.d


def bytes_per_vector(index: faiss.Index, n: int) -> float:
    return estimate_index_bytes(index, n) / max(n, 1)


def _code_bytes(index: faiss.Index) -> int:
    if isinstance(index, (faiss.IndexFastScan, faiss.IndexIVFFastScan)):
        m = index.M2 if hasattr(index, "M2") else index.M
        return (m * index.nbits + 7) // 8
    size = getattr(index, "code_size", None)
    return int(size) if size is not None else 4 * index.d


def _codebook_bytes(index: faiss.Index) -> int:
    pq = getattr(index, "pq", None)
    if pq is None:
        return 0
    return 4 * pq.M * pq.ksub * pq.dsub
