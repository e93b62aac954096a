"""Reusable "every row but these" selectors for one index's searches.

A search that excludes rows inside faiss needs an ``IDSelectorNot`` over a selector of the rows
and search parameters holding it. Made afresh for each query through faiss's Python classes,
those objects cost about 30 us (their keyword constructors and faiss's ownership bookkeeping on
every attribute set), a tenth of a graph search.

So each index keeps a few *kits*: an ``IDSelectorNot`` and the search parameters holding it,
made once per parameter set. A query takes a kit, marks its rows, searches, unmarks them and
gives the kit back. One query holds a kit at a time, so concurrent searches never share one;
the pool grows to the number of searches that ran at once.

How rows are marked:

* **With the C loops** (``embrecall._native``, built at install where a compiler is present),
  a kit owns a bitmap of the index's rows that an ``IDSelectorBitmap`` reads: a query sets its
  rows' bits in one call and clears them in another. For 100 rows after a graph search has
  evicted the caches that measured 5 us, where making and freeing faiss's ``IDSelectorBatch``
  (a C++ hash set of the rows) measured 25-30 us.
  Indexes beyond ``_BITMAP_MAX_ROWS`` rows keep to batch selectors rather than a bitmap per kit.
* **Without them**, a query points its kit's ``IDSelectorNot`` at an ``IDSelectorBatch`` of its
  rows, the one faiss object made per query. (A bitmap set and cleared with numpy measured
  slower than that: five numpy calls, each several microseconds with cold caches.)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import faiss
import numpy as np

from embrecall.native import native as _native

_POOL_MAX = 16  # kits kept for reuse; more concurrent searches make theirs and drop them
_PARAMS_MAX = 16  # parameter sets a kit keeps made
_BITMAP_MAX_ROWS = 1 << 25  # a kit's bitmap is at most 4 MiB (16 kits: 64 MiB)

ParameterMaker = Callable[[Mapping[str, int], Any], Any]


class ExclusionSelectors:
    """The kits of one index (see the module's docstring).

    Parameters
    ----------
    make_params : the index's :func:`~embrecall.index.structure.parameter_maker`
    bitmaps : whether kits mark rows in a bitmap (needs :mod:`embrecall._native`); None: when
        the C loops are built
    """

    def __init__(self, make_params: ParameterMaker, bitmaps: bool | None = None) -> None:
        self.make_params = make_params
        self.bitmaps = _native is not None if bitmaps is None else bitmaps
        if self.bitmaps and _native is None:
            raise RuntimeError("bitmap exclusions need embrecall._native, which is not built")
        self._free: list[_Kit] = []

    def exclude(self, rows: np.ndarray | Sequence[int], ntotal: int) -> Exclusion:
        """An exclusion of ``rows`` of an index of ``ntotal`` rows: any order; repeats, and rows
        the index does not hold, do no harm."""
        bitmap_rows = ntotal if self.bitmaps and ntotal <= _BITMAP_MAX_ROWS else 0
        try:
            kit = self._free.pop()  # list.pop and append are atomic: no lock is needed
        except IndexError:
            kit = None
        if kit is None or kit.bitmap_rows != bitmap_rows:  # the index grew since it was made
            kit = _Kit(bitmap_rows)
        return Exclusion(self, kit, rows)

    def give_back(self, kit: _Kit) -> None:
        if len(self._free) < _POOL_MAX:
            self._free.append(kit)


class Exclusion:
    """The excluded rows of one search, as faiss search parameters: :meth:`params` for each
    parameter set the search tries, then :meth:`release` once, after the search."""

    __slots__ = ("_kit", "_pool", "_rows", "_batch")

    def __init__(
        self, pool: ExclusionSelectors, kit: _Kit, rows: np.ndarray | Sequence[int]
    ) -> None:
        self._pool = pool
        self._kit = kit
        self._rows = rows = np.ascontiguousarray(rows, dtype=np.int64)
        if kit.bitmap is not None:
            _native.set_bits(kit.bitmap, rows)  # rows beyond the bitmap (-1) are skipped
            self._batch = None
        else:
            # the (n, pointer) form: faiss copies the rows into its set, nothing to keep alive
            self._batch = faiss.IDSelectorBatch(len(rows), _ptr(rows))
            kit.selector.sel = self._batch

    def params(self, params: Mapping[str, int]) -> Any:
        return self._kit.params(params, self._pool.make_params)

    def release(self) -> None:
        """Unmark the rows and give the kit back. A kit whose release never ran (an error
        between) is never given back, so no search sees another's rows."""
        kit, self._kit = self._kit, None
        if kit is None:
            return
        if kit.bitmap is not None:
            _native.clear_bits(kit.bitmap, self._rows)
        else:
            kit.selector.sel = None  # no pointer to the batch, freed with this object
        self._pool.give_back(kit)


class _Kit:
    """An ``IDSelectorNot`` (over its bitmap's selector, or over each query's batch selector)
    and the parameter sets holding it."""

    __slots__ = ("selector", "bitmap", "bitmap_rows", "_bitmap_selector", "_params")

    def __init__(self, bitmap_rows: int) -> None:
        self.bitmap_rows = bitmap_rows
        if bitmap_rows:
            self.bitmap = np.zeros((bitmap_rows + 7) // 8, dtype=np.uint8)
            # faiss keeps the pointer: the kit holds the array for the selector's lifetime
            self._bitmap_selector = faiss.IDSelectorBitmap(self.bitmap.size, _ptr(self.bitmap))
            self.selector = faiss.IDSelectorNot(self._bitmap_selector)
        else:
            self.bitmap = self._bitmap_selector = None
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
