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
from embrecall.index.faiss_index import _search_on_threads
from embrecall.live.delta import LiveState, Snapshot, SpaceDelta
from embrecall.neighbors import Neighbors
from embrecall.queries import ID_WHAT

# how much deeper than k the main index is asked before hidden rows are excluded inside it
_OVERFETCH_HIDDEN = 1024

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
        return _LiveCatalog(rec.catalog, self.state.snapshot).record(value)

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
        base = _base_answer(rec, kind, queries, k, excluded_rows, params, delta, filter)
        if filter:  # upserted targets that fail the filter are left out like excluded ones
            failing = self._failing(rec, snap, kind.target_space, filter)
            if failing:
                excluded_ids = [set(e) | failing for e in excluded_ids]
        higher = base.higher_is_better
        d_scores, d_ids = _delta_topk(delta, kind.metric, queries, k, excluded_ids, higher)
        ids, scores = _merge(base.ids, base.scores, d_ids, d_scores, k, higher)
        items = kind.target_space == "items"
        catalog = _LiveCatalog(rec.catalog, snap) if items else rec.catalog_of(kind.target_space)
        if single:
            valid = ~np.isnan(scores[0])
            ids_out, scores_out = ids[0][valid], scores[0][valid]
        else:
            ids_out, scores_out = ids, scores
        return Neighbors(
            ids_out,
            scores_out,
            query=kind.name,
            space=kind.target_space,
            metric=kind.metric,
            higher_is_better=higher,
            catalog=catalog,  # type: ignore[arg-type]  # records() is all Neighbors asks
            filter=base.filter,
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
        records = _LiveCatalog(rec.catalog_of(space), snap if space == "items" else None)
        ids = delta.ids.tolist()
        failing = {
            i for i, record in zip(ids, records.records(ids)) if not table.passes(filter, record)
        }
        if len(self._failing_cache) > 64:
            self._failing_cache.clear()
        self._failing_cache[key] = (snap, failing)
        return failing


def _base_answer(rec, kind, queries, k: int, excluded_rows, params, delta: SpaceDelta, filter=None):
    """The main index's answer without the rows deleted or replaced since the build.

    Those rows are dropped from a slightly deeper answer rather than excluded inside each
    search: they are a small share of a catalogue, and a search that excludes thousands of rows
    costs far more than fetching a few more than ``k``. When too many of them crowd a query's
    top, the search is repeated deeper, and at last with them excluded inside the search.
    """
    excluded = [_union(rows) for rows in excluded_rows]
    hidden = delta.hidden_rows
    if hidden.size == 0:
        return rec._run(kind, queries, k, excluded, params, False, filter)
    ntotal = len(rec.target_space(kind))
    fetch = k + 8 + int(np.ceil(4 * k * hidden.size / max(ntotal, 1)))
    while fetch < min(ntotal, k + _OVERFETCH_HIDDEN):
        base = rec._run(kind, queries, fetch, excluded, params, False, filter)
        ids, scores = base.ids, base.scores
        keep = ~np.isnan(scores) & ~_isin(ids, delta.hidden_ids)
        found = keep.sum(axis=1)
        exhausted = (~np.isnan(scores)).sum(axis=1) < fetch  # nothing deeper to fetch
        if ((found >= k) | exhausted).all():
            order = np.argsort(~keep, axis=1, kind="stable")[:, :k]  # kept ones first, in order
            ids = np.take_along_axis(ids, order, axis=1)
            scores = np.take_along_axis(np.where(keep, scores, np.nan), order, axis=1)
            ids[np.isnan(scores)] = -1 if ids.dtype != object else None  # no hidden id leaks
            base.ids, base.scores = ids, scores
            return base
        fetch *= 4
    excluded = [_union([e, hidden]) for e in excluded]
    return rec._run(kind, queries, k, excluded, params, False, filter)


def _isin(ids: np.ndarray, sorted_ids: np.ndarray) -> np.ndarray:
    if ids.dtype != object:
        at = np.minimum(sorted_ids.searchsorted(ids), sorted_ids.size - 1)
        return sorted_ids[at] == ids
    hidden = set(sorted_ids.tolist())
    return np.array([[i in hidden for i in row] for row in ids], dtype=bool).reshape(ids.shape)


class _LiveCatalog:
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


def _union(parts: list[np.ndarray]) -> np.ndarray:
    parts = [p for p in parts if p.size]
    if not parts:
        return np.empty(0, dtype=np.int64)
    if len(parts) == 1:
        return parts[0]
    return np.unique(np.concatenate(parts))


def _delta_topk(
    delta: SpaceDelta,
    metric: str,
    queries: np.ndarray,
    k: int,
    excluded_ids: list[set],
    higher: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` of the upserted vectors per query: scores (m, k'), ids (m, k') with NaN
    scores where a query has fewer (excluded ids left out).

    A faiss flat index over the delta (one OpenMP thread for a few queries, as the main search
    runs) over-fetches by the number of excluded ids the delta holds, which are then dropped.
    """
    m = len(queries)
    n = delta.size
    if n == 0:
        return np.empty((m, 0), np.float32), np.empty((m, 0), delta.ids.dtype)
    q = np.ascontiguousarray(queries, dtype=np.float32)
    if metric == "cosine":
        norms = np.linalg.norm(q, axis=1, keepdims=True)
        q = q / np.where(norms == 0, 1, norms)
    slots = [[delta.slot_of[key] for key in out if key in delta.slot_of] for out in excluded_ids]
    kk = min(n, k + max(len(s) for s in slots))
    scores, found = _search_on_threads(delta.flat(metric), q, kk, None)
    for i, drop in enumerate(slots):
        if drop:
            gone = np.isin(found[i], drop)
            scores[i][gone] = np.nan
    order = np.argsort(np.isnan(scores), axis=1, kind="stable")[:, : min(k, n)]
    scores = np.take_along_axis(scores, order, axis=1)
    found = np.take_along_axis(found, order, axis=1)
    missing = found < 0
    scores[missing] = np.nan
    return scores, delta.ids[np.where(missing, 0, found)]


def _merge(base_ids, base_scores, d_ids, d_scores, k: int, higher: bool):
    """Merge two padded answers (NaN score = no result) by score, best first, width ``k'``."""
    if d_ids.shape[1] == 0:
        return base_ids, base_scores
    ids = np.concatenate([base_ids, d_ids], axis=1)
    scores = np.concatenate([base_scores, d_scores], axis=1)
    # NaN sorts last either way; stable, so ties keep the main index's answer first
    key = np.where(np.isnan(scores), np.inf, -scores if higher else scores)
    order = np.argsort(key, axis=1, kind="stable")[:, :k]
    ids = np.take_along_axis(ids, order, axis=1)
    scores = np.take_along_axis(scores, order, axis=1)
    width = int((~np.isnan(scores)).sum(axis=1).max()) if scores.size else 0
    ids, scores = ids[:, :width], scores[:, :width]
    pad = np.isnan(scores)
    if pad.any():
        ids = ids.copy()
        ids[pad] = -1 if ids.dtype == np.int64 else None
    return ids, scores
