"""Redis sink: one key per query id holding its packed result list, under a versioned prefix.

Keys (``P`` is the prefix, ``recs`` by default; ``Q`` is ``u2i``, ``i2i`` or ``u2u``)::

    P:current               the version readers follow (a plain string; SET flips it atomically)
    P:v:VERSION:Q:ID        packed ids + scores of one query id (see embrecall.batch.codec)
    P:v:VERSION:meta        JSON: k, metrics, id kinds, artifact, status
    P:v:VERSION:done        set of finished block names (what a resumed run skips)
    P:versions              set of versions written under P and not yet retired
    P:pending               hash: plan fingerprint -> version of its unfinished run
    P:lock                  the version now writing (expires unless refreshed by each block)

Values are written in pipelined batches, one round trip per block. After the flip, the previous
version is given a TTL (``old_ttl`` seconds, default one hour) rather than deleted at once, so a
reader that read the pointer just before the flip still finds its keys; other stale versions
(abandoned runs) are deleted with SCAN + UNLINK, which frees memory without blocking Redis.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import numpy as np

from embrecall.batch.codec import pack_rows, unpack
from embrecall.batch.sinks.base import (
    Sink,
    SinkError,
    SinkReader,
    SinkRun,
    new_version,
)
from embrecall.errors import InvalidArgumentError, require_extra

DEFAULT_PREFIX = "recs"
DEFAULT_OLD_TTL = 3600
# A writer that stops refreshing its lock for this long (killed, hung) no longer holds it.
LOCK_TTL = 300
# Redis's own cost per key beyond the key and value bytes (dict entry, object headers,
# allocator rounding), measured with INFO memory on Redis 7 (benchmarks/bench_batch.py).
KEY_OVERHEAD_BYTES = 72
_SCAN_COUNT = 1000


class RedisSink(Sink):
    """Results in a Redis server.

    Parameters
    ----------
    url : str
        ``redis://[:password@]host:port/db[?prefix=P]`` (also ``rediss://``, ``unix://``).
    prefix : str, optional
        Key prefix; overrides ``?prefix=`` in the URL.
    old_ttl : int
        Seconds the previous version lives on after a flip; 0 deletes it at once.
    connect_timeout : float
        Seconds to wait for a connection: an unreachable server fails fast.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str | None = None,
        old_ttl: int = DEFAULT_OLD_TTL,
        connect_timeout: float = 2.0,
        socket_timeout: float = 60.0,
    ) -> None:
        redis = require_extra("redis", "redis")
        parts = urlsplit(url)
        query = parse_qsl(parts.query)
        url_prefix = next((v for k, v in query if k == "prefix"), None)
        clean = urlunsplit(
            parts._replace(query=urlencode([(k, v) for k, v in query if k != "prefix"]))
        )
        self.prefix = prefix or url_prefix or DEFAULT_PREFIX
        if isinstance(old_ttl, bool) or not isinstance(old_ttl, int) or old_ttl < 0:
            raise InvalidArgumentError(f"old_ttl must be seconds >= 0, got {old_ttl!r}")
        self.old_ttl = old_ttl
        self.storage = "in Redis"
        self.url = _without_password(url)
        self._connect = (clean, connect_timeout, socket_timeout)
        self._errors = (redis.exceptions.RedisError, OSError)
        self.client = self._client()

    def _client(self):
        redis = require_extra("redis", "redis")
        clean, connect_timeout, socket_timeout = self._connect
        try:
            return redis.Redis.from_url(
                clean, socket_connect_timeout=connect_timeout, socket_timeout=socket_timeout
            )
        except ValueError as exc:
            raise InvalidArgumentError(f"not a Redis URL: {self.url} ({exc})") from None

    # A sink travels to Spark executors by pickling: the connection stays, the address goes.
    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in ("client", "_errors")}

    def __setstate__(self, state: dict) -> None:
        redis = require_extra("redis", "redis")
        self.__dict__.update(state)
        self._errors = (redis.exceptions.RedisError, OSError)
        self.client = self._client()

    # -- keys --------------------------------------------------------------------------------
    def key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    def value_key(self, version: str, query_key: str, query_id: object) -> str:
        return f"{self.prefix}:v:{version}:{query_key}:{query_id}"

    # -- Sink --------------------------------------------------------------------------------
    def open_run(self, fingerprint: str, meta: dict[str, Any], *, restart: bool) -> RedisRun:
        self.ping()
        with self.errors("start a run"):
            pending = self.client.hget(self.key("pending"), fingerprint)
            version = pending.decode() if pending else None
            resumed = bool(
                version and not restart and self.client.exists(self.key("v", version, "meta"))
            )
            if not resumed:
                version = new_version(fingerprint)
            self._take_lock(version, may_take_over=pending.decode() if pending else None)
            if not resumed:
                stored = {**meta, "version": version, "status": "writing"}
                pipe = self.client.pipeline(transaction=True)
                pipe.set(self.key("v", version, "meta"), json.dumps(stored))
                pipe.sadd(self.key("versions"), version)
                pipe.hset(self.key("pending"), fingerprint, version)
                pipe.execute()
        return RedisRun(self, version, fingerprint, meta, resumed)

    def reader(self) -> RedisReader:
        return RedisReader(self)

    def estimate_bytes(self, n_values: int, value_bytes: int, key_bytes: int) -> int:
        key_bytes += len(self.prefix) + 35  # ":v:", the version, the query key
        value = _allocation(value_bytes + 6)  # the string's header and NUL, rounded as jemalloc
        return n_values * (value + key_bytes + KEY_OVERHEAD_BYTES)

    # -- helpers -----------------------------------------------------------------------------
    def check(self) -> None:
        self.ping()

    def ping(self) -> None:
        """Fail fast, before any computing, when the server cannot be reached."""
        try:
            self.client.ping()
        except self._errors as exc:
            raise SinkError(
                f"cannot reach Redis at {self.url}: {exc} (nothing was written; the current "
                "version is unchanged)"
            ) from None

    def errors(self, doing: str):
        return _RedisErrors(self, doing)

    def _take_lock(self, version: str, may_take_over: str | None) -> None:
        lock = self.key("lock")
        if self.client.set(lock, version, nx=True, ex=LOCK_TTL):
            return
        holder = (self.client.get(lock) or b"").decode()
        if holder and holder == may_take_over:
            # The holder is the unfinished run of this very plan (killed before it could
            # release the lock): resuming it is what the lock is there to allow.
            self.client.set(lock, version, ex=LOCK_TTL)
            return
        if not holder and self.client.set(lock, version, nx=True, ex=LOCK_TTL):
            return
        raise SinkError(
            f"another batch run (version {holder}) is writing under prefix {self.prefix!r} of "
            f"{self.url}; wait for it, or use another prefix (its lock lapses {LOCK_TTL}s "
            "after its last block)"
        )

    def delete_version(self, version: str) -> None:
        for keys in self._scan_batches(version):
            self.client.unlink(*keys)

    def expire_version(self, version: str, seconds: int) -> None:
        for keys in self._scan_batches(version):
            pipe = self.client.pipeline(transaction=False)
            for key in keys:
                pipe.expire(key, seconds)
            pipe.execute()

    def _scan_batches(self, version: str):
        match = _glob_escape(f"{self.prefix}:v:{version}:") + "*"
        batch = []
        for key in self.client.scan_iter(match=match, count=_SCAN_COUNT):
            batch.append(key)
            if len(batch) >= _SCAN_COUNT:
                yield batch
                batch = []
        if batch:
            yield batch


class RedisRun(SinkRun):
    def __init__(
        self, sink: RedisSink, version: str, fingerprint: str, meta: dict, resumed: bool
    ) -> None:
        self.sink, self.version, self.fingerprint = sink, version, fingerprint
        self.meta, self.resumed = meta, resumed
        self._done_key = sink.key("v", version, "done")

    def done_blocks(self) -> set[str]:
        with self.sink.errors("read finished blocks"):
            return {b.decode() for b in self.sink.client.smembers(self._done_key)}

    def write_block(self, block, query_key, query_ids, ids, scores, counts) -> None:
        values = pack_rows(ids, scores, counts)
        sink = self.sink
        with sink.errors(f"write block {block}"):
            pipe = sink.client.pipeline(transaction=False)
            for qid, value in zip(_plain(query_ids), values):
                pipe.set(sink.value_key(self.version, query_key, qid), value)
            # After the values: commands of one connection run in order, so a block marked done
            # has every value stored. Refreshing the lock says this writer is still alive.
            pipe.sadd(self._done_key, block)
            pipe.expire(sink.key("lock"), LOCK_TTL)
            pipe.execute()

    def commit(self) -> None:
        sink, client = self.sink, self.sink.client
        with sink.errors("make the run current"):
            expected = sum(self.meta["blocks"].values())
            have = client.scard(self._done_key)
            if have < expected:
                raise SinkError(
                    f"run {self.version} holds {have} of {expected} blocks; not flipped"
                )
            previous = client.get(sink.key("current"))
            previous = previous.decode() if previous else None
            stored = {
                **self.meta,
                "version": self.version,
                "status": "complete",
                "completed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            pipe = client.pipeline(transaction=True)
            pipe.set(sink.key("v", self.version, "meta"), json.dumps(stored))
            pipe.set(sink.key("current"), self.version)  # the flip
            pipe.hdel(sink.key("pending"), self.fingerprint)
            pipe.execute()
            client.unlink(self._done_key)
            self._retire(previous)

    def _retire(self, previous: str | None) -> None:
        sink, client = self.sink, self.sink.client
        versions = {v.decode() for v in client.smembers(sink.key("versions"))}
        live = {v.decode() for v in client.hvals(sink.key("pending"))}
        for old in sorted(versions - {self.version} - live):
            if old == previous and sink.old_ttl > 0:
                sink.expire_version(old, sink.old_ttl)
            else:
                sink.delete_version(old)
            client.srem(sink.key("versions"), old)

    def close(self) -> None:
        sink = self.sink
        try:
            lock = sink.key("lock")
            if (sink.client.get(lock) or b"").decode() == self.version:
                sink.client.delete(lock)
        except sink._errors:
            pass  # the lock lapses by itself; a close must not hide the run's own error
        sink.client.close()


class RedisReader(SinkReader):
    def __init__(self, sink: RedisSink) -> None:
        self.sink = sink
        self._meta: dict[str, dict] = {}

    def current(self) -> str | None:
        with self.sink.errors("read the current version"):
            value = self.sink.client.get(self.sink.key("current"))
        return value.decode() if value else None

    def meta(self, version: str) -> dict[str, Any]:
        if version not in self._meta:
            with self.sink.errors("read a version's description"):
                raw = self.sink.client.get(self.sink.key("v", version, "meta"))
            if raw is None:
                raise SinkError(f"{self.sink.url}: version {version} is not there (retired?)")
            self._meta[version] = json.loads(raw)
        return self._meta[version]

    def get_many(self, query_key: str, ids: Sequence, version: str) -> list:
        keys = [self.sink.value_key(version, query_key, i) for i in ids]
        with self.sink.errors("read results"):
            values = self.sink.client.mget(keys)
        return [None if v is None else unpack(v) for v in values]

    def close(self) -> None:
        self.sink.client.close()


class _RedisErrors:
    """Turns a Redis or socket error into a SinkError that says what was being done, and where."""

    def __init__(self, sink: RedisSink, doing: str) -> None:
        self.sink, self.doing = sink, doing

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, exc, tb) -> bool:
        if exc is not None and isinstance(exc, self.sink._errors):
            raise SinkError(f"Redis at {self.sink.url}: cannot {self.doing}: {exc}") from None
        return False


def _allocation(n: int) -> int:
    """Bytes jemalloc hands out for ``n``: size classes 4 to a doubling (1,025-1,280 -> 1,280)."""
    if n <= 16:
        return 16
    step = max(16, 1 << ((n - 1).bit_length() - 3))
    return -(-n // step) * step


def _plain(ids: np.ndarray) -> list:
    return ids.tolist() if isinstance(ids, np.ndarray) else list(ids)


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit(parts._replace(netloc=user + host))
