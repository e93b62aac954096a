"""Parquet: a file, or a Spark output directory of part files.

The vector column may be ``list<float|double>`` (what ``toPandas`` and most writers give),
``fixed_size_list``, Spark ML's ``VectorUDT`` struct (``type, size, indices, values``; dense
vectors only), or text in the Spark CSV ``"[v1, v2, ...]"`` form.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from embrecall.embeddings import Embeddings, OnBadRow
from embrecall.errors import InputFormatError
from embrecall.io._assemble import Layout, assemble
from embrecall.io._blocks import Block, parse_in_threads
from embrecall.io._bracketed import parse_bracketed
from embrecall.io._common import IdType, check_columns, log_read
from embrecall.io._ids import resolve_ids

_BATCH_ROWS = 65_536
_SPARSE, _DENSE = 0, 1  # Spark ML VectorUDT "type" field


def read_parquet(
    path: Path,
    *,
    id_column: str = "id",
    vector_column: str = "features",
    id_type: IdType = "auto",
    on_bad_row: OnBadRow = "raise",
) -> Embeddings:
    """Read ids and vectors from a parquet file or a directory of part files.

    Parameters
    ----------
    path : Path
        A ``.parquet`` file, or a directory whose ``*.parquet`` files (not starting with ``_`` or
        ``.``, e.g. Spark's ``_SUCCESS`` and ``.crc`` files) are read in name order.
    id_column, vector_column : str
        Column names.
    id_type : {"auto", "int", "str"}
        "auto" keeps the column's kind (integer -> int64, string -> str).
    on_bad_row : {"raise", "skip"}

    Returns
    -------
    Embeddings
        Messages name rows by their 1-based row number (across part files, in name order).
    """
    started = time.perf_counter()
    files = part_files(path) if path.is_dir() else [path]
    for file in files:
        _check_columns(file, id_column, vector_column)
    first_only = on_bad_row == "raise"

    def parse(batch: pa.RecordBatch) -> Block:
        return _parse_batch(batch, vector_column, first_only)

    blocks = parse_in_threads(_batches(files, id_column, vector_column), parse)
    n = sum(len(b) for b in blocks)
    layout = Layout(str(path), unit="row", vector_name=vector_column)
    emb = assemble(
        blocks,
        np.arange(1, n + 1, dtype=np.int64),
        layout,
        on_bad_row=on_bad_row,
        id_resolver=lambda raw, usable: resolve_ids(raw, usable, id_type, infer_int=False),
    )
    log_read(path, len(emb), emb.dim, started)
    return emb


def part_files(directory: Path, *, must_exist: bool = True) -> list[Path]:
    """The ``*.parquet`` files of a Spark output directory, in name order.

    Files and folders starting with ``_`` or ``.`` (``_SUCCESS``, ``.crc``, ``_temporary``) are
    left out; partition folders (``key=value/``) are searched.
    """
    files = sorted(
        p
        for p in directory.rglob("*.parquet")
        if p.is_file()
        and not any(part.startswith(("_", ".")) for part in p.relative_to(directory).parts)
    )
    if not files and must_exist:
        raise InputFormatError(f"{directory}: no *.parquet part files in this directory")
    return files


def _check_columns(file: Path, id_column: str, vector_column: str) -> None:
    try:
        names = pq.read_schema(file).names
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputFormatError(f"{file}: not a readable parquet file ({exc})") from exc
    check_columns(file, names, id_column, vector_column)


def _batches(files: list[Path], id_column: str, vector_column: str):
    for file in files:
        for batch in pq.ParquetFile(file).iter_batches(
            batch_size=_BATCH_ROWS, columns=[id_column, vector_column]
        ):
            if batch.num_rows:
                yield batch


def _parse_batch(batch: pa.RecordBatch, name: str, first_only: bool) -> Block:
    ids, column = _common_id_type(batch.column(0)), batch.column(1)
    t = column.type
    if pa.types.is_struct(t):
        return _spark_vectors(ids, column, name)
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        values, lengths, bad, known = parse_bracketed(
            column.cast(pa.string()), name, first_only=first_only
        )
        return Block(ids, lengths, bad, values, known)
    if _is_number_list(t):
        return _number_lists(ids, column, name, {})
    raise InputFormatError(
        f"column {name!r} has type {t}; expected a list of numbers, a fixed-size list, "
        "a Spark ML vector or '[v1, v2, ...]' text"
    )


def _common_id_type(ids: pa.Array) -> pa.Array:
    """Ids in one type whatever the part file wrote (int32 here, int64 there, categorical...)."""
    if pa.types.is_dictionary(ids.type):
        ids = ids.dictionary_decode()
    t = ids.type
    if pa.types.is_integer(t) and t != pa.uint64():
        return ids.cast(pa.int64())
    if pa.types.is_large_string(t):
        return ids.cast(pa.string())
    return ids


def _is_number_list(t: pa.DataType) -> bool:
    is_list = pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)
    return is_list and (
        pa.types.is_floating(t.value_type)
        or pa.types.is_integer(t.value_type)
        or pa.types.is_decimal(t.value_type)
    )


def _spark_vectors(ids: pa.Array, column: pa.StructArray, name: str) -> Block:
    fields = {column.type.field(i).name for i in range(column.type.num_fields)}
    if not {"type", "values"} <= fields:
        raise InputFormatError(
            f"column {name!r} is a struct with fields {sorted(fields)}; expected a Spark ML "
            "vector (type, size, indices, values)"
        )
    kind = pc.struct_field(column, "type").fill_null(_DENSE).to_numpy(zero_copy_only=False)
    bad = {
        int(r): f"{name} is a sparse vector (only dense vectors are read; call .toArray())"
        for r in np.flatnonzero(kind == _SPARSE)
    }
    return _number_lists(ids, pc.struct_field(column, "values"), name, bad)


def _number_lists(ids: pa.Array, column: pa.Array, name: str, bad: dict[int, str]) -> Block:
    """A block from a list column: null vectors and null elements make a row bad."""
    n = len(column)
    for r in np.flatnonzero(np.asarray(column.is_null().to_numpy(zero_copy_only=False), bool)):
        bad.setdefault(int(r), f"{name} is null")
    lengths = np.asarray(pc.list_value_length(column).fill_null(0).to_numpy(), dtype=np.int64)
    flat = pc.list_flatten(column)
    if flat.null_count:
        parents = np.asarray(pc.list_parent_indices(column).to_numpy(), dtype=np.int64)
        for r in np.unique(
            parents[np.asarray(flat.is_null().to_numpy(zero_copy_only=False), bool)]
        ):
            bad.setdefault(int(r), f"{name} holds a null value")
    good = np.ones(n, dtype=bool)
    good[list(bad)] = False
    if not good.all():
        flat = flat.filter(np.repeat(good, lengths))
    with np.errstate(over="ignore"):  # beyond float32 becomes inf, refused with its row later
        values = np.asarray(flat.to_numpy(zero_copy_only=False), dtype=np.float32)
    return Block(ids, lengths, bad, values)
