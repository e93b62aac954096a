"""`VectorIndex`: one faiss index (any factory string) with its metric, search parameters and
exclusion-aware search.

Rows are faiss ids: row i of the vectors the index was built from is id i. Mapping rows to the
users' own ids is the recommender's job, not this module's.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from typing import Literal

import faiss
import numpy as np
from tqdm.auto import tqdm

from embrecall.errors import EmbrecallError, InvalidArgumentError

log = logging.getLogger("embrecall")

Metric = Literal["ip", "cosine", "l2"]
METRICS: tuple[str, ...] = ("ip", "cosine", "l2")
_FAISS_METRIC = {
    "ip": faiss.METRIC_INNER_PRODUCT,
    "cosine": faiss.METRIC_INNER_PRODUCT,  # on unit vectors, inner product is cosine
    "l2": faiss.METRIC_L2,
}
SEARCH_PARAMS = ("nprobe", "efSearch", "k_factor")
_ADD_CHUNK = 100_000
_TRAIN_SAMPLE = 200_000
_PARALLEL_MIN_QUERIES = 16


class VectorIndex:
    """A faiss index over rows ``0..n-1``.

    Scores: higher is better for ``ip`` and ``cosine``; for ``l2`` the score is the squared
    euclidean distance and lower is better.
    """

    def __init__(
        self,
        index: faiss.Index,
        metric: Metric,
        spec: str,
        search_params: Mapping[str, int] | None = None,
    ) -> None:
        if metric not in METRICS:
            raise InvalidArgumentError(
                f"metric must be one of {', '.join(METRICS)}, not {metric!r}"
            )
        self.index = index
        self.metric: Metric = metric
        self.spec = spec
        self.search_params = dict(search_params or {})
        _check_params(self.search_params)
        self._selectors_supported = True

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
    ) -> VectorIndex:
        """Build an index from ``vectors`` (n, d) float32 with a faiss factory ``spec``.

        ``progress=None`` shows a bar only on a terminal.
        """
        if metric not in METRICS:
            raise InvalidArgumentError(
                f"metric must be one of {', '.join(METRICS)}, not {metric!r}"
            )
        n, d = vectors.shape
        try:
            index = faiss.index_factory(d, spec, _FAISS_METRIC[metric])
        except RuntimeError as exc:
            raise InvalidArgumentError(
                f"index spec {spec!r} is not a valid faiss factory string: {_faiss_message(exc)}"
            ) from None
        base = _prepare(vectors, metric)
        t0 = time.perf_counter()
        if not index.is_trained:
            _train(index, base, spec, seed)
        t1 = time.perf_counter()
        chunks = range(0, n, _ADD_CHUNK)
        bar = tqdm(total=n, desc=f"adding to {spec}", unit="vec", disable=_bar_off(progress, n))
        for start in chunks:
            index.add(base[start : start + _ADD_CHUNK])
            bar.update(min(_ADD_CHUNK, n - start))
        bar.close()
        log.info(
            "built %s (%s) over %d x %d: train %.2fs, add %.2fs",
            spec,
            metric,
            n,
            d,
            t1 - t0,
            time.perf_counter() - t1,
        )
        return cls(index, metric, spec, search_params or default_search_params(index))

    def save(self, path: str) -> None:
        faiss.write_index(self.index, str(path))

    @classmethod
    def load(
        cls, path: str, metric: Metric, spec: str, search_params: Mapping[str, int] | None = None
    ) -> VectorIndex:
        try:
            index = faiss.read_index(str(path))
        except RuntimeError as exc:
            raise EmbrecallError(
                f"{path}: not a readable faiss index: {_faiss_message(exc)}"
            ) from None
        return cls(index, metric, spec, search_params)

    # -- facts -------------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        return int(self.index.d)

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    @property
    def kind(self) -> str:
        return type(faiss.downcast_index(self.index)).__name__

    @property
    def higher_is_better(self) -> bool:
        return self.metric != "l2"

    @property
    def is_exact(self) -> bool:
        return self.kind in ("IndexFlat", "IndexFlatIP", "IndexFlatL2")

    def describe(self) -> dict:
        return {
            "spec": self.spec,
            "kind": self.kind,
            "metric": self.metric,
            "score": "higher is better"
            if self.higher_is_better
            else "squared L2 distance, lower is better",
            "ntotal": self.ntotal,
            "dim": self.dim,
            "search_params": dict(self.search_params),
        }

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
        params : {"nprobe": int, "efSearch": int}, optional
            Per-call search parameters; they never mutate the shared index.

        Returns
        -------
        scores : (m, k') float32, rows : (m, k') int64 with k' = min(k, ntotal). A query left with
        fewer candidates is padded with row -1 and score NaN; callers strip the padding.
        """
        if k < 1:
            raise InvalidArgumentError(f"k must be a positive integer, got {k}")
        merged = {**self.search_params, **(params or {})}
        _check_params(merged)
        q = _prepare(queries, self.metric)
        m = q.shape[0]
        kk = min(int(k), self.ntotal)
        scores = np.full((m, kk), np.nan, dtype=np.float32)
        rows = np.full((m, kk), -1, dtype=np.int64)
        if kk == 0 or m == 0:
            return scores, rows
        excluded = [
            _clean_rows(exclude[i] if exclude is not None else None, self.ntotal) for i in range(m)
        ]
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

    def _search_one(
        self, q: np.ndarray, k: int, excluded: np.ndarray, params: dict, want: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """One query that needs ``want`` results outside ``excluded``.

        Filters inside faiss with an IDSelector; when an approximate index finds too few
        survivors (a small nprobe/efSearch, or most of the catalogue excluded), it widens the
        search parameters step by step, and as a last resort over-fetches without a selector.
        """
        selector = None
        if excluded.size and self._selectors_supported:
            selector = faiss.IDSelectorNot(faiss.IDSelectorBatch(excluded))
        current = dict(params)
        while True:
            try:
                if excluded.size and selector is None:
                    return self._overfetch(q, k, excluded, current, want)
                s, r = self._faiss_search(q, k, current, selector=selector)
                if int((r[0] >= 0).sum()) >= want:
                    return s[0], r[0]
            except RuntimeError as exc:
                if "sel" not in str(exc) and "not supported" not in str(exc):
                    raise
                self._selectors_supported = False  # e.g. IndexPQ, IndexFastScan
                selector = None
                continue
            wider = _widen(self.index, current, k)
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
            keep = (r[0] >= 0) & ~np.isin(r[0], excluded)
            s_kept, r_kept = s[0][keep][:k], r[0][keep][:k]
            if r_kept.size >= want or fetch >= self.ntotal:
                out_s = np.full(k, np.nan, dtype=np.float32)
                out_r = np.full(k, -1, dtype=np.int64)
                out_s[: r_kept.size], out_r[: r_kept.size] = s_kept, r_kept
                return out_s, out_r
            fetch = min(self.ntotal, fetch * 2)

    def _faiss_search(
        self, q: np.ndarray, k: int, params: dict, selector: faiss.IDSelector | None
    ) -> tuple[np.ndarray, np.ndarray]:
        faiss_params = _search_parameters(self.index, params, selector)
        with _threads_for(q.shape[0]):
            if faiss_params is None:
                return self.index.search(q, k)
            return self.index.search(q, k, params=faiss_params)


# -- helpers ---------------------------------------------------------------------------------
@contextmanager
def _threads_for(n_queries: int):
    """One OpenMP thread for a handful of queries, all of them for a batch.

    On a busy 2-core machine, a single-query faiss search spread over OpenMP threads measured 5-9x
    slower (p50) than on one thread: the threads spin waiting for each other. The setting is
    per calling thread in OpenMP, so concurrent server threads do not disturb one another.
    """
    if n_queries >= _PARALLEL_MIN_QUERIES:
        yield
        return
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def _prepare(vectors: np.ndarray, metric: str) -> np.ndarray:
    """Unit-normalised copy for cosine (zero vectors stay zero), the array itself otherwise."""
    if metric != "cosine":
        return np.ascontiguousarray(vectors, dtype=np.float32)
    out = np.array(vectors, dtype=np.float32, copy=True, order="C")
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    out /= np.where(norms == 0, 1, norms)
    return out


def _train(index: faiss.Index, base: np.ndarray, spec: str, seed: int) -> None:
    n = base.shape[0]
    sample = base
    if n > _TRAIN_SAMPLE:
        pick = np.random.default_rng(seed).choice(n, _TRAIN_SAMPLE, replace=False)
        sample = base[np.sort(pick)]
    try:
        index.train(sample)
    except RuntimeError as exc:
        raise InvalidArgumentError(
            f"cannot train index {spec!r} on {n} vectors: {_faiss_message(exc)}"
        ) from None


def _core(index: faiss.Index) -> faiss.Index:
    """The index that does the searching, under pre-transforms and refinement wrappers."""
    inner = faiss.downcast_index(index)
    if isinstance(inner, faiss.IndexPreTransform):
        return _core(inner.index)
    if isinstance(inner, faiss.IndexRefine):
        return _core(inner.base_index)
    return inner


def default_search_params(index: faiss.Index) -> dict[str, int]:
    """Starting search parameters, recorded in the manifest so it says what answered.

    faiss's own defaults (nprobe=1, efSearch=16) give poor recall; these are a safer start.
    """
    params: dict[str, int] = {}
    if isinstance(faiss.downcast_index(index), faiss.IndexRefine):
        params["k_factor"] = 4  # re-rank 4k candidates exactly; 1 (faiss's default) refines nothing
    core = _core(index)
    if isinstance(core, faiss.IndexIVF):
        params["nprobe"] = int(min(core.nlist, max(8, core.nlist // 16)))
    elif isinstance(core, faiss.IndexHNSW):
        params["efSearch"] = 64
    return params


def _widen(index: faiss.Index, params: dict, k: int) -> dict | None:
    """Search parameters that look further (4x nprobe / efSearch), or None at the limit."""
    core = _core(index)
    if isinstance(core, faiss.IndexIVF):
        nprobe = int(params.get("nprobe", core.nprobe))
        return None if nprobe >= core.nlist else {**params, "nprobe": min(core.nlist, nprobe * 4)}
    if isinstance(core, faiss.IndexHNSW):
        ef = max(int(params.get("efSearch", core.hnsw.efSearch)), k)
        return None if ef >= core.ntotal else {**params, "efSearch": min(core.ntotal, ef * 4)}
    return None


def _clean_rows(rows: np.ndarray | Sequence[int] | None, ntotal: int) -> np.ndarray:
    if rows is None or len(rows) == 0:
        return np.empty(0, dtype=np.int64)
    rows = np.unique(np.asarray(rows, dtype=np.int64))
    return rows[(rows >= 0) & (rows < ntotal)]


def _search_parameters(
    index: faiss.Index, params: Mapping[str, int], selector: faiss.IDSelector | None
) -> faiss.SearchParameters | None:
    """faiss SearchParameters for this index kind, nested through wrappers.

    Passing parameters per call (never ``index.nprobe = ...``) keeps concurrent searches with
    different settings from racing on the shared index.
    """
    inner = faiss.downcast_index(index)
    if isinstance(inner, faiss.IndexPreTransform):
        sub = _search_parameters(inner.index, params, selector)
        return (
            faiss.SearchParametersPreTransform(sel=selector, index_params=sub)
            if (sub or selector)
            else None
        )
    if isinstance(inner, faiss.IndexRefine):
        sub = _search_parameters(inner.base_index, params, selector)
        p = faiss.IndexRefineSearchParameters(sel=selector, base_index_params=sub)
        p.k_factor = float(params.get("k_factor", inner.k_factor))
        return p
    if isinstance(inner, faiss.IndexIVF):
        p = faiss.SearchParametersIVF(sel=selector)
        if "nprobe" in params:
            p.nprobe = int(params["nprobe"])
        return p
    if isinstance(inner, faiss.IndexHNSW):
        p = faiss.SearchParametersHNSW(sel=selector)
        if "efSearch" in params:
            p.efSearch = int(params["efSearch"])
        return p
    if selector is None:
        return None
    if isinstance(inner, faiss.IndexPQ):
        return faiss.SearchParametersPQ(sel=selector)
    return faiss.SearchParameters(sel=selector)


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


def _faiss_message(exc: BaseException) -> str:
    """The useful last line of a faiss C++ exception ('Error: ...'), without the C++ frame."""
    text = str(exc).strip()
    for line in reversed(text.splitlines()):
        if "Error" in line or line.strip():
            return line.split("Error: ", 1)[-1].strip().strip("'")
    return text


def _bar_off(progress: bool | None, n: int) -> bool | None:
    if progress is None:
        return None if n >= 1_000_000 else True  # tqdm: None = off unless on a terminal
    return not progress
