"""Reading tables: the CSV/TSV, ``::``-separated and parquet toolkit of catalog and interactions.

:mod:`embrecall.catalog` (item metadata) and :mod:`embrecall.interactions` (who saw what) read
their files with these helpers: format sniffing, decoding with line-exact errors, pyarrow CSV
and parquet reading, column picking, and id columns normalised to int64 or text ids. They are
not public API.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.dataset as pa_ds
import pyarrow.parquet as pq

from embrecall.embeddings import normalise_ids
from embrecall.errors import DuplicateIdError, InputFormatError, InvalidArgumentError

TableFormat = Literal["auto", "movielens_dat", "csv", "parquet"]
FORMATS: tuple[str, ...] = ("auto", "movielens_dat", "csv", "parquet")

_INT64_MIN, _INT64_MAX = int(np.iinfo(np.int64).min), int(np.iinfo(np.int64).max)


def detect_format(path: Path, format: str) -> str:
    """The concrete format of ``path``: the one given, or one sniffed for ``"auto"``."""
    if format not in FORMATS:
        raise InvalidArgumentError(f"format must be one of {', '.join(FORMATS)}, not {format!r}")
    if format != "auto":
        return format
    if path.is_dir() or path.suffix.lower() in (".parquet", ".pq"):
        return "parquet"
    with _open(path) as f:
        if f.read(4) == b"PAR1":
            return "parquet"
        f.seek(0)
        first = next((line for line in f if line.strip()), b"")
    return "movielens_dat" if b"::" in first else "csv"


def read_nonempty(path: Path) -> bytes:
    """The bytes of ``path``; an empty (or blank) file is refused."""
    with _open(path) as f:
        data = f.read()
    if not data.strip():
        raise InputFormatError(f"{path}: the file is empty")
    return data


def _open(path: Path):
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputFormatError(f"{path}: is a directory, expected a file") from None


def decode_text(
    data: bytes, encoding: str | None, *, source: str, fallback: str | None = None
) -> str:
    """``data`` decoded as ``encoding`` (default UTF-8, a leading BOM dropped).

    With no ``encoding`` and a ``fallback``, bytes that are not UTF-8 are decoded as
    ``fallback`` instead. Undecodable bytes raise :class:`InputFormatError` naming the line.
    """
    if encoding is None and fallback is not None:
        try:
            return decode_text(data, None, source=source)
        except InputFormatError:
            return decode_text(data, fallback, source=source)
    name = encoding or "utf-8"
    try:
        codecs.lookup(name)
    except LookupError:
        raise InputFormatError(f"{source}: unknown encoding {name!r}") from None
    if is_utf8(name) and data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    try:
        return data.decode(name)
    except UnicodeDecodeError as exc:
        raise encoding_error(source, name, data, exc.start, given=encoding is not None) from None


def encoding_error(
    source: str, encoding: str, data: bytes | None, pos: int | None, *, given: bool
) -> InputFormatError:
    """The error for text that is not valid in ``encoding``, naming the line when known."""
    where = ""
    if data is not None and pos is not None:
        line = data.count(b"\n", 0, pos) + 1
        where = f" at line {line} (byte 0x{data[pos]:02x})"
    hint = (
        "pass the file's encoding with encoding=..."
        if given
        else "pass the file's encoding, e.g. encoding='iso-8859-1'"
    )
    return InputFormatError(f"{source}: the text is not valid {encoding}{where}; {hint}")


def is_utf8(encoding: str | None) -> bool:
    return encoding is None or codecs.lookup(encoding).name == "utf-8"


def parse_header(text: str, *, source: str) -> tuple[list[str], str]:
    """Column names of a CSV's first non-blank line, and its delimiter (comma, else tab)."""
    first = next((line for line in text.splitlines() if line.strip()), None)
    if first is None:
        raise InputFormatError(f"{source}: the file is empty")
    delimiter = "\t" if "\t" in first and "," not in first else ","
    return next(csv.reader([first], delimiter=delimiter)), delimiter


def pick_column(
    columns: Sequence[str],
    wanted: str | None,
    candidates: Sequence[str],
    *,
    what: str,
    source: str,
    default_first: bool = False,
    required: bool = True,
) -> str | None:
    """The column named ``wanted``, else the first of ``candidates`` present (any case).

    A ``wanted`` column that is missing raises naming it and the columns found; with no match
    among the candidates, the first column (``default_first``), ``None`` (not ``required``) or
    an error.
    """
    found = ", ".join(repr(c) for c in columns)
    if wanted is not None:
        if wanted not in columns:
            raise InputFormatError(f"{source}: no {what} column {wanted!r}; columns: {found}")
        return wanted
    folded = {_fold(c): c for c in reversed(list(columns))}  # the first of equal folds wins
    for cand in candidates:
        if _fold(cand) in folded:
            return folded[_fold(cand)]
    if default_first and columns:
        return columns[0]
    if not required:
        return None
    raise InputFormatError(
        f"{source}: no {what} column (looked for {', '.join(candidates)}); columns: {found}; "
        f"name it with {what.split()[0]}_column="
    )


def _fold(name: str) -> str:
    return name.replace("_", "").lower()


def read_csv_table(
    source_data: bytes | Path,
    *,
    source: str,
    delimiter: str = ",",
    column_types: dict[str, pa.DataType] | None = None,
    include_columns: Sequence[str] | None = None,
    column_names: Sequence[str] | None = None,
    encoding: str | None = None,
    block_size: int | None = None,
    quoting: bool = True,
) -> pa.Table:
    """A CSV read by pyarrow; only empty cells are null, so a title "NA" stays text."""
    if encoding is not None:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise InputFormatError(f"{source}: unknown encoding {encoding!r}") from None
    read_opts = pa_csv.ReadOptions(
        column_names=list(column_names) if column_names else None,
        encoding="utf8" if is_utf8(encoding) else encoding,
        **({"block_size": block_size} if block_size else {}),
    )
    parse_opts = pa_csv.ParseOptions(
        delimiter=delimiter, quote_char='"' if quoting else False, ignore_empty_lines=True
    )
    convert_opts = pa_csv.ConvertOptions(
        column_types=column_types or {},
        include_columns=list(include_columns) if include_columns else None,
        null_values=[""],
        strings_can_be_null=True,
    )
    stream = pa.BufferReader(source_data) if isinstance(source_data, bytes) else str(source_data)
    try:
        return pa_csv.read_csv(
            stream, read_options=read_opts, parse_options=parse_opts, convert_options=convert_opts
        )
    except UnicodeDecodeError as exc:  # raised by the codec when pyarrow transcodes
        raise encoding_error(source, encoding, None, None, given=True) from exc
    except (pa.ArrowInvalid, pa.ArrowKeyError) as exc:
        message = str(exc)
        if "invalid UTF8" in message:
            name = encoding or "utf-8"
            raise encoding_error(source, name, None, None, given=encoding is not None) from exc
        raise InputFormatError(f"{source}: {message}") from exc


def read_parquet_table(
    path: Path, *, source: str, columns: Sequence[str] | None = None
) -> pa.Table:
    """A parquet file, or a directory of them, as one table; unreadable input is refused."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or directory")
    try:
        dataset = pa_ds.dataset(str(path), format="parquet")
        if columns is not None:
            missing = [c for c in columns if c not in dataset.schema.names]
            if missing:
                raise InputFormatError(
                    f"{source}: no column {missing[0]!r}; columns: "
                    f"{', '.join(repr(c) for c in dataset.schema.names)}"
                )
        table = dataset.to_table(columns=list(columns) if columns is not None else None)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputFormatError(f"{source}: not a readable parquet file ({exc})") from exc
    if table.num_rows == 0:
        raise InputFormatError(f"{source}: the file has no rows")
    # Schema metadata of the first file survives dataset reads only partly; reread it.
    if path.is_file():
        table = table.replace_schema_metadata(pq.read_schema(str(path)).metadata)
    return table


class CsvLines:
    """Maps a data row (0-based, as pyarrow counts them) to its 1-based line in the file.

    pyarrow skips blank lines, so the row number alone can be off; the newline scan runs only
    when an error needs a line number.
    """

    def __init__(self, data: bytes | Path, *, header_lines: int) -> None:
        self._data = data
        self._header_lines = header_lines
        self._lines: np.ndarray | None = None

    def __call__(self, row: int) -> int:
        if self._lines is None:
            data = self._data if isinstance(self._data, bytes) else Path(self._data).read_bytes()
            buf = np.frombuffer(data, dtype=np.uint8)
            ends = np.append(np.flatnonzero(buf == 10), len(buf))
            starts = np.concatenate(([0], ends[:-1] + 1))
            length = ends - starts
            has_cr = (length > 0) & (buf[np.maximum(ends - 1, 0)] == 13)
            self._lines = np.flatnonzero(length - has_cr > 0) + 1
        return int(self._lines[self._header_lines + row])


def ids_from_text(
    column: pa.ChunkedArray | pa.Array, *, what: str, source: str, line_of_row
) -> np.ndarray:
    """Text ids as int64 when each is a canonical integer, else an object array of ``str``.

    "007" or "+7" keep every id a string, so zero-padded codes are never merged.
    """
    column = _refuse_nulls(column, what=what, source=source, line_of_row=line_of_row)
    try:
        ints = pc.cast(column, pa.int64())
    except pa.ArrowInvalid:
        return column.to_numpy(zero_copy_only=False)
    padded = pc.or_(
        pc.and_(pc.starts_with(column, "0"), pc.greater(pc.binary_length(column), 1)),
        pc.starts_with(column, "-0"),
    )
    if pc.any(padded).as_py():
        return column.to_numpy(zero_copy_only=False)
    return ints.to_numpy()


def ids_from_typed(column: pa.ChunkedArray, *, what: str, source: str) -> np.ndarray:
    """Ids from a typed (parquet) column: integers become int64, strings stay strings."""
    column = _refuse_nulls(column, what=what, source=source, line_of_row=lambda r: f"row {r + 1}")
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    if pa.types.is_large_string(column.type) or pa.types.is_string_view(column.type):
        column = column.cast(pa.string())
    if not (
        pa.types.is_integer(column.type)
        or pa.types.is_string(column.type)
        or pa.types.is_floating(column.type)
    ):
        raise InputFormatError(
            f"{source}: {what} has type {column.type}; expected integers or text"
        )
    return to_id_array(column.to_numpy(zero_copy_only=False), source=source)


def to_id_array(values: np.ndarray, *, source: str) -> np.ndarray:
    """:func:`normalise_ids`, refusing a mix of integers and strings with a clear message.

    (``normalise_ids`` itself fails on such a mix with a bare ``StopIteration``.)
    """
    if values.dtype == object and pd.api.types.infer_dtype(values) == "mixed-integer":
        kinds = {type(v).__name__ for v in values.tolist()}
        raise InputFormatError(
            f"{source}: ids must be all integers or all strings, found {', '.join(sorted(kinds))}"
        )
    return normalise_ids(values, source=source)


def _refuse_nulls(column, *, what: str, source: str, line_of_row):
    if column.null_count:
        row = int(np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0])
        raise InputFormatError(f"{source}: {_place(line_of_row(row))}: empty {what}")
    return column


def _place(where: int | str) -> str:
    return f"line {where}" if isinstance(where, int) else str(where)


def int64_or_none(text: str) -> int | None:
    """Decimal integer text (sign and surrounding spaces allowed) as an int64 value, else
    ``None``."""
    text = text.strip()
    digits = text[1:] if text[:1] in ("+", "-") else text
    if not (digits.isascii() and digits.isdigit()):
        return None
    value = int(text)
    return value if _INT64_MIN <= value <= _INT64_MAX else None


def duplicate_id_error(
    ids: np.ndarray, index: pd.Index, source: str, line_of_row
) -> DuplicateIdError:
    dup_rows = np.flatnonzero(index.duplicated(keep=False))
    first = ids[dup_rows[0]]
    rows = dup_rows[ids[dup_rows] == first][:2]
    value = first.item() if isinstance(first, np.generic) else first
    if line_of_row is None:
        where = f"rows {int(rows[0]) + 1} and {int(rows[1]) + 1}"
    else:
        where = f"{_place(line_of_row(int(rows[0])))} and {_place(line_of_row(int(rows[1])))}"
    return DuplicateIdError(f"{source}: duplicate id {value!r} at {where}")
