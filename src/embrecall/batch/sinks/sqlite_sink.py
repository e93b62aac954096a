"""SQLite sink: the embedded default that needs no server, one file holding every version.

Tables::

    embrecall_pointer(name, version)         name 'current': the version readers follow
    embrecall_runs(version, fingerprint, status, meta)
    embrecall_blocks(version, block)          finished blocks, what a resumed run skips
    "embrecall_results_<VERSION>"(query, id, value)   one row per query id, packed value

A block's rows and its entry in ``embrecall_blocks`` go in one transaction; the flip is one
transaction too, so a reader sees the old version or the new one, whole. The database runs in
WAL mode so that readers are never blocked by the writer. Values are the packed lists of
:mod:`embrecall.batch.codec`, as in Redis.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from embrecall.batch.codec import pack_rows, unpack
from embrecall.batch.sinks.base import Sink, SinkError, SinkReader, SinkRun, new_version

_SCHEMA = """
CREATE TABLE IF NOT EXISTS embrecall_pointer (name TEXT PRIMARY KEY, version TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS embrecall_runs (
    version TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, status TEXT NOT NULL, meta TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS embrecall_blocks (
    version TEXT NOT NULL, block TEXT NOT NULL, PRIMARY KEY (version, block)
) WITHOUT ROWID;
"""
# SQLite caps the variables of one statement; lookups of many ids go in slices of this size.
_IN_SLICE = 500


class SqliteSink(Sink):
    """Results in the SQLite database file ``path`` (created when missing)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.url = str(self.path)

    def connect(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # The writer thread of run_batch uses the connection after this thread made it;
            # the run serialises every use, so sharing it is safe.
            conn = sqlite3.connect(
                self.path, timeout=30, check_same_thread=False, isolation_level=None
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(_SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise SinkError(f"cannot open SQLite database {self.path}: {exc}") from None
        return conn

    def check(self) -> None:
        self.connect().close()

    def open_run(self, fingerprint: str, meta: dict[str, Any], *, restart: bool) -> SqliteRun:
        conn = self.connect()
        with _errors(self, "start a run"):
            row = None
            if not restart:
                row = conn.execute(
                    "SELECT version FROM embrecall_runs WHERE fingerprint = ? AND status = "
                    "'writing' ORDER BY version DESC LIMIT 1",
                    (fingerprint,),
                ).fetchone()
            version = row[0] if row else new_version(fingerprint)
            if row is None:
                stored = json.dumps({**meta, "version": version, "status": "writing"})
                conn.execute("BEGIN IMMEDIATE")
                conn.execute(
                    "INSERT INTO embrecall_runs VALUES (?, ?, 'writing', ?)",
                    (version, fingerprint, stored),
                )
                conn.execute(
                    f"CREATE TABLE {results_table(version)} (query TEXT NOT NULL, id NOT NULL, "
                    "value BLOB NOT NULL, PRIMARY KEY (query, id)) WITHOUT ROWID"
                )
                conn.execute("COMMIT")
        return SqliteRun(self, conn, version, fingerprint, meta, resumed=row is not None)

    def reader(self) -> SqliteReader:
        if not self.path.exists():
            raise SinkError(f"{self.path}: no such SQLite database")
        return SqliteReader(self)


class SqliteRun(SinkRun):
    def __init__(self, sink, conn, version, fingerprint, meta, resumed) -> None:
        self.sink, self._conn, self.version = sink, conn, version
        self.fingerprint, self.meta, self.resumed = fingerprint, meta, resumed
        self.table = results_table(version)
        self._lock = threading.Lock()

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = self.sink.connect()
        return self._conn

    # A run travels to Spark executors by pickling: each process opens its own connection.
    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in ("_conn", "_lock")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._conn, self._lock = None, threading.Lock()

    def done_blocks(self) -> set[str]:
        with _errors(self.sink, "read finished blocks"), self._lock:
            rows = self.conn.execute(
                "SELECT block FROM embrecall_blocks WHERE version = ?", (self.version,)
            )
            return {r[0] for r in rows}

    def write_block(self, block, query_key, query_ids, ids, scores, counts) -> None:
        values = pack_rows(ids, scores, counts)
        rows = [(query_key, qid, v) for qid, v in zip(query_ids.tolist(), values)]
        with _errors(self.sink, f"write block {block}"), self._lock:
            # IMMEDIATE takes the write lock up front, so concurrent writers (Spark tasks) wait
            # for each other through the busy timeout instead of failing on a stale snapshot.
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.executemany(f"INSERT OR REPLACE INTO {self.table} VALUES (?, ?, ?)", rows)
            self.conn.execute(
                "INSERT OR REPLACE INTO embrecall_blocks VALUES (?, ?)", (self.version, block)
            )
            self.conn.execute("COMMIT")

    def commit(self) -> None:
        expected = sum(self.meta["blocks"].values())
        with _errors(self.sink, "make the run current"), self._lock:
            conn = self.conn
            conn.execute("BEGIN IMMEDIATE")
            (have,) = conn.execute(
                "SELECT count(*) FROM embrecall_blocks WHERE version = ?", (self.version,)
            ).fetchone()
            if have < expected:
                conn.execute("ROLLBACK")
                raise SinkError(
                    f"run {self.version} holds {have} of {expected} blocks; not flipped"
                )
            prev = conn.execute(
                "SELECT version FROM embrecall_pointer WHERE name = 'current'"
            ).fetchone()
            stored = json.dumps(
                {
                    **self.meta,
                    "version": self.version,
                    "status": "complete",
                    "completed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                }
            )
            conn.execute(
                "UPDATE embrecall_runs SET status = 'complete', meta = ? WHERE version = ?",
                (stored, self.version),
            )
            conn.execute("DELETE FROM embrecall_blocks WHERE version = ?", (self.version,))
            conn.execute(
                "INSERT OR REPLACE INTO embrecall_pointer VALUES ('current', ?)", (self.version,)
            )  # the flip, visible to readers when this transaction commits
            conn.execute("COMMIT")
            self._retire(prev[0] if prev else None)

    def _retire(self, previous: str | None) -> None:
        """Drop complete versions older than the previous one, and replaced runs of this plan."""
        conn = self.conn
        stale = conn.execute(
            "SELECT version FROM embrecall_runs WHERE version NOT IN (?, ?) AND "
            "(status = 'complete' OR fingerprint = ?)",
            (self.version, previous or "", self.fingerprint),
        ).fetchall()
        for (old,) in stale:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(f"DROP TABLE IF EXISTS {results_table(old)}")
            conn.execute("DELETE FROM embrecall_blocks WHERE version = ?", (old,))
            conn.execute("DELETE FROM embrecall_runs WHERE version = ?", (old,))
            conn.execute("COMMIT")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class SqliteReader(SinkReader):
    def __init__(self, sink: SqliteSink) -> None:
        self.sink = sink
        self.conn = sink.connect()

    def current(self) -> str | None:
        with _errors(self.sink, "read the current version"):
            row = self.conn.execute(
                "SELECT version FROM embrecall_pointer WHERE name = 'current'"
            ).fetchone()
        return row[0] if row else None

    def meta(self, version: str) -> dict[str, Any]:
        with _errors(self.sink, "read a version's description"):
            row = self.conn.execute(
                "SELECT meta FROM embrecall_runs WHERE version = ?", (version,)
            ).fetchone()
        if row is None:
            raise SinkError(f"{self.sink.path}: version {version} is not there (retired?)")
        return json.loads(row[0])

    def get_many(self, query_key: str, ids: Sequence, version: str) -> list:
        found: dict = {}
        ids = list(ids)
        with _errors(self.sink, "read results"):
            for lo in range(0, len(ids), _IN_SLICE):
                part = ids[lo : lo + _IN_SLICE]
                marks = ",".join("?" * len(part))
                rows = self.conn.execute(
                    f"SELECT id, value FROM {results_table(version)} "
                    f"WHERE query = ? AND id IN ({marks})",
                    (query_key, *part),
                )
                found.update((qid, value) for qid, value in rows)
        return [None if found.get(i) is None else unpack(found[i]) for i in ids]

    def close(self) -> None:
        self.conn.close()


def results_table(version: str) -> str:
    """The quoted table name of a version (versions hold only [0-9A-Za-z-])."""
    if not all(c.isalnum() or c == "-" for c in version):
        raise SinkError(f"not a version name: {version!r}")
    return f'"embrecall_results_{version}"'


class _errors:  # noqa: N801 -- used as a context manager, reads like one
    def __init__(self, sink: SqliteSink, doing: str) -> None:
        self.sink, self.doing = sink, doing

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, exc, tb) -> bool:
        if isinstance(exc, sqlite3.Error):
            raise SinkError(
                f"SQLite database {self.sink.path}: cannot {self.doing}: {exc}"
            ) from None
        return False
