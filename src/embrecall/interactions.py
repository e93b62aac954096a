"""What each user has already seen, so that recommendations can exclude it inside the search.

:func:`read_interactions` reads (user, item[, rating][, timestamp]) rows from MovieLens
``ratings.csv`` / ``ratings.dat``, any CSV with a header, or parquet, into :class:`Interactions`
(raw external ids). :meth:`SeenItems.from_interactions` maps those ids onto the rows of the user
and item :class:`~embrecall.embeddings.Embeddings` and packs them as CSR: the seen item rows of
user row ``u`` are ``item_rows[indptr[u]:indptr[u + 1]]``, sorted and unique, ready for a faiss
``IDSelector``. Everything is vectorised (pyarrow parsing, pandas hashing, one numpy sort), so
MovieLens-25M-sized files map in seconds.
"""

from __future__ import annotations

import logging
import operator
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pa_ds

from embrecall.embeddings import Embeddings, IdKind
from embrecall.errors import InputFormatError
from embrecall.tables import (
    CsvLines,
    TableFormat,
    decode_text,
    detect_format,
    ids_from_text,
    ids_from_typed,
    int64_or_none,
    parse_header,
    pick_column,
    read_csv_table,
    read_parquet_table,
    to_id_array,
)

__all__ = ["Interactions", "SeenItems", "read_interactions"]

# Candidate columns, in order of preference; compared case-insensitively and without "_".
USER_COLUMNS = ("userId", "user_id", "user", "uid")
ITEM_COLUMNS = ("movieId", "item_id", "item", "itemId", "iid")
RATING_COLUMNS = ("rating",)
TIMESTAMP_COLUMNS = ("timestamp",)
# ratings.dat has no header: UserID::MovieID::Rating::Timestamp (rating and timestamp optional).
DAT_COLUMNS = ("userId", "movieId", "rating", "timestamp")

logger = logging.getLogger("embrecall")
LineOf = Callable[[int], "int | str"]


class Interactions:
    """(user, item) pairs with optional ratings and timestamps, all aligned by row.

    Parameters
    ----------
    users, items : array-like, shape (n,)
        External ids: integers (become int64) or strings (an object array of ``str``).
    ratings : array-like of float, shape (n,), optional
        Finite numbers, stored as float64.
    timestamps : array-like of int, shape (n,), optional
        Integers as written in the source (MovieLens: seconds since the epoch), stored as int64.
    source : str
        Where the data came from, used in error messages.
    """

    __slots__ = ("users", "items", "ratings", "timestamps", "source")

    def __init__(
        self,
        users: Sequence | np.ndarray,
        items: Sequence | np.ndarray,
        ratings: Sequence[float] | np.ndarray | None = None,
        timestamps: Sequence[int] | np.ndarray | None = None,
        *,
        source: str = "<arrays>",
    ) -> None:
        self.users = _id_array(users, what="user ids", source=source)
        self.items = _id_array(items, what="item ids", source=source)
        n = len(self.users)
        _check_length(self.items, n, what="item ids", source=source)
        self.ratings = None if ratings is None else _ratings_array(ratings, n, source=source)
        self.timestamps = (
            None if timestamps is None else _timestamps_array(timestamps, n, source=source)
        )
        self.source = source

    def __len__(self) -> int:
        return len(self.users)

    def __repr__(self) -> str:
        extra = [name for name in ("ratings", "timestamps") if getattr(self, name) is not None]
        return (
            f"Interactions(n={len(self)}, users={_kind(self.users)}, items={_kind(self.items)}"
            f"{''.join(', ' + e for e in extra)}, source={self.source!r})"
        )


class SeenItems:
    """Seen item rows per user row, as CSR.

    Parameters
    ----------
    indptr : array-like of int, shape (n_users + 1,)
        Starts at 0, never decreases, ends at ``len(item_rows)``.
    item_rows : array-like of int, shape (nnz,)
        Row numbers into the item embeddings; within each user sorted and unique.
    n_items : int, optional
        Number of item rows; when given, every item row must be below it.
    dropped_unknown_users, dropped_unknown_items : int
        How many interactions were left out because their user (item) is not in the
        embeddings. An interaction with both unknown counts in both.

    Raises
    ------
    InputFormatError
        The arrays break one of the rules above.
    """

    __slots__ = (
        "indptr",
        "item_rows",
        "n_items",
        "dropped_unknown_users",
        "dropped_unknown_items",
    )

    def __init__(
        self,
        indptr: Sequence[int] | np.ndarray,
        item_rows: Sequence[int] | np.ndarray,
        *,
        n_items: int | None = None,
        dropped_unknown_users: int = 0,
        dropped_unknown_items: int = 0,
    ) -> None:
        indptr = _int64_vector(indptr, what="indptr")
        item_rows = _int64_vector(item_rows, what="item_rows")
        _check_csr(indptr, item_rows, n_items)
        self.indptr = indptr
        self.item_rows = item_rows
        self.n_items = None if n_items is None else int(n_items)
        self.dropped_unknown_users = int(dropped_unknown_users)
        self.dropped_unknown_items = int(dropped_unknown_items)

    @classmethod
    def from_interactions(
        cls, interactions: Interactions, *, users: Embeddings, items: Embeddings
    ) -> SeenItems:
        """Map interactions onto embedding rows.

        Ids are compared in the embeddings' kind: integer ids in the file match string ids in
        the embeddings as their decimal text, and integer text matches integer ids. Interactions
        whose user or item is not in the embeddings (ALS drops cold ids) are left out and
        counted; repeats of a (user, item) pair count once.

        Parameters
        ----------
        interactions : Interactions
            n interactions.
        users, items : Embeddings
            The user and item embeddings of the model.

        Returns
        -------
        SeenItems
            ``n_users == len(users)``, ``n_items == len(items)``.

        Raises
        ------
        InputFormatError
            Not one user id, or not one item id, of a non-empty input is in the embeddings:
            the columns or the id kinds do not match the model.
        """
        t0 = time.perf_counter()
        user_rows = _rows_in(interactions.users, users)
        item_rows = _rows_in(interactions.items, items)
        unknown_user = user_rows < 0
        unknown_item = item_rows < 0
        _refuse_total_mismatch(interactions, unknown_user, users, what="user")
        _refuse_total_mismatch(interactions, unknown_item, items, what="item")
        keep = ~(unknown_user | unknown_item)
        indptr, rows = _to_csr(user_rows[keep], item_rows[keep], len(users), len(items))
        seen = cls(
            indptr,
            rows,
            n_items=len(items),
            dropped_unknown_users=int(unknown_user.sum()),
            dropped_unknown_items=int(unknown_item.sum()),
        )
        logger.info(
            "mapped %d interactions to %d seen (user, item) pairs in %.3f s "
            "(%d with an unknown user, %d with an unknown item)",
            len(interactions),
            seen.nnz,
            time.perf_counter() - t0,
            seen.dropped_unknown_users,
            seen.dropped_unknown_items,
        )
        return seen

    @property
    def n_users(self) -> int:
        return len(self.indptr) - 1

    @property
    def nnz(self) -> int:
        return len(self.item_rows)

    def rows_for(self, user_row: int) -> np.ndarray:
        """Seen item rows of one user row: a read-only int64 view, shape (k,), sorted."""
        u = operator.index(user_row)
        if not 0 <= u < self.n_users:
            raise IndexError(f"user row {u} is out of range (0 to {self.n_users - 1})")
        return self.item_rows[self.indptr[u] : self.indptr[u + 1]]

    def __repr__(self) -> str:
        return (
            f"SeenItems(n_users={self.n_users}, nnz={self.nnz}, "
            f"dropped_unknown_users={self.dropped_unknown_users}, "
            f"dropped_unknown_items={self.dropped_unknown_items})"
        )


def read_interactions(
    path: str | Path,
    *,
    user_column: str | None = None,
    item_column: str | None = None,
    rating_column: str | None = None,
    timestamp_column: str | None = None,
    format: TableFormat = "auto",
    encoding: str | None = None,
) -> Interactions:
    """Read user-item interactions from a file.

    Parameters
    ----------
    path : str or Path
        MovieLens ``ratings.csv`` or ``ratings.dat``, a CSV with a header, or parquet (a file
        or a directory of parquet files as Spark writes it).
    user_column, item_column : str, optional
        Default: the first column named ``userId``/``user_id``/``user``/``uid`` and
        ``movieId``/``item_id``/``item``/``itemId``/``iid`` (any case).
    rating_column, timestamp_column : str, optional
        Default: a column named ``rating`` and ``timestamp`` when there is one, else none.
    format : {"auto", "movielens_dat", "csv", "parquet"}
        ``"auto"`` picks parquet by suffix or magic bytes, ``movielens_dat`` when the first
        line holds ``::``, else CSV. ``ratings.dat`` is ``UserID::MovieID::Rating::Timestamp``
        without a header (rating and timestamp may be absent).
    encoding : str, optional
        Text encoding of a CSV or ``.dat`` file; default UTF-8.

    Returns
    -------
    Interactions
        Ids are int64 when every id of the column is integer text, else strings.

    Raises
    ------
    InputFormatError
        Empty file, a missing column (named, with the columns found), an empty id, a rating that
        is not a number, a timestamp that is not an integer, text not valid in the encoding.
    """
    path = Path(path)
    t0 = time.perf_counter()
    kind = detect_format(path, format)
    wanted = (user_column, item_column, rating_column, timestamp_column)
    if kind == "movielens_dat":
        columns = _read_ratings_dat(path, wanted, encoding=encoding)
    elif kind == "csv":
        columns = _read_interactions_csv(path, wanted, encoding=encoding)
    else:
        columns = _read_interactions_parquet(path, wanted)
    inter = Interactions(*columns, source=str(path))
    elapsed = time.perf_counter() - t0
    logger.info("read %d interactions from %s in %.3f s", len(inter), path, elapsed)
    return inter


# -- readers ---------------------------------------------------------------------------------
_Columns = tuple[np.ndarray, np.ndarray, "np.ndarray | None", "np.ndarray | None"]


def _read_interactions_csv(path: Path, wanted: tuple, *, encoding: str | None) -> _Columns:
    source = str(path)
    header, delimiter = parse_header(_first_line(path, encoding, source=source), source=source)
    names = _choose_columns(header, wanted, source=source)
    table = read_csv_table(
        path,
        source=source,
        delimiter=delimiter,
        include_columns=[n for n in names if n is not None],
        column_types={n: pa.string() for n in names if n is not None},
        encoding=encoding,
    )
    line_of = CsvLines(path, header_lines=1)
    return _convert_text_columns(table, names, source=source, line_of=line_of)


def _read_ratings_dat(path: Path, wanted: tuple, *, encoding: str | None) -> _Columns:
    source = str(path)
    first = _first_line(path, encoding, source=source)
    n_fields = first.count("::") + 1
    if not 2 <= n_fields <= 4:
        raise InputFormatError(
            f"{source}: line 1: expected UserID::MovieID::Rating::Timestamp, got {first!r}"
        )
    fixed = DAT_COLUMNS[:n_fields]
    for given in wanted:
        if given is not None and given not in fixed:
            raise InputFormatError(
                f"{source}: a ratings.dat has the fixed columns {', '.join(fixed)}; "
                f"there is no column {given!r}"
            )
    # Split on ':' and keep every other field: each '::' leaves an empty field in between.
    raw = [f"f{k}" for k in range(2 * n_fields - 1)]
    table = read_csv_table(
        path,
        source=source,
        delimiter=":",
        column_names=raw,
        column_types={n: pa.string() for n in raw},
        encoding=encoding,
        quoting=False,
    )
    line_of = CsvLines(path, header_lines=0)
    for sep in raw[1::2]:
        if table[sep].null_count != len(table):
            row = int(np.flatnonzero(table[sep].is_valid().to_numpy(zero_copy_only=False))[0])
            raise InputFormatError(
                f"{source}: line {line_of(row)}: expected fields separated by '::'"
            )
    table = table.select(raw[0::2]).rename_columns(list(fixed))
    names = tuple(fixed) + (None,) * (4 - n_fields)
    return _convert_text_columns(table, names, source=source, line_of=line_of)


def _read_interactions_parquet(path: Path, wanted: tuple) -> _Columns:
    source = str(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or directory")
    try:
        header = pa_ds.dataset(str(path), format="parquet").schema.names
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputFormatError(f"{source}: not a readable parquet file ({exc})") from exc
    names = _choose_columns(header, wanted, source=source)
    table = read_parquet_table(path, source=source, columns=[n for n in names if n is not None])
    user_col, item_col, rating_col, ts_col = names
    users = ids_from_typed(table[user_col], what=f"user id ({user_col})", source=source)
    items = ids_from_typed(table[item_col], what=f"item id ({item_col})", source=source)
    ratings = None
    if rating_col is not None:
        ratings = _typed_numbers(table[rating_col], pa.float64(), rating_col, source=source)
    timestamps = None
    if ts_col is not None:
        timestamps = _typed_numbers(table[ts_col], pa.int64(), ts_col, source=source)
    return users, items, ratings, timestamps


def _choose_columns(header: Sequence[str], wanted: tuple, *, source: str) -> tuple:
    """(user, item, rating or None, timestamp or None) column names of ``header``."""
    user_col, item_col, rating_col, ts_col = wanted
    return (
        pick_column(header, user_col, USER_COLUMNS, what="user", source=source),
        pick_column(header, item_col, ITEM_COLUMNS, what="item", source=source),
        pick_column(
            header, rating_col, RATING_COLUMNS, what="rating", source=source, required=False
        ),
        pick_column(
            header, ts_col, TIMESTAMP_COLUMNS, what="timestamp", source=source, required=False
        ),
    )


def _first_line(path: Path, encoding: str | None, *, source: str) -> str:
    """The first non-blank line of a text file, decoded; an empty file is refused."""
    try:
        with open(path, "rb") as f:
            first = next((line for line in f if line.strip()), None)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file") from None
    if first is None:
        raise InputFormatError(f"{source}: the file is empty")
    return decode_text(first, encoding, source=source).rstrip("\r\n")


def _convert_text_columns(
    table: pa.Table, names: tuple, *, source: str, line_of: LineOf
) -> _Columns:
    """Text columns (all read as strings) as typed arrays, naming the line of a bad value."""
    if table.num_rows == 0:
        raise InputFormatError(f"{source}: the file has no interactions")
    user_col, item_col, rating_col, ts_col = names
    users = ids_from_text(
        table[user_col], what=f"user id ({user_col})", source=source, line_of_row=line_of
    )
    items = ids_from_text(
        table[item_col], what=f"item id ({item_col})", source=source, line_of_row=line_of
    )
    ratings = None
    if rating_col is not None:
        ratings = _parse_numbers(
            table[rating_col], pa.float64(), f"rating ({rating_col})", source, line_of
        )
    timestamps = None
    if ts_col is not None:
        timestamps = _parse_numbers(
            table[ts_col], pa.int64(), f"timestamp ({ts_col})", source, line_of
        )
    return users, items, ratings, timestamps


def _parse_numbers(
    column: pa.ChunkedArray, to: pa.DataType, what: str, source: str, line_of: LineOf
) -> np.ndarray:
    """Text numbers as ``to``; an empty or non-numeric cell raises naming its line."""
    if column.null_count:
        row = int(np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0])
        raise InputFormatError(f"{source}: line {line_of(row)}: empty {what}")
    try:
        return pc.cast(column, to).to_numpy()
    except pa.ArrowInvalid:
        pass
    # Cast chunk by chunk to find the bad value without a Python pass over the whole column.
    offset = 0
    for chunk in column.chunks:
        try:
            pc.cast(chunk, to)
        except pa.ArrowInvalid:
            for k, value in enumerate(chunk.to_pylist()):
                try:
                    pc.cast(pa.array([value]), to)
                except pa.ArrowInvalid:
                    kind = "a number" if pa.types.is_floating(to) else "an integer"
                    raise InputFormatError(
                        f"{source}: line {line_of(offset + k)}: {what} {value!r} is not {kind}"
                    ) from None
        offset += len(chunk)
    raise InputFormatError(f"{source}: {what} holds a value that is not a number")


def _typed_numbers(
    column: pa.ChunkedArray, to: pa.DataType, name: str, *, source: str
) -> np.ndarray:
    """A typed (parquet) column as ``to``: numbers for ratings, integers or datetimes for
    timestamps (as seconds)."""
    if column.null_count:
        row = int(np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0])
        raise InputFormatError(f"{source}: row {row + 1}: empty {name}")
    typ = column.type
    if pa.types.is_timestamp(typ) and pa.types.is_integer(to):
        column = column.cast(pa.timestamp("s", tz=typ.tz)).cast(pa.int64())
    elif pa.types.is_integer(to) and not pa.types.is_integer(typ):
        raise InputFormatError(f"{source}: {name} has type {typ}; expected integers or datetimes")
    elif not (pa.types.is_integer(typ) or pa.types.is_floating(typ) or pa.types.is_decimal(typ)):
        raise InputFormatError(f"{source}: {name} has type {typ}; expected numbers")
    return column.cast(to).to_numpy()


# -- validation ------------------------------------------------------------------------------
def _id_array(values: Sequence | np.ndarray, *, what: str, source: str) -> np.ndarray:
    arr = values if isinstance(values, np.ndarray) else np.asarray(values)
    # Fast paths: the readers hand over int64 or object-of-str arrays of millions of ids.
    if arr.ndim == 1 and arr.dtype == np.int64:
        return arr
    if arr.ndim == 1 and arr.dtype == object and pd.api.types.infer_dtype(arr) == "string":
        return arr
    if arr.ndim == 1 and arr.size == 0:
        return np.empty(0, dtype=np.int64)
    return to_id_array(arr, source=f"{source}: {what}")


def _ratings_array(values, n: int, *, source: str) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputFormatError(f"{source}: ratings are not numbers ({exc})") from exc
    _check_length(arr, n, what="ratings", source=source)
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        raise InputFormatError(f"{source}: rating {arr[bad[0]]} at row {bad[0] + 1} is not finite")
    return arr


def _timestamps_array(values, n: int, *, source: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.dtype.kind == "M":  # datetime64 -> seconds since the epoch
        arr = arr.astype("datetime64[s]").astype(np.int64)
    if arr.dtype.kind not in "iu" and arr.size:
        raise InputFormatError(f"{source}: timestamps must be integers, got dtype {arr.dtype}")
    arr = arr.astype(np.int64, copy=False)
    _check_length(arr, n, what="timestamps", source=source)
    return arr


def _check_length(arr: np.ndarray, n: int, *, what: str, source: str) -> None:
    if arr.ndim != 1 or len(arr) != n:
        raise InputFormatError(f"{source}: {what} have shape {arr.shape}, expected ({n},)")


def _kind(ids: np.ndarray) -> str:
    return "int" if ids.dtype == np.int64 else "str"


def _int64_vector(values, *, what: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise InputFormatError(f"SeenItems: {what} must be 1-D, got shape {arr.shape}")
    if arr.size and arr.dtype.kind not in "iu":
        raise InputFormatError(f"SeenItems: {what} must hold integers, got dtype {arr.dtype}")
    out = arr.astype(np.int64, copy=False)
    out = out.view() if out is values else out
    out.flags.writeable = False  # rows_for hands out views; nobody may edit them in place
    return out


def _check_csr(indptr: np.ndarray, item_rows: np.ndarray, n_items: int | None) -> None:
    """Refuse a CSR that breaks the SeenItems rules, saying which rule and where."""
    if len(indptr) == 0 or indptr[0] != 0:
        raise InputFormatError("SeenItems: indptr must start with 0")
    steps = np.diff(indptr)
    if (steps < 0).any():
        u = int(np.flatnonzero(steps < 0)[0])
        raise InputFormatError(f"SeenItems: indptr decreases at user row {u}")
    if indptr[-1] != len(item_rows):
        raise InputFormatError(
            f"SeenItems: indptr ends at {int(indptr[-1])} but there are {len(item_rows)} item rows"
        )
    if item_rows.size and item_rows.min() < 0:
        raise InputFormatError(f"SeenItems: negative item row {int(item_rows.min())}")
    if n_items is not None and item_rows.size and item_rows.max() >= n_items:
        raise InputFormatError(
            f"SeenItems: item row {int(item_rows.max())} is out of range for {n_items} items"
        )
    # Within a user each row must exceed the previous one; a user's first row is exempt.
    rising = item_rows[1:] > item_rows[:-1]
    first_of_user = np.zeros(len(item_rows), dtype=bool)
    first_of_user[indptr[:-1][steps > 0]] = True
    bad = np.flatnonzero(~rising & ~first_of_user[1:])
    if bad.size:
        u = int(np.searchsorted(indptr, bad[0] + 1, side="right") - 1)
        raise InputFormatError(f"SeenItems: item rows of user row {u} are not sorted and unique")


# -- mapping ---------------------------------------------------------------------------------
def _rows_in(ids: np.ndarray, embeddings: Embeddings) -> np.ndarray:
    """Embedding row of each id (int64, -1 where the embeddings do not hold it)."""
    index = pd.Index(embeddings.ids)
    if _kind(ids) == embeddings.id_kind:
        return index.get_indexer(ids).astype(np.int64, copy=False)
    # Kinds differ: convert each distinct id once, not every row.
    codes, uniques = pd.factorize(ids)
    keys, usable = _convert_ids(np.asarray(uniques), embeddings.id_kind)
    rows = np.full(len(uniques), -1, dtype=np.int64)
    if usable.any():
        rows[usable] = index.get_indexer(keys)
    return rows[codes]


def _convert_ids(ids: np.ndarray, kind: IdKind) -> tuple[np.ndarray, np.ndarray]:
    """``ids`` as ``kind`` (decimal text <-> integers), with a mask of those that convert."""
    if kind == "str":
        text = pa.array(ids, type=pa.int64()).cast(pa.string()).to_numpy(zero_copy_only=False)
        return text, np.ones(len(ids), dtype=bool)
    values = [int64_or_none(v) for v in ids]
    usable = np.array([v is not None for v in values], dtype=bool)
    return np.array([v for v in values if v is not None], dtype=np.int64), usable


def _refuse_total_mismatch(
    interactions: Interactions, unknown: np.ndarray, embeddings: Embeddings, *, what: str
) -> None:
    """Dropping some unknown ids is normal (ALS drops cold ones); dropping all of them means the
    columns or the id kinds do not fit the model."""
    if len(unknown) == 0 or not unknown.all():
        return
    ids = interactions.users if what == "user" else interactions.items
    raise InputFormatError(
        f"{interactions.source}: none of the {what} ids is in the {what} embeddings "
        f"(file has {_sample(ids)}, embeddings have {_sample(embeddings.ids)}); "
        f"check {what}_column and that the embeddings belong to this data"
    )


def _sample(ids: np.ndarray, k: int = 3) -> str:
    return ", ".join(repr(v.item() if isinstance(v, np.generic) else v) for v in ids[:k])


def _to_csr(
    user_rows: np.ndarray, item_rows: np.ndarray, n_users: int, n_items: int
) -> tuple[np.ndarray, np.ndarray]:
    """CSR (indptr, item_rows) of (user row, item row) pairs: sorted, pairs deduplicated."""
    if n_items and n_users <= np.iinfo(np.int64).max // n_items:
        # One sort of a combined key orders by user, then item. (np.sort and a neighbour test,
        # not np.unique: numpy 2.4's hash-based unique takes ~50x longer on 25M keys.)
        keys = np.sort(user_rows * n_items + item_rows)
        keys = keys[_first_of_runs(keys)]
        user_rows, item_rows = np.divmod(keys, n_items)
    else:
        order = np.lexsort((item_rows, user_rows))
        user_rows, item_rows = user_rows[order], item_rows[order]
        new = _first_of_runs(user_rows) | _first_of_runs(item_rows)
        user_rows, item_rows = user_rows[new], item_rows[new]
    indptr = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(np.bincount(user_rows, minlength=n_users), out=indptr[1:])
    return indptr, item_rows


def _first_of_runs(values: np.ndarray) -> np.ndarray:
    """Mask of the entries that differ from their predecessor (the first entry included)."""
    mask = np.ones(len(values), dtype=bool)
    np.not_equal(values[1:], values[:-1], out=mask[1:])
    return mask
