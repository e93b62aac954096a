"""Where batch results go: Redis, a SQLite file, or a parquet folder, behind one interface.

:func:`open_sink` picks the sink from the address:

=====================================  =================================================
address                                sink
=====================================  =================================================
``redis://host:6379/0?prefix=recs``    :class:`RedisSink` (also ``rediss://``, ``unix://``)
``results.sqlite``, ``sqlite:///p.db`` :class:`SqliteSink` (suffix .sqlite, .sqlite3, .db)
``results/``, ``parquet:///data/out``  :class:`ParquetSink` (any other path: a folder)
=====================================  =================================================
"""

from __future__ import annotations

from typing import Any

from embrecall.batch.sinks.base import Sink, SinkError, SinkReader, SinkRun
from embrecall.batch.sinks.parquet_sink import ParquetSink
from embrecall.batch.sinks.sqlite_sink import SqliteSink

__all__ = ["ParquetSink", "Sink", "SinkError", "SinkReader", "SinkRun", "SqliteSink", "open_sink"]

_SQLITE_SUFFIXES = (".sqlite", ".sqlite3", ".db")


def open_sink(address: str | Sink, **options: Any) -> Sink:
    """The sink an address names; ``options`` go to the Redis sink (``prefix``, ``old_ttl``)."""
    if isinstance(address, Sink):
        return address
    address = str(address)
    if address.startswith(("redis://", "rediss://", "unix://")):
        from embrecall.batch.sinks.redis_sink import RedisSink

        return RedisSink(address, **options)
    if address.startswith("sqlite://"):
        return SqliteSink(_path_of(address, "sqlite://"))
    if address.startswith("parquet://"):
        return ParquetSink(_path_of(address, "parquet://"))
    if address.lower().endswith(_SQLITE_SUFFIXES):
        return SqliteSink(address)
    return ParquetSink(address)


def _path_of(address: str, scheme: str) -> str:
    # Like file:// addresses: sqlite:///data/recs.db is /data/recs.db, sqlite://recs.db is relative.
    return address[len(scheme) :]
