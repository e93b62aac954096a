"""Helpers of the service tests: small real artifacts, corruptions, real servers on loopback.

Servers are real uvicorn servers on 127.0.0.1, each in a thread of the test process, listening
on a socket the test bound to port 0 first (so there is no free-port race).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from pathlib import Path

import numpy as np

from embrecall.catalog import read_catalog
from embrecall.index import VectorIndex
from embrecall.interactions import read_interactions
from embrecall.recommender import Recommender
from helpers import small_world

ADMIN_KEY = "test-admin-key"
READ_KEY = "test-read-key"
USERS = list(range(1000, 1060))  # the user ids of helpers.small_world
ITEM = 3  # an item id of helpers.small_world (ids are 7 * i + 3)


def build_version(tmp: Path, seed: int, *, string_ids: bool = False, **kwargs) -> Recommender:
    """A small recommender (500 items, 60 users); different seeds give different answers."""
    tmp.mkdir(parents=True, exist_ok=True)
    items, users, catalog_path, ratings_path, _, _ = small_world(
        tmp, seed=seed, string_ids=string_ids
    )
    return Recommender.build(
        items,
        users,
        catalog=read_catalog(catalog_path),
        interactions=read_interactions(ratings_path),
        **kwargs,
    )


def save_version(tmp: Path, name: str, seed: int) -> Path:
    path = tmp / f"artifact-{name}"
    build_version(tmp / f"data-{name}", seed).save(str(path))
    return path


def save_broken_index_version(tmp: Path, name: str, seed: int) -> Path:
    """An artifact with valid checksums whose recommend index was built from other vectors:
    only the canary can tell."""
    rec = build_version(tmp / f"data-{name}", seed)
    shuffled = rec.items.vectors[np.random.default_rng(5).permutation(len(rec.items))]
    kind = rec.query_kinds["recommend"]
    rec.indexes[kind.index_name] = VectorIndex.build(
        shuffled, kind.metric, kind.spec, progress=False
    )
    path = tmp / f"artifact-{name}"
    rec.save(str(path))
    return path


def corrupt(path: Path) -> None:
    """Flip one byte in the middle of a file (size unchanged: only the checksum can tell)."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


class LiveServer:
    """A real uvicorn server for ``app`` on 127.0.0.1, in a thread."""

    def __init__(self, app, **config) -> None:
        """``config``: more ``uvicorn.Config`` options (``http=`` a protocol class...)."""
        import uvicorn

        self.app = app
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        options = {"log_level": "warning", "access_log": False, "lifespan": "on"}
        options.update(timeout_graceful_shutdown=5, **config)
        self.server = uvicorn.Server(uvicorn.Config(app, **options))
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with contextlib.suppress(SystemExit):  # uvicorn exits if the lifespan startup fails
            self.server.run(sockets=[self.sock])

    def start(self, timeout: float = 60) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("server thread ended during startup")
            if time.monotonic() > deadline:
                raise TimeoutError("server did not start")
            time.sleep(0.01)
        return self

    def client(self, **kwargs):
        import httpx

        return httpx.Client(base_url=self.url, timeout=30, **kwargs)

    @property
    def registry(self):
        return self.app.state.service.registry

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.sock.close()


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.02):
    """Poll ``predicate`` until it is truthy; generous timeout for a loaded machine."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        time.sleep(interval)


class Hammer:
    """Clients in a background thread sending requests round-robin until stopped.

    ``paths`` are GET paths; every response is kept as (path, status, version header, body).
    """

    def __init__(self, url: str, paths: list[str], concurrency: int = 6) -> None:
        self.url = url
        self.paths = paths
        self.concurrency = concurrency
        self.responses: list[tuple[str, int, str | None, object]] = []
        self.failures: list[str] = []  # transport errors: no HTTP answer at all
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Hammer:
        self._thread.start()
        wait_for(lambda: len(self.responses) >= 10)
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def count(self) -> int:
        return len(self.responses)

    def _run(self) -> None:
        import asyncio

        import httpx

        async def worker(client: httpx.AsyncClient, offset: int) -> None:
            i = offset
            while not self._stop.is_set():
                path = self.paths[i % len(self.paths)]
                i += 1
                try:
                    r = await client.get(path)
                except httpx.HTTPError as exc:
                    self.failures.append(f"{path}: {exc!r}")
                    continue
                body = (
                    r.json()
                    if r.headers.get("content-type", "").startswith("application/json")
                    else r.text
                )
                self.responses.append(
                    (path, r.status_code, r.headers.get("x-embrecall-version"), body)
                )

        async def main() -> None:
            limits = httpx.Limits(max_connections=self.concurrency)
            async with httpx.AsyncClient(base_url=self.url, timeout=30, limits=limits) as client:
                await asyncio.gather(*(worker(client, n) for n in range(self.concurrency)))

        asyncio.run(main())
