"""Which faiss index to build for a vector set: from its size, dimension, metric, a memory
budget and a latency target.

- Small sets: exact search (``Flat``), as long as a scan of ``n x d`` floats fits the latency
  target (measured about 3.5M multiply-adds per ms on one core of the development machine).
- Inner product (recommend): IVF with fast-scan product quantization (4-bit codes, two
  dimensions per code) re-ranked on exact vectors (``RFlat``), through the norm augmentation.
  On 1M skewed-norm MF-like vectors it reached recall@10 0.95 at 0.17 ms p50 against 0.56 ms
  for hnswlib and 1.16 ms for usearch, and built in 13 s against 42-83 s (docs/scale.md; faiss's
  own HNSW16/HNSW32 needed 0.49/0.88 ms): graphs search inner product poorly when norms vary.
- Cosine and L2 (similar items, similar users): ``HNSW32`` up to a few million vectors, the
  faiss guideline for when memory allows (4d + ~270 bytes a vector); on 1M item-to-item cosine
  queries the compressed IVF stalled at recall 0.79 where HNSW reached 0.95. Its build time
  grows too fast beyond that for a handful of cores, so larger sets go to IVF too.
- Tighter budgets step down: re-ranking on 8-bit scalar codes (``Refine(SQ8)``), then no
  re-ranking, then half as many codes. ``nlist`` is about ``sqrt(n)`` (a flat coarse quantizer
  scans it per query), with an HNSW coarse quantizer above 16384 lists.

An explicit factory string always wins over the choice; a budget still refuses it if it cannot fit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import faiss

from embrecall.errors import InvalidArgumentError
from embrecall.index.memory import estimate_index_bytes, format_size
from embrecall.index.structure import FAISS_METRIC, factory

AUTO = "auto"
DEFAULT_MAX_LATENCY_MS = 1.0
EXACT_MADDS_PER_MS = 3.5e6
HNSW_MAX_VECTORS = 5_000_000
_FLAT_QUANTIZER_UP_TO = 16384


@dataclass(frozen=True)
class IndexChoice:
    """The chosen factory string, why, and what it costs; ``considered`` lists the ladder.

    ``mips`` is how an ``ip`` index of this kind searches inner product (``"auto"``,
    ``"augment"`` or ``"native"``, see :mod:`embrecall.index.mips`). ``race`` holds what each
    candidate measured when the choice was made by racing them (:mod:`embrecall.index.race`).
    """

    spec: str
    reason: str
    memory_bytes: int
    bytes_per_vector: float
    considered: list[dict] = field(default_factory=list)
    mips: str = "auto"
    race: dict | None = None

    def to_dict(self) -> dict:
        out = {
            "spec": self.spec,
            "reason": self.reason,
            "memory_bytes": self.memory_bytes,
            "bytes_per_vector": round(self.bytes_per_vector, 1),
            "considered": self.considered,
            "mips": self.mips,
        }
        if self.race is not None:
            out["race"] = self.race
        return out


@dataclass(frozen=True)
class Candidate:
    """One kind of index the automatic choice may race: its factory string at any size."""

    label: str
    family: str  # "flat" | "ivf" | "hnsw": how its latency grows with n
    mips: str  # how an ip index of this kind searches inner product
    _spec: object = field(repr=False, compare=False)

    def spec(self, n: int) -> str:
        return self._spec(n)


def race_candidates(n: int, d: int, metric: str, mips: str = "auto") -> list[Candidate]:
    """The kinds ``--index auto`` races for ``n`` vectors: exact search, IVF-Flat (on native
    inner product, and through the norm augmentation), IVF fast-scan PQ re-ranked on exact
    vectors, and HNSW graphs on the native metric (up to ``HNSW_MAX_VECTORS``): ``HNSW32``, and
    for inner product also the narrower ``HNSW16``.

    ``mips`` other than ``"auto"`` (a user's explicit choice) applies to every candidate.
    """

    def ivf_flat(size: int) -> str:
        nlist = ivf_flat_lists(size)
        coarse = f"IVF{nlist}_HNSW32" if nlist > _FLAT_QUANTIZER_UP_TO else f"IVF{nlist}"
        return f"{coarse},Flat"

    def ivf_pq(size: int) -> str:
        return ivf_pq_spec(size, d, metric)

    out = [Candidate("exact (Flat)", "flat", "native", lambda size: "Flat")]
    if metric == "ip" and mips == "auto":
        out.append(Candidate("IVF-Flat, native inner product", "ivf", "native", ivf_flat))
        out.append(Candidate("IVF-Flat, norm-augmented", "ivf", "augment", ivf_flat))
    else:
        out.append(Candidate(f"IVF-Flat ({metric})", "ivf", mips, ivf_flat))
    out.append(Candidate("IVF fast-scan PQ, re-ranked", "ivf", mips, ivf_pq))
    if n <= HNSW_MAX_VECTORS:
        native = "native" if mips == "auto" else mips
        if metric == "ip":
            # On inner product with heavily skewed norms (lognormal sigma 1, 200k x 64), faiss's
            # HNSW16 reached recall@10 0.95 at 0.83x HNSW32's p50, level with hnswlib's M 16
            # graph (benchmarks/bench_hnsw_skew.py); on other data the wider graph may win.
            out.append(Candidate(f"HNSW16 ({metric})", "hnsw", native, lambda size: "HNSW16"))
        out.append(Candidate(f"HNSW32 ({metric})", "hnsw", native, lambda size: "HNSW32"))
    return out


def choose_index(
    n: int,
    d: int,
    metric: str,
    *,
    max_memory: int | None = None,
    max_latency_ms: float | None = None,
) -> IndexChoice:
    """The most accurate, fastest index kind for ``n`` vectors of dimension ``d`` that fits."""
    latency = DEFAULT_MAX_LATENCY_MS if max_latency_ms is None else float(max_latency_ms)
    exact_ms = n * d / EXACT_MADDS_PER_MS
    considered: list[dict] = []
    for spec, why in _ladder(n, d, metric, exact_ms, latency):
        size = estimate_bytes(spec, n, d, metric)
        fits = max_memory is None or size <= max_memory
        considered.append({"spec": spec, "memory_bytes": size, "fits": fits})
        if fits:
            budget = f" within {format_size(max_memory)}" if max_memory is not None else ""
            reason = f"{why}; about {format_size(size)}{budget}"
            return IndexChoice(spec, reason, size, size / max(n, 1), considered)
    smallest = min(considered, key=lambda c: c["memory_bytes"])
    raise InvalidArgumentError(
        f"no index kind holds {n:,} x {d} vectors in {format_size(max_memory or 0)}: the smallest, "
        f"{smallest['spec']}, needs about {format_size(smallest['memory_bytes'])}; "
        "raise --max-memory or reduce the dimension"
    )


def estimate_bytes(spec: str, n: int, d: int, metric: str, mips: str = "auto") -> int:
    """Bytes of ``spec`` over ``n`` vectors, in the dimension it will really be built in."""
    from embrecall.index.mips import augmented_dim

    index_dim = augmented_dim(d, spec, metric, mips)
    if index_dim is not None:
        return estimate_index_bytes(factory(index_dim, spec, faiss.METRIC_L2), n)
    return estimate_index_bytes(factory(d, spec, FAISS_METRIC.get(metric, faiss.METRIC_L2)), n)


def _ladder(n: int, d: int, metric: str, exact_ms: float, latency_ms: float):
    """(spec, reason) from the first choice down to the smallest index."""
    if exact_ms <= latency_ms or n < 1000:
        yield "Flat", f"exact search: a scan of {n:,} x {d} takes about {exact_ms:.2f} ms"
    if metric != "ip" and n <= HNSW_MAX_VECTORS:
        yield "HNSW32", f"HNSW graph: {n:,} vectors, exact scan about {exact_ms:.1f} ms"
    nlist = ivf_lists(n)
    coarse = f"IVF{nlist}_HNSW32" if nlist > _FLAT_QUANTIZER_UP_TO else f"IVF{nlist}"
    code_dim = d + 1 if metric == "ip" else d  # the inner-product transform adds a dimension
    m = math.ceil(code_dim / 2)
    what = "inner product through the norm augmentation" if metric == "ip" else metric
    yield (
        ivf_pq_spec(n, d, metric),
        f"IVF fast-scan PQ re-ranked on exact vectors ({what}): {n:,} vectors",
    )
    yield (
        f"{coarse},PQ{m}x4fs,Refine(SQ8)",
        f"IVF fast-scan PQ re-ranked on 8-bit codes ({what}): {n:,} vectors in a tight budget",
    )
    yield f"{coarse},PQ{m}x4fs", f"IVF fast-scan PQ, {m} codes ({what}): a tight budget"
    m_small = math.ceil(code_dim / 4)
    yield (
        f"{coarse},PQ{m_small}x4fs",
        f"IVF fast-scan PQ, {m_small} codes ({what}): a very tight budget",
    )


def ivf_pq_spec(n: int, d: int, metric: str) -> str:
    """IVF fast-scan PQ (4-bit codes, two dimensions each) re-ranked on exact vectors."""
    nlist = ivf_lists(n)
    coarse = f"IVF{nlist}_HNSW32" if nlist > _FLAT_QUANTIZER_UP_TO else f"IVF{nlist}"
    code_dim = d + 1 if metric == "ip" else d  # the inner-product transform adds a dimension
    return f"{coarse},PQ{math.ceil(code_dim / 2)}x4fs,RFlat"


def ivf_flat_lists(n: int) -> int:
    """About 4 sqrt(n) lists for IVF-Flat (faiss's guideline is 4-16 sqrt(n)): its codes are
    whole vectors, so a probed list costs more than a fast-scan one and shorter lists pay."""
    nlist = 2 ** round(math.log2(max(4 * math.sqrt(max(n, 1)), 16)))
    while nlist > 16 and nlist * 39 > n:
        nlist //= 2
    return int(min(nlist, 262144))


def ivf_lists(n: int) -> int:
    """About sqrt(n) lists, a power of two, with at least 39 training vectors per list.

    Fewer, longer lists than faiss's 4-16 sqrt(n) guideline: a single query pays for scanning
    the coarse centroids, and fast-scan codes are cheap to scan (1M vectors: 1024 lists
    answered at 0.16 ms, 4096 at 0.41 ms, same recall).
    """
    nlist = 2 ** round(math.log2(max(math.sqrt(max(n, 1)), 16)))
    while nlist > 16 and nlist * 39 > n:
        nlist //= 2
    return int(min(nlist, 65536))
