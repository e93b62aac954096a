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
from embrecall.live.delta import LiveState, Snapshot, SpaceDelta
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
        if rec.seen is not None and row >= 0:
            base = rec.items.ids[rec.seen.rows_for(row)]
        known = set(base.tolist())
        extra = [i for i in snap.seen.get(key, ()) if i not in known]
        if extra:
            base = np.concatenate([base, np.array(extra, dtype=base.dtype)])
        gone = snap.spaces["items"].deleted
        if gone:  # a removed item is no longer anyone's history
            base = base[[i not in gone for i in base.tolist()]]
        return base

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
                if rec.seen is not None and row >= 0:
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
            rec, snap, kind, vectors, k, excluded_rows, excluded_ids, params, single
        )

    def search(
        self,
        rec: Recommender,
        query_kind: str,
        vector: Any,
        k: int,
        exclude: Any,
        params: Mapping[str, int] | None,
    ) -> Neighbors:
        """``Recommender.search`` (raw vectors) with the pending changes."""
        snap = self.state.snapshot
        kind = rec._kind(query_kind)
        index = rec.indexes[kind.index_name]
        queries, single = check_query_vectors(vector, index.dim, nonzero=kind.metric == "cosine")
        listed = rec._listed(kind, len(queries), exclude, single)
        listed_ids = _listed_ids(exclude, len(queries), single)
        rows = [[r] for r in listed]
        return self._answer(rec, snap, kind, queries, k, rows, listed_ids, params, single)

    def _answer(
        self, rec, snap: Snapshot, kind, queries, k, excluded_rows, excluded_ids, params, single
    ) -> Neighbors:
        from embrecall.recommender import _check_k

        k = _check_k(k)
        delta = snap.spaces[kind.target_space]
        hidden = delta.hidden_rows
        excluded = [_union(rows + [hidden]) for rows in excluded_rows]
        base = rec._run(kind, queries, k, excluded, params, False)
        higher = base.higher_is_better
        d_scores, d_ids = _delta_topk(delta, kind.metric, queries, k, excluded_ids, higher)
        ids, scores = _merge(base.ids, base.scores, d_ids, d_scores, k, higher)
        catalog = _LiveCatalog(rec.catalog, snap) if kind.target_space == "items" else None
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
        )


class _LiveCatalog:
    """The catalogue as results see it: fields given with upserts over the artifact's."""

    def __init__(self, catalog: Catalog | None, snap: Snapshot) -> None:
        self.catalog = catalog
        self.fields = snap.fields

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
    scores where a query has fewer (excluded ids left out)."""
    m = len(queries)
    n = delta.size
    if n == 0:
        return np.empty((m, 0), np.float32), np.empty((m, 0), delta.ids.dtype)
    q = np.asarray(queries, dtype=np.float32)
    if metric == "cosine":
        norms = np.linalg.norm(q, axis=1, keepdims=True)
        scores = (q / np.where(norms == 0, 1, norms)) @ delta.unit.T
    elif metric == "ip":
        scores = q @ delta.vectors.T
    else:  # squared L2, as faiss scores it
        v = delta.vectors
        scores = (q * q).sum(1)[:, None] - 2 * (q @ v.T) + (v * v).sum(1)[None, :]
        np.maximum(scores, 0, out=scores)
    scores = scores.astype(np.float32, copy=False)
    worst = -np.inf if higher else np.inf
    for i, out in enumerate(excluded_ids):
        for key in out:
            slot = delta.slot_of.get(key)
            if slot is not None:
                scores[i, slot] = worst
    kk = min(k, n)
    order_key = -scores if higher else scores
    if kk < n:
        top = np.argpartition(order_key, kk - 1, axis=1)[:, :kk]
    else:
        top = np.broadcast_to(np.arange(n), (m, n)).copy()
    top_scores = np.take_along_axis(scores, top, axis=1)
    top_ids = delta.ids[top]
    top_scores = np.where(np.isinf(top_scores), np.nan, top_scores).astype(np.float32)
    return top_scores, top_ids


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
