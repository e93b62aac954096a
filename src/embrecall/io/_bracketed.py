"""Parsing ``"[v1, v2, ...]"`` texts (Spark's vectors as pandas writes them), vectorised."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from embrecall.io._blocks import cast_number_lists
from embrecall.io._common import snippet


def parse_bracketed(
    texts: pa.Array, vector_name: str, *, first_only: bool, skip: np.ndarray | None = None
) -> tuple[np.ndarray | None, np.ndarray, dict[int, str], int]:
    """Parse ``"[v1, v2, ...]"`` texts into numbers, vectorised.

    Parameters
    ----------
    texts : pyarrow string or binary array, shape (n,)
    vector_name : str
        Column name used in messages.
    first_only : bool
        Stop at the first malformed row.
    skip : ndarray of bool, shape (n,), optional
        Rows to leave out without complaint (blank lines).

    Returns
    -------
    values : ndarray of float32 or None
        Numbers of the well-formed rows, concatenated (None if stopped at a bad row).
    lengths : ndarray of int64, shape (n,)
        Numbers per row (commas + 1).
    bad : dict
        Row -> reason for the malformed rows.
    known : int
        Leading rows whose status is known.
    """
    n = len(texts)
    skip = np.zeros(n, dtype=bool) if skip is None else skip
    if texts.null_count:
        texts = texts.fill_null("")
    pieces, lengths, malformed = _split_on_commas(texts)
    # each piece is "[0.48," or " -0.25," or " 1e-05]" (brackets only at the row ends, checked)
    elements = pc.ascii_trim(pieces, " \t\r\n,[]")
    row_offsets = np.concatenate([[0], np.cumsum(lengths)])
    values, bad, known = cast_number_lists(
        elements, row_offsets, malformed & ~skip, first_only=first_only, ignore=skip
    )
    reasons = {
        int(r): _bracketed_reason(texts, int(r), vector_name) for r in np.flatnonzero(bad[:known])
    }
    return values, lengths, reasons, known


def _bracketed_reason(texts: pa.Array, row: int, vector_name: str) -> str:
    value = texts[row].as_py()
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            return f"{vector_name} is not valid UTF-8 text"
    return f"{vector_name} is not a JSON array of numbers: {snippet(value)!r}"


def _split_on_commas(texts: pa.Array) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """Cut every text at its commas, without copying the characters.

    Returns the pieces (a string array over the same character buffer: piece k runs from one
    cut to the next, so it carries its separators), the pieces per row and the rows that are
    not framed by exactly one '[' and one ']'.
    """
    n = len(texts)
    offsets = np.frombuffer(
        texts.buffers()[1], dtype=np.int32, count=n + 1, offset=texts.offset * 4
    ).astype(np.int64)
    buffer = texts.buffers()[2] or pa.py_buffer(b"")
    base, end = int(offsets[0]), int(offsets[-1])
    data = np.frombuffer(buffer, dtype=np.uint8)[base:end]
    starts, stops = offsets[:-1] - base, offsets[1:] - base
    commas = np.flatnonzero(data == ord(","))
    before = np.searchsorted(commas, starts)  # commas before each row
    lengths = np.diff(np.append(before, len(commas))) + 1
    cuts = np.empty(n + len(commas) + 1, dtype=np.int64)
    row_slot = np.arange(n) + before
    is_row = np.zeros(len(cuts) - 1, dtype=bool)
    is_row[row_slot] = True
    cuts[row_slot] = starts
    cuts[:-1][~is_row] = commas + 1
    cuts[-1] = len(data)
    pieces = pa.Array.from_buffers(
        pa.string(), len(cuts) - 1, [None, pa.py_buffer((cuts + base).astype(np.int32)), buffer]
    )
    return pieces, lengths, ~_framed(data, starts, stops)


def _framed(data: np.ndarray, starts: np.ndarray, stops: np.ndarray) -> np.ndarray:
    """Rows that start with '[', end with ']' and hold no other bracket."""
    long_enough = stops - starts >= 2
    first = data[np.where(long_enough, starts, 0)] if len(data) else np.zeros(len(starts), np.uint8)
    last = data[np.where(long_enough, stops - 1, 0)] if len(data) else first
    framed = long_enough & (first == ord("[")) & (last == ord("]"))
    n = len(starts)
    opening = np.flatnonzero(data == ord("["))
    closing = np.flatnonzero(data == ord("]"))
    if len(opening) == n == len(closing):
        return framed  # one of each per row, and every framed row has them at its ends
    per_row = np.diff(np.searchsorted(opening, np.append(starts, len(data))))
    per_row_closing = np.diff(np.searchsorted(closing, np.append(starts, len(data))))
    return framed & (per_row == 1) & (per_row_closing == 1)
