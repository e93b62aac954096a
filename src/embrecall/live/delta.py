"""Pending changes of one version, as immutable snapshots: a small exact delta plus tombstones.

:class:`LiveState` applies change records (see :mod:`embrecall.live.changelog`) and publishes a
:class:`Snapshot` after each batch; a search reads one snapshot to its end, so it sees a change
whole or not at all, and never takes a lock. Per space, a snapshot holds:

- the upserted vectors (new ids, and new vectors of ids the artifact holds), searched exactly;
- ``hidden_rows``: the artifact's rows that were deleted or replaced, dropped from the main
  index's answers;
- the ids deleted since the artifact was built.

For items it also holds the catalogue fields given with upserts, and, per user, the items seen
since the build. It knows rows of the artifact's spaces and ids, never faiss.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import faiss
import numpy as np

from embrecall.embeddings import Embeddings

SPACES = ("items", "users")


@dataclass(frozen=True)
class SpaceDelta:
    """The pending changes of one space (a snapshot: never mutated).

    Attributes
    ----------
    ids : (n,) int64 or object array of the upserted ids, in slot order
    vectors : (n, d) float32 raw vectors of those ids
    unit : (n, d) float32, the same vectors unit-normalised (cosine searches them)
    slot_of : {id: slot}
    hidden_rows : sorted int64 rows of the artifact's space, deleted or replaced
    hidden_ids : their ids, sorted
    hidden_set : the same ids as a set (to drop them from one query's answer in plain Python)
    deleted : ids deleted and not upserted again
    """

    ids: np.ndarray
    vectors: np.ndarray
    unit: np.ndarray
    slot_of: Mapping[Any, int]
    hidden_rows: np.ndarray
    hidden_ids: np.ndarray  # the ids of hidden_rows, sorted
    hidden_set: frozenset
    deleted: frozenset

    _flat: dict = field(default_factory=dict, compare=False, repr=False)
    _columns: dict = field(default_factory=dict, compare=False, repr=False)

    def flat(self, metric: str) -> faiss.Index:
        """An exact faiss index of the delta for ``metric`` (made on first use, then kept)."""
        index = self._flat.get(metric)
        if index is None:
            dim = self.vectors.shape[1]
            index = faiss.IndexFlatL2(dim) if metric == "l2" else faiss.IndexFlatIP(dim)
            index.add(self.unit if metric == "cosine" else self.vectors)
            self._flat[metric] = index
        return index

    def columns(self, metric: str) -> np.ndarray:
        """The searched vectors transposed, (d, n) C-contiguous (made on first use, then kept):
        a query's scores are then one BLAS product that streams them in order."""
        cols = self._columns.get(metric)
        if cols is None:
            cols = np.ascontiguousarray((self.unit if metric == "cosine" else self.vectors).T)
            self._columns[metric] = cols
        return cols

    @property
    def size(self) -> int:
        return len(self.ids)

    @property
    def empty(self) -> bool:
        return self.size == 0 and self.hidden_rows.size == 0 and not self.deleted


@dataclass(frozen=True)
class Snapshot:
    """Every pending change of one version at one moment."""

    spaces: Mapping[str, SpaceDelta]
    fields: Mapping[Any, Mapping[str, Any]]  # item id -> catalogue fields given with upserts
    seen: Mapping[Any, tuple]  # user id -> item ids seen since the build
    seen_reset: frozenset  # users deleted since the build: the artifact's history is not theirs
    applied: int  # records applied so far

    def describe(self) -> dict[str, Any]:
        """Records applied, and per space the upserted vectors, the artifact's rows hidden and
        the ids deleted; users with items seen since the build (what ``/v1/info`` shows)."""
        return {
            "records": self.applied,
            "spaces": {
                name: {
                    "upserted": d.size,
                    "hidden_rows": int(d.hidden_rows.size),
                    "deleted": len(d.deleted),
                }
                for name, d in self.spaces.items()
            },
            "users_with_seen": len(self.seen),
        }

    @property
    def active(self) -> bool:
        """Whether anything changes an answer (a snapshot of no changes costs searches nothing)."""
        return (
            bool(self.seen)
            or bool(self.seen_reset)
            or any(not s.empty for s in self.spaces.values())
        )


@dataclass
class _Space:
    """The mutable master copy of one space's changes (under :class:`LiveState`'s lock)."""

    base: Embeddings | None
    vectors: dict = field(default_factory=dict)  # id -> (d,) float32, insertion ordered
    hidden: set = field(default_factory=set)  # base rows
    deleted: set = field(default_factory=set)

    def base_row(self, key) -> int:
        if self.base is None:
            return -1
        return int(self.base.lookup_rows([key])[0])

    def snapshot(self) -> SpaceDelta:
        dim = self.base.dim if self.base is not None else 0
        kind = self.base.id_kind if self.base is not None else "int"
        keys = list(self.vectors)
        if kind == "int":
            ids = np.array(keys, dtype=np.int64)
        else:
            ids = np.empty(len(keys), dtype=object)
            ids[:] = keys
        vectors = (
            np.stack(list(self.vectors.values())).astype(np.float32, copy=False)
            if keys
            else np.empty((0, dim), dtype=np.float32)
        )
        hidden = np.array(sorted(self.hidden), dtype=np.int64)
        hidden_ids = np.sort(self.base.ids[hidden]) if self.base is not None else hidden
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        unit = vectors / np.where(norms == 0, 1, norms)
        return SpaceDelta(
            ids=ids,
            vectors=np.ascontiguousarray(vectors),
            unit=np.ascontiguousarray(unit, dtype=np.float32),
            slot_of=MappingProxyType({k: i for i, k in enumerate(keys)}),
            hidden_rows=hidden,
            hidden_ids=hidden_ids,
            hidden_set=frozenset(hidden_ids.tolist()),
            deleted=frozenset(self.deleted),
        )


class LiveState:
    """Applies change records to a version and publishes snapshots.

    Parameters
    ----------
    items, users : Embeddings
        The artifact's spaces (``users`` may be None); ids of records are keyed as they parse.
    """

    def __init__(self, items: Embeddings, users: Embeddings | None) -> None:
        self._lock = threading.Lock()
        self._spaces = {"items": _Space(items), "users": _Space(users)}
        self._fields: dict = {}
        self._seen: dict = {}
        self._seen_reset: set = set()
        self._applied = 0
        self.snapshot = self._make_snapshot()

    def key(self, space: str, value: object):
        """``value`` as the id kind of ``space`` (the key the snapshot uses)."""
        base = self._spaces[space].base
        return base.parse_id(value) if base is not None else value

    def apply(self, records: Iterable[Mapping[str, Any]]) -> Snapshot:
        """Apply records in order and publish one new snapshot; returns it."""
        with self._lock:
            for record in records:
                self._apply_one(record)
            self.snapshot = self._make_snapshot()  # one reference assignment: readers see
            return self.snapshot  # the old snapshot or this one

    def _apply_one(self, r: Mapping[str, Any]) -> None:
        op = r["op"]
        if op == "carry":
            return
        self._applied += 1
        if op == "seen":
            user = self.key("users", r["id"])
            items = tuple(self.key("items", i) for i in r["items"])
            self._seen[user] = tuple(dict.fromkeys(self._seen.get(user, ()) + items))
            return
        space = self._spaces[r["space"]]
        key = self.key(r["space"], r["id"])
        row = space.base_row(key)
        if row >= 0:
            space.hidden.add(row)
        if op == "upsert":
            space.vectors.pop(key, None)  # a replaced id moves to the end, like a new one
            space.vectors[key] = np.asarray(r["vector"], dtype=np.float32)
            space.deleted.discard(key)
            if r["space"] == "items" and r.get("fields") is not None:
                self._fields[key] = dict(r["fields"])
        elif op == "delete":
            space.vectors.pop(key, None)
            space.deleted.add(key)
            if r["space"] == "items":
                self._fields.pop(key, None)
            else:  # a user id added again later starts with no history
                self._seen.pop(key, None)
                self._seen_reset.add(key)
        else:
            raise ValueError(f"unknown change {op!r}")

    def _make_snapshot(self) -> Snapshot:
        return Snapshot(
            spaces=MappingProxyType({n: s.snapshot() for n, s in self._spaces.items()}),
            fields=MappingProxyType(dict(self._fields)),
            seen=MappingProxyType(dict(self._seen)),
            seen_reset=frozenset(self._seen_reset),
            applied=self._applied,
        )
