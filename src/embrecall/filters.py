"""Filters over catalogue fields: ``genres=Comedy``, ``year>=2000``, ``gender=F``.

A filter is one or more expressions, ANDed. Each names a field of the target space's catalogue:

- ``FIELD=VALUE``: the field holds the value. A list-valued field (MovieLens ``genres``,
  ``Action|Comedy``) holds it when it is one of its values.
- ``FIELD=A|B``: any of several values.
- ``FIELD!=VALUE`` (or ``!=A|B``): none of them. A row with no value passes.
- ``FIELD>=N``, ``FIELD<=N``, ``FIELD>N``, ``FIELD<N``: numeric fields only. A row with no
  value fails.

:class:`FieldTable` holds a space's filter fields aligned with its rows, typed once, at build:
numeric columns as float64, text and list fields as per-value row lists (a CSR), so the number
of rows a filter passes is known exactly before any search. It is stored in the artifact.
:meth:`FieldTable.compile` turns expressions into a :class:`RowFilter` (a row mask, its packed
bitmap for faiss, the count), cached, since a surface asks the same filters again and again.
This module knows rows and catalogue values, never faiss indexes or external ids.
"""

from __future__ import annotations

import math
import re
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from embrecall.errors import InvalidArgumentError

if TYPE_CHECKING:
    from embrecall.catalog import Catalog

__all__ = [
    "Condition",
    "FieldTable",
    "RowFilter",
    "parse_filter",
    "parse_filters",
]

OPERATORS = (">=", "<=", "!=", "=", ">", "<")  # two-character ones first: ">=" is not ">"
_EXPRESSION = re.compile(r"^\s*([A-Za-z_][\w.\-]*)\s*(>=|<=|!=|=|>|<)\s*(.*?)\s*$", re.S)
_YEAR_IN_TITLE = r"\((?P<year>\d{4})\)\s*$"
LIST_SEPARATOR = "|"
# A text column with (nearly) one value per row, e.g. titles or ids, is no filter field:
# per-value row lists would cost more than the column and no surface filters on them.
_UNIQUE_SHARE = 0.9
_UNIQUE_MIN = 1000
# A text column is list-valued (``Action|Comedy``) when this share of its values hold the
# separator; MovieLens genres are.
_LIST_SHARE = 0.05
_CACHE_ENTRIES = 256
_CACHE_BYTES = 256 << 20  # compiled filters and their gathered rows, per space
_SUBSET_MAX_BYTES = 32 << 20  # a filter's gathered rows are kept up to this size
MAX_EXPRESSIONS = 32


# -- expressions -------------------------------------------------------------------------------
@dataclass(frozen=True, order=True)
class Condition:
    """One parsed expression: ``field op values`` (``values``: several only for ``=``/``!=``)."""

    field: str
    op: str
    values: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.field}{self.op}{LIST_SEPARATOR.join(self.values)}"


def parse_filter(expression: str) -> Condition:
    """Parse one expression such as ``genres=Comedy|Drama`` or ``year>=2000``.

    Raises
    ------
    InvalidArgumentError
        Not ``FIELD OP VALUE`` with one of ``= != >= <= > <``, or an empty value.
    """
    if not isinstance(expression, str):
        raise InvalidArgumentError(f"a filter is text like 'genres=Comedy', got {expression!r}")
    match = _EXPRESSION.match(expression)
    if match is None:
        raise InvalidArgumentError(
            f"filter {expression!r}: expected FIELD=VALUE, FIELD!=VALUE or FIELD>=N "
            f"(operators: {' '.join(OPERATORS)})"
        )
    name, op, raw = match.groups()
    several = op in ("=", "!=")
    values = tuple(v.strip() for v in raw.split(LIST_SEPARATOR)) if several else (raw,)
    if not all(values) or any(o in v for v in values for o in ("=", "<", ">")):
        raise InvalidArgumentError(
            f"filter {expression!r}: expected FIELD{op}VALUE with a value after {op!r}"
        )
    return Condition(name, op, values)


def parse_filters(expressions: str | Iterable[str] | None) -> tuple[Condition, ...]:
    """Expressions (one string or several, ANDed) as sorted, unique conditions; ``()`` for none."""
    if expressions is None:
        return ()
    if isinstance(expressions, str):
        expressions = [expressions]
    try:
        listed = list(expressions)
    except TypeError:
        raise InvalidArgumentError(
            f"filter must be an expression or a list of them, got {type(expressions).__name__}"
        ) from None
    if len(listed) > MAX_EXPRESSIONS:
        raise InvalidArgumentError(
            f"at most {MAX_EXPRESSIONS} filter expressions, got {len(listed)}"
        )
    return tuple(sorted({parse_filter(e) for e in listed}))


# -- compiled filters --------------------------------------------------------------------------
@dataclass
class RowFilter:
    """The rows of a space that pass a filter.

    Attributes
    ----------
    conditions : the parsed expressions, sorted
    mask : (n,) bool, True where a row passes
    count : how many pass (exact)
    """

    conditions: tuple[Condition, ...]
    mask: np.ndarray
    count: int
    _packed: np.ndarray | None = field(default=None, repr=False)
    _rows: np.ndarray | None = field(default=None, repr=False)
    # metric -> (the base, its passing rows gathered and prepared for that metric)
    _subsets: dict = field(default_factory=dict, repr=False)
    _owner: Any = field(default=None, repr=False)  # weakref to the FieldTable that caches it

    @property
    def ntotal(self) -> int:
        return int(self.mask.size)

    @property
    def selectivity(self) -> float:
        """The share of rows that pass, 0..1."""
        return self.count / self.ntotal if self.ntotal else 0.0

    @property
    def expressions(self) -> list[str]:
        return [str(c) for c in self.conditions]

    @property
    def rows(self) -> np.ndarray:
        """Sorted int64 rows that pass (made on first use)."""
        if self._rows is None:
            self._rows = np.flatnonzero(self.mask).astype(np.int64, copy=False)
        return self._rows

    @property
    def packed(self) -> np.ndarray:
        """The mask as faiss's ``IDSelectorBitmap`` reads it: bit ``i & 7`` of byte ``i >> 3``."""
        if self._packed is None:
            self._packed = np.packbits(self.mask, bitorder="little")
        return self._packed

    def packed_without(self, excluded: np.ndarray) -> np.ndarray:
        """:attr:`packed` with the ``excluded`` rows (int64, any order) cleared, as a new array."""
        packed = self.packed.copy()
        if excluded.size:
            excluded = excluded[(excluded >= 0) & (excluded < self.ntotal)]
            # .at: two excluded rows in one byte must both clear their bit
            np.bitwise_and.at(
                packed, excluded >> 3, ~np.left_shift(1, excluded & 7).astype(np.uint8)
            )
        return packed

    def subset(self, base: np.ndarray, metric: str, prepare: Callable) -> np.ndarray:
        """The passing rows of ``base`` gathered (unit-normalised for cosine), kept for the
        next query when small: a repeated selective filter then costs one matrix-vector
        product instead of a gather of scattered rows."""
        held = self._subsets.get(metric)
        if held is not None and held[0] is base:
            return held[1]
        sub = base.take(self.rows, axis=0)
        if metric == "cosine":
            sub = prepare(sub, "cosine")
        if sub.nbytes <= _SUBSET_MAX_BYTES:
            self._subsets[metric] = (base, sub)
            owner = self._owner() if self._owner is not None else None
            if owner is not None:
                owner._grew(self, sub.nbytes)
        return sub

    def nbytes(self) -> int:
        extra = sum(a.nbytes for a in (self._packed, self._rows) if a is not None)
        extra += sum(sub.nbytes for _, sub in self._subsets.values())
        return int(self.mask.nbytes + extra)


# -- fields ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class NumericField:
    """A numeric field: one float64 per row, NaN where the row has no value."""

    name: str
    column: np.ndarray
    kind: str = "number"

    def mask(self, cond: Condition) -> np.ndarray:
        numbers = [_number(cond, v) for v in cond.values]
        col = self.column
        if cond.op == "=":
            return np.isin(col, numbers)
        if cond.op == "!=":
            return ~np.isin(col, numbers)
        with np.errstate(invalid="ignore"):  # NaN (no value) compares False: it fails
            return {">=": np.greater_equal, "<=": np.less_equal, ">": np.greater, "<": np.less}[
                cond.op
            ](col, numbers[0])

    def passes(self, cond: Condition, value: Any) -> bool:
        """:meth:`mask` for one row's raw value (None: no value)."""
        numbers = [_number(cond, v) for v in cond.values]
        try:
            x = float(value) if value is not None and value != "" else math.nan
        except (TypeError, ValueError):
            x = math.nan
        if cond.op == "=":
            return x in numbers
        if cond.op == "!=":
            return x not in numbers
        if math.isnan(x):
            return False
        ordered = {">=": x >= numbers[0], "<=": x <= numbers[0], ">": x > numbers[0]}
        return ordered.get(cond.op, x < numbers[0])

    def describe(self) -> dict[str, Any]:
        held = self.column[~np.isnan(self.column)]
        return {
            "type": self.kind,
            "min": _plain_number(held.min()) if held.size else None,
            "max": _plain_number(held.max()) if held.size else None,
            "missing": int(self.column.size - held.size),
        }

    def arrays(self) -> dict[str, np.ndarray]:
        return {"column": self.column}


@dataclass(frozen=True)
class ValueField:
    """A text field, or a list-valued one: per distinct value, the sorted rows that hold it.

    ``values`` (V,) sorted text; ``indptr`` (V + 1,) int64; ``rows`` the rows of value ``i`` at
    ``rows[indptr[i]:indptr[i + 1]]``. A text field's row lists are disjoint; a list field's
    overlap (a comedy-drama is in both).
    """

    name: str
    kind: str  # "text" or "list"
    n: int
    values: np.ndarray
    indptr: np.ndarray
    rows: np.ndarray

    def mask(self, cond: Condition) -> np.ndarray:
        if cond.op not in ("=", "!="):
            raise InvalidArgumentError(
                f"filter {str(cond)!r}: field {self.name!r} is {self.kind}; {cond.op} needs a "
                "numeric field (use = or !=)"
            )
        held = np.zeros(self.n, dtype=bool)
        for value in cond.values:
            at = int(np.searchsorted(self.values, value))
            if at < self.values.size and self.values[at] == value:
                held[self.rows[self.indptr[at] : self.indptr[at + 1]]] = True
        return held if cond.op == "=" else ~held

    def passes(self, cond: Condition, value: Any) -> bool:
        """:meth:`mask` for one row's raw value (None: no value)."""
        if cond.op not in ("=", "!="):
            self.mask(cond)  # raises the same error
        if value is None:
            held: set = set()
        elif isinstance(value, (list, tuple, set)):
            held = {str(v).strip() for v in value}
        elif self.kind == "list":
            held = {v.strip() for v in str(value).split(LIST_SEPARATOR)}
        else:
            held = {str(value)}
        hit = any(v in held for v in cond.values)
        return hit if cond.op == "=" else not hit

    def count(self, value: str) -> int:
        at = int(np.searchsorted(self.values, value))
        if at < self.values.size and self.values[at] == value:
            return int(self.indptr[at + 1] - self.indptr[at])
        return 0

    def describe(self, top: int = 50) -> dict[str, Any]:
        counts = np.diff(self.indptr)
        order = np.argsort(-counts, kind="stable")[:top]
        return {
            "type": self.kind,
            "distinct": int(self.values.size),
            "values": {str(self.values[i]): int(counts[i]) for i in order},
        }

    def arrays(self) -> dict[str, np.ndarray]:
        return {"values": self.values, "indptr": self.indptr, "rows": self.rows}


Field = NumericField | ValueField


class FieldTable:
    """The filter fields of one space, aligned with its rows, and a cache of compiled filters.

    Parameters
    ----------
    n : number of rows of the space
    fields : name -> field
    """

    def __init__(self, n: int, fields: Mapping[str, Field]) -> None:
        self.n = int(n)
        self.fields = dict(fields)
        self._cache: OrderedDict[tuple[Condition, ...], RowFilter] = OrderedDict()
        self._cached_bytes = 0
        self._sizes: dict[tuple[Condition, ...], int] = {}  # bytes counted per cached filter
        self._lock = threading.Lock()
        # the expressions' own text -> compiled filter: a repeated filter skips parsing too
        self._by_text: dict[tuple[str, ...], RowFilter] = {}

    def __repr__(self) -> str:
        return f"FieldTable(n={self.n}, fields={list(self.fields)})"

    # -- building ------------------------------------------------------------------------------
    @classmethod
    def from_catalog(cls, catalog: Catalog, ids: np.ndarray) -> FieldTable:
        """Typed fields of ``catalog`` for the rows whose ids are ``ids`` (a row without a
        catalogue entry has no value in any field).

        Numeric columns become numeric fields; text columns text fields, or list fields when
        their values hold ``|``; a text column with about one value per row (titles) is left
        out. A ``year`` is parsed from titles that end in ``(1995)`` when there is no ``year``
        column.
        """
        table = catalog.aligned(ids)
        n = len(ids)
        fields: dict[str, Field] = {}
        for name in table.column_names:
            built = _field(name, table.column(name), n)
            if built is not None:
                fields[name] = built
        if "year" not in table.column_names:
            title = next((c for c in table.column_names if c.lower() == "title"), None)
            if title is not None:
                year = _year_from_titles(table.column(title))
                if year is not None:
                    fields["year"] = NumericField("year", year)
        return cls(n, fields)

    # -- compiling ---------------------------------------------------------------------------
    def compile(self, expressions: str | Iterable[str] | tuple[Condition, ...]) -> RowFilter:
        """The rows passing every expression (ANDed), from the cache when asked before.

        Raises
        ------
        InvalidArgumentError
            An unknown field, a bad expression, a number expected and text given, or an
            ordering operator on a text field; the message names the field.
        """
        raw = (expressions,) if isinstance(expressions, str) else None
        if raw is None and isinstance(expressions, (list, tuple)):
            raw = tuple(expressions)
        if raw is not None and all(isinstance(e, str) for e in raw):
            hit = self._by_text.get(raw)  # the same text as before: no parsing
            if hit is not None:
                return hit
        if raw is not None and all(isinstance(c, Condition) for c in raw):
            conditions = tuple(sorted(set(raw)))
        else:
            conditions = parse_filters(expressions)  # type: ignore[arg-type]
        if not conditions:
            raise InvalidArgumentError("the filter has no expression")
        with self._lock:
            hit = self._cache.get(conditions)
            if hit is not None:
                self._cache.move_to_end(conditions)
        if hit is not None:
            if raw is not None and all(isinstance(e, str) for e in raw):
                self._by_text_put(raw, hit)
            return hit
        mask = np.ones(self.n, dtype=bool)
        for cond in conditions:
            mask &= self._field(cond).mask(cond)
        compiled = RowFilter(conditions, mask, int(np.count_nonzero(mask)))
        self._remember(compiled)
        if raw is not None and all(isinstance(e, str) for e in raw):
            self._by_text_put(raw, compiled)
        return compiled

    def _by_text_put(self, raw: tuple[str, ...], compiled: RowFilter) -> None:
        with self._lock:
            if len(self._by_text) >= _CACHE_ENTRIES:
                self._by_text.clear()
            self._by_text[raw] = compiled

    def _field(self, cond: Condition) -> Field:
        found = self.fields.get(cond.field)
        if found is None:
            known = ", ".join(sorted(self.fields)) or "none"
            raise InvalidArgumentError(
                f"filter {str(cond)!r}: unknown field {cond.field!r} (filter fields: {known})"
            )
        return found

    def _remember(self, compiled: RowFilter) -> None:
        compiled._owner = weakref.ref(self)
        with self._lock:
            self._cache[compiled.conditions] = compiled
            self._sizes[compiled.conditions] = compiled.nbytes()
            self._cached_bytes += self._sizes[compiled.conditions]
            self._evict()

    def _grew(self, compiled: RowFilter, nbytes: int) -> None:
        """A cached filter kept its gathered rows: count them, and evict what no longer fits."""
        with self._lock:
            if self._cache.get(compiled.conditions) is compiled:
                self._sizes[compiled.conditions] += nbytes
                self._cached_bytes += nbytes
                self._evict()

    def _evict(self) -> None:
        """Drop the least recently used filters over the budget (the lock held)."""
        while len(self._cache) > _CACHE_ENTRIES or (
            self._cached_bytes > _CACHE_BYTES and len(self._cache) > 1
        ):
            conditions, _ = self._cache.popitem(last=False)
            self._cached_bytes -= self._sizes.pop(conditions)
            self._by_text.clear()  # it may hold the evicted one

    def passes(self, expressions: str | Iterable[str], record: Mapping[str, Any]) -> bool:
        """Whether one catalogue record (``{field: value}``, e.g. an item added since the
        build) passes every expression, by the same rules as :meth:`compile`."""
        for cond in parse_filters(expressions):
            found = self._field(cond)
            value = record.get(cond.field)
            if value is None and cond.field == "year" and "year" not in record:
                value = _year_of_title(record)  # as the catalogue's year was parsed
            if not found.passes(cond, value):
                return False
        return True

    def describe(self) -> dict[str, Any]:
        """Each field's type and its values (text: the most frequent, with counts; numbers:
        the range), JSON-safe: what ``/v1/info`` shows and the web page builds its chips from."""
        return {name: f.describe() for name, f in self.fields.items()}

    # -- persistence ---------------------------------------------------------------------------
    def save(self, root: Path, folder: str, save_npy: Callable[[Path, np.ndarray], None]) -> dict:
        """Write one ``.npy`` per array under ``root / folder`` with ``save_npy``; return the
        manifest entry (paths relative to ``root``)."""
        (root / folder).mkdir(parents=True)
        entry: dict[str, Any] = {"rows": self.n, "fields": {}}
        for i, (name, f) in enumerate(self.fields.items()):
            files = {}
            for part, array in f.arrays().items():
                rel = f"{folder}/{i}-{part}.npy"
                save_npy(root / rel, array)
                files[part] = rel
            entry["fields"][name] = {"type": f.kind, "files": files}
        return entry

    @classmethod
    def load(cls, entry: Mapping[str, Any], load_npy: Callable[[str], np.ndarray]) -> FieldTable:
        """The table a manifest ``entry`` describes, its arrays read by ``load_npy(rel)``."""
        n = int(entry["rows"])
        fields: dict[str, Field] = {}
        for name, spec in entry["fields"].items():
            arrays = {part: load_npy(rel) for part, rel in spec["files"].items()}
            if spec["type"] == "number":
                fields[name] = NumericField(name, arrays["column"])
            else:
                fields[name] = ValueField(name, spec["type"], n, **arrays)
            if any(len(a) != n for part, a in arrays.items() if part == "column"):
                raise ValueError(f"filter field {name} does not have {n} rows")
        return cls(n, fields)


# -- helpers -----------------------------------------------------------------------------------
def _number(cond: Condition, value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise InvalidArgumentError(
            f"filter {str(cond)!r}: field {cond.field!r} is numeric and {value!r} is not a number"
        ) from None
    if not np.isfinite(number):
        raise InvalidArgumentError(f"filter {str(cond)!r}: {value!r} is not a finite number")
    return number


def _plain_number(x: float) -> int | float:
    return int(x) if float(x).is_integer() else float(x)


def _field(name: str, column: pa.ChunkedArray, n: int) -> Field | None:
    kind = column.type
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        values = pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)
        return NumericField(name, np.asarray(values, dtype=np.float64))
    if pa.types.is_boolean(kind):
        column = pc.cast(column, pa.string())
    elif pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return _value_field(name, "list", column, n)
    elif not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        return None  # dates, structs: not filterable (yet)
    distinct = pc.count_distinct(column).as_py()
    held = n - column.null_count
    if distinct > _UNIQUE_MIN and distinct > _UNIQUE_SHARE * max(held, 1):
        return None
    with_separator = pc.sum(pc.match_substring(column, LIST_SEPARATOR)).as_py() or 0
    if held and with_separator >= _LIST_SHARE * held:
        return _value_field(name, "list", pc.split_pattern(column, LIST_SEPARATOR), n)
    return _value_field(name, "text", column, n)


def _value_field(name: str, kind: str, column: pa.ChunkedArray, n: int) -> ValueField:
    """Per-value sorted row lists of a text column or a list column."""
    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if kind == "list":
        lengths = pc.fill_null(pc.list_value_length(column), 0).to_numpy(zero_copy_only=False)
        row_of = np.repeat(np.arange(n, dtype=np.int64), lengths)
        flat = pc.utf8_trim_whitespace(pc.cast(pc.list_flatten(column), pa.string()))
    else:
        row_of = np.arange(n, dtype=np.int64)
        flat = column
    present = flat.is_valid().to_numpy(zero_copy_only=False)
    if kind == "list":
        present &= pc.not_equal(flat, "").fill_null(False).to_numpy(zero_copy_only=False)
    encoded = pc.dictionary_encode(flat.filter(pa.array(present)))
    row_of = row_of[present]
    dictionary = np.asarray(encoded.dictionary.to_pylist(), dtype=str)
    codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    # values sorted, so that a lookup is a binary search; rows sorted within each value
    order = np.argsort(dictionary, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    codes = rank[codes]
    by = np.lexsort((row_of, codes))
    codes, rows = codes[by], row_of[by]
    keep = np.ones(rows.size, dtype=bool)  # a value listed twice in one row counts once
    keep[1:] = (codes[1:] != codes[:-1]) | (rows[1:] != rows[:-1])
    codes, rows = codes[keep], rows[keep]
    indptr = np.zeros(order.size + 1, dtype=np.int64)
    np.cumsum(np.bincount(codes, minlength=order.size), out=indptr[1:])
    return ValueField(name, kind, n, dictionary[order], indptr, rows)


def _year_of_title(record: Mapping[str, Any]) -> int | None:
    title = next((v for k, v in record.items() if k.lower() == "title"), None)
    found = re.search(_YEAR_IN_TITLE, title) if isinstance(title, str) else None
    return int(found.group("year")) if found else None


def _year_from_titles(titles: pa.ChunkedArray) -> np.ndarray | None:
    """Years from titles like ``Toy Story (1995)``; None when most titles have none."""
    if not (pa.types.is_string(titles.type) or pa.types.is_large_string(titles.type)):
        return None
    years = pc.struct_field(pc.extract_regex(titles, _YEAR_IN_TITLE), [0])
    held = len(years) - years.null_count
    if held == 0 or held < 0.5 * (len(titles) - titles.null_count):
        return None
    return np.asarray(pc.cast(years, pa.float64()).to_numpy(zero_copy_only=False), np.float64)
