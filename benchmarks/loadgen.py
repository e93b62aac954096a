"""A small HTTP/1.1 load generator on raw asyncio streams (keep-alive, no pipelining).

Why not httpx: on a 2-core machine the client shares the cores with the server, and httpx
spends several times the CPU per request that these few lines do. Two modes:

- closed loop (``closed``): ``concurrency`` connections, each sends its next request when the
  previous answer is in. Measures throughput at a concurrency.
- open loop (``open_loop``): requests are *scheduled* at a fixed rate and their latency is
  counted from the scheduled time, so a stalled server shows up in the tail instead of slowing
  the client down (no coordinated omission).

Every response's status and ``X-Embrecall-Version`` header are recorded.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

VERSION_HEADER = b"x-embrecall-version: "


@dataclass
class Run:
    """Latencies (seconds), statuses and versions of one load run."""

    latencies: list[float] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    versions: Counter = field(default_factory=Counter)
    errors: int = 0  # connection errors (no HTTP status at all)
    seconds: float = 0.0

    def summary(self) -> dict:
        lat = np.array(self.latencies) * 1000
        n = len(lat)
        pct = (lambda q: round(float(np.percentile(lat, q)), 3)) if n else (lambda q: None)
        return {
            "requests": n,
            "seconds": round(self.seconds, 2),
            "throughput_rps": round(n / self.seconds, 1) if self.seconds else 0.0,
            "p50_ms": pct(50),
            "p90_ms": pct(90),
            "p99_ms": pct(99),
            "p999_ms": pct(99.9),
            "max_ms": round(float(lat.max()), 3) if n else None,
            "non_2xx": sum(c for s, c in self.statuses.items() if not 200 <= s < 300) + self.errors,
            "statuses": {str(s): c for s, c in sorted(self.statuses.items())},
            "versions": dict(self.versions),
        }


class _Conn:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, raw: bytes) -> tuple[int, bytes | None]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        lower = head.lower()
        at = lower.find(b"content-length: ")
        length = int(lower[at + 16 : lower.find(b"\r\n", at)]) if at >= 0 else 0
        if length:
            await self.reader.readexactly(length)
        version = None
        at = lower.find(VERSION_HEADER)
        if at >= 0:
            version = head[at + len(VERSION_HEADER) : lower.find(b"\r\n", at)]
        if b"connection: close" in lower:
            self.close()
        return status, version

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def get(path: str, host: str = "127.0.0.1") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()


async def _one(conn: _Conn, raw: bytes, run: Run, t_start: float) -> None:
    try:
        status, version = await conn.request(raw)
    except (OSError, asyncio.IncompleteReadError, ValueError):
        conn.close()
        run.errors += 1
        return
    run.latencies.append(time.perf_counter() - t_start)
    run.statuses[status] += 1
    if version is not None:
        run.versions[version.decode()] += 1


async def closed(
    host: str,
    port: int,
    make: Callable[[], bytes],
    *,
    concurrency: int,
    seconds: float,
    warmup: float = 1.0,
) -> Run:
    """``concurrency`` connections in a closed loop for ``seconds`` (after ``warmup``)."""
    run, scratch = Run(), Run()
    t0 = time.perf_counter()
    measure_from = t0 + warmup
    stop = measure_from + seconds

    async def worker() -> None:
        conn = _Conn(host, port)
        while (now := time.perf_counter()) < stop:
            await _one(conn, make(), run if now >= measure_from else scratch, now)
        conn.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    run.seconds = seconds
    return run


async def open_loop(
    host: str,
    port: int,
    make: Callable[[], bytes],
    *,
    rate: float,
    seconds: float,
    connections: int = 64,
    on_tick: Callable[[], None] | None = None,
) -> Run:
    """Requests scheduled every ``1/rate`` s; latency counts from the scheduled time."""
    run = Run()
    queue: asyncio.Queue = asyncio.Queue()
    n = int(rate * seconds)
    t0 = time.perf_counter() + 0.05

    async def producer() -> None:
        for i in range(n):
            due = t0 + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            queue.put_nowait(due)
            if on_tick is not None and i % max(1, int(rate // 10)) == 0:
                on_tick()
        for _ in range(connections):
            queue.put_nowait(None)

    async def worker() -> None:
        conn = _Conn(host, port)
        while (due := await queue.get()) is not None:
            await _one(conn, make(), run, due)
        conn.close()

    await asyncio.gather(producer(), *(worker() for _ in range(connections)))
    run.seconds = time.perf_counter() - t0
    return run


def install_fast_loop() -> str:
    """uvloop when installed (it comes with uvicorn[standard]); returns which loop runs."""
    try:
        import uvloop
    except ImportError:
        return "asyncio"
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return "uvloop"
