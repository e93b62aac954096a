"""Reusable "every row but these" selectors for one index's searches.

A search that excludes rows inside faiss needs an ``IDSelectorNot(IDSelectorBatch(rows))`` and
search parameters holding it. Made afresh for each query through faiss's Python classes, those
objects cost about 30 us (their keyword constructors and faiss's ownership bookkeeping on every
attribute set), a tenth of a graph search.

So each index keeps a few *kits*: an ``IDSelectorNot`` and the search parameters holding it,
made once per parameter set. A query takes a kit, points its ``IDSelectorNot`` at a batch
selector of its rows (the one object made per query, in faiss's C++ hash set), searches, and
gives the kit back. One query holds a kit at a time, so concurrent searches never share one;
the pool grows to the number of searches that ran at once.

A bitmap of the rows, set and cleared per query, measured slower after a graph search has
evicted the caches: each numpy call then costs several microseconds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import faiss
import numpy as np

_POOL_MAX = 16  # kits kept for reuse; more concurrent searches make theirs and drop them
_PARAMS_MAX = 16  # parameter sets a kit keeps made

ParameterMaker = Callable[[Mapping[str, int], Any], Any]


class ExclusionSelectors:
    """The kits of one index (see the module's docstring).

    Parameters
    ----------
    make_params : the index's :func:`~embrecall.index.structure.parameter_maker`
    """

    def __init__(self, make_params: ParameterMaker) -> None:
        self.make_params = make_params
        self._free: list[_Kit] = []

    def exclude(self, rows: np.ndarray | Sequence[int]) -> Exclusion:
        """An exclusion of ``rows``: any order; repeats, and rows the index does not hold, do
        no harm (a batch selector is a set of them)."""
        try:
            kit = self._free.pop()  # list.pop and append are atomic: no lock is needed
        except IndexError:
            kit = _Kit()
        return Exclusion(self, kit, rows)

    def give_back(self, kit: _Kit) -> None:
        if len(self._free) < _POOL_MAX:
            self._free.append(kit)


class Exclusion:
    """The excluded rows of one search, as faiss search parameters: :meth:`params` for each
    parameter set the search tries, then :meth:`release` once, after the search."""

    __slots__ = ("_kit", "_pool", "_batch")

    def __init__(
        self, pool: ExclusionSelectors, kit: _Kit, rows: np.ndarray | Sequence[int]
    ) -> None:
        self._pool = pool
        self._kit = kit
        rows = np.ascontiguousarray(rows, dtype=np.int64)
        # the (n, pointer) form: faiss copies the rows into its set, nothing to keep alive
        self._batch = faiss.IDSelectorBatch(len(rows), _ptr(rows))
        kit.selector.sel = self._batch

    def params(self, params: Mapping[str, int]) -> Any:
        return self._kit.params(params, self._pool.make_params)

    def release(self) -> None:
        kit, self._kit = self._kit, None
        if kit is not None:
            kit.selector.sel = None  # no pointer to the batch, freed with this object
            self._pool.give_back(kit)


class _Kit:
    """An ``IDSelectorNot`` and the parameter sets holding it."""

    __slots__ = ("selector", "_params")

    def __init__(self) -> None:
        self.selector = faiss.IDSelectorNot(None)
        self._params: dict[tuple, Any] = {}

    def params(self, params: Mapping[str, int], make: ParameterMaker) -> Any:
        key = tuple(params.items())
        made = self._params.get(key)
        if made is None:
            if len(self._params) >= _PARAMS_MAX:
                self._params.clear()
            made = self._params[key] = make(params, self.selector)
        return made


_ptr = faiss.swig_ptr
