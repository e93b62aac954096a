"""`VectorIndex`: one faiss index (any factory string) with its metric, search parameters and
exclusion-aware search.

Rows are faiss ids: row i of the vectors the index was built from is id i. Mapping rows to the
users' own ids is the recommender's job, not this module's. Which factory string to use is
``choice``'s; how much memory it takes, ``memory``'s; inner product through IVF, ``mips``'s.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import faiss
import numpy as np
from tqdm.auto import tqdm

from embrecall._progress import bar_disabled
from embrecall.errors import DimensionMismatchError, EmbrecallError, InvalidArgumentError
from embrecall.index.exclusion import Exclusion, ExclusionSelectors
from embrecall.index.memory import estimate_index_bytes, format_size
from embrecall.index.mips import NormAugmentation, augmented_dim
from embrecall.index.native_output import native_stderr_logged
from embrecall.index.structure import (
    FAISS_METRIC,
    SEARCH_PARAMS,
    core_index,
    default_search_params,
    factory,
    faiss_message,
    nlist_of,
    parameter_maker,
    widen,
)
from embrecall.neighbors import score_text

log = logging.getLogger("embrecall")

Metric = Literal["ip", "cosine", "l2"]
METRICS: tuple[str, ...] = ("ip", "cosine", "l2")
_ADD_CHUNK = 100_000
_BAR_MIN_VECTORS = 1_000_000  # by default, no bar for an add that takes seconds
_TRAIN_SAMPLE = 200_000
_TRAIN_PER_LIST = 64  # k-means wants >= 39 points per centroid; faiss samples 256 at most
_PARALLEL_MIN_QUERIES = 16
_PARAMS_CACHE = 64
# faiss builds HNSW graphs with efConstruction 40 by default. At 1M x 64 clustered vectors such
# a graph topped out at recall@10 0.865 (efSearch 2048) on inner product, where hnswlib's
# default of 200 reached 0.95 at ef 252: the build costs more, the graph answers.
HNSW_EF_CONSTRUCTION = 200
# Up to this many excluded rows, an IVF or flat index answers one query by fetching k + that many
# and dropping the excluded: the same answer as an IDSelector (the same lists are scanned), without
# making a selector, which measured 45 us a query in a server's loop (a fifth of a 1M IVF search).
_OVERFETCH_MAX = 256
# module-level names for the faiss functions the hot path calls: one lookup, not two
_ptr = faiss.swig_ptr
_omp_get_max_threads = faiss.omp_get_max_threads
_omp_set_num_threads = faiss.omp_set_num_threads
_NO_ROWS = np.empty(0, dtype=np.int64)
_NO_ROWS.flags.writeable = False
_MISSING = object()


class VectorIndex:
    """A faiss index over rows ``0..n-1``.

    Scores: higher is better for ``ip`` and ``cosine``; for ``l2`` the score is the squared
    euclidean distance and lower is better. With ``mips`` (a :class:`NormAugmentation`) the faiss
    index holds augmented vectors in L2 and scores are turned back into exact inner products.
    """

    def __init__(
        self,
        index: faiss.Index,
        metric: Metric,
        spec: str,
        search_params: Mapping[str, int] | None = None,
        *,
        mips: NormAugmentation | None = None,
        notes: Mapping[str, Any] | None = None,
    ) -> None:
        if metric not in METRICS:
            raise InvalidArgumentError(
                f"metric must be one of {', '.join(METRICS)}, not {metric!r}"
            )
        self.index = index
        self.metric: Metric = metric
        self.spec = spec
        self.mips = mips
        self.notes = dict(notes or {})  # how it was chosen and tuned, for the manifest
        self.search_params = dict(search_params or {})
        _check_params(self.search_params)
        self._selectors_supported = True
        self._ntotal = int(index.ntotal)  # read by every search: a SWIG attribute costs µs
        self._dim = mips.dim if mips is not None else int(index.d)
        self._plain_params: dict[tuple, faiss.SearchParameters | None] = {}
        self._make_params = parameter_maker(index)
        self._exclusions = ExclusionSelectors(self._make_params)
        # k does not change what these scan (a graph widens its beam to k, a refinement re-ranks
        # k_factor * k): fetching more is the selector's answer, not a different search
        top = faiss.downcast_index(index)
        if isinstance(top, faiss.IndexPreTransform):
            top = faiss.downcast_index(top.index)
        self._overfetch_same = isinstance(top, (faiss.IndexIVF, faiss.IndexFlat))
        # a graph's beam is efSearch wide whatever k is, up to efSearch: a few more than k
        # within it walk the same graph, so a short exclusion list (a query's own row) needs
        # no selector at all: even a pooled one costs a faiss object and a few Python calls
        self._beam = top.hnsw.efSearch if isinstance(top, faiss.IndexHNSW) else None

    # -- build / persist ---------------------------------------------------------------------
    @classmethod
    def build(
        cls,
        vectors: np.ndarray,
        metric: Metric = "ip",
        spec: str = "Flat",
        *,
        search_params: Mapping[str, int] | None = None,
        progress: bool | None = None,
        seed: int = 1234,
        mips: str = "auto",
        max_memory: int | None = None,
        notes: Mapping[str, Any] | None = None,
    ) -> VectorIndex:
        """Build an index from ``vectors`` (n, d) float32 with a faiss factory ``spec``.

        ``mips``: for ``ip``, ``"auto"`` searches IVF kinds through the norm augmentation and
        the others natively; ``"augment"`` / ``"native"`` force one way. ``max_memory`` (bytes)
        refuses, before any training, an index estimated not to fit. ``progress=None`` shows a
        bar only on a terminal (and for a million vectors or more).
        """
        if metric not in METRICS:
            raise InvalidArgumentError(
                f"metric must be one of {', '.join(METRICS)}, not {metric!r}"
            )
        n, d = vectors.shape
        index_dim = augmented_dim(d, spec, metric, mips)
        augmentation = None
        if index_dim is not None:
            augmentation = NormAugmentation.fit(vectors, index_dim)
            index = factory(index_dim, spec, faiss.METRIC_L2)
        else:
            index = factory(d, spec, FAISS_METRIC[metric])
        need = estimate_index_bytes(index, n)
        if max_memory is not None and need > max_memory:
            raise InvalidArgumentError(
                f"index {spec!r} over {n:,} x {d} vectors needs about {format_size(need)}, "
                f"more than the memory budget of {format_size(max_memory)}; choose a smaller "
                "index (or --index auto) or raise --max-memory"
            )
        graph = core_index(index)
        if isinstance(graph, faiss.IndexHNSW):
            graph.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        built = cls(index, metric, spec, mips=augmentation, notes=notes)
        t0 = time.perf_counter()
        if not index.is_trained:
            built._train(vectors, seed)
        t1 = time.perf_counter()
        bar = tqdm(
            total=n,
            desc=f"adding to {spec}",
            unit="vec",
            disable=bar_disabled(progress, small=n < _BAR_MIN_VECTORS),
        )
        for start in range(0, n, _ADD_CHUNK):
            index.add(built._encode_items(vectors[start : start + _ADD_CHUNK]))
            bar.update(min(_ADD_CHUNK, n - start))
        bar.close()
        built._ntotal = int(index.ntotal)
        log.info(
            "built %s (%s%s) over %d x %d: train %.2fs, add %.2fs",
            spec,
            metric,
            ", norm-augmented" if augmentation else "",
            n,
            d,
            t1 - t0,
            time.perf_counter() - t1,
        )
        built.search_params = dict(search_params or default_search_params(index))
        _check_params(built.search_params)
        return built

    def _encode_items(self, vectors: np.ndarray) -> np.ndarray:
        """Vectors as the faiss index holds them: unit length (cosine) or augmented (mips)."""
        base = _prepare(vectors, self.metric)
        return self.mips.items(base) if self.mips is not None else base

    def _train(self, vectors: np.ndarray, seed: int) -> None:
        n = vectors.shape[0]
        size = min(n, max(_TRAIN_SAMPLE, _TRAIN_PER_LIST * nlist_of(self.index)))
        sample = vectors
        if size < n:
            pick = np.random.default_rng(seed).choice(n, size, replace=False)
            sample = vectors[np.sort(pick)]
        ivf = faiss.try_extract_index_ivf(self.index)
        if ivf is not None and faiss.get_num_gpus() > 0:
            # k-means is most of an IVF build; with a GPU build of faiss, run its assignment
            # step on the GPUs (faiss's own recipe). The index itself stays on the CPU.
            ivf.clustering_index = faiss.index_cpu_to_all_gpus(faiss.IndexFlatL2(ivf.d))
        try:
            with native_stderr_logged(f"training {self.spec}"):
                self.index.train(self._encode_items(sample))
        except RuntimeError as exc:
            raise InvalidArgumentError(
                f"cannot train index {self.spec!r} on {n} vectors: {faiss_message(exc)}"
            ) from None
        finally:
            if ivf is not None:
                ivf.clustering_index = None  # releases the GPU copy; it is not saved anyway

    def save(self, path: str) -> None:
        faiss.write_index(self.index, str(path))

    @classmethod
    def load(
        cls,
        path: str,
        metric: Metric,
        spec: str,
        search_params: Mapping[str, int] | None = None,
        *,
        mips: Mapping[str, Any] | None = None,
        dim: int | None = None,
        notes: Mapping[str, Any] | None = None,
        mmap: bool = False,
    ) -> VectorIndex:
        """Read an index file; ``mmap=True`` maps its codes and graph from the file instead of
        copying them, so server processes on one machine share one copy in the page cache.
        The file must then stay unchanged while it is in use (artifacts are never rewritten).
        """
        flags = faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY if mmap else 0
        try:
            index = faiss.read_index(str(path), flags)
        except RuntimeError as exc:
            raise EmbrecallError(
                f"{path}: not a readable faiss index: {faiss_message(exc)}"
            ) from None
        augmentation = None
        if mips:
            augmentation = NormAugmentation.from_manifest(mips, dim if dim else index.d - 1)
            if augmentation.index_dim != index.d:
                raise EmbrecallError(
                    f"{path}: index dimension {index.d}, its inner-product transform expects "
                    f"{augmentation.index_dim}"
                )
        return cls(index, metric, spec, search_params, mips=augmentation, notes=notes)

    # -- facts -------------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        return self._dim

    @property
    def ntotal(self) -> int:
        return self._ntotal

    @property
    def kind(self) -> str:
        return type(faiss.downcast_index(self.index)).__name__

    @property
    def higher_is_better(self) -> bool:
        return self.metric != "l2"

    @property
    def is_exact(self) -> bool:
        return self.kind in ("IndexFlat", "IndexFlatIP", "IndexFlatL2")

    @property
    def memory_bytes(self) -> int:
        return estimate_index_bytes(self.index, self.ntotal)

    def describe(self) -> dict:
        mips = self.mips.to_manifest() if self.mips is not None else None
        return describe_index(self, mips=mips, **self.notes)

    # -- search ------------------------------------------------------------------------------
    def search(
        self,
        queries: np.ndarray,
        k: int,
        *,
        exclude: Sequence[np.ndarray | None] | None = None,
        params: Mapping[str, int] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` rows for each query, never returning an excluded row.

        Parameters
        ----------
        queries : (m, d) float32, C-contiguous, finite (validated by the caller)
        k : int, >= 1
        exclude : list of m int64 row arrays (or None per query), optional
            Applied inside the search (faiss ``IDSelector``), so k rows come back whenever k
            rows exist outside the exclusion; index kinds without selector support fall back to
            an adaptive over-fetch that gives the same guarantee.
        params : {"nprobe": int, "efSearch": int, "k_factor": int}, optional
            Per-call search parameters; they never mutate the shared index.

        Returns
        -------
        scores : (m, k') float32, rows : (m, k') int64 with k' = min(k, ntotal). A query left with
        fewer candidates is padded with row -1 and score NaN; callers strip the padding.
        """
        if k < 1:
            raise InvalidArgumentError(f"k must be a positive integer, got {k}")
        merged = self.search_params
        if params:
            _check_params(params)
            merged = {**self.search_params, **params}
        q = _prepare(queries, self.metric)
        if q.ndim != 2 or q.shape[1] != self._dim:
            # faiss reads d floats per query from the buffer: a wrong shape must not reach it
            raise DimensionMismatchError(
                f"queries must be (m, {self._dim}), got shape {tuple(q.shape)}"
            )
        m = q.shape[0]
        kk = min(int(k), self._ntotal)
        if kk == 0 or m == 0:
            return np.full((m, kk), np.nan, dtype=np.float32), np.full((m, kk), -1, np.int64)
        if m == 1:  # one query, the service's case: none of a batch's bookkeeping
            return self._search_single(q, kk, None if exclude is None else exclude[0], merged)
        excluded = None
        if exclude is not None:
            excluded = [_clean_rows(exclude[i], self._ntotal) for i in range(m)]
        if excluded is None or not any(e.size for e in excluded):
            scores, rows = self._faiss_search(q, kk, merged, selector=None)
            if (rows[:, -1] < 0).any():  # faiss pads a short answer at its end
                for i in np.flatnonzero((rows < 0).any(axis=1)):
                    scores[i], rows[i] = self._search_one(q[i : i + 1], kk, _NO_ROWS, merged, kk)
                scores[rows < 0] = np.nan
            return scores, rows
        scores = np.full((m, kk), np.nan, dtype=np.float32)
        rows = np.full((m, kk), -1, dtype=np.int64)
        plain = [i for i in range(m) if excluded[i].size == 0]
        if plain:
            s, r = self._faiss_search(q[plain], kk, merged, selector=None)
            scores[plain], rows[plain] = s, r
        for i in range(m):
            want = min(kk, self.ntotal - excluded[i].size)
            if excluded[i].size or int((rows[i] >= 0).sum()) < want:
                scores[i], rows[i] = self._search_one(q[i : i + 1], kk, excluded[i], merged, want)
        scores[rows < 0] = np.nan
        return scores, rows

    def _search_single(
        self, q: np.ndarray, k: int, exclude: np.ndarray | Sequence[int] | None, params: dict
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`search` of one query (1, d), k <= ntotal: the hot path of a service, so one
        faiss call, and the rest only for exclusions or an answer that came back short."""
        if exclude is None or len(exclude) == 0:
            scores, rows = self._faiss_search(q, k, params, selector=None)
            if rows[0, -1] >= 0:  # faiss pads a short answer at its end
                return scores, rows
            excluded = _NO_ROWS
        elif len(exclude) <= _OVERFETCH_MAX and self._scans_alike(k + len(exclude), params):
            # k + |excluded| without a selector scans the same lists (refinement kinds, or a
            # graph asked beyond its beam, would not): the excluded rows can push at most that
            # many out of the top k
            fetch = min(self._ntotal, k + len(exclude))
            scores, rows = self._faiss_search(q, fetch, params, selector=None)
            found = _first_outside(scores, rows, exclude, k)
            if found is not None:
                return found
            # fewer than k outside the exclusions among those scanned: the path below decides
            excluded = _clean_rows(exclude, self._ntotal)
        else:
            if self._selectors_supported and k + len(exclude) <= self._ntotal:
                # one search inside faiss, the rows as given (a batch selector is a set: order,
                # repeats and rows the index does not hold do no harm): no sorting first
                found = self._search_excluding(q, k, exclude, params)
                if found is not None:
                    return found
            excluded = _clean_rows(exclude, self._ntotal)
        want = min(k, self._ntotal - excluded.size)
        s, r = self._search_one(q, k, excluded, params, want)
        if r[-1] < 0:  # short answers are padded at the end
            s[r < 0] = np.nan
        return s[None], r[None]

    def _search_excluding(
        self, q: np.ndarray, k: int, rows: np.ndarray | Sequence[int], params: dict
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """One search of ``q`` with ``rows`` excluded inside faiss; None when it found fewer
        than ``k`` (the widening path decides) or the index takes no selector."""
        exclusion = self._exclusions.exclude(rows, self._ntotal)
        try:
            scores, found = self._faiss_search(q, k, params, selector=exclusion)
        except RuntimeError as exc:
            if not _takes_no_selector(exc):
                raise
            self._selectors_supported = False
            return None
        finally:
            exclusion.release()
        return (scores, found) if found[0, -1] >= 0 else None

    def _scans_alike(self, fetch: int, params: dict) -> bool:
        """Whether asking ``fetch`` deep without a selector scans what a selector search of
        fewer would (so over-fetching and dropping rows is the selector's answer)."""
        if self._overfetch_same:
            return True
        return self._beam is not None and fetch <= int(params.get("efSearch", self._beam))

    def _search_one(
        self, q: np.ndarray, k: int, excluded: np.ndarray, params: dict, want: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """One query that needs ``want`` results outside ``excluded``.

        Filters inside faiss with an IDSelector; when an approximate index finds too few
        survivors (a small nprobe/efSearch, or most of the catalogue excluded), it widens the
        search parameters step by step, and as a last resort over-fetches without a selector.
        """
        if 0 < excluded.size <= _OVERFETCH_MAX and self._scans_alike(k + excluded.size, params):
            fetch = min(self.ntotal, k + excluded.size)
            s, r = self._faiss_search(q, fetch, params, selector=None)
            found = _drop_excluded(s[0], r[0], excluded, k, want)
            if found is not None:
                return found
            # too few scanned: the selector path below widens the search
        exclusion = None
        if excluded.size and self._selectors_supported:
            exclusion = self._exclusions.exclude(excluded, self._ntotal)
        try:
            return self._search_widening(q, k, excluded, params, want, exclusion)
        finally:
            if exclusion is not None:
                exclusion.release()

    def _search_widening(
        self,
        q: np.ndarray,
        k: int,
        excluded: np.ndarray,
        params: dict,
        want: int,
        exclusion: Exclusion | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        current = dict(params)
        while True:
            try:
                if excluded.size and exclusion is None:
                    return self._overfetch(q, k, excluded, current, want)
                s, r = self._faiss_search(q, k, current, selector=exclusion)
                # faiss pads a short answer at its end: the want-th result decides
                if want == 0 or r[0, want - 1] >= 0:
                    return s[0], r[0]
            except RuntimeError as exc:
                if not _takes_no_selector(exc):
                    raise
                self._selectors_supported = False
                exclusion = None
                continue
            wider = widen(self.index, current, k)
            if wider is None:
                break
            current = wider
        if excluded.size:
            return self._overfetch(q, k, excluded, current, want)
        return s[0], r[0]

    def _overfetch(
        self, q: np.ndarray, k: int, excluded: np.ndarray, params: dict, want: int
    ) -> tuple[np.ndarray, np.ndarray]:
        fetch = min(self.ntotal, k + excluded.size)
        while True:
            s, r = self._faiss_search(q, fetch, params, selector=None)
            found = _drop_excluded(s[0], r[0], excluded, k, 0 if fetch >= self.ntotal else want)
            if found is not None:
                return found
            fetch = min(self.ntotal, fetch * 2)

    def _faiss_search(
        self, q: np.ndarray, k: int, params: dict, selector: faiss.IDSelector | Exclusion | None
    ) -> tuple[np.ndarray, np.ndarray]:
        if selector is None:
            # faiss parameter objects cost microseconds to build and are only read by a
            # search, so the selector-free ones are made once per parameter set and shared.
            # (Items in insertion order: a dict given in another order only adds an entry.)
            key = tuple(params.items())
            faiss_params = self._plain_params.get(key, _MISSING)
            if faiss_params is _MISSING:
                if len(self._plain_params) >= _PARAMS_CACHE:
                    self._plain_params.clear()
                faiss_params = self._plain_params[key] = self._make_params(params, None)
        elif type(selector) is Exclusion:
            faiss_params = selector.params(params)
        else:
            faiss_params = self._make_params(params, selector)
        x = self.mips.queries(q) if self.mips is not None else q
        scores, rows = _search_on_threads(self.index, x, k, faiss_params)
        if self.mips is not None:
            scores = self.mips.inner_products(scores, q)
        return scores, rows


# -- helpers ---------------------------------------------------------------------------------
def describe_index(index: Any, **extra: Any) -> dict:
    """The description (manifest entry, ``inspect``, ``/v1/info``) an index of any engine gives:
    kind, metric, size, search parameters, memory, then ``extra``."""
    memory = index.memory_bytes
    return {
        "spec": index.spec,
        "kind": index.kind,
        "metric": index.metric,
        "score": score_text(index.higher_is_better),
        "ntotal": index.ntotal,
        "dim": index.dim,
        "search_params": dict(index.search_params),
        "memory_bytes": memory,
        "bytes_per_vector": round(memory / max(index.ntotal, 1), 1),
        **extra,
    }


def _search_on_threads(index: faiss.Index, x: np.ndarray, k: int, params) -> tuple:
    """A faiss search on one OpenMP thread for a handful of queries, on all of them for a batch.

    ``x`` must be C-contiguous float32 of the index's dimension (the caller checked): faiss's
    C++ search is called directly, without its Python wrapper, whose shape checks, keyword
    handling and output allocation cost 7 us a call, a few percent of a 1M-vector IVF search.

    On a busy 2-core machine, a single-query faiss search spread over OpenMP threads measured 5-9x
    slower (p50) than on one thread: the threads spin waiting for each other. The setting is
    per calling thread in OpenMP, so concurrent server threads do not disturb one another.
    (Plain code, not a context manager: this is the hot path, and a generator-based context
    manager costs several microseconds a call.)
    """
    n = x.shape[0]
    # fresh outputs for every call: callers keep the arrays (or views of them), and allocating
    # two small arrays costs less than copying results out of a reused buffer
    scores = np.empty((n, k), dtype=np.float32)
    rows = np.empty((n, k), dtype=np.int64)
    if n >= _PARALLEL_MIN_QUERIES:
        index.search_c(n, _ptr(x), k, _ptr(scores), _ptr(rows), params)
        return scores, rows
    before = _omp_get_max_threads()
    if before != 1:
        _omp_set_num_threads(1)
    try:
        index.search_c(n, _ptr(x), k, _ptr(scores), _ptr(rows), params)
    finally:
        if before != 1:
            _omp_set_num_threads(before)
    return scores, rows


def _prepare(vectors: np.ndarray, metric: str) -> np.ndarray:
    """Unit-normalised copy for cosine (zero vectors stay zero), the array itself otherwise."""
    if metric != "cosine":
        return np.ascontiguousarray(vectors, dtype=np.float32)
    one = type(vectors) is np.ndarray and vectors.ndim == 2 and vectors.shape[0] == 1
    if one and vectors.dtype == np.float32:
        # one query: the same arithmetic as below (numpy's norm is this sum of squares), so the
        # same bits, without norm's generic dispatch and the masked division (11 us -> 7)
        norm = np.sqrt(np.add.reduce(vectors * vectors, axis=1))[0]
        return vectors / norm if norm else vectors.copy(order="C")
    out = np.array(vectors, dtype=np.float32, copy=True, order="C")
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    out /= np.where(norms == 0, 1, norms)
    return out


def _first_outside(
    scores: np.ndarray, rows: np.ndarray, exclude: np.ndarray | Sequence[int], k: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """The first ``k`` of one over-fetched answer (1, fetch) whose rows are not in ``exclude``
    (any order, repeats and rows beyond the index allowed), as (1, k) arrays; None when fewer
    than k are. Plain Python over a set: the answer is read only until k survive (about k
    rows), and after a search has evicted the caches, each numpy call costs several
    microseconds, more than these few steps."""
    out = set(exclude.tolist() if isinstance(exclude, np.ndarray) else exclude)
    kept = []
    for i, row in enumerate(rows[0].tolist()):
        if row not in out:
            if row < 0:  # faiss's padding: the rest is padding too
                return None
            kept.append(i)
            if len(kept) == k:
                if i == k - 1:  # none of the top k is excluded
                    return scores[:, :k], rows[:, :k]
                return scores[0].take(kept)[None], rows[0].take(kept)[None]
    return None


def _drop_excluded(
    scores: np.ndarray,
    rows: np.ndarray,
    excluded: np.ndarray,
    k: int,
    want: int,
    passing: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray] | None:
    """One query's over-fetched answer without the ``excluded`` rows (sorted, unique), and
    without rows ``passing`` (a row mask, for filters) leaves out, padded to ``k`` at the end;
    None when fewer than ``want`` remain. As few numpy calls as can be: in a server's loop each
    costs microseconds."""
    if excluded.size == 0:
        keep = np.ones(rows.shape, dtype=bool)
    elif excluded.size == 1:  # the query itself (similar-X): one comparison
        keep = rows != excluded[0]
    else:
        at = excluded.searchsorted(rows)
        np.minimum(at, excluded.size - 1, out=at)
        keep = excluded.take(at) != rows
    if passing is not None:
        keep &= passing[np.maximum(rows, 0)]
    if rows[-1] < 0:  # a short answer: its padding is at the end, never kept
        keep &= rows >= 0
    kept = keep.nonzero()[0][:k]
    if kept.size == k:
        return scores.take(kept), rows.take(kept)
    if kept.size < want:
        return None
    out_s = np.full(k, np.nan, dtype=np.float32)
    out_r = np.full(k, -1, dtype=np.int64)
    out_s[: kept.size], out_r[: kept.size] = scores[kept], rows[kept]
    return out_s, out_r


def _clean_rows(rows: np.ndarray | Sequence[int] | None, ntotal: int) -> np.ndarray:
    if rows is None or len(rows) == 0:
        return np.empty(0, dtype=np.int64)
    rows = np.asarray(rows, dtype=np.int64)
    # seen items come sorted and unique: checking that costs a quarter of np.unique
    if rows.size > 1 and not (rows[1:] > rows[:-1]).all():
        rows = np.unique(rows)
    if rows[0] >= 0 and rows[-1] < ntotal:
        return rows
    return rows[(rows >= 0) & (rows < ntotal)]


def _takes_no_selector(exc: RuntimeError) -> bool:
    """Whether faiss refused a search because this index kind takes no IDSelector (e.g.
    ``IndexPQ``, fast-scan without IVF)."""
    return "sel" in str(exc) or "not supported" in str(exc)


def _check_params(params: Mapping[str, int]) -> None:
    for name, value in params.items():
        if name not in SEARCH_PARAMS:
            raise InvalidArgumentError(
                f"unknown search parameter {name!r}; known: {', '.join(SEARCH_PARAMS)}"
            )
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise InvalidArgumentError(
                f"search parameter {name} must be a positive integer, got {value!r}"
            )
