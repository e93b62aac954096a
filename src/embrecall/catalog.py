"""`Catalog`: item id -> metadata (a movie's title and genres), joined onto search results.

:func:`read_catalog` reads MovieLens ``movies.dat`` (``MovieID::Title::Genres``, ISO-8859-1) and
``movies.csv``, any CSV with a header, and parquet. A :class:`Catalog` keeps the metadata as one
Arrow table plus a pandas index over the ids, so a lookup of a few dozen ids in a million-row
catalog is one hash probe per id and one ``take``, never a per-id ``.loc``.

The table toolkit under the readers (format sniffing, decoding, pyarrow CSV and parquet
reading, id columns) lives in :mod:`embrecall.tables`, shared with :mod:`embrecall.interactions`.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import json
import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from embrecall.embeddings import IdKind
from embrecall.errors import InputFormatError, InvalidArgumentError, InvalidArgumentTypeError

# TableFormat stays importable from here, where it was first defined.
from embrecall.tables import (
    CsvLines,
    TableFormat,
    decode_text,
    detect_format,
    duplicate_id_error,
    ids_from_text,
    ids_from_typed,
    int64_or_none,
    is_utf8,
    parse_header,
    pick_column,
    read_csv_table,
    read_nonempty,
    read_parquet_table,
    to_id_array,
)

__all__ = ["Catalog", "read_catalog", "TableFormat"]

MOVIELENS_ID = "movieId"
# ml-1m users.dat, which has no header
USERS_DAT_ID = "userId"
USERS_DAT_COLUMNS = (USERS_DAT_ID, "gender", "age", "occupation", "zip")
# Candidate id columns, in order of preference; compared case-insensitively and without "_".
ID_COLUMNS = ("id", "item_id", "itemId", "movieId", "movie_id")
# Key of the schema metadata that Catalog.to_parquet writes (the artifact's persisted form).
PARQUET_META_KEY = b"embrecall.catalog"
PARQUET_FORMAT_VERSION = 1

logger = logging.getLogger("embrecall")

JsonValue = str | int | float | bool | None | list | dict
_PLAIN = frozenset({str, int, bool, type(None)})  # already JSON-safe: skip json_safe()


class Catalog:
    """Metadata of items, looked up by external id.

    Parameters
    ----------
    frame : pandas.DataFrame, shape (n, c)
        One row per item, indexed by the item id (integers or strings, unique); every column is
        a metadata field. The index name, if any, becomes :attr:`id_column`.
    source : str
        Where the data came from, used in error messages.
    """

    __slots__ = ("_table", "_ids", "_index", "id_column", "source")

    def __init__(self, frame: pd.DataFrame, *, source: str = "<DataFrame>") -> None:
        if not isinstance(frame, pd.DataFrame):
            raise InvalidArgumentTypeError(
                f"Catalog needs a pandas DataFrame indexed by id, got {type(frame)}"
            )
        names = [str(c) for c in frame.columns]
        body = frame.reset_index(drop=True)
        body.columns = names
        try:
            table = pa.Table.from_pandas(body, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
            raise InputFormatError(
                f"{source}: a column cannot be stored as metadata ({exc})"
            ) from exc
        id_column = str(frame.index.name) if frame.index.name is not None else "id"
        self._setup(frame.index.to_numpy(), table, id_column=id_column, source=source)

    @classmethod
    def _build(
        cls,
        ids: np.ndarray,
        table: pa.Table,
        *,
        id_column: str,
        source: str,
        line_of_row=None,
    ) -> Catalog:
        """Readers' constructor: ids and an Arrow table of metadata, aligned by row."""
        self = cls.__new__(cls)
        self._setup(ids, table, id_column=id_column, source=source, line_of_row=line_of_row)
        return self

    def _setup(self, ids, table: pa.Table, *, id_column: str, source: str, line_of_row=None):
        if len(ids) == 0:
            raise InputFormatError(f"{source}: the catalog has no rows")
        ids = to_id_array(np.asarray(ids), source=source)
        names = table.column_names
        if len(set(names)) != len(names):
            dup = next(n for n in names if names.count(n) > 1)
            raise InputFormatError(f"{source}: column {dup!r} appears twice")
        if id_column in names:
            raise InputFormatError(
                f"{source}: metadata column {id_column!r} has the name of the id column"
            )
        index = pd.Index(ids)
        if not index.is_unique:
            raise duplicate_id_error(ids, index, source, line_of_row)
        self._table = table.combine_chunks()  # one chunk: take() on a few rows stays cheap
        self._ids = ids
        self._index = index
        self.id_column = id_column
        self.source = source

    # -- shape -----------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._ids)

    def __repr__(self) -> str:
        return (
            f"Catalog(n={len(self)}, ids={self.id_kind}, columns={self.columns}, "
            f"source={self.source!r})"
        )

    @property
    def columns(self) -> list[str]:
        """Metadata column names (the id column is not one of them)."""
        return list(self._table.column_names)

    @property
    def id_kind(self) -> IdKind:
        """``"int"`` when the ids are int64, ``"str"`` when they are strings."""
        return "int" if self._ids.dtype == np.int64 else "str"

    @property
    def ids(self) -> np.ndarray:
        """The ids, shape (n,): int64 or an object array of ``str`` (read-only view)."""
        view = self._ids.view()
        view.flags.writeable = False
        return view

    @property
    def frame(self) -> pd.DataFrame:
        """A new DataFrame of the metadata, shape (n, c), indexed by id."""
        frame = self._table.to_pandas()
        frame.index = pd.Index(self._ids, name=self.id_column)
        return frame

    # -- lookup ----------------------------------------------------------------------------
    def records(self, ids: Sequence | np.ndarray) -> list[dict[str, JsonValue]]:
        """Metadata of each id, aligned with ``ids``.

        Parameters
        ----------
        ids : sequence or array, shape (m,)
            Ids of either kind; integer text matches integer ids and integers match string
            ids such as ``"42"``.

        Returns
        -------
        list of dict, length m
            ``{column: value}`` with JSON-safe values (``str``, ``int``, ``float``, ``bool``,
            ``None``; NaN and infinity become ``None``, dates ISO-8601 text). An id that the
            catalog does not hold gets ``{}``.
        """
        if isinstance(ids, (str, bytes)):
            raise InvalidArgumentTypeError(
                "records() takes a sequence of ids; use record() for one id"
            )
        keys, usable = self._lookup_keys(ids)
        rows = np.full(len(usable), -1, dtype=np.int64)
        if usable.any():
            rows[usable] = self._index.get_indexer(keys)
        out: list[dict[str, JsonValue]] = [{} for _ in range(len(rows))]
        hit = np.flatnonzero(rows >= 0)
        if hit.size:
            found = self._table.take(pa.array(rows[hit])).to_pylist()
            for pos, rec in zip(hit.tolist(), found, strict=True):
                out[pos] = {k: v if type(v) in _PLAIN else json_safe(v) for k, v in rec.items()}
        return out

    def aligned(self, ids: np.ndarray) -> pa.Table:
        """The metadata as an Arrow table with one row per id in ``ids`` (of this catalog's id
        kind), in that order; an id the catalog does not hold gets nulls."""
        rows = self._index.get_indexer(pd.Index(ids))
        return self._table.take(pa.array(rows, mask=rows < 0))

    def record(self, id_: object) -> dict[str, JsonValue]:
        """Metadata of one id (``{}`` when the catalog does not hold it)."""
        return self.records([id_])[0]

    def find(self, text: str, *, column: str | None = None) -> np.ndarray:
        """Ids whose ``column`` contains ``text``, ignoring case, in catalog order.

        One vectorised pass over the column (a million titles take tens of milliseconds).

        Parameters
        ----------
        text : str
            Matched literally (no wildcards), as a substring.
        column : str, optional
            The column to search. Default: the one named ``title`` (any case).

        Raises
        ------
        InvalidArgumentError
            ``text`` is empty, or the column is missing.
        """
        if not text:
            raise InvalidArgumentError("the text to find is empty")
        if column is None:
            column = next((c for c in self.columns if c.lower() == "title"), None)
        if column not in self.columns:
            found = ", ".join(self.columns) or "none"
            wanted = "title column" if column is None else f"column {column!r}"
            raise InvalidArgumentError(f"the catalog has no {wanted} (columns: {found})")
        values = self._table.column(column)
        try:
            if not pa.types.is_string(values.type):
                values = pc.cast(values, pa.string())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            raise InvalidArgumentError(f"catalog column {column!r} is not text") from None
        hits = pc.fill_null(pc.match_substring(values, text, ignore_case=True), False)
        return self._ids[np.flatnonzero(hits.to_numpy(zero_copy_only=False))]

    def _lookup_keys(self, ids: Sequence | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``ids`` coerced to this catalog's kind, and a mask of those that could be."""
        arr = ids if isinstance(ids, np.ndarray) else np.asarray(list(ids), dtype=object)
        if arr.ndim != 1:
            raise InvalidArgumentTypeError(f"ids must be 1-D, got shape {arr.shape}")
        if self.id_kind == "int" and arr.dtype.kind in "iu":
            return arr.astype(np.int64, copy=False), np.ones(len(arr), dtype=bool)
        keys = [_lookup_key(v, self.id_kind) for v in arr.tolist()]
        usable = np.array([k is not None for k in keys], dtype=bool)
        dtype = np.int64 if self.id_kind == "int" else object
        return np.array([k for k in keys if k is not None], dtype=dtype), usable

    # -- conversion and persistence ---------------------------------------------------------
    def with_id_kind(self, kind: IdKind) -> Catalog:
        """This catalog with its ids converted to ``kind`` (to match the item embeddings).

        Raises
        ------
        InputFormatError
            An id is not integer text (for ``"int"``).
        DuplicateIdError
            Two ids become the same id (``"7"`` and ``"007"`` both become 7).
        """
        if kind not in ("int", "str"):
            raise InvalidArgumentError(f"kind must be 'int' or 'str', not {kind!r}")
        if kind == self.id_kind:
            return self
        if kind == "str":
            ids = pa.array(self._ids).cast(pa.string()).to_numpy(zero_copy_only=False)
        else:
            ids = _text_to_int64(self._ids, source=self.source)
        return Catalog._build(ids, self._table, id_column=self.id_column, source=self.source)

    def check_coverage(self, item_ids: np.ndarray, *, examples: int = 5) -> int:
        """Log a warning (``embrecall`` logger) when items have no entry here, or none match.

        Parameters
        ----------
        item_ids : ndarray, shape (n,)
            The items' ids, of this catalog's id kind (see :meth:`with_id_kind`).

        Returns
        -------
        int
            How many items have no entry.
        """
        found = self._index.get_indexer(pd.Index(item_ids)) >= 0
        missing = int((~found).sum())
        if not found.any():
            logger.warning(
                "catalog %s matches no item: none of its %d ids (e.g. %s) is an item id "
                "(items are e.g. %s); results will have no metadata. Is the id column right?",
                self.source,
                len(self),
                _examples(self._ids, examples),
                _examples(item_ids, examples),
            )
        elif missing:
            logger.warning(
                "catalog %s has no entry for %d of %d items (e.g. %s); their results will have "
                "no metadata",
                self.source,
                missing,
                len(item_ids),
                _examples(np.asarray(item_ids)[~found], examples),
            )
        return missing

    def to_parquet(self, path: str | Path) -> None:
        """Write the catalog as one parquet file: the id column, then the metadata columns."""
        meta = {
            "format_version": PARQUET_FORMAT_VERSION,
            "id_column": self.id_column,
            "id_kind": self.id_kind,
        }
        id_type = pa.int64() if self.id_kind == "int" else pa.string()
        table = self._table.add_column(0, self.id_column, pa.array(self._ids, type=id_type))
        schema_meta = dict(table.schema.metadata or {})
        schema_meta[PARQUET_META_KEY] = json.dumps(meta).encode()
        pq.write_table(table.replace_schema_metadata(schema_meta), str(path))

    @classmethod
    def from_parquet(cls, path: str | Path) -> Catalog:
        """Read a catalog written by :meth:`to_parquet` (or any parquet catalog)."""
        return read_catalog(path, format="parquet")


def _examples(ids: np.ndarray, count: int) -> str:
    shown = ", ".join(repr(v.item() if isinstance(v, np.generic) else v) for v in ids[:count])
    return shown + (", ..." if len(ids) > count else "")


def read_catalog(
    path: str | Path,
    *,
    id_column: str | None = None,
    format: TableFormat = "auto",
    encoding: str | None = None,
) -> Catalog:
    """Read item metadata from a file.

    Parameters
    ----------
    path : str or Path
        A MovieLens ``movies.dat`` or ``movies.csv``, a CSV with a header, or parquet (a file
        or a directory of parquet files as Spark writes it).
    id_column : str, optional
        The id column of a CSV or parquet file. Default: the first column named ``id``,
        ``item_id``, ``itemId``, ``movieId`` or ``movie_id`` (any case), else the first column.
        A ``movies.dat`` has no header; its columns are ``movieId``, ``title``, ``genres``.
    format : {"auto", "movielens_dat", "csv", "parquet"}
        ``"auto"`` picks parquet by suffix or magic bytes, ``movielens_dat`` when the first
        line holds ``::``, else CSV.
    encoding : str, optional
        Text encoding. Default: UTF-8 for CSV; for ``movies.dat`` UTF-8 when the file is valid
        UTF-8, else ISO-8859-1 (what GroupLens used for ml-1m).

    Returns
    -------
    Catalog
        Ids are int64 when every id is integer text, else strings.

    Raises
    ------
    InputFormatError
        Empty file, a line that is not ``MovieID::Title::Genres``, an id column that is missing
        or has empty cells, text that is not valid in the encoding.
    DuplicateIdError
        The same id on two rows.
    """
    path = Path(path)
    source = str(path)
    t0 = time.perf_counter()
    kind = detect_format(path, format)
    if kind == "movielens_dat":
        catalog = _read_movielens_dat(path, id_column=id_column, encoding=encoding)
    elif kind == "csv":
        catalog = _read_catalog_csv(path, id_column=id_column, encoding=encoding)
    else:
        catalog = _read_catalog_parquet(path, id_column=id_column)
    logger.info(
        "read catalog of %d items from %s in %.3f s", len(catalog), source, time.perf_counter() - t0
    )
    return catalog


# -- readers ---------------------------------------------------------------------------------
def _read_movielens_dat(path: Path, *, id_column: str | None, encoding: str | None) -> Catalog:
    """A ``::``-separated MovieLens file: ``movies.dat``, or ``users.dat`` (five fields)."""
    source = str(path)
    text = decode_text(read_nonempty(path), encoding, source=source, fallback="iso-8859-1")
    lines = pc.utf8_rtrim(pa.array(text.split("\n")), characters="\r")
    first = next((line for line in lines.to_pylist()[:1000] if line.strip()), "")
    if len(first.split("::")) == len(USERS_DAT_COLUMNS):
        fixed, columns = USERS_DAT_ID, USERS_DAT_COLUMNS
    else:
        fixed, columns = MOVIELENS_ID, (MOVIELENS_ID, "title", "genres")
    if id_column not in (None, fixed):
        raise InputFormatError(
            f"{source}: this MovieLens file has the fixed columns {', '.join(columns)}; "
            f"id_column={id_column!r} does not apply"
        )
    if fixed == USERS_DAT_ID:
        return _read_users_dat(lines, source)
    return _read_movies_dat(lines, source)


def _split_lines(
    lines: pa.Array, pattern: str, expected: str, source: str
) -> tuple[pa.StructArray, np.ndarray]:
    """The named groups of ``pattern`` in each non-blank line, and those lines' numbers (0-based);
    the first line that does not match is an error that names it."""
    parts = pc.extract_regex(lines, pattern)
    blank = pc.equal(pc.utf8_trim_whitespace(lines), "").to_numpy(zero_copy_only=False)
    bad = np.flatnonzero(~blank & parts.is_null().to_numpy(zero_copy_only=False))
    if bad.size:
        n = int(bad[0])
        raise InputFormatError(
            f"{source}: line {n + 1}: expected {expected}, got {_shorten(lines[n].as_py())!r}"
        )
    keep = np.flatnonzero(~blank)
    return parts.take(pa.array(keep)), keep


def _read_users_dat(lines: pa.Array, source: str) -> Catalog:
    """ml-1m ``users.dat``: ``UserID::Gender::Age::Occupation::Zip-code``."""
    pattern = "^" + "::".join(f"(?P<{c}>[^:]*)" for c in USERS_DAT_COLUMNS) + "$"
    parts, keep = _split_lines(lines, pattern, "UserID::Gender::Age::Occupation::Zip-code", source)
    columns = {}
    for name in USERS_DAT_COLUMNS:
        values = parts.field(name)
        if name in (USERS_DAT_ID, "age", "occupation"):
            try:
                values = pc.cast(values, pa.int64())
            except pa.ArrowInvalid:
                n = next(i for i, v in enumerate(values.to_pylist()) if int64_or_none(v) is None)
                raise InputFormatError(
                    f"{source}: line {int(keep[n]) + 1}: {name} {values[n].as_py()!r} is not an "
                    "integer"
                ) from None
        columns[name] = values
    ids = columns.pop(USERS_DAT_ID).to_numpy()
    return Catalog._build(
        ids,
        pa.table(columns),
        id_column=USERS_DAT_ID,
        source=source,
        line_of_row=lambda r: int(keep[r]) + 1,
    )


def _read_movies_dat(lines: pa.Array, source: str) -> Catalog:
    # Greedy title: the first '::' ends the id, the last one starts the genres, so a title
    # holding ':' (or even '::') stays whole.
    pattern = r"^(?P<movieId>[^:]*)::(?P<title>.*)::(?P<genres>.*)$"
    parts, keep = _split_lines(lines, pattern, "MovieID::Title::Genres", source)
    if keep.size == 0:
        raise InputFormatError(f"{source}: the file holds no movies")
    id_text = parts.field("movieId")
    try:
        ids = pc.cast(id_text, pa.int64()).to_numpy()
    except pa.ArrowInvalid:
        n = next(i for i, v in enumerate(id_text.to_pylist()) if int64_or_none(v) is None)
        raise InputFormatError(
            f"{source}: line {int(keep[n]) + 1}: movie id {id_text[n].as_py()!r} is not an integer"
        ) from None
    table = pa.table({"title": parts.field("title"), "genres": parts.field("genres")})
    return Catalog._build(
        ids, table, id_column=MOVIELENS_ID, source=source, line_of_row=lambda r: int(keep[r]) + 1
    )


def _read_catalog_csv(path: Path, *, id_column: str | None, encoding: str | None) -> Catalog:
    source = str(path)
    data = read_nonempty(path)
    text = decode_text(data, encoding, source=source)
    # pyarrow reads UTF-8 only: hand it the bytes as they are when they already are UTF-8.
    utf8 = data if is_utf8(encoding) else text.encode("utf-8")
    header, delimiter = parse_header(text, source=source)
    id_col = pick_column(
        header, id_column, ID_COLUMNS, what="id", source=source, default_first=True
    )
    # One block: pyarrow infers each column's type from its first block, and a column that
    # looks numeric there but holds text further down would fail to convert.
    table = read_csv_table(
        utf8,
        source=source,
        delimiter=delimiter,
        column_types={id_col: pa.string()},
        block_size=len(utf8) + 1,
    )
    if table.num_rows == 0:
        raise InputFormatError(f"{source}: the file has a header but no rows")
    line_of_row = CsvLines(utf8, header_lines=1)
    ids = ids_from_text(
        table[id_col], what=f"id ({id_col})", source=source, line_of_row=line_of_row
    )
    return Catalog._build(
        ids, table.drop_columns([id_col]), id_column=id_col, source=source, line_of_row=line_of_row
    )


def _read_catalog_parquet(path: Path, *, id_column: str | None) -> Catalog:
    source = str(path)
    table = read_parquet_table(path, source=source)
    meta = _embrecall_meta(table.schema, source=source)
    if id_column is None and meta is not None:
        id_column = meta.get("id_column")
    id_col = pick_column(
        table.column_names, id_column, ID_COLUMNS, what="id", source=source, default_first=True
    )
    ids = ids_from_typed(table[id_col], what=f"id ({id_col})", source=source)
    body = table.drop_columns([id_col]).replace_schema_metadata(None)
    return Catalog._build(
        ids, body, id_column=id_col, source=source, line_of_row=lambda r: f"row {r + 1}"
    )


def _embrecall_meta(schema: pa.Schema, *, source: str) -> dict | None:
    raw = (schema.metadata or {}).get(PARQUET_META_KEY)
    if raw is None:
        return None
    try:
        meta = json.loads(raw)
    except ValueError as exc:
        raise InputFormatError(f"{source}: catalog metadata is not JSON ({exc})") from exc
    version = meta.get("format_version")
    if version != PARQUET_FORMAT_VERSION:
        raise InputFormatError(
            f"{source}: catalog format version {version!r}; this embrecall reads version "
            f"{PARQUET_FORMAT_VERSION}"
        )
    return meta


def _text_to_int64(ids: np.ndarray, *, source: str) -> np.ndarray:
    """String ids as int64; the first that is not decimal integer text raises.

    A Python pass, not an Arrow cast: Arrow also takes hex ("0x1f"), which no one means here.
    """
    values = [int64_or_none(v) for v in ids]
    if None in values:
        bad = ids[values.index(None)]
        raise InputFormatError(
            f"{source}: catalog id {bad!r} is not an integer (the embeddings have integer ids)"
        )
    return np.array(values, dtype=np.int64)


def _lookup_key(value: object, kind: IdKind) -> int | str | None:
    """A lookup id as ``kind``, or ``None`` when it cannot be one (it then has no metadata)."""
    if isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, (int, np.integer)):
        return int(value) if kind == "int" else str(int(value))
    if isinstance(value, str):
        return value if kind == "str" else int64_or_none(value)
    return None


def json_safe(value: object) -> JsonValue:
    """``value`` as something ``json.dumps`` writes as standard JSON."""
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, decimal.Decimal):
        return json_safe(float(value))
    if isinstance(value, (_dt.datetime, _dt.date, _dt.time)):
        return value.isoformat()
    if isinstance(value, _dt.timedelta):
        return value.total_seconds()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [json_safe(v) for v in value]
    if value is pd.NA or value is pd.NaT:
        return None
    return str(value)


def _shorten(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
