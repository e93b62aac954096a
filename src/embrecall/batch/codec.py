"""The compact value of one cached result list: ids and scores packed in a few bytes.

Layout (all little-endian), chosen so that a Java or Go serving layer can decode it in a few
lines without a serialisation library::

    byte 0      format version, 1
    byte 1      b"i" (int64 ids) or b"s" (string ids)
    bytes 2-5   uint32 n, the number of results
    "i":        n x int64 ids, then n x float32 scores
    "s":        n x float32 scores, then n x (uint16 byte length + UTF-8 bytes) ids

Results are stored best first, exactly as ``Recommender.recommend`` returns them. An int list of
100 results takes 1,206 bytes (msgpack or JSON of the same would take 1.5-2.5x that).
"""

from __future__ import annotations

import struct

import numpy as np

from embrecall.errors import InputFormatError

VERSION = 1
_HEADER = struct.Struct("<Bcl")  # version, kind, count (count as signed 32: n < 2**31)
HEADER_BYTES = _HEADER.size


def value_bytes(n: int, id_kind: str, mean_id_bytes: float = 8.0) -> int:
    """Bytes of one packed list of ``n`` results (string ids: ``mean_id_bytes`` each)."""
    if id_kind == "int":
        return HEADER_BYTES + 12 * n
    return HEADER_BYTES + int(n * (4 + 2 + mean_id_bytes))


def pack_rows(ids: np.ndarray, scores: np.ndarray, counts: np.ndarray) -> list[bytes]:
    """One packed value per row of a block of results.

    Parameters
    ----------
    ids : (b, k) int64 or object array of str
        Result ids, best first; only the first ``counts[i]`` of row i are real.
    scores : (b, k) float32
    counts : (b,) int
        Number of real results of each row (the rest is padding).

    Returns
    -------
    list of b ``bytes``
    """
    scores = np.ascontiguousarray(scores, dtype="<f4")
    if ids.dtype != object:
        ids = np.ascontiguousarray(ids, dtype="<i8")
        out = []
        for row, n in enumerate(counts.tolist()):
            out.append(
                _HEADER.pack(VERSION, b"i", n) + ids[row, :n].tobytes() + scores[row, :n].tobytes()
            )
        return out
    out = []
    for row, n in enumerate(counts.tolist()):
        parts = [_HEADER.pack(VERSION, b"s", n), scores[row, :n].tobytes()]
        for value in ids[row, :n]:
            raw = str(value).encode("utf-8")
            if len(raw) > 0xFFFF:
                raise InputFormatError(f"id {str(value)[:40]!r}... is longer than 65,535 bytes")
            parts.append(struct.pack("<H", len(raw)) + raw)
        out.append(b"".join(parts))
    return out


def unpack(value: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Ids (int64, or an object array of str) and float32 scores of one packed value."""
    if len(value) < HEADER_BYTES:
        raise InputFormatError(f"cached value of {len(value)} bytes is too short to be one")
    version, kind, n = _HEADER.unpack_from(value)
    if version != VERSION or kind not in (b"i", b"s") or n < 0:
        raise InputFormatError(
            f"cached value has format {version}/{kind!r}; this embrecall reads format {VERSION}"
        )
    body = memoryview(value)[HEADER_BYTES:]
    if kind == b"i":
        if len(body) != 12 * n:
            raise InputFormatError(f"cached value holds {len(body)} bytes for {n} results")
        ids = np.frombuffer(body, dtype="<i8", count=n).astype(np.int64)
        scores = np.frombuffer(body, dtype="<f4", count=n, offset=8 * n).astype(np.float32)
        return ids, scores
    scores = np.frombuffer(body, dtype="<f4", count=n).astype(np.float32)
    pos, names = 4 * n, []
    for _ in range(n):
        (length,) = struct.unpack_from("<H", body, pos)
        names.append(bytes(body[pos + 2 : pos + 2 + length]).decode("utf-8"))
        pos += 2 + length
    if pos != len(body):
        raise InputFormatError("cached value has trailing bytes (corrupt)")
    return np.array(names, dtype=object), scores
