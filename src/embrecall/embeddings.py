"""`Embeddings`: external ids paired with float32 vectors; every vector invariant lives here.

Readers (``embrecall.io``) parse files into arrays and hand them to :func:`build_embeddings`,
which either refuses bad rows with a message naming the source and line, or (on request) drops
them and records each one in ``Embeddings.skipped``. An ``Embeddings`` object is always valid:
finite float32 C-contiguous vectors whose squared norms fit in float32, unique ids that are all
int64 (never the reserved -1) or all strings.

Embeddings know nothing of metrics: whoever does (the recommender, at build) asks
:meth:`Embeddings.zero_rows` and refuses or drops (:meth:`Embeddings.without_rows`) all-zero
vectors where a cosine query kind would meet them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from pandas._libs.hashtable import Int64HashTable, PyObjectHashTable

from embrecall.errors import (
    DimensionMismatchError,
    DuplicateIdError,
    InputFormatError,
    InvalidArgumentError,
    InvalidVectorError,
    UnknownIdError,
)
from embrecall.native import native

_RowMap = native.RowMap if native is not None else None  # type(table) is _RowMap: never None

IdKind = Literal["int", "str"]
OnBadRow = Literal["raise", "skip"]
RESERVED_ID = -1  # faiss pads missing results with -1, so no real id may be -1
_INT64_MAX = np.iinfo(np.int64).max
_INT64_MIN = np.iinfo(np.int64).min
_FLOAT32_MAX = float(np.finfo(np.float32).max)
_SAFE_SQUARED_NORM = _FLOAT32_MAX / 4  # margin for the order of summation near the limit
OVERFLOW_REASON = "vector is too large: its squared norm overflows float32 (above 3.4e38)"


@dataclass(frozen=True)
class SkippedRow:
    """A row left out under ``on_bad_row="skip"``: where it was and why."""

    line: int | None
    reason: str


class Embeddings:
    """Ids and their vectors, validated.

    Parameters
    ----------
    ids : array-like, shape (n,)
        Integer ids (become int64) or string ids (kept as Python ``str``).
    vectors : array-like, shape (n, d)
        Numbers; stored as float32, C-contiguous.
    source : str
        Where the data came from, used in error messages.
    lines : array-like of int, shape (n,), optional
        The source line (or row) number of each row, used in error messages.
    unit : str
        What ``lines`` count: ``"line"`` (text files) or ``"row"`` (parquet, npy).
    skipped : sequence of SkippedRow
        Rows a reader left out; kept for the caller to report.
    """

    __slots__ = ("ids", "vectors", "source", "skipped", "lines", "unit", "_rows_by_id", "_int_ids")

    def __init__(
        self,
        ids: Sequence | np.ndarray,
        vectors: np.ndarray | Sequence,
        *,
        source: str = "<arrays>",
        lines: Sequence[int] | np.ndarray | None = None,
        unit: str = "line",
        skipped: Iterable[SkippedRow] = (),
    ) -> None:
        vectors = as_vector_matrix(vectors, what=source)
        n = vectors.shape[0]
        if n == 0:
            raise InputFormatError(f"{source}: no embeddings (the input is empty)")
        ids_arr = normalise_ids(ids, source=source)
        if len(ids_arr) != n:
            raise InputFormatError(f"{source}: {len(ids_arr)} ids for {n} vectors")
        where = _Locator(source, ids_arr, lines, unit)
        bad_id = _first_reserved_id(ids_arr)
        if bad_id is not None:
            raise InputFormatError(
                f"{where(bad_id)}: id -1 is reserved (faiss uses it for 'no result')"
            )
        bad = _first_non_finite_row(vectors)
        if bad is not None:
            raise InvalidVectorError(f"{where(bad)}: vector holds NaN or infinity")
        big = np.flatnonzero(overflow_rows(vectors))
        if big.size:
            raise InvalidVectorError(f"{where(int(big[0]))}: {OVERFLOW_REASON}")
        rows_by_id = _row_table(ids_arr)
        if len(rows_by_id) != n:
            dup_rows = np.flatnonzero(pd.Index(ids_arr).duplicated(keep=False))
            first_dup = ids_arr[dup_rows[0]]
            rows = dup_rows[ids_arr[dup_rows] == first_dup][:2]
            raise DuplicateIdError(
                f"{source}: duplicate id {_py(first_dup)!r} at {where.place(rows[0])} "
                f"and {where.place(rows[1])}"
            )
        self.ids = ids_arr
        self.vectors = vectors
        self.source = source
        self.skipped = tuple(skipped)
        self.lines = where.lines  # kept so that later checks (e.g. at build) can name the line
        self.unit = unit
        self._rows_by_id = rows_by_id
        self._int_ids = ids_arr.dtype == np.int64  # id_kind, read by every lookup

    def __reduce__(self):
        # the id table is native and not picklable: rebuild it from the ids
        return (
            _rebuild_embeddings,
            (self.ids, self.vectors, self.source, self.lines, self.unit, self.skipped),
        )

    # -- shape -----------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.vectors.shape[0]

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    @property
    def id_kind(self) -> IdKind:
        return "int" if self.ids.dtype == np.int64 else "str"

    def __repr__(self) -> str:
        return (
            f"Embeddings(n={len(self)}, dim={self.dim}, ids={self.id_kind}, source={self.source!r})"
        )

    # -- id <-> row --------------------------------------------------------------------------
    def coerce_id(self, value: object, *, what: str = "id") -> int | str:
        """Turn a user-supplied id (e.g. the text ``"42"`` from a CLI) into this id kind.

        Raises :class:`UnknownIdError` for an integer beyond int64, which no index can hold.
        """
        return coerce_id(value, self.id_kind, what=what)

    def parse_id(self, value: object) -> int | str:
        """``value`` read as this id kind, of any size (for naming ids that are not held)."""
        return str(value) if self.id_kind == "str" else _int_id(value)

    def lookup_rows(self, ids: Sequence | np.ndarray) -> np.ndarray:
        """Rows (int64) of ``ids``, -1 for an id not held (an integer beyond int64 included)."""
        if len(ids) == 0:
            return np.empty(0, dtype=np.int64)
        if len(ids) == 1 and isinstance(ids, list):  # one query's id: a scalar lookup is 50x
            return np.array([self._row_or_missing(ids[0])], dtype=np.int64)  # the array one
        table = self._rows_by_id
        if type(table) is _RowMap:  # integer ids in embrecall's C table: one call
            rows = np.empty(len(ids), dtype=np.int64)
            if not (isinstance(ids, list) and table.lookup_list(ids, rows)):
                table.lookup(_int64_keys(ids), rows)  # not all exact ints: checked, converted
            return rows
        keys = _int64_keys(ids) if self._int_ids else _str_keys(ids)
        return table.lookup(keys).astype(np.int64, copy=False)

    def _row_or_missing(self, id_: object) -> int:
        if type(id_) is int and self._int_ids:  # the common case, without _int_id's checks
            key: int | str = id_
        else:
            key = _int_id(id_) if self._int_ids else str(id_)
        table = self._rows_by_id
        if type(table) is _RowMap:
            return table.get(key)  # -1 when not held, an integer beyond int64 included
        try:
            return table.get_item(key)
        except (KeyError, OverflowError):  # not held, or an integer beyond int64
            return -1

    def rows_of(self, ids: Sequence | np.ndarray, *, what: str = "id") -> np.ndarray:
        """Rows (int64) of ``ids``; raises :class:`UnknownIdError` naming the ids not held."""
        rows = self.lookup_rows(ids)
        if rows.size == 1 and rows[0] >= 0:  # one id, held: no pass over the rows needed
            return rows
        # parsed, not coerced: an id beyond int64 is named with the others, not raised alone
        missing = [self.parse_id(ids[i]) for i in np.flatnonzero(rows < 0)]
        if missing:
            shown = ", ".join(repr(m) for m in missing[:5])
            more = f" (and {len(missing) - 5} more)" if len(missing) > 5 else ""
            raise UnknownIdError(f"unknown {what} {shown}{more}", missing)
        return rows

    def row_of(self, id_: object, *, what: str = "id") -> int:
        """The row of one id; raises :class:`UnknownIdError` when it is not held."""
        row = self._row_or_missing(id_)  # one native lookup: a query by id starts here
        if row < 0:
            self.rows_of([id_], what=what)  # raises, naming the id as a batch would
        return row

    # -- rows a metric cannot use ----------------------------------------------------------
    def zero_rows(self) -> np.ndarray:
        """Mask (n,) of the all-zero vectors: they have no direction, so cosine cannot rank them."""
        return zero_rows(self.vectors)

    def require_nonzero(self, why: str) -> None:
        """Raise :class:`InvalidVectorError` naming the first all-zero vector, if any.

        ``why`` says what needs a direction, e.g. ``"cosine (similar_items)"``.
        """
        zero = np.flatnonzero(self.zero_rows())
        if zero.size:
            more = f" (and {zero.size - 1} more)" if zero.size > 1 else ""
            raise InvalidVectorError(
                f"{self.describe_row(int(zero[0]))}: vector is all zeros{more}, which {why} "
                "cannot rank; drop such rows with on_bad_row='skip' (--on-bad-row skip)"
            )

    def describe_row(self, row: int) -> str:
        """``"source: line N (id X)"`` for a row, for error messages."""
        return _Locator(self.source, self.ids, self.lines, self.unit)(row)

    def without_rows(self, drop: np.ndarray, reason: str) -> Embeddings:
        """These embeddings less the rows of mask ``drop``, each added to ``skipped``.

        Returns ``self`` when nothing is dropped. Raises :class:`InputFormatError` when nothing
        would be left.
        """
        drop = np.asarray(drop, dtype=bool)
        if not drop.any():
            return self
        if drop.all():
            raise InputFormatError(f"{self.source}: no embeddings left: every row {reason}")
        rows = np.flatnonzero(drop)
        lines = self.lines if self.lines is not None else np.arange(1, len(self) + 1)
        skipped = [*self.skipped, *(SkippedRow(int(lines[r]), reason) for r in rows)]
        skipped.sort(key=lambda s: (s.line is None, s.line or 0))
        keep = ~drop
        return Embeddings(
            self.ids[keep],
            self.vectors[keep],
            source=self.source,
            lines=lines[keep],
            unit=self.unit,
            skipped=skipped,
        )

    def contains(self, id_: object) -> bool:
        try:
            return bool(self.lookup_rows([id_])[0] >= 0)
        except InputFormatError:  # not an integer, for integer ids
            return False


def _rebuild_embeddings(ids, vectors, source, lines, unit, skipped) -> Embeddings:
    return Embeddings(ids, vectors, source=source, lines=lines, unit=unit, skipped=skipped)


def _row_table(ids: np.ndarray) -> _RowMap | Int64HashTable | PyObjectHashTable:
    """id -> row in a native hash table: every query looks its ids up here, so a lookup is one
    native call, with no pandas object built for it. Integer ids go to embrecall's C table
    where it is built (it also reads a list of Python ints directly, the ids a request gives),
    otherwise, and for string ids, to pandas' (what a pandas Index uses inside). A repeated id
    is stored once, so the table is shorter than ``ids`` when ids repeat."""
    if ids.dtype == np.int64 and native is not None:
        return native.RowMap(np.ascontiguousarray(ids))
    table = Int64HashTable(len(ids)) if ids.dtype == np.int64 else PyObjectHashTable(len(ids))
    table.map_locations(ids)
    return table


def _int64_keys(ids: Sequence | np.ndarray) -> np.ndarray:
    """Integer ids as int64 keys; an id beyond int64, which no index holds, becomes the reserved
    id, which none holds either. InputFormatError for an id that is not an integer."""
    if isinstance(ids, np.ndarray) and ids.ndim == 1 and ids.dtype.kind == "i":
        return ids.astype(np.int64, copy=False)
    # a list of Python ints, as a service parses them (bool is not int here); the set of
    # types is a third of the cost of asking each id in a generator
    if isinstance(ids, list) and set(map(type, ids)) == {int}:
        try:
            return np.array(ids, dtype=np.int64)
        except OverflowError:
            pass
    return np.array([_int64_or_reserved(_int_id(i)) for i in ids], dtype=np.int64)


def _str_keys(ids: Sequence | np.ndarray) -> np.ndarray:
    keys = np.empty(len(ids), dtype=object)
    keys[:] = [str(i) for i in ids]
    return keys


def build_embeddings(
    ids: Sequence | np.ndarray,
    vectors: np.ndarray,
    *,
    source: str,
    lines: Sequence[int] | np.ndarray | None = None,
    unit: str = "line",
    on_bad_row: OnBadRow = "raise",
    skipped: Iterable[SkippedRow] = (),
) -> Embeddings:
    """Validate reader output into :class:`Embeddings`.

    With ``on_bad_row="raise"`` the first bad row raises. With ``"skip"`` rows holding NaN/inf,
    the reserved id -1, or a repeat of an earlier id are dropped and listed in ``.skipped``
    (together with ``skipped``, the rows the reader itself could not parse).
    """
    if on_bad_row not in ("raise", "skip"):
        raise InvalidArgumentError(f"on_bad_row must be 'raise' or 'skip', not {on_bad_row!r}")
    if on_bad_row == "raise":
        return Embeddings(ids, vectors, source=source, lines=lines, unit=unit, skipped=skipped)
    vectors = as_vector_matrix(vectors, what=source)
    ids_arr = normalise_ids(ids, source=source)
    line_arr = np.asarray(lines) if lines is not None else np.arange(1, len(ids_arr) + 1)
    keep = np.isfinite(vectors).all(axis=1)
    reasons = {int(r): "vector holds NaN or infinity" for r in np.flatnonzero(~keep)}
    for r in np.flatnonzero(overflow_rows(vectors)):
        reasons.setdefault(int(r), OVERFLOW_REASON)
    if ids_arr.dtype == np.int64:
        for r in np.flatnonzero(ids_arr == RESERVED_ID):
            reasons.setdefault(int(r), "id -1 is reserved")
    dup = pd.Index(ids_arr).duplicated(keep="first")
    for r in np.flatnonzero(dup):
        reasons.setdefault(int(r), f"duplicate id {_py(ids_arr[r])!r}")
    drop = np.array(sorted(reasons), dtype=np.int64)
    keep = np.ones(len(ids_arr), dtype=bool)
    keep[drop] = False
    all_skipped = list(skipped) + [SkippedRow(int(line_arr[r]), reasons[int(r)]) for r in drop]
    all_skipped.sort(key=lambda s: (s.line is None, s.line or 0))
    return Embeddings(
        ids_arr[keep],
        vectors[keep],
        source=source,
        lines=line_arr[keep],
        unit=unit,
        skipped=all_skipped,
    )


# -- helpers shared with readers and the recommender ------------------------------------------
def as_vector_matrix(vectors: np.ndarray | Sequence, *, what: str = "vectors") -> np.ndarray:
    """``vectors`` as a 2-D float32 C-contiguous array, or a clear error."""
    try:
        arr = np.asarray(vectors)
    except ValueError as exc:  # ragged nested lists
        raise InvalidVectorError(f"{what}: vectors are not a rectangular array ({exc})") from exc
    if arr.ndim != 2:
        raise InvalidVectorError(f"{what}: expected a 2-D array (n, d), got {arr.ndim}-D")
    if arr.dtype.kind not in "fiub":
        raise InvalidVectorError(f"{what}: expected numbers, got dtype {arr.dtype}")
    if arr.shape[1] == 0:
        raise InvalidVectorError(f"{what}: vectors have dimension 0")
    with np.errstate(over="ignore"):  # values beyond float32 become inf and are refused later
        return np.ascontiguousarray(arr, dtype=np.float32)


def check_query_vectors(
    vectors: np.ndarray | Sequence, dim: int, *, nonzero: bool = False
) -> tuple[np.ndarray, bool]:
    """Validate query vectors before faiss sees them.

    Refuses NaN, infinity, vectors whose squared norm overflows float32 (faiss would score them
    inf or NaN) and, with ``nonzero`` (cosine queries), all-zero vectors, which have no direction.
    Returns the (m, d) float32 matrix and whether a single 1-D vector was given.
    """
    if isinstance(vectors, np.ndarray) and vectors.dtype == np.float32:
        arr = vectors  # nothing to convert, so nothing can overflow
    else:
        try:
            with np.errstate(over="ignore"):  # beyond float32 becomes inf, refused just below
                arr = np.asarray(vectors, dtype=np.float32)
        except (ValueError, TypeError) as exc:
            raise InvalidVectorError(f"query is not an array of numbers ({exc})") from exc
    single = arr.ndim == 1
    if single:
        if arr.shape[0] == dim:
            # One squared norm answers every check at once: NaN or infinity make it NaN or inf,
            # a square beyond float32 makes it inf, and a zero vector (or one so small that its
            # squares underflow) makes it 0; the full checks below then say which. Summed in
            # float32 (no conversion first: each numpy call costs microseconds once a search has
            # evicted the caches), well below float32's maximum nothing can overflow. (vdot, as
            # it does not warn when a square overflows to inf; dot does.)
            squared = float(np.vdot(arr, arr))
            if 0.0 < squared < _SAFE_SQUARED_NORM and arr.flags.c_contiguous:
                return arr.reshape(1, dim), single
        arr = arr[None, :]
    if arr.ndim != 2:
        raise InvalidVectorError(f"query must be a vector or a 2-D batch, got {arr.ndim}-D")
    if arr.shape[1] != dim:
        raise DimensionMismatchError(f"query has dimension {arr.shape[1]}, index has {dim}")
    if not np.isfinite(arr).all():
        raise InvalidVectorError("query vector holds NaN or infinity")
    big = np.flatnonzero(overflow_rows(arr))
    if big.size:
        too_large = OVERFLOW_REASON.removeprefix("vector ")
        raise InvalidVectorError(f"query vector{_which(big, single)} {too_large}")
    if nonzero:
        zero = np.flatnonzero(zero_rows(arr))
        if zero.size:
            raise InvalidVectorError(
                f"query vector{_which(zero, single)} is all zeros; a cosine query needs a "
                "vector with a direction"
            )
    return np.ascontiguousarray(arr), single


def overflow_rows(vectors: np.ndarray) -> np.ndarray:
    """Mask (n,) of the rows of a finite float32 (n, d) matrix whose squared norm overflows float32.

    faiss computes norms, inner products and distances in float32, so such a row scores inf or
    NaN. Cheap in the usual case: when even the largest magnitude cannot overflow, no row can.
    """
    n, d = vectors.shape
    if n == 0 or d == 0:
        return np.zeros(n, dtype=bool)
    largest = max(float(vectors.max()), -float(vectors.min()))
    if largest * largest * d <= _FLOAT32_MAX:
        return np.zeros(n, dtype=bool)
    squared = np.einsum("ij,ij->i", vectors, vectors, dtype=np.float64)  # no float32 overflow
    return squared > _FLOAT32_MAX


def zero_rows(vectors: np.ndarray) -> np.ndarray:
    """Mask (n,) of the all-zero rows of an (n, d) matrix."""
    return ~vectors.any(axis=1)


def _which(rows: np.ndarray, single: bool) -> str:
    return "" if single else f" {int(rows[0])} (0-based, in the batch)"


def normalise_ids(ids: Sequence | np.ndarray, *, source: str = "ids") -> np.ndarray:
    """Ids as int64 (integers) or an object array of ``str`` (strings); anything else refused."""
    arr = np.asarray(ids) if not isinstance(ids, np.ndarray) else ids
    if arr.ndim != 1:
        raise InputFormatError(f"{source}: ids must be 1-D, got shape {arr.shape}")
    kind = arr.dtype.kind
    if kind in "iu":
        if kind == "u" and arr.size and arr.max() > _INT64_MAX:
            big = arr[arr > _INT64_MAX][0]
            raise InputFormatError(f"{source}: id {int(big)} does not fit in int64")
        return arr.astype(np.int64, copy=False)
    if kind == "f":
        if not np.isfinite(arr).all() or (arr != np.round(arr)).any():
            raise InputFormatError(f"{source}: ids must be integers or strings, got floats")
        return arr.astype(np.int64)
    if kind in "UST":
        return np.array([str(x) for x in arr], dtype=object)
    if kind == "O":
        values = list(arr)
        if all(isinstance(v, str) for v in values):
            return np.array(values, dtype=object)
        if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
            for v in values:
                if not _INT64_MIN <= int(v) <= _INT64_MAX:
                    raise InputFormatError(f"{source}: id {int(v)} does not fit in int64")
            return np.array(values, dtype=np.int64)
        raise InputFormatError(
            f"{source}: ids must be all integers or all strings, found "
            f"{', '.join(sorted({type(v).__name__ for v in values}))}"
        )
    raise InputFormatError(f"{source}: ids must be integers or strings, got dtype {arr.dtype}")


def coerce_id(value: object, kind: IdKind, *, what: str = "id") -> int | str:
    """A single id as ``kind``; integer text such as ``"42"`` is accepted for integer ids.

    Raises
    ------
    InputFormatError
        Not an integer, for integer ids.
    UnknownIdError
        An integer beyond int64: no index holds it, and numpy and pandas would overflow on it.
    """
    if kind == "str":
        return str(value)
    parsed = _int_id(value)
    if not _INT64_MIN <= parsed <= _INT64_MAX:
        raise UnknownIdError(
            f"unknown {what} {parsed} (beyond the 64-bit range of integer ids)", [parsed]
        )
    return parsed


def _int_id(value: object) -> int:
    """An integer id as a Python int of any size; InputFormatError for anything else."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise InputFormatError(f"id {value!r} is not an integer (this index has integer ids)")


def _int64_or_reserved(value: int) -> int:
    return value if _INT64_MIN <= value <= _INT64_MAX else RESERVED_ID


class _Locator:
    """Formats 'file: line N (id X)' for the row of a validation error."""

    def __init__(self, source: str, ids: np.ndarray, lines, unit: str = "line") -> None:
        self.source, self.ids, self.unit = source, ids, unit
        self.lines = None if lines is None else np.asarray(lines)

    def place(self, row: int) -> str:
        if self.lines is None:
            return f"row {int(row)}"
        return f"{self.unit} {int(self.lines[row])}"

    def __call__(self, row: int) -> str:
        return f"{self.source}: {self.place(row)} (id {_py(self.ids[row])!r})"


def _py(value: object) -> object:
    """A numpy scalar as its Python value, so messages read ``7`` and not ``np.int64(7)``."""
    return value.item() if isinstance(value, np.generic) else value


def _first_reserved_id(ids: np.ndarray) -> int | None:
    if ids.dtype != np.int64:
        return None
    hits = np.flatnonzero(ids == RESERVED_ID)
    return int(hits[0]) if hits.size else None


def _first_non_finite_row(vectors: np.ndarray) -> int | None:
    ok = np.isfinite(vectors).all(axis=1)
    if ok.all():
        return None
    return int(np.flatnonzero(~ok)[0])
