"""Reading text files (plain or gzip): header line, blocks of whole lines, encoding errors."""

from __future__ import annotations

import gzip
import mmap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pyarrow as pa

from embrecall.errors import InputFormatError

_GZIP_MAGIC = b"\x1f\x8b"
_NL = ord("\n")


def is_gzip(path: Path) -> bool:
    """Whether ``path`` is gzip-compressed (by its magic bytes, whatever its name)."""
    with open(path, "rb") as f:
        return f.read(2) == _GZIP_MAGIC


def open_bytes(path: Path) -> BinaryIO:
    """``path`` opened for reading bytes, decompressed if it is gzip."""
    return gzip.open(path, "rb") if is_gzip(path) else open(path, "rb")  # noqa: SIM115


def input_stream(path: Path) -> pa.NativeFile:
    """An arrow input stream over ``path`` (decompression in C++ when gzip)."""
    return pa.input_stream(str(path), compression="gzip" if is_gzip(path) else None)


def first_line(path: Path) -> str | None:
    """The first line of ``path`` without its line ending, or None when the file is empty.

    Raises :class:`InputFormatError` when the line is not UTF-8.
    """
    try:
        with open_bytes(path) as f:
            raw = f.readline()
    except (OSError, EOFError) as exc:  # e.g. a truncated gzip file
        raise InputFormatError(f"{path}: cannot read the file ({exc})") from exc
    if not raw:
        return None
    try:
        return raw.decode("utf-8-sig").rstrip("\r\n")
    except UnicodeDecodeError:
        raise not_utf8(path, 1) from None


def not_utf8(path: Path, line: int | None) -> InputFormatError:
    where = f"line {line}: " if line is not None else ""
    return InputFormatError(
        f"{path}: {where}not valid UTF-8 text; embrecall reads UTF-8 files "
        "(re-encode it, e.g. `iconv -f latin1 -t utf-8`)"
    )


def first_bad_utf8_line(path: Path) -> int | None:
    """The number of the first line that is not UTF-8 (a slow scan, for error messages)."""
    for number, raw in enumerate(iter_raw_lines(path), start=1):
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            return number
    return None


def iter_raw_lines(path: Path) -> Iterator[bytes]:
    with open_bytes(path) as f:
        yield from f


@dataclass(frozen=True)
class LineBlock:
    """Consecutive whole lines of a file, as numpy and arrow views of the same bytes."""

    data: np.ndarray  # uint8; ends with a newline except perhaps the file's last line
    buffer: pa.Buffer
    first_line: int  # number (1-based) of the block's first line

    @property
    def nbytes(self) -> int:
        return len(self.data)


def line_blocks(path: Path, block_bytes: int, *, skip_first: bool) -> Iterator[LineBlock]:
    """``path`` cut into blocks of about ``block_bytes`` that end at line ends.

    A plain file is memory-mapped, so blocks are views of the page cache (no copy); a gzip
    file is decompressed by arrow as a stream. ``skip_first`` leaves out line 1 (a header).
    """
    if path.stat().st_size == 0:
        return
    blocks = (
        _streamed_blocks(path, block_bytes) if is_gzip(path) else _mapped_blocks(path, block_bytes)
    )
    line = 1
    for data, buffer in blocks:
        if skip_first and line == 1:
            newlines = np.flatnonzero(data == _NL)
            cut = int(newlines[0]) + 1 if len(newlines) else len(data)
            data, buffer, line = data[cut:], buffer.slice(cut), 2
        if len(data):
            yield LineBlock(data, buffer, line)
            line += int(np.count_nonzero(data == _NL))


def _mapped_blocks(path: Path, block_bytes: int) -> Iterator[tuple[np.ndarray, pa.Buffer]]:
    with open(path, "rb") as f:
        mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    everything = np.frombuffer(mapped, dtype=np.uint8)
    buffer = pa.py_buffer(mapped)
    start, size = 0, len(mapped)
    while start < size:
        end = mapped.find(b"\n", min(start + block_bytes, size - 1))
        end = size if end < 0 else end + 1
        yield everything[start:end], buffer.slice(start, end - start)
        start = end


def _streamed_blocks(path: Path, block_bytes: int) -> Iterator[tuple[np.ndarray, pa.Buffer]]:
    carry = b""
    with input_stream(path) as stream:
        while chunk := stream.read(block_bytes):
            data = carry + chunk
            cut = data.rfind(b"\n") + 1
            if cut:
                yield np.frombuffer(data, np.uint8, count=cut), pa.py_buffer(data).slice(0, cut)
            carry = data[cut:]
    if carry:
        yield np.frombuffer(carry, np.uint8), pa.py_buffer(carry)
