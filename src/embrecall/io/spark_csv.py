"""Spark CSV: what ``model.userFactors.select("id", "features").toPandas().to_csv(path)`` writes.

::

    id,features
    10,"[-1.1158843040466309, -0.25266578793525696, ...]"

Two paths, one result. A file in exactly that layout (optionally with pandas' unnamed index
column, ``[a, b]`` or ``[a,b]``, LF or CRLF) is memory-mapped and parsed by
:mod:`embrecall.io._fast_csv` without any per-row Python work. Any other CSV, and any file with a
bad row, goes through pyarrow's CSV reader: each batch's ``features`` texts are cut at their
commas and cast to float32 by pyarrow kernels, and only a batch that fails to cast is searched,
by bisection, for the rows at fault. Both paths parse numbers with the same arrow cast.

:func:`write_spark_csv` writes the same layout, so that what it writes reads back unchanged.
"""

from __future__ import annotations

import csv
import os
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from embrecall.embeddings import Embeddings, OnBadRow
from embrecall.errors import InputFormatError
from embrecall.io._assemble import Layout, Problem, assemble
from embrecall.io._blocks import Block, parse_in_threads, progress_bar
from embrecall.io._bracketed import parse_bracketed
from embrecall.io._common import IdType, check_columns, logger, snippet
from embrecall.io._fast_csv import read_plain_layout
from embrecall.io._ids import resolve_ids
from embrecall.io._text import (
    first_bad_utf8_line,
    first_line,
    input_stream,
    iter_raw_lines,
    line_blocks,
    not_utf8,
)

_BLOCK_BYTES = 1 << 21  # ~2 MB of text per batch: large enough to amortise, small enough to cache
_NL, _QUOTE = ord("\n"), ord('"')


def read_spark_csv(
    path: Path,
    *,
    id_column: str = "id",
    vector_column: str = "features",
    id_type: IdType = "auto",
    on_bad_row: OnBadRow = "raise",
) -> Embeddings:
    """Read a Spark-style CSV of ids and ``"[v1, v2, ...]"`` vectors (plain or gzip).

    Parameters
    ----------
    path : Path
        The CSV file; a header row naming the columns is required.
    id_column, vector_column : str
        Column names. Other columns (e.g. a pandas index) are ignored.
    id_type : {"auto", "int", "str"}
        "auto" gives int64 ids when every id is an integer literal, else string ids.
    on_bad_row : {"raise", "skip"}

    Returns
    -------
    Embeddings
        ``n`` ids and an (n, d) float32 matrix; ``lines`` in messages count the header as line 1.
    """
    started = time.perf_counter()
    columns = _header(path)
    check_columns(path, columns, id_column, vector_column)
    blocks = read_plain_layout(path, columns, id_column, vector_column)
    if blocks is not None:
        lines, extra = np.arange(2, sum(len(b) for b in blocks) + 2, dtype=np.int64), []
    else:
        logger.debug("%s: not in the plain pandas layout; using the general CSV reader", path)
        blocks, lines, extra = _read_general(path, id_column, vector_column, on_bad_row)
    layout = Layout(
        str(path),
        vector_name=vector_column,
        empty_message="no embeddings (the file has only a header)",
    )
    emb = assemble(
        blocks,
        lines,
        layout,
        on_bad_row=on_bad_row,
        extra=extra,
        id_resolver=lambda raw, usable: resolve_ids(raw, usable, id_type, infer_int=True),
    )
    _log_done(path, emb, time.perf_counter() - started)
    return emb


def write_spark_csv(embeddings: Embeddings, path: str | os.PathLike) -> None:
    """Write ``id,features`` rows with a JSON array per row, as Spark's ``toPandas().to_csv``.

    Floats are written as the shortest text that reads back to the same float32 value.
    """
    features = [
        "[" + ", ".join(repr(float(x)) for x in np.asarray(row, dtype=np.float64)) + "]"
        for row in embeddings.vectors
    ]
    pd.DataFrame({"id": embeddings.ids, "features": features}).to_csv(path, index=False)


def _read_general(
    path: Path, id_column: str, vector_column: str, on_bad_row: OnBadRow
) -> tuple[list[Block], np.ndarray, list[Problem]]:
    """Any CSV, through pyarrow's reader; finds every malformed row with its line.

    A line with an odd number of quote characters is a bad row of its own: left alone, arrow
    would run its open quote on into the next lines and silently merge or drop them. Those lines
    are cut out before arrow reads the rest, so that every other row still reads, on its line.
    """
    unbalanced = _unbalanced_quote_lines(path)
    kept: list[tuple[int, bytes]] | None = None
    extra: list[Problem] = []
    source: pa.NativeFile | pa.BufferReader = input_stream(path)
    if len(unbalanced):  # never line 1: _header checked it
        kept, extra = _without_lines(path, set(unbalanced.tolist()))
        source = pa.BufferReader(b"".join(raw for _, raw in kept))
        kept = kept[1:]  # the header
    invalid: list[tuple[int, int, str]] = []
    reader = _open(source, path, id_column, vector_column, invalid)
    first_only = on_bad_row == "raise"

    def parse(batch: pa.RecordBatch) -> Block:
        return _parse_batch(batch, vector_column, first_only)

    with progress_bar(path) as bar:
        blocks = parse_in_threads(
            _batches(reader, path), parse, on_batch=lambda b: bar.update(b.nbytes)
        )
    lines, wrong_fields = _lines(path, sum(len(b) for b in blocks), invalid, kept)
    return blocks, lines, extra + wrong_fields


def _unbalanced_quote_lines(path: Path) -> np.ndarray:
    """Numbers (header = 1) of the lines holding an odd number of quote characters.

    In CSV a quoted field opens and closes on its line, and an escaped quote is doubled, so a
    line of well-formed rows always holds an even number (embedding files never hold a line
    break inside a field). One vectorised pass per block.
    """
    found = []
    for block in line_blocks(path, _BLOCK_BYTES, skip_first=False):
        quotes = np.flatnonzero(block.data == _QUOTE)
        if len(quotes):
            ends = np.flatnonzero(block.data == _NL)
            per_line = np.bincount(np.searchsorted(ends, quotes), minlength=len(ends) + 1)
            found.append(block.first_line + np.flatnonzero(per_line % 2))
    return np.concatenate(found) if found else np.zeros(0, dtype=np.int64)


def _without_lines(path: Path, dropped: set[int]) -> tuple[list[tuple[int, bytes]], list[Problem]]:
    """The file's other lines with their numbers, and a problem for each dropped line."""
    kept, problems = [], []
    for number, raw in enumerate(iter_raw_lines(path), start=1):
        if number in dropped:
            text = raw.rstrip(b"\r\n").decode("utf-8", errors="replace")
            problems.append(Problem(number, _unbalanced_reason(text)))
        else:
            kept.append((number, raw if raw.endswith(b"\n") else raw + b"\n"))
    return kept, problems


def _unbalanced_reason(text: str | None) -> str:
    return (
        "odd number of quote characters (a quoted field is not closed on its line, or a quote "
        f"is stray): {snippet(text)!r}"
    )


def _header(path: Path) -> list[str]:
    line = first_line(path)
    if line is None:
        raise InputFormatError(f"{path}: no embeddings (the file is empty)")
    if line.count('"') % 2:
        raise InputFormatError(f"{path}: line 1: {_unbalanced_reason(line)}")
    return next(csv.reader([line]))


def _open(
    source: pa.NativeFile, path: Path, id_column: str, vector_column: str, invalid: list
) -> pcsv.CSVStreamingReader:
    def on_invalid(row: pcsv.InvalidRow) -> str:
        # arrow does not know the row's line number here; _lines finds it afterwards
        invalid.append((row.expected_columns, row.actual_columns, row.text))
        return "skip"

    try:
        return pcsv.open_csv(
            source,
            read_options=pcsv.ReadOptions(block_size=_BLOCK_BYTES),
            # blank lines come through as empty rows, so that row i stays on line i + 2
            parse_options=pcsv.ParseOptions(
                ignore_empty_lines=False, invalid_row_handler=on_invalid
            ),
            # the vectors as bytes: they are numbers, and arrow need not check their UTF-8
            convert_options=pcsv.ConvertOptions(
                column_types={id_column: pa.string(), vector_column: pa.binary()},
                include_columns=[id_column, vector_column],
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid as exc:
        raise _arrow_error(exc, path) from None


def _batches(reader: pcsv.CSVStreamingReader, path: Path) -> Iterator[pa.RecordBatch]:
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            return
        except pa.ArrowInvalid as exc:
            raise _arrow_error(exc, path) from None
        if batch.num_rows:
            yield batch


def _arrow_error(exc: pa.ArrowInvalid, path: Path) -> InputFormatError:
    if "UTF8" in str(exc):
        return not_utf8(path, first_bad_utf8_line(path))
    return InputFormatError(f"{path}: {exc}")


def _parse_batch(batch: pa.RecordBatch, vector_name: str, first_only: bool) -> Block:
    ids = pc.ascii_trim_whitespace(batch.column(0))
    texts = batch.column(1)
    blank = np.asarray(
        pc.and_(pc.equal(pc.binary_length(ids), 0), pc.equal(pc.binary_length(texts), 0)),
        dtype=bool,
    )
    values, lengths, bad, known = parse_bracketed(
        texts, vector_name, first_only=first_only, skip=blank
    )
    return Block(ids, lengths, bad, values, known, ignore=blank)


def _lines(
    path: Path, n: int, invalid: list, kept: list[tuple[int, bytes]] | None
) -> tuple[np.ndarray, list[Problem]]:
    """Line numbers of the ``n`` rows read, and the rows arrow could not split into fields.

    ``kept`` holds the data lines arrow was given, with their numbers, when some lines were cut
    out (None: arrow read the whole file, row i on line i + 2 unless some line had the wrong
    number of fields). Lines with the wrong number of fields are found by their text in one scan.
    """
    if not invalid:
        if kept is None:
            return np.arange(2, n + 2, dtype=np.int64), []
        return _approximate(np.array([number for number, _ in kept], dtype=np.int64), n), []
    wanted = Counter(text for _, _, text in invalid)
    fields = {text: (expected, actual) for expected, actual, text in invalid}
    numbered = kept if kept is not None else _data_lines(path)
    lines, extra = [], []
    for number, raw in numbered:
        text = raw.rstrip(b"\r\n").decode("utf-8", errors="replace")
        if wanted[text] > 0:
            wanted[text] -= 1
            expected, actual = fields[text]
            reason = f"expected {expected} fields, found {actual}: {snippet(text)!r}"
            extra.append(Problem(number, reason))
        else:
            lines.append(number)
    return _approximate(np.asarray(lines, dtype=np.int64), n), extra


def _data_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    numbered = enumerate(iter_raw_lines(path), start=1)
    next(numbered, None)  # the header
    yield from numbered


def _approximate(lines: np.ndarray, n: int) -> np.ndarray:
    """``lines`` if they number the ``n`` rows; else (CR-only line ends...) consecutive ones."""
    if len(lines) == n:
        return lines
    return np.arange(2, n + 2, dtype=np.int64)


def _log_done(path: Path, emb: Embeddings, seconds: float) -> None:
    logger.info(
        "read %s: %d rows x %d dims in %.2fs (%.0f rows/s), %d skipped",
        path,
        len(emb),
        emb.dim,
        seconds,
        len(emb) / max(seconds, 1e-9),
        len(emb.skipped),
    )
