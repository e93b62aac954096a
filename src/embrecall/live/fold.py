"""A version plus its pending changes, as plain inputs of a build: what compaction folds.

:func:`fold` returns the embeddings, catalogue and interactions that a fresh build over the
changed data would read, so a compacted version is built, saved and published exactly like any
other (its indexes chosen and tuned again, its canary checked by the publish).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from embrecall.catalog import Catalog
from embrecall.embeddings import Embeddings
from embrecall.interactions import Interactions
from embrecall.live.delta import Snapshot, SpaceDelta

if TYPE_CHECKING:
    from embrecall.recommender import Recommender


@dataclass(frozen=True)
class Folded:
    """Build inputs with every pending change applied."""

    items: Embeddings
    users: Embeddings | None
    catalog: Catalog | None
    interactions: Interactions | None


def fold(rec: Recommender, snap: Snapshot) -> Folded:
    """The artifact's data with ``snap``'s changes applied (deleted ids gone, upserts in)."""
    items = _space(rec.items, snap.spaces["items"], "items")
    users = _space(rec.users, snap.spaces["users"], "users") if rec.users is not None else None
    return Folded(items, users, _catalog(rec, snap, items), _interactions(rec, snap, items, users))


def rebuild(
    rec: Recommender,
    snap: Snapshot,
    *,
    exact: bool = False,
    specs: dict[str, str] | None = None,
    progress=None,
):
    """A recommender over ``rec``'s data with ``snap``'s changes applied, with the same query
    kinds and metrics. Indexes: ``specs`` (query kind -> spec) when given; else each kind's
    spec kept (one chosen ``auto`` chosen again for the new size), or, with ``exact``, ``Flat``
    (cheap: nothing to train)."""
    from embrecall.recommender import Recommender

    folded = fold(rec, snap)
    if specs is None:
        specs = {}
        for name, kind in rec.query_kinds.items():
            notes = rec.indexes[kind.index_name].notes
            specs[name] = "Flat" if exact else "auto" if "choice" in notes else kind.spec
    return Recommender.build(
        folded.items,
        folded.users,
        catalog=folded.catalog,
        interactions=folded.interactions,
        metrics={name: kind.metric for name, kind in rec.query_kinds.items()},
        index=specs,
        progress=progress,
    )


def compacted(published: str, previous: str, snap: Snapshot, new_rec) -> dict[str, Any]:
    """What ``embrecall compact`` reports of the version it published."""
    return {
        "version": published,
        "previous": previous,
        "folded_records": snap.applied,
        "items": len(new_rec.items),
        "users": len(new_rec.users) if new_rec.users is not None else 0,
    }


def _space(base: Embeddings, delta: SpaceDelta, name: str) -> Embeddings:
    keep = np.ones(len(base), dtype=bool)
    keep[delta.hidden_rows] = False
    ids = np.concatenate([base.ids[keep], delta.ids])
    vectors = np.concatenate([base.vectors[keep], delta.vectors])
    return Embeddings(ids, vectors, source=f"{name} with live changes")


def _catalog(rec: Recommender, snap: Snapshot, items: Embeddings) -> Catalog | None:
    if rec.catalog is None and not snap.fields:
        return None
    frame = rec.catalog.frame if rec.catalog is not None else pd.DataFrame(index=pd.Index([]))
    frame = frame[frame.index.isin(items.ids)]
    if snap.fields:
        extra = pd.DataFrame.from_dict(dict(snap.fields), orient="index")
        extra = extra[extra.index.isin(items.ids)]
        # the fields given with an upsert replace the catalogue's row of that id
        frame = pd.concat([frame[~frame.index.isin(extra.index)], extra])
    frame.index.name = rec.catalog.id_column if rec.catalog is not None else "id"
    if frame.empty:
        return None
    return Catalog(frame, source="catalog with live changes")


def _interactions(
    rec: Recommender, snap: Snapshot, items: Embeddings, users: Embeddings | None
) -> Interactions | None:
    if users is None or (rec.seen is None and not snap.seen):
        return None
    user_ids: list = []
    item_ids: list = []
    if rec.seen is not None:
        counts = np.diff(rec.seen.indptr)
        owners = np.repeat(rec.users.ids, counts).tolist()
        pairs = zip(owners, rec.items.ids[rec.seen.item_rows].tolist())
        for user, item in pairs:
            if user not in snap.seen_reset:  # deleted since: a user added again starts afresh
                user_ids.append(user)
                item_ids.append(item)
    for user, seen in snap.seen.items():
        user_ids.extend([user] * len(seen))
        item_ids.extend(seen)
    inter = Interactions(user_ids, item_ids, source="seen items with live changes")
    # pairs whose user or item is gone are dropped by the build, like any unknown id
    keep = (users.lookup_rows(inter.users) >= 0) & (items.lookup_rows(inter.items) >= 0)
    if not keep.any():
        return None
    return Interactions(inter.users[keep], inter.items[keep], source=inter.source)
