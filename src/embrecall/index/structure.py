"""What kind of faiss index this is, under its wrappers, and the search parameters it takes.

faiss composes indexes (a pre-transform around a refinement around an IVF with an HNSW
quantizer...); everything here looks through those layers to the index that does the searching.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import faiss

SEARCH_PARAMS = ("nprobe", "efSearch", "k_factor")
FAISS_METRIC = {
    "ip": faiss.METRIC_INNER_PRODUCT,
    "cosine": faiss.METRIC_INNER_PRODUCT,  # on unit vectors, inner product is cosine
    "l2": faiss.METRIC_L2,
}
QUANTIZER_EF_SEARCH = 256


def core_index(index: faiss.Index) -> faiss.Index:
    """The index that does the searching, under pre-transforms and refinement wrappers."""
    inner = faiss.downcast_index(index)
    if isinstance(inner, faiss.IndexPreTransform):
        return core_index(inner.index)
    if isinstance(inner, faiss.IndexRefine):
        return core_index(inner.base_index)
    return inner


def nlist_of(index: faiss.Index) -> int:
    """The number of IVF lists under any wrappers, 0 for an index without IVF."""
    ivf = faiss.try_extract_index_ivf(index)
    return int(ivf.nlist) if ivf is not None else 0


def tunable_param(index: faiss.Index) -> str | None:
    """The parameter that trades speed for recall: nprobe (IVF), efSearch (HNSW) or none."""
    core = core_index(index)
    if isinstance(core, faiss.IndexIVF):
        return "nprobe"
    if isinstance(core, faiss.IndexHNSW):
        return "efSearch"
    return None


def default_search_params(index: faiss.Index) -> dict[str, int]:
    """Starting search parameters, recorded in the manifest so it says what answered.

    faiss's own defaults (nprobe=1, efSearch=16) give poor recall; these are a safer start.
    """
    params: dict[str, int] = {}
    if isinstance(faiss.downcast_index(index), faiss.IndexRefine):
        params["k_factor"] = 4  # re-rank 4k candidates exactly; 1 (faiss's default) refines nothing
    core = core_index(index)
    if isinstance(core, faiss.IndexIVF):
        params["nprobe"] = int(min(core.nlist, max(8, core.nlist // 16)))
    elif isinstance(core, faiss.IndexHNSW):
        params["efSearch"] = 64
    return params


def widen(index: faiss.Index, params: dict, k: int) -> dict | None:
    """Search parameters that look further (4x nprobe / efSearch), or None at the limit."""
    core = core_index(index)
    if isinstance(core, faiss.IndexIVF):
        nprobe = int(params.get("nprobe", core.nprobe))
        return None if nprobe >= core.nlist else {**params, "nprobe": min(core.nlist, nprobe * 4)}
    if isinstance(core, faiss.IndexHNSW):
        ef = max(int(params.get("efSearch", core.hnsw.efSearch)), k)
        return None if ef >= core.ntotal else {**params, "efSearch": min(core.ntotal, ef * 4)}
    return None


def search_parameters(
    index: faiss.Index, params: Mapping[str, int], selector: faiss.IDSelector | None
) -> faiss.SearchParameters | None:
    """faiss SearchParameters for this index kind, nested through wrappers.

    Passing parameters per call (never ``index.nprobe = ...``) keeps concurrent searches with
    different settings from racing on the shared index.
    """
    return parameter_maker(index)(params, selector)


ParameterMaker = Callable[[Mapping[str, int], "faiss.IDSelector | None"], Any]


def parameter_maker(index: faiss.Index) -> ParameterMaker:
    """:func:`search_parameters` for one index, its wrappers looked through once.

    A search with a selector needs new parameter objects every time (they hold the selector);
    each downcast is a SWIG call and faiss's keyword constructors cost twice a plain attribute
    set, so a search keeps this maker and pays for the objects alone.
    """
    inner = faiss.downcast_index(index)
    if isinstance(inner, faiss.IndexPreTransform):
        sub_maker = parameter_maker(inner.index)

        def pre_transform(params, selector):
            sub = sub_maker(params, selector)
            if not (sub or selector):
                return None
            p = faiss.SearchParametersPreTransform()
            _set_selector(p, selector)
            if sub is not None:
                p.index_params = sub
            return p

        return pre_transform
    if isinstance(inner, faiss.IndexRefine):
        base_maker = parameter_maker(inner.base_index)

        def refine(params, selector):
            p = faiss.IndexRefineSearchParameters()
            _set_selector(p, selector)
            sub = base_maker(params, selector)
            if sub is not None:
                p.base_index_params = sub
            p.k_factor = float(params.get("k_factor", inner.k_factor))
            return p

        return refine
    if isinstance(inner, faiss.IndexIVF):
        hnsw_quantizer = isinstance(faiss.downcast_index(inner.quantizer), faiss.IndexHNSW)

        def ivf(params, selector):
            p = faiss.SearchParametersIVF()
            _set_selector(p, selector)
            nprobe = int(params.get("nprobe", inner.nprobe))
            p.nprobe = nprobe
            if hnsw_quantizer:
                # An HNSW coarse quantizer searches with its own efSearch (16 by default), which
                # caps the lists it can find however large nprobe is: recall stalled at 0.49 on
                # 1M vectors with nprobe 194. Give it room for the lists asked for.
                quantizer = faiss.SearchParametersHNSW()
                quantizer.efSearch = max(QUANTIZER_EF_SEARCH, 2 * nprobe)
                p.quantizer_params = quantizer
            return p

        return ivf
    if isinstance(inner, faiss.IndexHNSW):

        def hnsw(params, selector):
            p = faiss.SearchParametersHNSW()
            _set_selector(p, selector)
            if "efSearch" in params:
                p.efSearch = int(params["efSearch"])
            return p

        return hnsw
    kind = faiss.SearchParametersPQ if isinstance(inner, faiss.IndexPQ) else faiss.SearchParameters

    def selector_only(params, selector):
        if selector is None:
            return None
        p = kind()
        p.sel = selector
        return p

    return selector_only


def _set_selector(p: faiss.SearchParameters, selector: faiss.IDSelector | None) -> None:
    if selector is not None:  # None is already the default: no SWIG call for it
        p.sel = selector


def factory(d: int, spec: str, metric: int) -> faiss.Index:
    """``faiss.index_factory``, with a clear error for a spec faiss does not understand."""
    from embrecall.errors import InvalidArgumentError

    try:
        return faiss.index_factory(d, spec, metric)
    except RuntimeError as exc:
        raise InvalidArgumentError(
            f"index spec {spec!r} is not a valid faiss factory string: {faiss_message(exc)}"
        ) from None


def faiss_message(exc: BaseException) -> str:
    """The useful last line of a faiss C++ exception ('Error: ...'), without the C++ frame."""
    text = str(exc).strip()
    for line in reversed(text.splitlines()):
        if "Error" in line or line.strip():
            return line.split("Error: ", 1)[-1].strip().strip("'")
    return text
