"""Live changes stored in Milvus: a version's entities changed with Milvus's own ``upsert`` and
``delete``, and a change-record collection that every serving process polls.

Per version ``V`` (beside ``P__V__items``, ``P__V__users``, ``P__V__seen``)::

    P__enc(V)__changes   key (varchar primary key: ``<ns since epoch>-<writer>-<n>``), at_ms,
                         record (the change as JSON, as in a version root's log)

**Rows.** An id the published version holds keeps its row (the primary key) forever: an upsert
replaces that entity. A new id gets the row :func:`new_row` derives from the id itself, so two
writers in different processes give it the same row without talking to each other, and an
upsert of it is idempotent.

**Write order.** A writer changes the entities first, then inserts the records, then flushes
both, and only then acknowledges. A reader that sees a record therefore finds its entity
change already in Milvus, and readers settle every id a batch names from the entity itself
(:func:`settle`): whichever of two concurrent upserts Milvus kept is what every process ends
up with, whatever order their records sort in.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from embrecall.errors import InvalidArgumentError
from embrecall.milvus import store
from embrecall.milvus.index import PK

log = logging.getLogger("embrecall")

NEW_ROWS = 1 << 62  # rows of ids added live start here; published rows are 0..n-1
CHANGES = "changes"
_RECORD_MAX = 65_535
_QUERY_LIMIT = 16_384  # Milvus caps one query's limit here
_SETTLE_CHUNK = 4_096
STRONG = "Strong"  # reads that must see every acknowledged write


def changes_name(prefix: str, version: str) -> str:
    return store.collection_name(prefix, version, CHANGES)


def new_row(key: object) -> int:
    """The row of an id the published version does not hold: 2**62 plus 62 bits of its hash
    (a collision needs ~2**31 live ids)."""
    digest = hashlib.blake2b(json.dumps(key).encode(), digest_size=8).digest()
    return NEW_ROWS + (int.from_bytes(digest, "big") & (NEW_ROWS - 1))


def ensure_changes(client: Any, name: str) -> None:
    """Create (once) and load the change-record collection ``name``."""
    from pymilvus import DataType

    if not store.guarded("listing collections", client.has_collection, name):
        schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("key", DataType.VARCHAR, is_primary=True, max_length=64)
        schema.add_field("at_ms", DataType.INT64)
        schema.add_field("record", DataType.VARCHAR, max_length=_RECORD_MAX)
        schema.add_field("_v", DataType.FLOAT_VECTOR, dim=2)  # Milvus wants one vector field
        params = client.prepare_index_params()
        params.add_index(field_name="_v", index_type="FLAT", metric_type="L2")
        try:
            client.create_collection(name, schema=schema, index_params=params)
        except Exception:  # another process created it first
            if not store.guarded("listing collections", client.has_collection, name):
                raise
    store.ensure_loaded(client, name)


def stamp_ms(key: str) -> int:
    """The time a record key was made, in ms since the epoch."""
    return int(key[:20]) // 1_000_000


class Keys:
    """Record keys of one writer: sortable by time, unique across processes."""

    def __init__(self) -> None:
        self.writer = os.urandom(4).hex()
        self.n = 0

    def next(self) -> str:
        self.n += 1
        return f"{time.time_ns():020d}-{self.writer}-{self.n:08d}"


def encode(records: Iterable[Mapping[str, Any]], keys: Keys) -> list[dict[str, Any]]:
    """Records as rows of the change collection; a record too long for it is refused."""
    rows = []
    for record in records:
        text = json.dumps(record, separators=(",", ":"), allow_nan=False)
        if len(text) > _RECORD_MAX:
            raise InvalidArgumentError(
                f"a change of {len(text)} characters, at most {_RECORD_MAX} fit a Milvus record"
            )
        key = record.get("key")
        if key is None:
            key = keys.next()
            at_ms = stamp_ms(key)
        else:  # carried from another version with its key: stored now, so polls find it
            at_ms = int(time.time() * 1000)
            text = json.dumps(
                {k: v for k, v in record.items() if k != "key"},
                separators=(",", ":"),
                allow_nan=False,
            )
        rows.append({"key": key, "at_ms": at_ms, "record": text, "_v": [0.0, 0.0]})
    return rows


def write(
    client: Any,
    changes: str,
    spaces: Mapping[str, Any],
    records: list[Mapping[str, Any]],
    keys: Keys,
    *,
    flush: bool = True,
) -> list[str]:
    """Apply ``records`` to the entities natively, then store them; durable when it returns.

    ``spaces``: space -> :class:`EntityWriter`. Returns the keys the records got.

    ``flush``: flush the collections written before returning (Milvus Lite). On a Milvus
    server an acknowledged write is already in its write-ahead log (the log broker), and a
    flush per change would seal a tiny segment each time, which Milvus advises against.
    """
    rows = encode(records, keys)
    touched: set[str] = set()
    for space, writer in spaces.items():
        mine = [r for r in records if r.get("space") == space and r["op"] in ("upsert", "delete")]
        if mine:
            writer.apply(mine)
            touched.add(writer.collection)
    store.guarded(f"inserting into {changes}", client.upsert, changes, rows)
    if flush:  # before the answer: the acknowledgement promises the change survives a restart
        for name in (*sorted(touched), changes):
            store.guarded(f"flushing {name}", client.flush, name)
    return [r["key"] for r in rows]


def read(client: Any, changes: str, since_ms: int | None = None) -> list[dict[str, Any]]:
    """Records stored at or after ``since_ms`` (all when None), in key order, each with its
    ``key``."""
    expr = "at_ms >= 0" if since_ms is None else f"at_ms >= {int(since_ms)}"
    fields = ["key", "record"]
    rows: list[dict] = []
    if since_ms is not None:  # a poll: one query, unless more than a query's limit came in
        rows = store.guarded(
            f"reading {changes}",
            client.query,
            changes,
            filter=expr,
            output_fields=fields,
            limit=_QUERY_LIMIT,
            consistency_level=STRONG,
        )
    if since_ms is None or len(rows) >= _QUERY_LIMIT:
        logging.getLogger("pymilvus").setLevel(logging.ERROR)  # a warning per iterator
        it = store.guarded(
            f"reading {changes}",
            client.query_iterator,
            changes,
            batch_size=4096,
            filter=expr,
            output_fields=fields,
            consistency_level=STRONG,
        )
        rows = []
        try:
            while batch := store.guarded(f"reading {changes}", it.next):
                rows.extend(batch)
        finally:
            it.close()
    out = []
    for row in sorted(rows, key=lambda r: r["key"]):
        record = json.loads(row["record"])
        record["key"] = row["key"]
        out.append(record)
    return out


class EntityWriter:
    """Writes upserts and deletes of one space into its collection of one version.

    Parameters
    ----------
    client : pymilvus.MilvusClient
    meta : the space's manifest entry (collection, vector_field, count, id_kind)
    vector_fields : every vector field of the collection (each holds the raw vector)
    row_of : id -> row (published row, else :func:`new_row`)
    catalog : the manifest's catalogue entry (items only), or None
    current_fields : id -> catalogue fields held now (upserts without fields keep them)
    """

    def __init__(
        self,
        client: Any,
        meta: Mapping[str, Any],
        vector_fields: list[str],
        row_of,
        catalog: Mapping[str, Any] | None,
        current_fields,
    ) -> None:
        self.client = client
        self.collection = meta["collection"]
        self.meta = meta
        self.vector_fields = vector_fields
        self.row_of = row_of
        self.catalog = catalog
        self.current_fields = current_fields

    def apply(self, records: list[Mapping[str, Any]]) -> None:
        last: dict[Any, Mapping[str, Any]] = {}
        for r in records:  # the last change of an id in a batch is the one that stands
            last.pop(r["id"], None)
            last[r["id"]] = r
        upserts = [self._entity(r) for r in last.values() if r["op"] == "upsert"]
        deleted = [self.row_of(key) for key, r in last.items() if r["op"] == "delete"]
        if upserts:
            store.guarded(
                f"upserting into {self.collection}", self.client.upsert, self.collection, upserts
            )
        if deleted:
            expr = f"{PK} in [{','.join(map(str, deleted))}]"
            store.guarded(
                f"deleting from {self.collection}", self.client.delete, self.collection, filter=expr
            )

    def _entity(self, r: Mapping[str, Any]) -> dict[str, Any]:
        vector = np.asarray(r["vector"], dtype=np.float32)
        entity: dict[str, Any] = {PK: self.row_of(r["id"]), "id": r["id"]}
        for field in self.vector_fields:
            entity[field] = vector
        if self.catalog:
            fields = r.get("fields")
            if fields is None:
                fields = self.current_fields(r["id"])
            entity["has_record"] = bool(fields)
            for field, column in self.catalog["columns"].items():
                entity[field] = _typed(
                    fields.get(column) if fields else None, self.catalog["types"][field]
                )
        return entity


def _typed(value: Any, kind: str) -> Any:
    """``value`` as the column's Milvus type, or null when it is not one (the change record
    keeps the value as given; serving reads fields from the records)."""
    if value is None:
        return None
    if kind == "INT64":
        return value if isinstance(value, int) and not isinstance(value, bool) else None
    if kind == "DOUBLE":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return float(value) if ok else None
    if kind == "BOOL":
        return value if isinstance(value, bool) else None
    if kind == "VARCHAR":
        return value if isinstance(value, str) else None
    return json.loads(json.dumps(value, default=str))


def settle(
    client: Any, meta: Mapping[str, Any], records: list[Mapping[str, Any]], row_of=None
) -> list[dict[str, Any]]:
    """Upserts and deletes of one space as Milvus holds them now: one record per id, an upsert
    with the entity's vector (the record's fields kept) when the entity exists, else a delete.

    This is what makes concurrent writers safe: the record order of two writes of one id may
    differ from the order Milvus applied them, the entity never does.

    ``row_of``: id -> row of this version (entities are looked up by row); None looks them up
    by id (another version's collection, whose rows this process does not know).
    """
    last: dict[Any, Mapping[str, Any]] = {}
    for r in records:
        last.pop(r["id"], None)
        last[r["id"]] = r
    if not last:
        return []
    keys = list(last)
    found: list[dict] = []
    for start in range(0, len(keys), _SETTLE_CHUNK):  # a query answers at most its limit
        chunk = keys[start : start + _SETTLE_CHUNK]
        if row_of is not None:
            expr = f"{PK} in [{','.join(str(row_of(key)) for key in chunk)}]"
        else:
            expr = f"id in [{','.join(json.dumps(key) for key in chunk)}]"
        found += store.guarded(
            f"reading {meta['collection']}",
            client.query,
            meta["collection"],
            filter=expr,
            output_fields=[PK, "id", meta["vector_field"]],
            limit=len(chunk),
            consistency_level=STRONG,
        )
    held = {e["id"]: e for e in found if e["id"] in last}
    out = []
    for key, r in last.items():
        entity = held.get(key)
        if entity is None:
            out.append({"op": "delete", "space": r["space"], "id": key, "at": r.get("at")})
            continue
        settled = {"op": "upsert", "space": r["space"], "id": key, "at": r.get("at")}
        settled["vector"] = [float(x) for x in entity[meta["vector_field"]]]
        if r["op"] == "upsert" and r.get("fields") is not None:
            settled["fields"] = r["fields"]
        out.append(settled)
    return out
