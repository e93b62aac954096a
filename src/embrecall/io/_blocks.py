"""Blocks of parsed rows, and the vectorised cast of number texts that fills them.

Every reader cuts its file into batches of a few thousand rows, turns each into a :class:`Block`
with pyarrow kernels (on all cores, see :func:`parse_in_threads`) and hands the blocks to
:func:`embrecall.io._assemble.assemble`. Rows are looked at one at a time only when a batch
fails to cast, and then only in that batch, by bisection.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from tqdm.auto import tqdm

from embrecall._progress import bar_disabled
from embrecall.io._text import is_gzip

_MAX_WORKERS = 8
_PROGRESS_MIN_BYTES = 256 << 20  # a bar only where the read takes a few seconds
T = TypeVar("T")


# -- one block of parsed rows ------------------------------------------------------------------
@dataclass
class Block:
    """Rows of one batch, parsed.

    ``bad`` maps a row (index in the block) to why it could not be parsed. ``values`` holds the
    numbers of every other row, concatenated in row order (``lengths`` says how many each), or is
    ``None`` when parsing stopped at the first bad row (``on_bad_row="raise"``); then only the
    first ``known`` rows have a known status and the reader is bound to raise.
    """

    ids: pa.Array | pa.ChunkedArray
    lengths: np.ndarray
    bad: dict[int, str] = field(default_factory=dict)
    values: np.ndarray | None = None
    known: int = -1
    ignore: np.ndarray | None = None  # rows that are not data (blank lines), dropped silently

    def __post_init__(self) -> None:
        if self.known < 0:
            self.known = len(self.lengths)

    def __len__(self) -> int:
        return len(self.lengths)


def cast_number_lists(
    elements: pa.Array,
    row_offsets: np.ndarray,
    pre_bad: np.ndarray,
    *,
    first_only: bool,
    valid: np.ndarray | None = None,
    ignore: np.ndarray | None = None,
) -> tuple[np.ndarray | None, np.ndarray, int]:
    """Cast the number texts of ``n`` rows to float32, finding the rows that do not cast.

    Parameters
    ----------
    elements : pyarrow string array, shape (m,)
        The texts of every row, row after row.
    row_offsets : ndarray of int64, shape (n + 1,)
        Row ``i`` owns ``elements[row_offsets[i]:row_offsets[i + 1]]``.
    pre_bad : ndarray of bool, shape (n,)
        Rows already known to be malformed; their elements are left out.
    first_only : bool
        Stop at the first bad row (the rows after it are then of unknown status).
    valid : ndarray of bool, shape (m,), optional
        Elements that are numbers; the others (e.g. word2vec tokens) are ignored.
    ignore : ndarray of bool, shape (n,), optional
        Rows that are not data (blank lines): left out, but not bad.

    Returns
    -------
    values : ndarray of float32, shape (numbers in the good rows,) or None
        None when ``first_only`` and some row is bad.
    bad : ndarray of bool, shape (n,)
        ``pre_bad`` plus the rows holding a text that is not a number.
    known : int
        Number of leading rows whose status is known (n unless stopped early).
    """
    n = len(pre_bad)
    excluded = pre_bad if ignore is None else pre_bad | ignore
    if valid is not None:
        elements = with_nulls(elements, valid)
    if not excluded.any():
        try:
            return _cast(elements), pre_bad, n
        except pa.ArrowInvalid:
            pass
    counts = np.diff(row_offsets)
    good_rows = np.flatnonzero(~excluded)
    if excluded.any():  # leave those rows' elements out once, then search the rest
        elements = elements.filter(np.repeat(~excluded, counts))
    offsets = np.concatenate([[0], np.cumsum(counts[good_rows], dtype=np.int64)])
    bad = pre_bad.copy()
    bad[good_rows[_unparseable_rows(elements, offsets, first_only)]] = True
    if first_only and bad.any():
        first = int(np.flatnonzero(bad)[0])
        bad[first + 1 :] = False
        return None, bad, first + 1
    return _cast(elements.filter(np.repeat(~bad[good_rows], counts[good_rows]))), bad, n


def with_nulls(elements: pa.Array, valid: np.ndarray) -> pa.Array:
    """``elements`` with the ``~valid`` ones null (no copy): the cast then skips them."""
    bits = np.zeros(elements.offset + len(elements), dtype=bool)
    bits[elements.offset :] = valid
    bitmap = pa.py_buffer(np.packbits(bits, bitorder="little"))
    return pa.Array.from_buffers(
        elements.type, len(elements), [bitmap, *elements.buffers()[1:]], offset=elements.offset
    )


def cast_grid(
    buffer: pa.Buffer, cuts: np.ndarray, end: int, number_columns: slice, id_column: int
) -> tuple[np.ndarray, pa.Array]:
    """Numbers and ids of a block of regular lines, from the offsets of their texts.

    Parameters
    ----------
    buffer : pyarrow Buffer
        The block's characters.
    cuts : ndarray of int64, shape (n, w)
        Row ``r`` holds where the texts of line ``r`` start; the text at ``cuts[r, j]`` runs to
        the next cut (``cuts[r, j + 1]``, ``cuts[r + 1, 0]`` or ``end``).
    end : int
        Where the last text ends.
    number_columns : slice
        The columns of ``cuts`` whose texts are numbers (``d`` of them).
    id_column : int
        The column whose text is the id.

    Returns
    -------
    values : ndarray of float32, shape (n, d)
    ids : pyarrow string array, shape (n,)

    Raises
    ------
    pyarrow.ArrowInvalid
        A number text does not cast, or an id is not UTF-8: the block is not regular.
    """
    n, width = cuts.shape
    offsets = np.append(cuts.ravel(), end).astype(np.int32)
    texts = pa.Array.from_buffers(pa.string(), n * width, [None, pa.py_buffer(offsets), buffer])
    is_number = np.zeros((n, width), dtype=bool)
    is_number[:, number_columns] = True
    numbers = pc.cast(with_nulls(texts, is_number.ravel()), pa.float32())
    # every slot has a float (the null ones an arbitrary one): take the number columns directly
    grid = np.frombuffer(
        numbers.buffers()[1], dtype=np.float32, count=n * width, offset=numbers.offset * 4
    ).reshape(n, width)
    ids = texts.take(pa.array(np.arange(n, dtype=np.int64) * width + id_column))
    ids.validate(full=True)  # UTF-8; the numbers, having cast, are ASCII
    return np.ascontiguousarray(grid[:, number_columns]), ids


def _cast(elements: pa.Array) -> np.ndarray:
    out = pc.cast(elements, pa.float32())
    if out.null_count:  # the ignored elements: drop them
        out = out.drop_null()
    return out.to_numpy(zero_copy_only=False)


def _unparseable_rows(elements: pa.Array, offsets: np.ndarray, first_only: bool) -> list[int]:
    """Rows whose elements do not cast, found by bisection (k bad rows cost ~k*log(n) casts)."""
    found: list[int] = []
    stack = [(0, len(offsets) - 1)]
    while stack:
        lo, hi = stack.pop()
        if lo >= hi or _casts(elements, offsets[lo], offsets[hi]):
            continue
        if hi - lo == 1:
            found.append(lo)
            if first_only:
                break
            continue
        mid = (lo + hi) // 2
        stack.append((mid, hi))
        stack.append((lo, mid))  # popped first: the leftmost bad row is found first
    return found


def _casts(elements: pa.Array, start: int, stop: int) -> bool:
    try:
        pc.cast(elements.slice(int(start), int(stop - start)), pa.float32())
    except pa.ArrowInvalid:
        return False
    return True


# -- parsing batches on all cores ----------------------------------------------------------------
def parse_in_threads(
    batches: Iterator[T],
    parse: Callable[[T], Block],
    *,
    on_batch: Callable[[T], object] | None = None,
) -> list[Block]:
    """``[parse(b) for b in batches]``, several at a time; ``on_batch(b)`` as each is read.

    pyarrow kernels release the GIL, so threads give real parallelism; at most a few batches wait
    at once, which bounds memory while the file is still being read.
    """
    workers = min(_MAX_WORKERS, os.cpu_count() or 1)
    blocks: list[Block] = []
    with ThreadPoolExecutor(workers) as pool:
        pending: deque[Future[Block]] = deque()
        for batch in batches:
            if on_batch is not None:
                on_batch(batch)
            pending.append(pool.submit(parse, batch))
            if len(pending) > 2 * workers:
                blocks.append(pending.popleft().result())
        blocks.extend(f.result() for f in pending)
    return blocks


def progress_bar(path: Path) -> tqdm:
    """A bytes-read bar for a big file, shown only on a terminal (tqdm writes to stderr)."""
    size = path.stat().st_size
    return tqdm(
        total=None if is_gzip(path) else size,  # the bytes counted are the decompressed ones
        unit="B",
        unit_scale=True,
        desc=f"reading {path.name}",
        leave=False,
        disable=bar_disabled(None, small=size < _PROGRESS_MIN_BYTES),
    )
