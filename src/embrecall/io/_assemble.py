"""From parsed blocks to :class:`~embrecall.embeddings.Embeddings`: dimension, bad rows, ids."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from embrecall.embeddings import Embeddings, OnBadRow, SkippedRow, build_embeddings
from embrecall.errors import DimensionMismatchError, InputFormatError
from embrecall.io._blocks import Block


@dataclass
class Layout:
    """How a reader names things in messages."""

    source: str
    unit: str = "line"  # "line" for text files, "row" for parquet/npy
    vector_name: str = "features"
    expected_dim: int | None = None  # fixed by a header (word2vec)
    expected_from: str = ""
    empty_message: str = "no embeddings (the file has no rows)"


@dataclass
class Problem:
    line: int
    reason: str
    error: type[Exception] = InputFormatError


def assemble(
    blocks: Sequence[Block],
    lines: np.ndarray,
    layout: Layout,
    *,
    on_bad_row: OnBadRow,
    id_resolver: Callable[[pa.ChunkedArray, np.ndarray], tuple[np.ndarray, dict[int, str]]],
    extra: Sequence[Problem] = (),
    check_count: Callable[[int], None] | None = None,
) -> Embeddings:
    """Apply the dimension check and ``on_bad_row`` to parsed blocks; build the Embeddings.

    Parameters
    ----------
    blocks : sequence of Block
        Parsed batches, in file order.
    lines : ndarray of int64, shape (total rows,)
        Line (or row) number of every row of every block.
    layout : Layout
        Source name and wording of messages.
    on_bad_row : {"raise", "skip"}
    id_resolver : callable
        ``(raw ids, usable rows) -> (ids, {row: reason})``, see
        :func:`embrecall.io._ids.resolve_ids`.
    extra : sequence of Problem
        Malformed rows found before parsing (e.g. CSV rows with the wrong number of fields).
    check_count : callable, optional
        Called with the number of data rows (e.g. to check a word2vec header).

    Returns
    -------
    Embeddings
        The good rows; with ``on_bad_row="skip"`` the others are listed in ``.skipped``.
    """
    n = sum(len(b) for b in blocks)
    ignore = np.concatenate([_ignored(b) for b in blocks]) if blocks else np.zeros(0, bool)
    data_rows = n - int(ignore.sum())
    if data_rows == 0:
        if not extra:
            raise InputFormatError(f"{layout.source}: {layout.empty_message}")
        raise _refusal(list(extra), layout, on_bad_row)
    lengths = np.concatenate([b.lengths for b in blocks])
    parsed, reasons = _parse_status(blocks, n)
    parsed &= ~ignore
    ids, id_reasons = id_resolver(pa.chunked_array([b.ids for b in blocks]), parsed)
    ok = parsed.copy()
    ok[list(id_reasons)] = False
    dim, wrong_dim, dim_problems = _dimension(lengths, ok, lines, layout, on_bad_row)
    problems = [Problem(int(lines[r]), why) for r, why in {**reasons, **id_reasons}.items()]
    problems += [*extra, *dim_problems]
    if on_bad_row == "raise" and problems:
        raise _refusal(problems, layout, on_bad_row)
    if check_count is not None:
        check_count(data_rows)
    keep = ok & ~wrong_dim
    if not keep.any():
        raise _refusal(problems, layout, on_bad_row)
    return build_embeddings(
        ids[keep],
        _vectors(blocks, keep[parsed], lengths[parsed], dim),
        source=layout.source,
        lines=lines[keep],
        unit=layout.unit,
        on_bad_row=on_bad_row,
        skipped=[SkippedRow(p.line, p.reason) for p in problems],
    )


def _ignored(block: Block) -> np.ndarray:
    return block.ignore if block.ignore is not None else np.zeros(len(block), dtype=bool)


def _refusal(problems: list[Problem], layout: Layout, on_bad_row: OnBadRow) -> Exception:
    """The error for the first problem, or (skip mode, nothing left) for the whole file."""
    first = min(problems, key=lambda p: p.line)
    if on_bad_row == "raise":
        return first.error(f"{layout.source}: {layout.unit} {first.line}: {first.reason}")
    return InputFormatError(
        f"{layout.source}: no embeddings: all {len(problems)} rows are malformed "
        f"(first: {layout.unit} {first.line}: {first.reason})"
    )


def _parse_status(blocks: Sequence[Block], n: int) -> tuple[np.ndarray, dict[int, str]]:
    """Rows that parsed (the others are bad, or after a bad one), and why the bad ones did not."""
    parsed = np.zeros(n, dtype=bool)
    reasons: dict[int, str] = {}
    start = 0
    for b in blocks:
        parsed[start : start + b.known] = True
        reasons.update({start + r: why for r, why in b.bad.items()})
        start += len(b)
    parsed[list(reasons)] = False
    return parsed, reasons


def _dimension(
    lengths: np.ndarray, ok: np.ndarray, lines: np.ndarray, layout: Layout, on_bad_row: OnBadRow
) -> tuple[int, np.ndarray, list[Problem]]:
    """The expected dimension, the good rows that do not have it, and their problems."""
    if layout.expected_dim is not None:
        dim, source = layout.expected_dim, layout.expected_from
    elif not ok.any():
        return 0, np.zeros(len(ok), dtype=bool), []
    elif on_bad_row == "raise":  # the first good row sets it, as a reader of the file would
        first = int(np.flatnonzero(ok)[0])
        dim, source = int(lengths[first]), f"from {layout.unit} {int(lines[first])}"
    else:
        dim, source = int(np.bincount(lengths[ok]).argmax()), "the most common dimension"
    wrong = ok & (lengths != dim)
    report = np.flatnonzero(wrong)[: 1 if on_bad_row == "raise" else None]
    problems = [
        Problem(
            int(lines[r]),
            f"{layout.vector_name} has {int(lengths[r])} values, expected {dim} ({source})",
            DimensionMismatchError,
        )
        for r in report
    ]
    return dim, wrong, problems


def _vectors(
    blocks: Sequence[Block], keep: np.ndarray, lengths: np.ndarray, dim: int
) -> np.ndarray:
    """The (k, dim) matrix of the kept rows, from the values of the parsed rows.

    ``keep`` and ``lengths`` are given for the parsed rows only, whose values the blocks hold.
    """
    values = np.concatenate([b.values for b in blocks if b.values is not None])
    if keep.all():  # the common case: no copy beyond the concatenation
        return values.reshape(-1, dim)
    return values[np.repeat(keep, lengths)].reshape(-1, dim)
