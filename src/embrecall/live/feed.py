"""One served version's change feed: its log, tailed into its overlay, and the carry-over from
the version served before it.

Every server process of a root holds a :class:`LiveFeed` for the version it serves. A write
appends to the log (flock, fsync) and then catches up, so the writer's own answers show the
change before it acknowledges it; every other process polls the log's size (:meth:`poll`, a
``stat`` a tick) and applies what was appended, so a change reaches every server within a tick.

**Carry-over.** When a newer version is published, changes acknowledged on the old one after the
new artifact was built would be lost by a plain swap. The first server to load the new version
copies them into the new version's log under its lock, behind a ``carry`` marker that records
how far the old log was read; later polls keep carrying what servers still on the old version
append, until every server has swapped. A compacted version records in its ``.base`` file up to
where it folded the old log, so exactly the rest is carried; any other version carries the old
log's records acknowledged after its manifest's ``created_at``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from embrecall.live.changelog import ChangeLog, Record
from embrecall.live.overlay import LiveOverlay

if TYPE_CHECKING:
    from embrecall.recommender import Recommender

log = logging.getLogger("embrecall.live")


class LiveFeed:
    """The change log of ``version`` in ``root``, applied to ``rec`` (whose ``live`` it sets).

    Parameters
    ----------
    root : path of the version root
    version : the version ``rec`` was loaded from
    rec : the loaded version
    predecessor : the version served before this one in the root, whose late changes are
        carried over (None: nothing to carry)
    """

    def __init__(
        self, root: str | Path, version: str, rec: Recommender, predecessor: str | None = None
    ) -> None:
        self.root = Path(root)
        self.version = version
        self.rec = rec
        self.log = ChangeLog.of(root, version)
        self.overlay = LiveOverlay(rec)
        self.offset = 0
        self.predecessor = predecessor if predecessor != version else None
        self._lock = threading.Lock()  # one catch-up at a time in this process
        self._carried_size = -1  # the predecessor log's size when last carried
        rec.live = self.overlay
        self.carry()
        self.catch_up()

    # -- reading ---------------------------------------------------------------------------
    def poll(self) -> int:
        """Carry and apply whatever was appended since the last call; returns records applied."""
        self.carry()
        if self.log.size() == self.offset:
            return 0
        return self.catch_up()

    def catch_up(self) -> int:
        """Apply the log from where this process reached to its end."""
        with self._lock:
            records, end = self.log.read(self.offset)
            if records:
                self.overlay.state.apply(records)
            self.offset = end
            return len(records)

    def describe(self) -> dict[str, Any]:
        """Pending changes for ``/v1/info``: records applied, log bytes read, and per space the
        upserted vectors, the artifact's rows hidden and the ids deleted."""
        pending = self.overlay.state.snapshot.describe()
        return {**pending, "log_bytes": self.offset, "carried_from": self.predecessor}

    # -- writing ---------------------------------------------------------------------------
    def write(self, records: Iterable[Record]) -> int:
        """Append (fsynced) and apply ``records``: visible here once this returns."""
        size = self.log.append(records)
        self.catch_up()
        return size

    # -- carry-over from the previous version ------------------------------------------------
    def carry(self) -> int:
        """Copy the predecessor's changes this version does not hold yet into its log."""
        if self.predecessor is None:
            return 0
        old = ChangeLog.of(self.root, self.predecessor)
        size = old.size()
        if size == self._carried_size:
            return 0
        with self.log.locked():
            start, cutoff = self._carry_start()
            records, end = old.read(start)
            fresh = [
                r
                for r in records
                if r.get("op") != "carry" and (cutoff is None or float(r.get("at", 0)) > cutoff)
            ]
            if end > start:
                marker = {"op": "carry", "from": self.predecessor, "offset": end}
                self.log.append_locked(ChangeLog.encode([*fresh, marker]))
                if fresh:
                    log.info(
                        "carried %d changes of version %s into %s",
                        len(fresh),
                        self.predecessor,
                        self.version,
                    )
        self._carried_size = size
        return len(fresh) if end > start else 0

    def _carry_start(self) -> tuple[int, float | None]:
        """Where the predecessor's log is read from, and the time before which its records are
        already in this version's artifact (None: no time filter)."""
        offset = None
        records, _ = self.log.read(0)
        for r in records:
            if r.get("op") == "carry" and r.get("from") == self.predecessor:
                offset = int(r["offset"])
        base = self.log.base()
        if base is not None and base.get("from") == self.predecessor:
            return (offset if offset is not None else int(base["offset"])), None
        return (offset or 0), _created_at(self.rec.info)


def _created_at(info: Mapping[str, Any]) -> float | None:
    text = info.get("created_at")
    if not text:
        return None
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None
