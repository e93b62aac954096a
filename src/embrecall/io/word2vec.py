"""word2vec / item2vec / fastText text format.

::

    3 4
    king 0.1 -0.2 0.3 0.4
    queen 0.1 0.2 -0.3 0.4
    1193 0.5 0.6 0.7 0.8

The first line ``n d`` gives the number of vectors and their dimension (a file without it, as
GloVe writes, is read too: the first vector then sets the dimension). Each line is a token and
``d`` numbers separated by whitespace; a trailing space (the original C tool writes one) and
``\\r\\n`` endings are fine. Tokens are ids; they stay strings unless ``id_type="int"``.

Blocks of lines in the regular layout (single spaces, the same ``d`` throughout) are cut at their
spaces with numpy and cast by one arrow call, without copying text; any other block is split
on runs of whitespace by arrow, and only a block that fails to cast is searched for bad lines.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from embrecall.embeddings import Embeddings, OnBadRow
from embrecall.errors import InputFormatError
from embrecall.io._assemble import Layout, assemble
from embrecall.io._blocks import (
    Block,
    cast_grid,
    cast_number_lists,
    parse_in_threads,
    progress_bar,
)
from embrecall.io._common import IdType, log_read, snippet
from embrecall.io._ids import resolve_ids
from embrecall.io._text import LineBlock, first_line, line_blocks, not_utf8

_BLOCK_BYTES = 1 << 21
_NL, _CR, _SPACE = ord("\n"), ord("\r"), ord(" ")
_HEADER = re.compile(r"^\s*(\d+)\s+(\d+)\s*$")


class _Irregular(Exception):
    """The block is not in the regular layout; the general splitter must take over."""


def read_word2vec(
    path: Path, *, id_type: IdType = "auto", on_bad_row: OnBadRow = "raise"
) -> Embeddings:
    """Read a word2vec-format text file (plain or gzip).

    Parameters
    ----------
    path : Path
    id_type : {"auto", "int", "str"}
        "auto" and "str" keep tokens as strings (a numeric token ``"1193"`` stays ``"1193"``;
        lookups with the integer 1193 still find it). "int" makes int64 ids and refuses a token
        that is not an integer.
    on_bad_row : {"raise", "skip"}

    Returns
    -------
    Embeddings
        Messages count the header as line 1. The header's count must match the vectors found
        (in both modes: a mismatch means a truncated or concatenated file).
    """
    started = time.perf_counter()
    header = _header(path)
    first_only = on_bad_row == "raise"
    with progress_bar(path) as bar:
        blocks = parse_in_threads(
            line_blocks(path, _BLOCK_BYTES, skip_first=header is not None),
            lambda chunk: _parse_lines(chunk, path, first_only),
            on_batch=lambda b: bar.update(b.nbytes),
        )
    n = sum(len(b) for b in blocks)
    start = 2 if header is not None else 1
    layout = Layout(
        str(path), vector_name="vector", empty_message="no embeddings (the file has no vectors)"
    )
    check_count = None
    if header is not None:
        layout.expected_dim, layout.expected_from = header[1], "from the header, line 1"
        check_count = _count_checker(path, header[0])
    emb = assemble(
        blocks,
        np.arange(start, start + n, dtype=np.int64),
        layout,
        on_bad_row=on_bad_row,
        id_resolver=lambda raw, usable: resolve_ids(raw, usable, id_type, infer_int=False),
        check_count=check_count,
    )
    log_read(path, len(emb), emb.dim, started)
    return emb


def _header(path: Path) -> tuple[int, int] | None:
    line = first_line(path)
    if line is None:
        raise InputFormatError(f"{path}: no embeddings (the file is empty)")
    match = _HEADER.match(line)
    if match is None:
        return None  # GloVe style: the first line is already a vector
    n, d = int(match.group(1)), int(match.group(2))
    if d == 0:
        raise InputFormatError(f"{path}: line 1: the header gives dimension 0")
    return n, d


def _count_checker(path: Path, expected: int) -> Callable[[int], None]:
    def check(found: int) -> None:
        if found != expected:
            raise InputFormatError(
                f"{path}: the header (line 1) says {expected} vectors, the file has {found}"
            )

    return check


def _parse_lines(block: LineBlock, path: Path, first_only: bool) -> Block:
    ends = np.flatnonzero(block.data == _NL)
    if len(ends) == 0 or ends[-1] != len(block.data) - 1:  # the last line has no newline
        ends = np.append(ends, len(block.data))
    try:
        return _parse_regular(block, ends)
    except _Irregular:
        return _parse_split(block, ends, path, first_only)


def _parse_regular(block: LineBlock, ends: np.ndarray) -> Block:
    """Lines that are ``token v1 v2 ... vd`` with single spaces, the same d on every line.

    (A trailing space on every line, or on none, and CRLF endings are fine.) The texts are cut
    at the spaces without copying, as in :mod:`embrecall.io._fast_csv`.
    """
    data, n = block.data, len(ends)
    spaces = np.flatnonzero(data == _SPACE)
    k = len(spaces) // n
    if k == 0 or k * n != len(spaces):
        raise _Irregular
    starts = np.concatenate([[0], ends[:-1] + 1])
    at = spaces.reshape(n, k)
    if np.any(at[:, 0] <= starts) or np.any(at[:, -1] >= ends):  # no token, or k varies
        raise _Irregular
    stop = ends - ((data[ends - 1] == _CR) & (ends < len(data)))
    trailing = at[:, -1] == stop - 1
    if trailing.all():
        at, stop = at[:, :-1], stop - 1
    elif trailing.any():
        raise _Irregular
    d = at.shape[1]
    if d == 0:
        raise _Irregular
    cuts = np.empty((n, 2 * d + 2), dtype=np.int64)
    cuts[:, 0] = starts
    cuts[:, 1 : 2 * d : 2] = at
    cuts[:, 2 : 2 * d + 1 : 2] = at + 1
    cuts[:, -1] = stop
    try:
        values, tokens = cast_grid(block.buffer, cuts, len(data), slice(2, 2 * d + 1, 2), 0)
    except pa.ArrowInvalid:
        raise _Irregular from None
    if pc.any(pc.match_substring_regex(tokens, r"[\t\v\f\r]")).as_py():
        raise _Irregular  # other whitespace: let the general splitter cut there
    return Block(tokens, np.full(n, d, dtype=np.int64), {}, values.reshape(-1))


def _parse_split(block: LineBlock, ends: np.ndarray, path: Path, first_only: bool) -> Block:
    """Any lines: split on runs of ASCII whitespace; blank lines are ignored."""
    lines = _as_lines(block, ends, path)
    lists = pc.ascii_split_whitespace(lines)
    offsets = np.asarray(lists.offsets.to_numpy(), dtype=np.int64)
    offsets -= offsets[0]
    flat = pc.list_flatten(lists)
    empty = np.asarray(pc.equal(pc.binary_length(flat), 0).to_numpy(zero_copy_only=False), bool)
    counts = np.diff(offsets)
    # splitting "tok 1 2 \n" gives [tok, 1, 2, ""]: an empty text at the end of every line, and at
    # the start of a line that begins with whitespace
    lead = empty[offsets[:-1]]
    trail = empty[offsets[1:] - 1] & (counts > 1)
    words = counts - lead - trail
    blank = words == 0
    token_at = offsets[:-1] + lead
    valid = ~empty
    valid[token_at[~blank]] = False
    tokens = flat.take(pa.array(np.where(blank, offsets[:-1], token_at)))
    lengths = np.where(blank, 0, words - 1).astype(np.int64)
    values, bad, known = cast_number_lists(
        flat,
        offsets,
        np.zeros(len(blank), dtype=bool),
        first_only=first_only,
        valid=valid,
        ignore=blank,
    )
    reasons = {int(r): _reason(lines, int(r)) for r in np.flatnonzero(bad[:known])}
    return Block(tokens, lengths, reasons, values, known, ignore=blank)


def _reason(lines: pa.Array, row: int) -> str:
    return f"not a token followed by numbers: {snippet(lines[row].as_py().rstrip())!r}"


def _as_lines(block: LineBlock, ends: np.ndarray, path: Path) -> pa.Array:
    """The block as a string array of lines (newline included), checked to be UTF-8."""
    offsets = np.minimum(np.concatenate([[0], ends + 1]), len(block.data)).astype(np.int32)
    lines = pa.Array.from_buffers(
        pa.string(), len(ends), [None, pa.py_buffer(offsets), block.buffer]
    )
    try:
        lines.validate(full=True)  # arrow checks UTF-8 here, far faster than decoding in Python
    except pa.ArrowInvalid:
        for i, (start, stop) in enumerate(zip(offsets[:-1], offsets[1:], strict=True)):
            try:
                block.data[start:stop].tobytes().decode("utf-8")
            except UnicodeDecodeError:
                raise not_utf8(path, block.first_line + i) from None
        raise
    return lines
