"""The layout of one version in Milvus: its collections, how a ``Recommender`` is written into
them, and how one is read back.

Per version ``V`` and prefix ``P`` (``enc(V)``: ``_`` -> ``_u``, ``.`` -> ``_d``, ``-`` -> ``_h``,
so the name is reversible and never holds ``__``)::

    P__enc(V)__items   row (int64 primary key), id, one vector field per index (v_ip, v_cosine,
                       v_l2; a space without an index gets v_raw), the catalogue's columns as
                       nullable scalar fields (c_0, c_1, ...) and has_record
    P__enc(V)__users   the same without a catalogue
    P__enc(V)__seen    the seen-items CSR: (user_row, item_rows ARRAY) in chunks of 4096
    P__meta            key -> JSON: ``version:V`` (the manifest: spaces, indexes with their kind
                       and tuned parameters, query kinds, catalogue columns, canary floor, state)
                       and ``history`` (the rollback stack)

Every serving process reads ids, vectors, the catalogue and the seen items into memory at load
(queries by id need the query's vector; results are joined with the catalogue) and leaves only
the nearest-neighbour search to Milvus.
"""

from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from embrecall.errors import ArtifactError
from embrecall.milvus.index import MILVUS_METRIC, PK, MilvusIndex
from embrecall.milvus.target import MilvusUnavailableError, one_line

if TYPE_CHECKING:
    from embrecall.recommender import Recommender

log = logging.getLogger("embrecall")

FORMAT = "embrecall-milvus"
FORMAT_VERSION = 1
META = "meta"
_ID_MAX_LENGTH = 4096
_TEXT_MAX_LENGTH = 65_535
_INSERT_ROWS = 2_000
_READ_ROWS = 10_000  # a query's limit is capped (16,384 on Milvus)
_SEEN_CHUNK = 4_096  # Milvus's largest ARRAY capacity
_LOAD_TRIES = 3
_ESCAPES = {"_": "_u", ".": "_d", "-": "_h"}


def encode_version(version: str) -> str:
    return "".join(_ESCAPES.get(ch, ch) for ch in version)


def decode_version(text: str) -> str:
    back = {v[1]: k for k, v in _ESCAPES.items()}
    out, i = [], 0
    while i < len(text):
        if text[i] == "_" and i + 1 < len(text):
            out.append(back.get(text[i + 1], "?"))
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def collection_name(prefix: str, version: str, part: str) -> str:
    return f"{prefix}__{encode_version(version)}__{part}"


def version_of(prefix: str, collection: str) -> str | None:
    """The version a collection of ours belongs to, or None when it is not one."""
    parts = collection.split("__")
    if len(parts) != 3 or parts[0] != prefix or not parts[1]:
        return None
    return decode_version(parts[1])


def meta_name(prefix: str) -> str:
    return f"{prefix}__{META}"


def alias_name(prefix: str, space: str) -> str:
    return f"{prefix}__{space}"


def guarded(what: str, call, *args: Any, **kwargs: Any) -> Any:
    """Run one client call; a failure becomes a one-line :class:`MilvusUnavailableError`."""
    try:
        return call(*args, **kwargs)
    except MilvusUnavailableError:
        raise
    except Exception as exc:
        raise MilvusUnavailableError(f"{what}: {one_line(exc)}") from None


def ensure_loaded(client: Any, name: str) -> None:
    """Load ``name`` unless it is loaded: a reader must not load again a collection that publish
    loaded with several replicas (Milvus refuses a load that changes the replica count)."""
    state = guarded(f"reading the load state of {name}", client.get_load_state, name)
    if str(state.get("state")) != "Loaded":
        _load(client, name)


def _load(client: Any, name: str, **options: Any) -> None:
    """``load_collection``, asked again after a moment when it fails: Milvus Lite writes index
    files of a flushed collection in a background thread, and a load that meets one half
    written fails although a second one succeeds."""
    for attempt in range(_LOAD_TRIES):
        try:
            client.load_collection(name, **options)
            return
        except Exception as exc:
            if attempt == _LOAD_TRIES - 1:
                raise MilvusUnavailableError(f"loading {name}: {one_line(exc)}") from None
            time.sleep(0.2 * (attempt + 1))


def _create(client: Any, name: str, schema: Any, params: Any, placement: dict) -> None:
    options = {"num_shards": placement["shards"]} if placement.get("shards") else {}
    guarded(
        f"creating {name}",
        client.create_collection,
        name,
        schema=schema,
        index_params=params,
        **options,
    )


def _reload(client: Any, name: str, placement: dict) -> None:
    # Searched as a reader will search it: rows inserted into a loaded collection can be
    # answered by brute force until its segments are indexed and loaded again, and tuning must
    # measure the index, not that scan.
    options = {"replica_number": placement["replicas"]} if placement.get("replicas") else {}
    guarded(f"releasing {name}", client.release_collection, name)
    _load(client, name, **options)


# -- meta ------------------------------------------------------------------------------------
def ensure_meta(client: Any, prefix: str) -> None:
    from pymilvus import DataType

    name = meta_name(prefix)
    if guarded("listing collections", client.has_collection, name):
        return
    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("key", DataType.VARCHAR, is_primary=True, max_length=512)
    schema.add_field("value", DataType.VARCHAR, max_length=_TEXT_MAX_LENGTH)
    schema.add_field("_v", DataType.FLOAT_VECTOR, dim=2)  # Milvus wants one vector field
    params = client.prepare_index_params()
    params.add_index(field_name="_v", index_type="FLAT", metric_type="L2")
    guarded(f"creating {name}", client.create_collection, name, schema=schema, index_params=params)


def read_meta(client: Any, prefix: str, keys: list[str] | None = None) -> dict[str, Any]:
    """key -> decoded JSON of the meta rows (all of them, or ``keys``)."""
    name = meta_name(prefix)
    if not guarded("listing collections", client.has_collection, name):
        return {}
    if keys is not None:
        expr = "key in [" + ",".join(json.dumps(k) for k in keys) + "]"
    else:
        expr = 'key != ""'
    rows = guarded(
        f"reading {name}",
        client.query,
        name,
        filter=expr,
        output_fields=["key", "value"],
        limit=_READ_ROWS,
    )
    return {row["key"]: json.loads(row["value"]) for row in rows}


def write_meta(client: Any, prefix: str, key: str, value: Any) -> None:
    text = json.dumps(value)
    if len(text) > _TEXT_MAX_LENGTH:
        raise ArtifactError(
            f"{key}: {len(text)} characters of metadata, at most {_TEXT_MAX_LENGTH}"
        )
    name = meta_name(prefix)
    guarded(
        f"writing {name}",
        client.upsert,
        name,
        [{"key": key, "value": text, "_v": [0.0, 0.0]}],
    )
    guarded(f"flushing {name}", client.flush, name)


def delete_meta(client: Any, prefix: str, key: str) -> None:
    name = meta_name(prefix)
    guarded(f"deleting from {name}", client.delete, name, filter=f"key == {json.dumps(key)}")


# -- writing ---------------------------------------------------------------------------------
def write_space(
    client: Any,
    name: str,
    ids: np.ndarray,
    vectors: np.ndarray,
    fields: dict[str, tuple[str, str, dict]],
    catalog: dict[str, Any] | None = None,
    placement: dict[str, int | None] | None = None,
) -> None:
    """Create collection ``name`` and insert one entity per row.

    ``placement``: ``{"shards": n, "replicas": r}`` (None: the server's defaults).

    ``fields``: vector field -> (metric, Milvus index kind, build params). ``catalog``: what
    :func:`catalog_fields` made, for the items space.
    """
    from pymilvus import DataType

    string_ids = ids.dtype == object
    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field(PK, DataType.INT64, is_primary=True)
    if string_ids:
        schema.add_field("id", DataType.VARCHAR, max_length=_ID_MAX_LENGTH)
    else:
        schema.add_field("id", DataType.INT64)
    for field in fields:
        schema.add_field(field, DataType.FLOAT_VECTOR, dim=int(vectors.shape[1]))
    if catalog is not None:
        schema.add_field("has_record", DataType.BOOL)
        for field, kind in catalog["types"].items():
            extra = {"max_length": _TEXT_MAX_LENGTH} if kind == "VARCHAR" else {}
            schema.add_field(field, getattr(DataType, kind), nullable=True, **extra)
    params = client.prepare_index_params()
    for field, (metric, kind, build) in fields.items():
        params.add_index(
            field_name=field, index_type=kind, metric_type=MILVUS_METRIC[metric], params=build
        )
    # Indexed from creation: Milvus indexes each segment as it seals (and create_index on a
    # filled collection waits on a timestamp call that Milvus Lite does not implement).
    _create(client, name, schema, params, placement or {})
    n = len(ids)
    for start in range(0, n, _INSERT_ROWS):
        stop = min(n, start + _INSERT_ROWS)
        block = vectors[start:stop]
        rows = []
        for j in range(stop - start):
            row = {PK: start + j, "id": ids[start + j] if string_ids else int(ids[start + j])}
            for field in fields:
                row[field] = block[j]
            if catalog is not None:
                row["has_record"] = bool(catalog["present"][start + j])
                for field, values in catalog["values"].items():
                    row[field] = values[start + j]
            rows.append(row)
        guarded(f"inserting into {name}", client.insert, name, rows)
    guarded(f"flushing {name}", client.flush, name)
    _reload(client, name, placement or {})


def catalog_fields(catalog: Any, item_ids: np.ndarray) -> dict[str, Any]:
    """The catalogue as nullable scalar fields aligned with the item rows.

    Items without a record get nulls and ``has_record`` False; records of ids outside the item
    embeddings are not stored (no query can return them).
    """
    table = catalog._table  # the Arrow table, aligned with catalog.ids
    rows = catalog._index.get_indexer(item_ids)
    present = rows >= 0
    types, values, columns, arrow = {}, {}, {}, {}
    for i, column in enumerate(catalog.columns):
        field = f"c_{i}"
        arrow_type = table.schema.field(column).type
        kind = _milvus_type(arrow_type)
        data = table.column(column).to_pylist()
        out: list[Any] = []
        for ok, r in zip(present, rows):
            value = data[r] if ok else None
            if value is not None and kind == "JSON":
                value = json.loads(json.dumps(value, default=str))
            out.append(value)
        types[field] = kind
        values[field] = out
        columns[field] = column
        arrow[field] = str(arrow_type) if kind != "JSON" else None
    return {
        "types": types,
        "values": values,
        "present": present,
        "manifest": {
            "id_column": catalog.id_column,
            "columns": columns,
            "types": types,
            "arrow": arrow,
            "count": int(present.sum()),
        },
    }


def _milvus_type(arrow_type: pa.DataType) -> str:
    if pa.types.is_integer(arrow_type):
        return "INT64"
    if pa.types.is_floating(arrow_type):
        return "DOUBLE"
    if pa.types.is_boolean(arrow_type):
        return "BOOL"
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return "VARCHAR"
    return "JSON"  # lists, structs, dates: kept as JSON values


def write_seen(
    client: Any,
    name: str,
    indptr: np.ndarray,
    item_rows: np.ndarray,
    placement: dict[str, int | None] | None = None,
) -> None:
    from pymilvus import DataType

    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("chunk", DataType.INT64, is_primary=True)
    schema.add_field("user_row", DataType.INT64)
    schema.add_field(
        "item_rows", DataType.ARRAY, element_type=DataType.INT64, max_capacity=_SEEN_CHUNK
    )
    schema.add_field("_v", DataType.FLOAT_VECTOR, dim=2)
    params = client.prepare_index_params()
    params.add_index(field_name="_v", index_type="FLAT", metric_type="L2")
    _create(client, name, schema, params, placement or {})
    rows, chunk = [], 0
    for user in range(len(indptr) - 1):
        seen = item_rows[indptr[user] : indptr[user + 1]]
        for start in range(0, len(seen), _SEEN_CHUNK):
            part = seen[start : start + _SEEN_CHUNK]
            rows.append(
                {"chunk": chunk, "user_row": user, "item_rows": part.tolist(), "_v": [0.0, 0.0]}
            )
            chunk += 1
        if len(rows) >= _INSERT_ROWS:
            guarded(f"inserting into {name}", client.insert, name, rows)
            rows = []
    if rows:
        guarded(f"inserting into {name}", client.insert, name, rows)
    guarded(f"flushing {name}", client.flush, name)
    _reload(client, name, placement or {})


# -- reading ---------------------------------------------------------------------------------
def read_rows(client: Any, name: str, count: int, fields: list[str], key: str = PK) -> list[dict]:
    """Every entity of ``name`` (``count`` of them, keyed 0..count-1 by ``key``), by key range."""
    out: list[dict] = []
    for start in range(0, count, _READ_ROWS):
        stop = min(count, start + _READ_ROWS)
        out.extend(
            guarded(
                f"reading {name}",
                client.query,
                name,
                filter=f"{key} >= {start} and {key} < {stop}",
                output_fields=fields,
                limit=stop - start,
            )
        )
    return out


def load_version(
    client: Any,
    prefix: str,
    version: str,
    manifest: dict[str, Any],
    deleted: dict[str, dict[int, Any]] | None = None,
) -> Recommender:
    """A :class:`~embrecall.recommender.Recommender` over the collections of ``version``.

    ``deleted``: space -> {row: id} of published rows deleted live (embrecall.milvus.live).
    Their entities are gone from Milvus; they keep their row here, with their id and a zero
    vector, and the live changes mark them deleted, so rows stay the collection's keys.
    """
    from embrecall.embeddings import Embeddings
    from embrecall.recommender import QueryKind, Recommender

    t0 = time.perf_counter()
    if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(f"version {version}: not an {FORMAT} version {FORMAT_VERSION} manifest")
    spaces: dict[str, Embeddings] = {}
    catalog = None
    for space, meta in manifest["spaces"].items():
        name = meta["collection"]
        ensure_loaded(client, name)
        fields = ["row", "id", meta["vector_field"]]
        cat = manifest.get("catalog") if space == "items" else None
        if cat:
            fields += ["has_record", *cat["columns"]]
        rows = read_rows(client, name, meta["count"], fields)
        if deleted is not None:
            rows = _with_deleted_rows(rows, meta, deleted.setdefault(space, {}), name)
        if len(rows) != meta["count"]:
            raise ArtifactError(
                f"{name}: holds {len(rows)} entities, the manifest says {meta['count']}"
            )
        rows.sort(key=lambda r: r[PK])
        ids = np.array(
            [r["id"] for r in rows], dtype=object if meta["id_kind"] == "str" else np.int64
        )
        vectors = np.asarray([r[meta["vector_field"]] for r in rows], dtype=np.float32)
        vectors = vectors.reshape(meta["count"], meta["dim"])
        spaces[space] = Embeddings(ids, vectors, source=meta.get("source", space))
        if cat:
            catalog = _read_catalog(rows, ids, cat, name)
    indexes: dict[str, MilvusIndex] = {}
    for index_name, meta in manifest["indexes"].items():
        indexes[index_name] = MilvusIndex(
            client,
            meta["collection"],
            meta["field"],
            meta["metric"],
            meta["kind"],
            meta["ntotal"],
            meta["dim"],
            meta.get("search_params"),
            notes={k: meta[k] for k in ("choice", "tuning", "build_params") if k in meta},
        )
    kinds = {
        name: QueryKind(
            name,
            q["query_space"],
            q["target_space"],
            q["metric"],
            indexes[q["index"]].spec,
            indexes[q["index"]].search_params,
        )
        for name, q in manifest["queries"].items()
    }
    seen = None
    if manifest.get("seen"):
        seen = _read_seen(client, manifest["seen"], len(spaces["users"]), len(spaces["items"]))
    info = {
        "engine": "milvus",
        "version": version,
        "format_version": manifest["format_version"],
        "embrecall_version": manifest.get("embrecall_version"),
        "created_at": manifest.get("created_at"),
    }
    rec = Recommender(
        spaces["items"], spaces.get("users"), indexes, kinds, catalog=catalog, seen=seen, info=info
    )
    log.info("loaded Milvus version %s in %.2fs", version, time.perf_counter() - t0)
    return rec


def _with_deleted_rows(rows: list[dict], meta: dict, deleted: dict, name: str) -> list[dict]:
    """``rows`` with the published rows deleted live put back as placeholders; ``deleted``
    (row -> id, from the delete records) is left holding the placeholders only."""
    held = {r[PK] for r in rows}
    zero = [0.0] * meta["dim"]
    gaps = {}
    for row in range(meta["count"]):
        if row in held:
            continue
        key = deleted.get(row)
        if key is None:  # a writer killed between its delete and its record: never acknowledged
            key = f"\x00deleted:{row}" if meta["id_kind"] == "str" else -(1 << 62) - row
            log.warning("%s: row %d was deleted without a change record", name, row)
        gaps[row] = key
        rows.append({PK: row, "id": key, meta["vector_field"]: zero, "has_record": False})
    deleted.clear()
    deleted.update(gaps)
    return rows


def _read_catalog(rows: list[dict], ids: np.ndarray, cat: dict, name: str):
    from embrecall.catalog import Catalog

    keep = [i for i, r in enumerate(rows) if r.get("has_record")]
    if not keep:
        return None
    arrays = {}
    for field, column in cat["columns"].items():
        values = [rows[i].get(field) for i in keep]
        arrow = cat["arrow"].get(field)
        arrays[column] = (
            pa.array(values, type=pa.type_for_alias(arrow)) if arrow else pa.array(values)
        )
    return Catalog._build(ids[keep], pa.table(arrays), id_column=cat["id_column"], source=name)


def _read_seen(client: Any, meta: dict, n_users: int, n_items: int):
    from embrecall.interactions import SeenItems

    name = meta["collection"]
    ensure_loaded(client, name)
    rows = read_rows(client, name, meta["chunks"], ["chunk", "user_row", "item_rows"], "chunk")
    rows.sort(key=lambda r: r["chunk"])
    counts = np.zeros(n_users, dtype=np.int64)
    parts = []
    for r in rows:
        counts[r["user_row"]] += len(r["item_rows"])
        parts.append(np.asarray(r["item_rows"], dtype=np.int64))
    indptr = np.concatenate([[0], np.cumsum(counts)])
    item_rows = np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)
    if len(item_rows) != meta["nnz"]:
        raise ArtifactError(
            f"{name}: holds {len(item_rows)} seen items, the manifest says {meta['nnz']}"
        )
    return SeenItems(indptr, item_rows, n_items=n_items)
