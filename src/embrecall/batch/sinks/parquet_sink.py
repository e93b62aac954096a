"""Parquet sink: one folder per version, one parquet file per block, a CURRENT file to follow.

Layout (the folder is what you load elsewhere: Spark, pandas, BigQuery, a warehouse)::

    OUT/CURRENT                          the current version's name, replaced atomically
    OUT/VERSION/_meta.json               k, metrics, id kinds, artifact, status, fingerprint
    OUT/VERSION/u2i/part-000012.parquet  columns id, ids (list), scores (list<float>)
    OUT/VERSION/_SUCCESS                 written when every block is there, before the flip

A block's file is written under a temporary name and renamed, so a file that exists is whole,
and the files that exist are the blocks a resumed run skips. After a flip the previous version
is kept (a reader may be in it) and older complete ones are deleted.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from embrecall._durable import atomic_write_text
from embrecall.batch.sinks.base import Sink, SinkError, SinkReader, SinkRun, new_version

CURRENT = "CURRENT"
META = "_meta.json"
SUCCESS = "_SUCCESS"


class ParquetSink(Sink):
    """Results as parquet files under the directory ``path`` (created when missing)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.root = Path(path)
        self.url = str(self.root)
        self.storage = "on disk (before compression)"

    def check(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SinkError(f"cannot write to {self.root}: {exc}") from None
        if not os.access(self.root, os.W_OK):
            raise SinkError(f"cannot write to {self.root}: permission denied")

    def open_run(self, fingerprint: str, meta: dict[str, Any], *, restart: bool) -> ParquetRun:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            pending = None if restart else self._pending(fingerprint)
            version = pending or new_version(fingerprint)
            folder = self.root / version
            if pending is None:
                folder.mkdir()
                atomic_write_text(
                    folder / META,
                    json.dumps({**meta, "version": version, "status": "writing"}, indent=2),
                )
        except OSError as exc:
            raise SinkError(f"cannot write to {self.root}: {exc}") from None
        return ParquetRun(self, version, meta, resumed=pending is not None)

    def reader(self) -> ParquetReader:
        return ParquetReader(self)

    def versions(self) -> list[str]:
        """Version folders present, oldest first."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / META).is_file())

    def _pending(self, fingerprint: str) -> str | None:
        for version in reversed(self.versions()):
            folder = self.root / version
            if (folder / SUCCESS).exists():
                continue
            meta = json.loads((folder / META).read_text())
            if meta.get("fingerprint") == fingerprint:
                return version
        return None


class ParquetRun(SinkRun):
    def __init__(self, sink: ParquetSink, version: str, meta: dict, resumed: bool) -> None:
        self.sink, self.version, self.meta, self.resumed = sink, version, meta, resumed
        self.folder = sink.root / version

    def done_blocks(self) -> set[str]:
        done = set()
        for key in self.meta["blocks"]:
            for f in (self.folder / key).glob("part-*.parquet"):
                done.add(f"{key}:{int(f.stem.split('-')[1])}")
        return done

    def write_block(self, block, query_key, query_ids, ids, scores, counts) -> None:
        number = int(block.split(":")[1])
        table = block_table(query_ids, ids, scores, counts)
        folder = self.folder / query_key
        try:
            folder.mkdir(exist_ok=True)
            target = folder / f"part-{number:06d}.parquet"
            tmp = folder / f".{target.name}.tmp"
            # No dictionaries (item ids rarely repeat within a block: the attempt cost 2/3 of
            # the write time) and statistics on the query id only, which lookups filter on.
            pq.write_table(table, tmp, use_dictionary=False, write_statistics=["id"])
            os.replace(tmp, target)  # a part file that exists is a whole block
        except OSError as exc:
            raise SinkError(f"cannot write block {block} to {folder}: {exc}") from None

    def commit(self) -> None:
        root = self.sink.root
        expected = sum(self.meta["blocks"].values())
        have = len(self.done_blocks())
        if have < expected:
            raise SinkError(f"run {self.version} holds {have} of {expected} blocks; not flipped")
        try:
            previous = read_current(root)
            stored = {
                **self.meta,
                "version": self.version,
                "status": "complete",
                "completed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            atomic_write_text(self.folder / META, json.dumps(stored, indent=2))
            atomic_write_text(self.folder / SUCCESS, "")
            atomic_write_text(root / CURRENT, self.version + "\n")  # the flip
            for old in self.sink.versions():
                if old in (self.version, previous):
                    continue
                meta = json.loads((root / old / META).read_text())
                replaced = meta.get("fingerprint") == self.meta["fingerprint"]
                if (root / old / SUCCESS).exists() or replaced:
                    shutil.rmtree(root / old, ignore_errors=True)
        except OSError as exc:
            raise SinkError(f"cannot make run {self.version} current in {root}: {exc}") from None


class ParquetReader(SinkReader):
    def __init__(self, sink: ParquetSink) -> None:
        self.sink = sink

    def current(self) -> str | None:
        return read_current(self.sink.root)

    def meta(self, version: str) -> dict[str, Any]:
        path = self.sink.root / version / META
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            raise SinkError(f"{path} is not there (version {version} retired?)") from None

    def get_many(self, query_key: str, ids: Sequence, version: str) -> list:
        folder = self.sink.root / version / query_key
        if not folder.is_dir():
            return [None] * len(ids)
        dataset = pads.dataset(str(folder), format="parquet")
        id_type = dataset.schema.field("id").type
        wanted = pa.array(list(ids), type=id_type)
        # Row-group statistics let the filter skip most files: blocks hold ranges of users.
        table = dataset.to_table(filter=pc.field("id").isin(wanted))
        found = {}
        for qid, res_ids, res_scores in zip(
            table.column("id").to_pylist(),
            table.column("ids").to_pylist(),
            table.column("scores").to_pylist(),
        ):
            kind = object if res_ids and isinstance(res_ids[0], str) else np.int64
            found[qid] = (np.array(res_ids, dtype=kind), np.array(res_scores, dtype=np.float32))
        return [found.get(i) for i in wanted.to_pylist()]


def block_table(query_ids, ids: np.ndarray, scores: np.ndarray, counts: np.ndarray) -> pa.Table:
    """One block as an Arrow table: ``id``, ``ids`` (list), ``scores`` (list<float>)."""
    offsets = np.zeros(len(counts) + 1, dtype=np.int32)
    np.cumsum(counts, out=offsets[1:])
    valid = np.arange(ids.shape[1])[None, :] < np.asarray(counts)[:, None]
    flat_ids = ids[valid]  # row-major: each row's real results, in order
    query_ids = np.asarray(query_ids)
    if ids.dtype == object:
        id_values = pa.array(flat_ids.tolist(), type=pa.string())
    else:
        id_values = pa.array(flat_ids.astype(np.int64), type=pa.int64())
    if query_ids.dtype == object:
        query = pa.array(query_ids.tolist(), type=pa.string())
    else:
        query = pa.array(query_ids.astype(np.int64), type=pa.int64())
    off = pa.array(offsets)
    return pa.table(
        {
            "id": query,
            "ids": pa.ListArray.from_arrays(off, id_values),
            "scores": pa.ListArray.from_arrays(off, pa.array(scores[valid], type=pa.float32())),
        }
    )


def read_current(root: Path) -> str | None:
    try:
        return (root / CURRENT).read_text().strip() or None
    except FileNotFoundError:
        return None
