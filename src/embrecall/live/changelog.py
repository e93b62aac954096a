"""The change log of one version: append-only JSON lines, fsynced before a change is acknowledged.

Layout, beside the version root's immutable artifacts (never inside one, whose checksums
``load`` verifies)::

    ROOT/changes/<version>.log     one JSON object per line, in the order they were accepted
    ROOT/changes/<version>.lock    the writers' flock
    ROOT/changes/<version>.base    written by compaction: the log it folded, and up to where

A record is ``{"op", "space", "id", "at", ...}``: ``op`` is ``upsert`` (with ``vector`` and, for
items, optional ``fields``), ``delete``, ``seen`` (a user's ``items``) or ``carry`` (a marker:
the predecessor's log ``from`` has been carried over up to byte ``offset``). ``at`` is the
acknowledgement time in seconds since the epoch.

Writers take the flock, cut any torn tail a killed writer left (it was never fsynced, so never
acknowledged), append whole lines, fsync, and only then answer. Readers take no lock: they read
whole lines only, from the byte offset they reached, so a server tails a log by polling its size.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from embrecall._durable import exclusive_lock, fsync_dir
from embrecall.errors import ArtifactError

CHANGES = "changes"

Record = dict[str, Any]


def changes_dir(root: str | os.PathLike) -> Path:
    """The folder of a version root that holds the change logs."""
    return Path(root) / CHANGES


class ChangeLog:
    """The append-only change log of one version.

    Parameters
    ----------
    path : path-like
        ``ROOT/changes/<version>.log``; created (with its folder) by the first append.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_suffix(".lock")
        self.base_path = self.path.with_suffix(".base")

    @classmethod
    def of(cls, root: str | os.PathLike, version: str) -> ChangeLog:
        """The log of ``version`` in the version root ``root``."""
        return cls(changes_dir(root) / f"{version}.log")

    def __repr__(self) -> str:
        return f"ChangeLog({str(self.path)!r})"

    # -- writing ---------------------------------------------------------------------------
    def append(self, records: Iterable[Mapping[str, Any]]) -> int:
        """Append ``records`` and fsync them; returns the log's size after them (bytes).

        Once this returns, the records survive a kill of any process and a power cut (as far
        as the disk honours fsync).
        """
        data = b"".join(_line(r) for r in records)
        with self.locked():
            return self.append_locked(data)

    def locked(self):
        """The writers' lock (a context manager), e.g. to carry records over atomically."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return exclusive_lock(self.lock_path)

    def append_locked(self, data: bytes) -> int:
        """Append already-encoded lines; the caller holds :meth:`locked`."""
        created = not self.path.exists()
        with open(self.path, "ab") as f:
            _cut_torn_tail(f)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
            size = f.tell()
        if created:
            fsync_dir(self.path.parent)  # the new file's name must reach the disk too
        return size

    @staticmethod
    def encode(records: Iterable[Mapping[str, Any]]) -> bytes:
        return b"".join(_line(r) for r in records)

    # -- reading ---------------------------------------------------------------------------
    def size(self) -> int:
        """Bytes in the log now (0 when it does not exist)."""
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def read(self, offset: int = 0) -> tuple[list[Record], int]:
        """Whole records from byte ``offset`` on, and the offset after the last one.

        A line being written (no newline yet) is left for the next read.

        Raises
        ------
        ArtifactError
            A whole line that is not a JSON object: the log was damaged by something else.
        """
        try:
            with open(self.path, "rb") as f:
                f.seek(offset)
                data = f.read()
        except FileNotFoundError:
            return [], offset
        end = data.rfind(b"\n") + 1
        records = []
        for n, line in enumerate(data[:end].splitlines()):
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            if not isinstance(record, dict) or "op" not in record:
                raise ArtifactError(f"{self.path}: record {n + 1} after byte {offset} is damaged")
            records.append(record)
        return records, offset + end

    def base(self) -> dict[str, Any] | None:
        """What a compaction folded into this version (``{"from", "offset"}``), if it was one."""
        try:
            return json.loads(self.base_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise ArtifactError(f"{self.base_path}: unreadable ({exc})") from None


def _line(record: Mapping[str, Any]) -> bytes:
    return json.dumps(record, separators=(",", ":"), allow_nan=False).encode() + b"\n"


def _cut_torn_tail(f) -> None:
    """Drop a last line without its newline: a writer killed mid-write left it, unacknowledged
    (its fsync never returned), and the next record must not be glued onto it."""
    size = f.seek(0, os.SEEK_END)
    if size == 0:
        return
    with open(f.name, "rb") as r:
        r.seek(max(0, size - 1))
        if r.read(1) == b"\n":
            return
        # walk back to the last newline in blocks
        pos = size
        while pos > 0:
            start = max(0, pos - 65536)
            r.seek(start)
            block = r.read(pos - start)
            cut = block.rfind(b"\n")
            if cut >= 0:
                pos = start + cut + 1
                break
            pos = start
    f.truncate(pos)
    f.seek(pos)
