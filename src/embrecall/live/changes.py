"""Change requests checked against a version, as log records: the one place that validates them.

The HTTP admin routes and ``embrecall update`` both call these, so a change is refused the same
way wherever it comes from: a vector of the wrong dimension, NaN, infinity or overflow, an
all-zero vector in a space a cosine query kind reads, fields that are not a JSON object, and a
delete or a seen list naming an id the version does not hold now.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from embrecall.catalog import json_safe
from embrecall.embeddings import check_query_vectors
from embrecall.errors import InvalidArgumentError, InvalidVectorError, UnknownIdError
from embrecall.live.changelog import Record

if TYPE_CHECKING:
    from embrecall.live.overlay import LiveOverlay
    from embrecall.recommender import Recommender

_WHAT = {"items": "item id", "users": "user id"}


def upsert(
    rec: Recommender,
    space: str,
    raw_id: object,
    vector: Sequence[float] | np.ndarray,
    fields: Mapping[str, Any] | None = None,
) -> Record:
    """A record that adds ``raw_id`` to ``space`` or replaces its vector (and fields)."""
    emb = rec.space(space, f"{space} updates")
    key = emb.coerce_id(raw_id, what=_WHAT[space])
    cosine = any(
        k.metric == "cosine" and space in (k.query_space, k.target_space)
        for k in rec.query_kinds.values()
    )
    try:
        arr, single = check_query_vectors(vector, emb.dim, nonzero=cosine)
    except InvalidVectorError as exc:
        raise InvalidVectorError(str(exc).replace("query vector", "vector")) from None
    if not single:
        raise InvalidVectorError(f"vector must be one list of {emb.dim} numbers")
    record: Record = {
        "op": "upsert",
        "space": space,
        "id": _json_id(key),
        "vector": [float(x) for x in arr[0]],
        "at": time.time(),
    }
    if fields is not None:
        if space != "items":
            raise InvalidArgumentError("only items have catalogue fields")
        if not isinstance(fields, Mapping):
            raise InvalidArgumentError("fields must be a JSON object of catalogue fields")
        record["fields"] = {str(name): json_safe(value) for name, value in fields.items()}
    return record


def delete(rec: Recommender, live: LiveOverlay | None, space: str, raw_id: object) -> Record:
    """A record that removes ``raw_id`` from ``space``; :class:`UnknownIdError` when not held."""
    emb = rec.space(space, f"{space} updates")
    key = emb.coerce_id(raw_id, what=_WHAT[space])
    _require(rec, live, space, [key])
    return {"op": "delete", "space": space, "id": _json_id(key), "at": time.time()}


def seen(
    rec: Recommender, live: LiveOverlay | None, raw_user: object, raw_items: Sequence
) -> Record:
    """A record that adds items to what a user has seen (recommend leaves them out at once)."""
    users = rec.space("users", "seen items")
    user = users.coerce_id(raw_user, what="user id")
    if isinstance(raw_items, (str, bytes)) or not isinstance(raw_items, Sequence | np.ndarray):
        raise InvalidArgumentError("items must be a list of item ids")
    if len(raw_items) == 0:
        raise InvalidArgumentError("items must name at least one item id")
    items = [rec.items.coerce_id(i, what="item id") for i in raw_items]
    _require(rec, live, "users", [user])
    _require(rec, live, "items", items)
    return {
        "op": "seen",
        "space": "users",
        "id": _json_id(user),
        "items": [_json_id(i) for i in dict.fromkeys(items)],
        "at": time.time(),
    }


def _require(rec: Recommender, live: LiveOverlay | None, space: str, keys: list) -> None:
    """Refuse ids that ``space`` does not hold now (404 over HTTP)."""
    if live is not None:
        missing = [k for k in keys if not live.holds(rec, space, k)]
    else:
        emb = rec.space(space)
        rows = emb.lookup_rows(keys)
        missing = [k for k, r in zip(keys, rows) if r < 0]
    if missing:
        shown = ", ".join(repr(m) for m in missing[:5])
        more = f" (and {len(missing) - 5} more)" if len(missing) > 5 else ""
        raise UnknownIdError(f"unknown {_WHAT[space]} {shown}{more}", missing)


def _json_id(key: object) -> int | str:
    return key.item() if isinstance(key, np.generic) else key  # type: ignore[return-value]
