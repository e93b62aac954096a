"""NumPy ``.npy``: an (n, d) array of vectors, with ids beside it.

Ids come from ``ids=`` (a ``.npy`` file, a text file with one id per line, or a sequence), else
from a sibling file ``<stem>_ids.npy``, ``<stem>.ids.npy`` or ``<stem>_ids.txt``, else they are
the row numbers 0..n-1. Files are never unpickled.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa

from embrecall.embeddings import Embeddings, OnBadRow, as_vector_matrix
from embrecall.errors import InputFormatError
from embrecall.io._assemble import Layout, assemble
from embrecall.io._blocks import Block
from embrecall.io._common import IdType, log_read, logger
from embrecall.io._ids import resolve_ids
from embrecall.io._text import not_utf8, open_bytes

IdsArg = str | os.PathLike | Sequence | np.ndarray | None
SIBLING_ID_FILES = ("{stem}_ids.npy", "{stem}.ids.npy", "{stem}_ids.txt")


def read_npy(
    path: Path, *, ids: IdsArg = None, id_type: IdType = "auto", on_bad_row: OnBadRow = "raise"
) -> Embeddings:
    """Read an (n, d) ``.npy`` array and its ids.

    Parameters
    ----------
    path : Path
        The ``.npy`` file of vectors, shape (n, d), any real dtype (converted to float32).
    ids : path, sequence or ndarray of shape (n,), optional
        See the module docstring for where ids come from when this is None.
    id_type : {"auto", "int", "str"}
        "auto" keeps the ids' own kind (an id text file gives int64 when all are integers).
    on_bad_row : {"raise", "skip"}
        With "skip", rows with NaN/inf or an unusable id are dropped and listed.

    Returns
    -------
    Embeddings
        Messages name rows by their 1-based row number.
    """
    started = time.perf_counter()
    vectors = as_vector_matrix(load_array(path), what=str(path))
    n, d = vectors.shape
    raw_ids, infer_int = _ids(path, ids, n)
    block = Block(raw_ids, np.full(n, d, dtype=np.int64), values=vectors.reshape(-1))
    layout = Layout(str(path), unit="row", vector_name="vector")
    emb = assemble(
        [block],
        np.arange(1, n + 1, dtype=np.int64),
        layout,
        on_bad_row=on_bad_row,
        id_resolver=lambda raw, usable: resolve_ids(raw, usable, id_type, infer_int=infer_int),
    )
    log_read(path, n, d, started)
    return emb


def load_array(path: Path) -> np.ndarray:
    """A ``.npy`` array, memory-mapped while converting so that only the float32 copy is held.

    Raises :class:`InputFormatError` for pickled/object arrays, ``.npz`` archives and files that
    are not ``.npy``.
    """
    try:
        mapped = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        if "pickle" in str(exc) or "Python objects" in str(exc) or "Object arrays" in str(exc):
            raise InputFormatError(
                f"{path}: holds pickled Python objects, which embrecall never loads; "
                "save a numeric array instead (np.save(path, vectors.astype('float32')))"
            ) from None
        raise InputFormatError(f"{path}: not a valid .npy file ({exc})") from exc
    except (OSError, EOFError) as exc:
        raise InputFormatError(f"{path}: not a valid .npy file ({exc})") from exc
    if isinstance(mapped, np.lib.npyio.NpzFile):
        names = ", ".join(mapped.files)
        mapped.close()
        raise InputFormatError(f"{path}: is an .npz archive (arrays: {names}); pass one .npy array")
    if mapped.dtype.kind not in "fiu":
        raise InputFormatError(f"{path}: expected an array of numbers, got dtype {mapped.dtype}")
    with np.errstate(over="ignore"):  # beyond float32 becomes inf, refused with its row later
        return np.array(mapped, dtype=np.float32, order="C")


def _ids(path: Path, ids: IdsArg, n: int) -> tuple[pa.Array, bool]:
    """The raw ids of the ``n`` rows and whether integer-looking text ids may become ints."""
    if ids is None:
        found = sibling_ids_file(path)
        if found is None:
            logger.info("%s: no ids given and no ids file beside it; ids are row numbers", path)
            return pa.array(np.arange(n, dtype=np.int64)), False
        ids = found
    if isinstance(ids, (str, os.PathLike)):
        raw, infer_int, source = _ids_from_file(Path(ids))
    else:
        raw, infer_int, source = _ids_from_values(ids), False, "ids="
    if len(raw) != n:
        raise InputFormatError(f"{path}: {len(raw)} ids (from {source}) for {n} vectors")
    return raw, infer_int


def sibling_ids_file(path: Path) -> Path | None:
    """The first of ``<stem>_ids.npy``, ``<stem>.ids.npy``, ``<stem>_ids.txt`` that exists."""
    for pattern in SIBLING_ID_FILES:
        candidate = path.with_name(pattern.format(stem=path.stem))
        if candidate.is_file():
            return candidate
    return None


def _ids_from_file(path: Path) -> tuple[pa.Array, bool, str]:
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such ids file")
    if path.suffix.lower() == ".npy" or _is_npy(path):
        try:
            values = np.load(path, allow_pickle=False)
        except ValueError as exc:
            raise InputFormatError(
                f"{path}: ids must be saved as numbers or fixed-width text (dtype int64 or "
                "'<U...'), not pickled objects; or write them one per line to a .txt file"
            ) from exc
        return _ids_from_values(values, source=path), False, str(path)
    return _ids_from_text_file(path), True, str(path)


def _is_npy(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(6) == b"\x93NUMPY"


def _ids_from_text_file(path: Path) -> pa.Array:
    with open_bytes(path) as f:
        raw = f.read()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise not_utf8(path, line) from None
    lines = [line.strip() for line in text.split("\n")]  # not splitlines: ids may hold \x1c...
    while lines and not lines[-1]:  # a trailing blank line is not an id
        lines.pop()
    return pa.array(lines, type=pa.string())


def _ids_from_values(values: Sequence | np.ndarray, source: object = "ids=") -> pa.Array:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise InputFormatError(f"{source}: ids must be 1-D, got shape {arr.shape}")
    try:
        return pa.array(arr if arr.dtype != object else list(arr))
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise InputFormatError(
            f"{source}: ids must be all integers or all strings ({exc})"
        ) from None
