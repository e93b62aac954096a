"""The fast path of the Spark CSV reader, for files in exactly the layout pandas writes.

::

    id,features                              (or ",id,features" with a pandas index column)
    10,"[-1.1158843040466309, -0.25266578793525696, 0.13017797470092773]"

The file is memory-mapped (gzip: streamed) and cut into blocks of whole lines. In each block
numpy finds the newlines and commas, and from their positions we build, without copying a
character, one arrow string array whose elements are alternately the texts of the numbers and
the texts between them (separators, the id, quotes and brackets). Those are marked null, so a
single arrow cast turns the numbers into float32, and the ids are taken out by position.

Anything unusual (a quoted id, a blank line, brackets missing, a stray quote, a number that
does not parse, CR-only line ends) makes :func:`read_plain_layout` return None and the reader
falls back to pyarrow's CSV reader, which handles every CSV and finds the bad rows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from embrecall.io._blocks import Block, cast_grid, parse_in_threads, progress_bar
from embrecall.io._text import LineBlock, line_blocks

_BLOCK_BYTES = 1 << 21
_NL, _CR, _COMMA, _QUOTE, _SPACE = (ord(c) for c in '\n\r," ')
_OPEN, _CLOSE = ord("["), ord("]")


class _Irregular(Exception):
    """The block is not in the plain layout; the general reader must take over."""


def read_plain_layout(
    path: Path, columns: list[str], id_column: str, vector_column: str
) -> list[Block] | None:
    """Blocks parsed from ``path`` if the whole file is in the plain layout, else None.

    Parameters
    ----------
    path : Path
        The CSV file, header included.
    columns : list of str
        The header's column names.
    id_column, vector_column : str
        The columns to read.

    Returns
    -------
    list of Block or None
        One block per ~2 MB of text; rows are the lines after the header, in order.
    """
    lead = _lead(columns, id_column, vector_column)
    if lead is None:
        return None
    blocks = line_blocks(path, _BLOCK_BYTES, skip_first=True)
    try:
        with progress_bar(path) as bar:
            return parse_in_threads(
                blocks, lambda block: _parse(block, lead), on_batch=lambda b: bar.update(b.nbytes)
            )
    except _Irregular:
        return None


def _lead(columns: list[str], id_column: str, vector_column: str) -> int | None:
    """How many fields precede the vector: 1 for ``id,features``, 2 with a pandas index."""
    if columns == [id_column, vector_column]:
        return 1
    if columns == ["", id_column, vector_column]:
        return 2
    return None


def _parse(block: LineBlock, lead: int) -> Block:
    data, buffer = block.data, block.buffer
    ends = np.flatnonzero(data == _NL)
    if len(ends) == 0 or ends[-1] != len(data) - 1:  # the file's last line has no newline
        ends = np.append(ends, len(data))
    # exactly the two quotes around each vector: any other (a stray quote in an id or index)
    # is a framing defect, which the general reader reports with its line
    if np.count_nonzero(data == _QUOTE) != 2 * len(ends):
        raise _Irregular
    grid = _Grid(data, ends, np.flatnonzero(data == _COMMA), lead)
    try:
        values, ids = cast_grid(buffer, grid.cuts, len(data), grid.number_columns, grid.id_column)
    except pa.ArrowInvalid:
        raise _Irregular from None
    n, dim = values.shape
    return Block(pc.ascii_trim_whitespace(ids), np.full(n, dim, np.int64), {}, values.reshape(-1))


class _Grid:
    """Where the texts of a block's lines start and end, as an (n, 2k + 2) grid of offsets.

    A line is ``[index,]id,"[v1, v2, ..., vd]"`` then ``\n`` or ``\r\n``: ``k`` commas,
    ``lead - 1`` after the index, one after the id, ``d - 1`` between values. Row ``r`` of the
    grid holds the line's start, two cuts per comma, and its closing bracket; the texts between
    consecutive cuts are, in turn, the id, ``,"[``, v1, ``, ``, v2, ..., vd, then ``]"\n``
    up to the next line. Every line must have the same ``k`` (else a row has the wrong
    dimension, which the general reader reports).
    """

    def __init__(self, data: np.ndarray, ends: np.ndarray, commas: np.ndarray, lead: int) -> None:
        n = len(ends)
        k = len(commas) // n
        if k < lead or k * n != len(commas):
            raise _Irregular
        starts = np.concatenate([[0], ends[:-1] + 1])
        at = commas.reshape(n, k)
        # each line's first and last comma inside it => exactly k commas per line
        if np.any(at[:, 0] < starts) or np.any(at[:, -1] >= ends):
            raise _Irregular
        close = self._closing_brackets(data, ends)
        self._check(data, starts, at[:, lead - 1], close, lead, at)
        cuts = np.empty((n, 2 * k + 2), dtype=np.int64)
        cuts[:, 0] = starts
        if lead == 2:  # the index "0," is one text, the empty text after it ends at the id
            cuts[:, 1] = cuts[:, 2] = at[:, 0] + 1
        cuts[:, 2 * lead - 1] = at[:, lead - 1]
        cuts[:, 2 * lead] = at[:, lead - 1] + 3  # past ',"['
        between = at[:, lead:]
        cuts[:, 2 * lead + 1 : 2 * k + 1 : 2] = between
        cuts[:, 2 * lead + 2 : 2 * k + 1 : 2] = between + 1 + (data[between + 1] == _SPACE)
        cuts[:, -1] = close
        self.cuts = cuts
        self.number_columns = slice(2 * lead, 2 * k + 1, 2)
        self.id_column = 2 * (lead - 1)

    @staticmethod
    def _closing_brackets(data: np.ndarray, ends: np.ndarray) -> np.ndarray:
        before_end = np.minimum(ends - 1, len(data) - 1)
        has_cr = (data[before_end] == _CR) & (ends < len(data))
        return ends - 2 - has_cr.astype(np.int64)

    @staticmethod
    def _check(data, starts, id_comma, close, lead, at) -> None:
        if np.any(close < id_comma + 3):
            raise _Irregular
        opened = (data[id_comma + 1] == _QUOTE) & (data[id_comma + 2] == _OPEN)
        closed = (data[close] == _CLOSE) & (data[close + 1] == _QUOTE)
        id_start = starts if lead == 1 else at[:, lead - 2] + 1
        unquoted = (data[np.minimum(id_start, len(data) - 1)] != _QUOTE) | (id_start == id_comma)
        if not (opened.all() and closed.all() and unquoted.all()):
            raise _Irregular
