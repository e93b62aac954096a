"""Reading trained embeddings from files: one :func:`read_embeddings` over every format.

=============  =====================================================================
format         what it reads
=============  =====================================================================
``spark_csv``  ``id,features`` CSV with ``"[0.48, -0.25, ...]"`` cells (plain or .gz)
``parquet``    a file or a Spark output directory; list, fixed-size list or Spark ML vector
``npy``        an (n, d) ``.npy`` array plus ids (a ``.npy``, a text file, or a sequence)
``word2vec``   word2vec / item2vec / fastText text: ``n d`` header, ``token v1 ... vd`` lines
=============  =====================================================================
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from embrecall.embeddings import Embeddings, OnBadRow
from embrecall.errors import InputFormatError, InvalidArgumentError
from embrecall.io._common import IdType, check_id_type, check_on_bad_row
from embrecall.io._text import first_line, is_gzip
from embrecall.io.npy import read_npy
from embrecall.io.parquet import part_files, read_parquet
from embrecall.io.spark_csv import read_spark_csv
from embrecall.io.word2vec import read_word2vec

__all__ = ["FORMATS", "Format", "detect_format", "read_embeddings"]

Format = Literal["auto", "spark_csv", "parquet", "npy", "word2vec"]
FORMATS: tuple[str, ...] = ("spark_csv", "parquet", "npy", "word2vec")

_SUFFIXES = {
    ".csv": "spark_csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".npy": "npy",
    ".txt": "word2vec",
    ".vec": "word2vec",
    ".w2v": "word2vec",
}
_W2V_HEADER = re.compile(r"^\s*\d+\s+\d+\s*$")


def read_embeddings(
    path: str | os.PathLike,
    format: Format = "auto",
    *,
    id_column: str = "id",
    vector_column: str = "features",
    ids: str | os.PathLike | Sequence | np.ndarray | None = None,
    on_bad_row: OnBadRow = "raise",
    id_type: IdType = "auto",
) -> Embeddings:
    """Read embeddings (external ids and their vectors) from a file.

    Parameters
    ----------
    path : str or PathLike
        A file, or (parquet) a directory of part files.
    format : {"auto", "spark_csv", "parquet", "npy", "word2vec"}
        "auto" decides by the name (``.csv``/``.csv.gz``, ``.parquet``/``.pq`` or a directory of
        ``*.parquet``, ``.npy``, ``.txt``/``.vec``/``.w2v``), then by the content.
    id_column, vector_column : str
        Column names (spark_csv and parquet).
    ids : path, sequence or ndarray of shape (n,), optional
        npy only: the ids of the rows. Default: a sibling ``<stem>_ids.npy``,
        ``<stem>.ids.npy`` or ``<stem>_ids.txt``, else the row numbers 0..n-1.
    on_bad_row : {"raise", "skip"}
        "raise" (default) stops at the first malformed row with its line number. "skip" drops
        malformed rows (unparseable, wrong dimension, NaN/inf, repeated or reserved id) and lists
        them in ``Embeddings.skipped``; the expected dimension is then the most common one.
    id_type : {"auto", "int", "str"}
        "auto": integer ids stay int64, text ids that are all integer literals become int64 in
        CSV (and in id text files), and word2vec tokens stay strings. "int"/"str" force a kind.

    Returns
    -------
    Embeddings
        ``ids`` of shape (n,) (int64 or str) and ``vectors`` of shape (n, d), float32.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    InputFormatError
        Unknown format, malformed row, bad encoding, missing column, no rows, duplicate id...
    DimensionMismatchError
        A row's vector length differs from the others.
    InvalidVectorError
        A vector holds NaN or infinity.
    """
    check_on_bad_row(on_bad_row)
    check_id_type(id_type)
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or directory")
    fmt = (
        detect_format(path, id_column=id_column, vector_column=vector_column)
        if format == "auto"
        else format
    )
    if fmt not in FORMATS:
        raise InvalidArgumentError(
            f"format must be 'auto' or one of {', '.join(FORMATS)}, not {format!r}"
        )
    if ids is not None and fmt != "npy":
        raise InvalidArgumentError(f"ids= is for the npy format only ({path} is read as {fmt})")
    if fmt in ("spark_csv", "parquet"):  # the two tables: named id and vector columns
        read_table = read_spark_csv if fmt == "spark_csv" else read_parquet
        return read_table(
            path,
            id_column=id_column,
            vector_column=vector_column,
            id_type=id_type,
            on_bad_row=on_bad_row,
        )
    if fmt == "npy":
        return read_npy(path, ids=ids, id_type=id_type, on_bad_row=on_bad_row)
    return read_word2vec(path, id_type=id_type, on_bad_row=on_bad_row)


def detect_format(
    path: str | os.PathLike, *, id_column: str = "id", vector_column: str = "features"
) -> str:
    """The format ``read_embeddings(path, "auto")`` would use, by name first, then by content.

    Raises :class:`InputFormatError` naming the formats accepted when it cannot tell.
    """
    path = Path(path)
    if path.is_dir():
        if part_files(path, must_exist=False):
            return "parquet"
        raise _unknown(path, "a directory without *.parquet part files")
    name = path.name.lower()
    base = name[: -len(".gz")] if name.endswith(".gz") else name
    suffix = Path(base).suffix
    if suffix in _SUFFIXES:
        return _SUFFIXES[suffix]
    return _sniff(path, id_column, vector_column)


def _sniff(path: Path, id_column: str, vector_column: str) -> str:
    with open(path, "rb") as f:
        magic = f.read(6)
    if magic.startswith(b"\x93NUMPY"):
        return "npy"
    if magic.startswith(b"PAR1"):
        return "parquet"
    try:
        line = first_line(path) if magic else None
    except InputFormatError:
        line = None
    if line is not None and _W2V_HEADER.match(line):
        return "word2vec"
    if line is not None and {id_column, vector_column} <= set(next(csv.reader([line]))):
        return "spark_csv"
    compressed = " (gzip)" if magic and is_gzip(path) else ""
    raise _unknown(path, f"an unrecognised file{compressed}")


def _unknown(path: Path, what: str) -> InputFormatError:
    return InputFormatError(
        f"{path}: cannot tell the embedding format of {what}; name it with "
        f"format= one of {', '.join(FORMATS)} (auto knows .csv, .csv.gz, .parquet, .pq, "
        ".npy, .txt, .vec, .w2v and word2vec's 'n d' header)"
    )
