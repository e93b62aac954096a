"""Turning a column of ids into int64 or string ids, row by row problems included."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from embrecall.errors import InputFormatError
from embrecall.io._common import IdType

_INT_ID = r"^-?[0-9]+$"  # what arrow's string -> int64 cast accepts (no '+', no spaces)


def resolve_ids(
    raw: pa.Array | pa.ChunkedArray, usable: np.ndarray, id_type: IdType, *, infer_int: bool
) -> tuple[np.ndarray, dict[int, str]]:
    """External ids from a column of ids, plus the rows whose id is unusable.

    Parameters
    ----------
    raw : pyarrow array, shape (n,)
        Ids as read (strings from text formats, any type from parquet/npy).
    usable : ndarray of bool, shape (n,)
        Rows that are otherwise fine; only their ids decide the id kind and are checked.
    id_type : {"auto", "int", "str"}
        "auto": integer columns give int64 ids; string columns give string ids, except that with
        ``infer_int`` (CSV, id text files) integer literals give int64 ids: when every usable id
        is one; when none is, the ids stay strings; a mix makes the non-integer ids bad rows.
    infer_int : bool
        Whether "auto" may turn integer-looking strings into integers.

    Returns
    -------
    ids : ndarray, shape (n,)
        int64, or object array of str. Entries of rows not usable are placeholders.
    bad : dict
        Row -> reason, for usable rows whose id is missing, empty or out of range.
    """
    if isinstance(raw, pa.ChunkedArray):
        raw = raw.combine_chunks() if raw.num_chunks != 1 else raw.chunk(0)
    if pa.types.is_dictionary(raw.type):
        raw = raw.dictionary_decode()
    bad: dict[int, str] = {}
    missing = np.asarray(raw.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    for r in np.flatnonzero(missing & usable):
        bad[int(r)] = "id is missing"
    t = raw.type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return _ids_from_text(raw, usable & ~missing, id_type, infer_int, bad)
    if pa.types.is_integer(t):
        if id_type == "str":
            return _as_str(pc.cast(raw, pa.string())), bad
        return _ids_from_ints(raw, usable & ~missing, bad), bad
    if pa.types.is_floating(t) and id_type != "str":
        return _ids_from_floats(raw, usable & ~missing, bad), bad
    if id_type == "str":
        return _as_str(pc.cast(raw, pa.string())), bad
    raise InputFormatError(f"ids must be integers or strings, got {t}")


def _as_str(arr: pa.Array) -> np.ndarray:
    out = arr.to_numpy(zero_copy_only=False)
    return out.astype(object) if out.dtype != object else out


def _ids_from_text(raw, usable, id_type, infer_int, bad) -> tuple[np.ndarray, dict[int, str]]:
    empty = np.asarray(pc.equal(pc.binary_length(raw), 0).fill_null(False), dtype=bool)
    for r in np.flatnonzero(empty & usable):
        bad[int(r)] = "id is empty"
    candidates = usable & ~empty
    if id_type == "str":
        return _as_str(raw), bad
    is_int = np.asarray(pc.match_substring_regex(raw, _INT_ID).fill_null(False), dtype=bool)
    if id_type == "auto" and not (infer_int and is_int[candidates].any()):
        return _as_str(raw), bad
    # "auto" with some integer ids and some not: a stray id in an integer column must not turn
    # every id into text (lookups by integer would then miss), so the others are bad rows
    hint = ""
    if id_type == "auto":
        example = raw[int(np.flatnonzero(candidates & is_int)[0])].as_py()
        hint = (
            f", but other ids are (e.g. {example}); to read every id as text, pass "
            "id_type='str' (--id-type str)"
        )
    for r in np.flatnonzero(candidates & ~is_int):
        bad[int(r)] = f"id {raw[int(r)].as_py()!r} is not an integer{hint}"
    ints = np.zeros(len(raw), dtype=np.int64)
    rows = np.flatnonzero(candidates & is_int)
    texts = raw.take(pa.array(rows))
    try:
        ints[rows] = pc.cast(texts, pa.int64()).to_numpy()
    except pa.ArrowInvalid:  # some id overflows int64: find which, one by one (error path only)
        for r, text in zip(rows, texts.to_pylist(), strict=True):
            value = int(text)
            if -(2**63) <= value < 2**63:
                ints[r] = value
            else:
                bad[int(r)] = f"id {text} does not fit in int64"
    return ints, bad


def _ids_from_ints(raw: pa.Array, usable: np.ndarray, bad: dict[int, str]) -> np.ndarray:
    if raw.type == pa.uint64():
        values = raw.fill_null(0).to_numpy()
        for r in np.flatnonzero((values > np.iinfo(np.int64).max) & usable):
            bad[int(r)] = f"id {int(values[r])} does not fit in int64"
        return values.astype(np.int64)  # the overflowing ones are dropped or raised
    return raw.fill_null(0).to_numpy().astype(np.int64, copy=False)


def _ids_from_floats(raw: pa.Array, usable: np.ndarray, bad: dict[int, str]) -> np.ndarray:
    values = raw.fill_null(0).to_numpy().astype(np.float64)
    whole = np.isfinite(values) & (values == np.round(values)) & (np.abs(values) < 2.0**63)
    for r in np.flatnonzero(~whole & usable):
        bad[int(r)] = f"id {values[r]!r} is not an integer"
    return np.where(whole, values, 0).astype(np.int64)
