"""Live updates on a Milvus target: changes held by Milvus natively, and every serving process
told of them through the version's change-record collection (:mod:`embrecall.milvus.changes`).

A write validates the change (:mod:`embrecall.live.changes`, as for a version root), upserts or
deletes the entity in the version's collection with Milvus's own calls, stores the record,
flushes, applies it in this process and only then answers. Every process polls the change
collection (records stored in the last ``LOOKBACK_S``, those it has not applied yet) and applies
what others wrote: the id maps, the vectors of queries by id, catalogue fields and seen items it
holds locally. Searches go to Milvus, which itself no longer returns deleted rows and finds
upserted vectors in its index; :class:`MilvusLiveOverlay` maps rows added live back to ids.

Carry-over: a process serving a newer version copies the changes its predecessor took after the
new version was built (its manifest's ``created_at``) into the new version, with their keys, so
nothing acknowledged on the old version after the build is dropped.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from embrecall.live.changelog import Record
from embrecall.live.merged import union_rows
from embrecall.live.overlay import LiveOverlay, results_catalog
from embrecall.milvus import changes, store

if TYPE_CHECKING:
    from embrecall.recommender import Recommender

log = logging.getLogger("embrecall.live")

# Records stored this long before the newest one a process has applied are read again at each
# poll: a write stamped earlier but acknowledged later (a slow flush, a writer's clock a little
# behind) is still found. Keys already applied are skipped.
LOOKBACK_S = 30.0
_RETRIES = 3  # searches around rows a snapshot must not answer before giving up on them


class MilvusLiveOverlay(LiveOverlay):
    """:class:`LiveOverlay` whose searches Milvus answers natively.

    Query vectors, exclusions, seen items and catalogue fields come from the pending changes as
    on a version root; the search itself is one Milvus search over the version's collection as
    it is now (rows added live included), with the query's exclusions inside it. Published rows
    deleted since are dropped should Milvus still return one, and asked around if that leaves
    fewer than ``k``. A filtered query is answered in this process (exact scan of the passing
    published rows plus the upserted vectors), as every filtered query on Milvus is.
    """

    def __init__(self, rec: Recommender) -> None:
        super().__init__(rec)
        self._rows_cache: dict[str, tuple[Any, tuple]] = {}
        self.feed: MilvusFeed | None = None  # the feed that applies changes to it

    def row_of(self, rec: Recommender, space: str, key: object) -> int:
        """The Milvus row of an id: its published row, else the row derived from it."""
        row = int(rec.space(space).lookup_rows([key])[0])
        return row if row >= 0 else changes.new_row(key)

    def _live_rows(self, rec: Recommender, snap, space: str) -> tuple[np.ndarray, dict]:
        """(published rows deleted since, {row: id} of the ids added live) of a snapshot.

        A published id upserted again keeps its row, which holds its new vector in Milvus.
        """
        cached = self._rows_cache.get(space)
        if cached is not None and cached[0] is snap:
            return cached[1]
        delta = snap.spaces[space]
        target = rec.space(space)
        hidden = delta.hidden_rows
        gone = hidden[[i not in delta.slot_of for i in target.ids[hidden].tolist()]]
        ids = delta.ids
        new: dict[int, Any] = {}
        if len(ids):
            base = target.lookup_rows(ids)
            new = {changes.new_row(k): k for k, b in zip(ids.tolist(), base) if b < 0}
        self._rows_cache[space] = (snap, (gone.astype(np.int64), new))
        return gone, new

    def _answer(
        self, rec, snap, kind, queries, k, excluded_rows, excluded_ids, params, single, filter=None
    ):
        from embrecall.neighbors import Neighbors
        from embrecall.recommender import _check_k

        if filter:
            return super()._answer(
                rec, snap, kind, queries, k, excluded_rows, excluded_ids, params, single, filter
            )
        k = _check_k(k)
        space = kind.target_space
        delta = snap.spaces[space]
        target = rec.space(space, kind.name)
        index = rec.indexes[kind.index_name]
        gone, new = self._live_rows(rec, snap, space)
        excluded = []
        for rows, ids in zip(excluded_rows, excluded_ids):
            extra = [self.row_of(rec, space, i) for i in ids if i in delta.slot_of]
            excluded.append(union_rows([*rows, np.asarray(extra, dtype=np.int64)]))
        total = len(target) - len(gone) + len(new)
        scores, rows = index.search(queries, k, exclude=excluded, params=params, live_total=total)
        dead = _isin_rows(rows, gone, new)
        for _ in range(_RETRIES):
            if not dead.any():
                break
            # rows this snapshot must not answer: a deleted row a stale replica still returned,
            # or a row another process added whose record this one has not applied yet
            redo = np.flatnonzero(dead.any(axis=1))
            for i in redo:
                excluded[i] = union_rows([excluded[i], rows[i][dead[i]]])
            s2, r2 = index.search(
                queries[redo],
                k,
                exclude=[excluded[i] for i in redo],
                params=params,
                live_total=total,
            )
            scores[redo], rows[redo] = s2, r2
            dead = _isin_rows(rows, gone, new)
        scores[dead], rows[dead] = np.nan, -1
        if dead.any():  # what is left first, in order; the padding at the end
            order = np.argsort(rows < 0, axis=1, kind="stable")
            rows = np.take_along_axis(rows, order, axis=1)
            scores = np.take_along_axis(scores, order, axis=1)
        ids = _ids_of(rows, target, new)
        if single:
            valid = rows[0] >= 0
            ids_out, scores_out = ids[0][valid], scores[0][valid]
        else:
            ids_out, scores_out = ids, scores
        return Neighbors(
            ids_out,
            scores_out,
            query=kind.name,
            space=space,
            metric=kind.metric,
            higher_is_better=index.higher_is_better,
            catalog=results_catalog(rec, snap, space),  # type: ignore[arg-type]
        )


def _isin_rows(rows: np.ndarray, gone: np.ndarray, new: Mapping[int, Any]) -> np.ndarray:
    """Rows that must not be answered: published rows deleted since, and rows above the
    published ones that no live id names (deleted since, or written by a writer that died
    before its record)."""
    dead = np.isin(rows, gone) if gone.size else np.zeros(rows.shape, bool)
    high = rows >= changes.NEW_ROWS
    if high.any():
        dead |= high & ~np.isin(rows, np.fromiter(new, dtype=np.int64, count=len(new)))
    return dead


def _ids_of(rows: np.ndarray, target, new: Mapping[int, Any]) -> np.ndarray:
    """Ids of Milvus rows: published rows by position, rows added live by ``new``."""
    n = len(target)
    ids = target.ids.take(np.clip(rows, 0, max(n - 1, 0)))
    if target.id_kind != "int":
        ids = ids.astype(object)
    for at in zip(*np.nonzero(rows >= n)):
        ids[at] = new[int(rows[at])]
    ids[rows < 0] = -1 if target.id_kind == "int" else None
    return ids


class MilvusFeed:
    """The live changes of one served Milvus version: written natively, polled, applied.

    The interface of :class:`embrecall.live.feed.LiveFeed` (``overlay``, ``write``, ``poll``,
    ``describe``), which the service's admin routes and tail use. Made by :func:`load_live`.
    """

    def __init__(
        self,
        client: Any,
        prefix: str,
        version: str,
        manifest: Mapping[str, Any],
        rec: Recommender,
        predecessor: str | None = None,
        *,
        flush: bool = True,
    ) -> None:
        self.client = client
        self.flush = flush
        self.prefix = prefix
        self.version = version
        self.manifest = manifest
        self.rec = rec
        self.collection = changes.changes_name(prefix, version)
        self.overlay = MilvusLiveOverlay(rec)
        self.overlay.feed = self
        self.predecessor = predecessor if predecessor != version else None
        self.keys = changes.Keys()
        self._applied: set[str] = set()  # keys applied, within twice the lookback
        self._last_key: dict[tuple, str] = {}  # (space, id) -> key of its newest record here
        self._high_ms = 0  # the newest record applied (ms since the epoch)
        self._carried_ms: int | None = None  # the newest record of the predecessor seen
        self._old_manifest: Mapping[str, Any] | None = None
        self._newest_key: str | None = None
        self._lock = threading.Lock()  # one catch-up at a time in this process
        self._writers = {
            space: changes.EntityWriter(
                client,
                meta,
                [
                    f["field"]
                    for f in manifest["indexes"].values()
                    if f["collection"] == meta["collection"]
                ]
                or [meta["vector_field"]],
                lambda key, s=space: self.overlay.row_of(rec, s, key),
                manifest.get("catalog") if space == "items" else None,
                self._fields_of,
            )
            for space, meta in manifest["spaces"].items()
        }
        rec.live = self.overlay

    # -- reading ---------------------------------------------------------------------------
    def poll(self) -> int:
        """Carry, then apply what other processes stored since the last poll."""
        self.carry()
        return self.catch_up()

    def catch_up(self) -> int:
        """Apply the records stored since the last poll (and within the lookback before it)."""
        since = self._high_ms - int(LOOKBACK_S * 1000)
        return self.apply(changes.read(self.client, self.collection, since))

    def apply(self, records: list[Record], deleted: Iterable[tuple[str, Any]] = ()) -> int:
        """Apply the records not applied yet (``deleted``: (space, id) to delete first)."""
        with self._lock:
            fresh = [r for r in records if r["key"] not in self._applied]
            gone = [{"op": "delete", "space": s, "id": key} for s, key in deleted]
            if not fresh and not gone:
                return 0
            self.overlay.state.apply([*gone, *self._settled(fresh)])
            for r in fresh:
                self._applied.add(r["key"])
                if r["op"] in ("upsert", "delete", "seen"):
                    self._last_key[(r.get("space"), r["id"])] = r["key"]
            if fresh:
                newest = max(r["key"] for r in fresh)
                self._high_ms = max(self._high_ms, changes.stamp_ms(newest))
                self._newest_key = max(self._newest_key or "", newest)
            if len(self._applied) > 10_000:
                floor = self._high_ms - 2 * int(LOOKBACK_S * 1000)
                self._applied = {k for k in self._applied if changes.stamp_ms(k) >= floor}
            return len(fresh)

    def _settled(self, records: list[Record], manifest=None) -> list[Record]:
        """``records`` in order, each id's upserts and deletes replaced by what Milvus holds
        (at the place and with the key of that id's last record).

        ``manifest``: settle against another version's collections (carry-over), by id.
        """
        by_space: dict[str, list] = {}
        last: dict[tuple, int] = {}
        for n, r in enumerate(records):
            if r["op"] in ("upsert", "delete"):
                by_space.setdefault(r["space"], []).append(r)
                last[(r["space"], r["id"])] = n
        settled: dict[tuple, Record] = {}
        for space, mine in by_space.items():
            if manifest is None:
                meta, row_of = self.manifest["spaces"][space], self._writers[space].row_of
            else:
                meta, row_of = manifest["spaces"][space], None
            for s in changes.settle(self.client, meta, mine, row_of):
                settled[(space, s["id"])] = s
        out = []
        for n, r in enumerate(records):
            if r["op"] == "seen":
                out.append(r)
            elif r["op"] in ("upsert", "delete") and last.get((r["space"], r["id"])) == n:
                out.append({**settled[(r["space"], r["id"])], "key": r["key"]})
        return out

    def describe(self) -> dict[str, Any]:
        """Pending changes for ``/v1/info``."""
        return {
            "engine": "milvus",
            "collection": self.collection,
            **self.overlay.state.snapshot.describe(),
            "carried_from": self.predecessor,
        }

    # -- writing ---------------------------------------------------------------------------
    def write(self, records: Iterable[Record], *, visible: bool = True) -> int:
        """Apply ``records`` in Milvus (entities first, then the records, flushed), then here:
        visible in this process once this returns (``visible=False``: a bulk writer that
        serves nothing skips reading them back)."""
        out = []
        for r in records:
            r = dict(r)
            if r["op"] == "delete":  # a fresh load finds the id of a deleted published row here
                row = int(self.rec.space(r["space"]).lookup_rows([r["id"]])[0])
                if row >= 0:
                    r["row"] = row
            out.append(r)
        changes.write(self.client, self.collection, self._writers, out, self.keys, flush=self.flush)
        if visible:
            self.catch_up()
        return len(out)

    def _fields_of(self, key: object) -> Mapping[str, Any] | None:
        """The catalogue fields an item holds now (an upsert without fields keeps them)."""
        snap = self.overlay.state.snapshot
        if key in snap.fields:
            return snap.fields[key]
        if self.rec.catalog is not None and self.overlay.holds(self.rec, "items", key):
            return self.rec.catalog.records([key])[0] or None
        return None

    # -- carry-over from the previous version ------------------------------------------------
    def carry(self) -> int:
        """Copy into this version the predecessor's changes this version does not hold: those
        stored after it was built (a retrain), or after what it folded (a compaction), unless
        this version has a newer change of the same id. Each id is carried as the
        predecessor's entity holds it, so carrying a record twice changes nothing."""
        if self.predecessor is None:
            return 0
        old = changes.changes_name(self.prefix, self.predecessor)
        if not store.guarded("listing collections", self.client.has_collection, old):
            return 0
        store.ensure_loaded(self.client, old)
        after = self._carry_after()
        lookback = int(LOOKBACK_S * 1000)
        since = after if self._carried_ms is None else max(after, self._carried_ms - lookback)
        records = changes.read(self.client, old, since)
        if records:
            newest = max(changes.stamp_ms(r["key"]) for r in records)
            self._carried_ms = max(self._carried_ms or 0, newest)
        fresh = [
            {k: v for k, v in r.items() if k != "row"}  # rows are the old version's
            for r in records
            if r["op"] in ("upsert", "delete", "seen")
            and r["key"] not in self._applied
            and changes.stamp_ms(r["key"]) > after
            and self._last_key.get((r.get("space"), r.get("id")), "") < r["key"]
        ]
        if not fresh:
            return 0
        fresh = [r for r in self._settled(fresh, self._predecessor_manifest()) if self._applies(r)]
        if not fresh:
            return 0
        changes.write(
            self.client, self.collection, self._writers, fresh, self.keys, flush=self.flush
        )
        log.info(
            "carried %d changes of version %s into %s", len(fresh), self.predecessor, self.version
        )
        self.catch_up()
        return len(fresh)

    def _carry_after(self) -> int:
        """Records of the predecessor stamped after this (ms) are carried: for a compaction of
        it, the look-back before the newest record it folded (those in between are carried
        again, which changes nothing); else this version's build time."""
        folded = self.manifest.get("folded") or {}
        if folded.get("from") == self.predecessor and folded.get("through"):
            return changes.stamp_ms(folded["through"]) - int(LOOKBACK_S * 1000)
        return _created_ms(self.manifest) or 0

    def _predecessor_manifest(self) -> Mapping[str, Any]:
        if self._old_manifest is None:
            key = f"version:{self.predecessor}"
            self._old_manifest = store.read_meta(self.client, self.prefix, [key])[key]
        return self._old_manifest

    def folded_keys(self) -> str | None:
        """The newest record key applied here (what a compaction of this state folds)."""
        return self._newest_key

    def _applies(self, r: Record) -> bool:
        """Whether a carried record means something here (a delete or a seen list of an id
        this version does not hold is moot)."""
        if r["op"] == "upsert":
            return True
        if r["op"] == "delete":
            return self.overlay.holds(self.rec, r["space"], r["id"])
        if r["op"] == "seen":
            return self.overlay.holds(self.rec, "users", r["id"]) and all(
                self.overlay.holds(self.rec, "items", i) for i in r["items"]
            )
        return False


def load_live(
    client: Any,
    prefix: str,
    version: str,
    manifest: Mapping[str, Any],
    predecessor: str | None = None,
    *,
    flush: bool = True,
) -> Recommender:
    """``version`` loaded with its live changes applied; ``rec.live.feed`` is its feed.

    ``flush``: writes flush before they are acknowledged (Milvus Lite; see
    :func:`embrecall.milvus.changes.write`).

    The published rows deleted since are gone from Milvus: they are read back as placeholders
    (ids from their delete records) so rows stay the collection's keys, and marked deleted.
    """
    name = changes.changes_name(prefix, version)
    changes.ensure_changes(client, name)
    records = changes.read(client, name)
    deleted: dict[str, dict[int, Any]] = {space: {} for space in manifest["spaces"]}
    for r in records:
        if r["op"] == "delete" and "row" in r:
            deleted[r["space"]][int(r["row"])] = r["id"]
    rec = store.load_version(client, prefix, version, dict(manifest), deleted=deleted)
    # Another process may add rows before this one polls: searches that do not map them
    # (with nothing pending here, the canary, a filter's plain search) keep to the published.
    for index in rec.indexes.values():
        index.base_rows_only = True
    feed = MilvusFeed(client, prefix, version, manifest, rec, predecessor, flush=flush)
    recorded = {(r["space"], r["id"]) for r in records if r["op"] == "delete"}
    unrecorded = [(s, key) for s, gaps in deleted.items() for key in gaps.values()]
    feed.apply(records, [g for g in unrecorded if g not in recorded])
    feed.carry()
    return rec


def _created_ms(manifest: Mapping[str, Any]) -> int | None:
    text = manifest.get("created_at")
    if not text:
        return None
    try:
        return int(datetime.fromisoformat(text).timestamp() * 1000)
    except ValueError:
        return None
