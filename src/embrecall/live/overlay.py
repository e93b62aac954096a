"""Answers over a version plus its pending changes: the main index's answer merged with an exact
search of the delta, inside the query, so that ``k`` is kept.

For a query kind, the artifact's rows that were deleted or replaced join the query's excluded
rows (the index's own exclusion path keeps ``k``); the upserted vectors are scored exactly with
the query kind's metric (cosine on unit vectors, inner product, squared L2), less the same
exclusions by id (the query itself, seen items, the request's list); the two answers are merged
by score. A query id is looked up in the delta first (an upserted user or item answers with its
new vector), then in the artifact, and a deleted id is unknown.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from embrecall.embeddings import check_query_vectors
from embrecall.errors import UnknownIdError
from embrecall.live.delta import LiveState, Snapshot
from embrecall.live.merged import base_answers, delta_answers, merge_ranked, to_arrays
from embrecall.neighbors import Neighbors
from embrecall.queries import ID_WHAT

if TYPE_CHECKING:
    from embrecall.catalog import Catalog
    from embrecall.recommender import Recommender


class LiveOverlay:
    """Pending changes over one loaded version, attached as ``Recommender.live``.

    The recommender asks :attr:`active` and, when there is anything pending, hands its by-id and
    by-vector queries here.
    """

    def __init__(self, rec: Recommender) -> None:
        self.state = LiveState(rec.items, rec.users)
        self._failing_cache: dict[tuple, tuple[Snapshot, set]] = {}

    @property
    def active(self) -> bool:
        return self.state.snapshot.active

    # -- lookups ---------------------------------------------------------------------------
    def holds(self, rec: Recommender, space: str, value: object) -> bool:
        """Whether ``space`` holds the id now (upserted, or in the artifact and not deleted)."""
        snap = self.state.snapshot
        key = self.state.key(space, value)
        delta = snap.spaces[space]
        if key in delta.slot_of:
            return True
        if key in delta.deleted:
            return False
        base = rec.items if space == "items" else rec.users
        return base is not None and bool(base.lookup_rows([key])[0] >= 0)

    def item_record(self, rec: Recommender, value: object) -> dict[str, Any]:
        """An item's catalogue fields, those given with its upsert over the catalogue's."""
        if not self.holds(rec, "items", value):
            key = self.state.key("items", value)
            raise UnknownIdError(f"unknown item id {key!r}", [key])
        return LiveCatalog(rec.catalog, self.state.snapshot).record(value)

    def seen_items(self, rec: Recommender, user_id: object) -> np.ndarray:
        """The artifact's seen items of a user plus those seen since, as item ids."""
        snap = self.state.snapshot
        key = self.state.key("users", user_id)
        if not self.holds(rec, "users", key):
            raise UnknownIdError(f"unknown user id {key!r}", [key])
        base: np.ndarray = rec.items.ids[:0]
        row = int(rec.users.lookup_rows([key])[0])
        if rec.seen is not None and row >= 0 and key not in snap.seen_reset:
            base = rec.items.ids[rec.seen.rows_for(row)]
        known = set(base.tolist())
        extra = [i for i in snap.seen.get(key, ()) if i not in known]
        if extra:
            base = np.concatenate([base, np.array(extra, dtype=base.dtype)])
        gone = snap.spaces["items"].deleted
        if gone:  # a removed item is no longer anyone's history
            base = base[[i not in gone for i in base.tolist()]]
        return base

    def find_items(self, rec: Recommender, text: str, limit: int) -> tuple[list, bool]:
        """``Recommender.find_items`` with the pending changes: removed items left out, titles
        given with upserts searched too (after the catalogue's matches)."""
        snap = self.state.snapshot
        found: list = []
        if rec.catalog is not None:
            for i in rec.catalog.find(text).tolist():
                if i not in snap.fields and self.holds(rec, "items", i):
                    found.append(i)
                    if len(found) > limit:
                        return found[:limit], True
        needle = text.casefold()
        for i, fields in snap.fields.items():
            title = fields.get("title")
            if isinstance(title, str) and needle in title.casefold():
                found.append(i)
                if len(found) > limit:
                    break
        return found[:limit], len(found) > limit

    # -- queries ---------------------------------------------------------------------------
    def by_id(
        self,
        rec: Recommender,
        name: str,
        query_id: Any,
        k: int,
        exclude: Any,
        exclude_seen: bool,
        params: Mapping[str, int] | None,
        filter: Any = None,
    ) -> Neighbors:
        """``Recommender._by_id`` with the pending changes (see the module's docstring)."""
        from embrecall.recommender import _as_batch

        snap = self.state.snapshot
        ids, single = _as_batch(query_id)
        kind = rec._kind(name)
        space = rec.space(kind.query_space, name)
        qdelta = snap.spaces[kind.query_space]
        keys = [space.parse_id(i) for i in ids]
        base_rows = space.lookup_rows(keys)
        vectors = np.empty((len(keys), space.dim), dtype=np.float32)
        missing = []
        for i, key in enumerate(keys):
            slot = qdelta.slot_of.get(key)
            if slot is not None:
                vectors[i] = qdelta.vectors[slot]
            elif base_rows[i] >= 0 and key not in qdelta.deleted:
                vectors[i] = space.vectors[base_rows[i]]
            else:
                missing.append(key)
        if missing:
            shown = ", ".join(repr(m) for m in missing[:5])
            more = f" (and {len(missing) - 5} more)" if len(missing) > 5 else ""
            raise UnknownIdError(f"unknown {ID_WHAT[kind.query_space]} {shown}{more}", missing)
        listed = rec._listed(kind, len(keys), exclude, single)
        listed_ids = _listed_ids(exclude, len(keys), single)
        seen_applies = kind.excludes_seen and exclude_seen
        target = rec.space(kind.target_space, name)
        excluded_rows, excluded_ids = [], []
        for i, key in enumerate(keys):
            row = int(base_rows[i])
            rows = [listed[i]]
            out_ids = set(listed_ids[i])
            if seen_applies:
                if rec.seen is not None and row >= 0 and key not in snap.seen_reset:
                    seen_rows = rec.seen.rows_for(row)
                    rows.append(seen_rows)
                    out_ids.update(target.ids[seen_rows].tolist())
                live_seen = snap.seen.get(key, ())
                if live_seen:
                    rows.append(_known(target, live_seen))
                    out_ids.update(live_seen)
            elif kind.excludes_self:
                if row >= 0:
                    rows.append(np.array([row], dtype=np.int64))
                out_ids.add(key)
            excluded_rows.append(rows)
            excluded_ids.append(out_ids)
        return self._answer(
            rec, snap, kind, vectors, k, excluded_rows, excluded_ids, params, single, filter
        )

    def search(
        self,
        rec: Recommender,
        query_kind: str,
        vector: Any,
        k: int,
        exclude: Any,
        params: Mapping[str, int] | None,
        filter: Any = None,
    ) -> Neighbors:
        """``Recommender.search`` (raw vectors) with the pending changes."""
        snap = self.state.snapshot
        kind = rec._kind(query_kind)
        index = rec.indexes[kind.index_name]
        queries, single = check_query_vectors(vector, index.dim, nonzero=kind.metric == "cosine")
        listed = rec._listed(kind, len(queries), exclude, single)
        listed_ids = _listed_ids(exclude, len(queries), single)
        rows = [[r] for r in listed]
        return self._answer(rec, snap, kind, queries, k, rows, listed_ids, params, single, filter)

    def _answer(
        self,
        rec,
        snap: Snapshot,
        kind,
        queries,
        k,
        excluded_rows,
        excluded_ids,
        params,
        single,
        filter=None,
    ) -> Neighbors:
        from embrecall.recommender import _check_k

        k = _check_k(k)
        delta = snap.spaces[kind.target_space]
        base, applied = base_answers(rec, kind, queries, k, excluded_rows, params, delta, filter)
        if filter:  # upserted targets that fail the filter are left out like excluded ones
            failing = self._failing(rec, snap, kind.target_space, filter)
            if failing:
                excluded_ids = [set(e) | failing for e in excluded_ids]
        higher = rec.indexes[kind.index_name].higher_is_better
        # the main answer's k-th score bounds what an upserted vector must reach
        floors = [b[k - 1][0] if len(b) >= k else None for b in base] if higher else None
        pending = delta_answers(delta, kind.metric, queries, k, excluded_ids, floors)
        merged = [merge_ranked(both, k, higher) for both in zip(base, pending)]
        target = rec.target_space(kind)
        ids, scores = to_arrays(merged, target.ids.dtype, single)
        return Neighbors(
            ids,
            scores,
            query=kind.name,
            space=kind.target_space,
            metric=kind.metric,
            higher_is_better=higher,
            catalog=results_catalog(rec, snap, kind.target_space),  # type: ignore[arg-type]
            filter=applied,
        )

    def _failing(self, rec, snap: Snapshot, space: str, filter: Any) -> set:
        """Ids upserted into ``space`` whose fields (given with the upsert, over the
        catalogue's) fail ``filter``; kept per snapshot and filter, as snapshots never change."""
        key = (space, filter if isinstance(filter, str) else tuple(filter))
        cached = self._failing_cache.get(key)
        if cached is not None and cached[0] is snap:
            return cached[1]
        table = rec.field_table(space)
        delta = snap.spaces[space]
        records = LiveCatalog(rec.catalog_of(space), snap if space == "items" else None)
        ids = delta.ids.tolist()
        failing = {
            i for i, record in zip(ids, records.records(ids)) if not table.passes(filter, record)
        }
        if len(self._failing_cache) > 64:
            self._failing_cache.clear()
        self._failing_cache[key] = (snap, failing)
        return failing


def results_catalog(rec: Recommender, snap: Snapshot, space: str):
    """The catalogue a result of ``space`` reads records from: for items, the fields given with
    upserts over the catalogue's (``records()`` is all a result asks of it)."""
    return LiveCatalog(rec.catalog, snap) if space == "items" else rec.catalog_of(space)


class LiveCatalog:
    """The catalogue as results see it: fields given with upserts over the artifact's."""

    def __init__(self, catalog: Catalog | None, snap: Snapshot | None) -> None:
        self.catalog = catalog
        self.fields = snap.fields if snap is not None else {}

    def records(self, ids: Sequence) -> list[dict[str, Any]]:
        base = self.catalog.records(ids) if self.catalog is not None else [{} for _ in ids]
        if not self.fields:
            return base
        return [{**b, **self.fields[i]} if i in self.fields else b for i, b in zip(ids, base)]

    def record(self, value: object) -> dict[str, Any]:
        return self.records([value])[0]


def _listed_ids(exclude: Any, m: int, single: bool) -> list[set]:
    """The request's excluded ids per query, as given (delta ids are matched by value)."""
    if exclude is None:
        return [set() for _ in range(m)]
    lists = list(exclude)
    per_query = not single and lists and all(_is_listlike(e) for e in lists)
    if per_query:
        return [set(_plain(e)) for e in lists]
    one = set(_plain(lists))
    return [one] * m


def _plain(values: Iterable) -> list:
    out = []
    for v in values:
        v = v.item() if isinstance(v, np.generic) else v
        if isinstance(v, str):
            out.append(v)
            with contextlib.suppress(ValueError):
                out.append(int(v))  # "42" names item 42 of an integer-id space too
        else:
            out.append(v)
    return out


def _is_listlike(value) -> bool:
    return not isinstance(value, (str, bytes)) and isinstance(
        value, (Sequence, np.ndarray, set, frozenset)
    )


def _known(space, ids: Sequence) -> np.ndarray:
    rows = space.lookup_rows(list(ids))
    return rows[rows >= 0]
