"""Real services and data for the batch tests: a redis-server process, small artifacts."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from embrecall.embeddings import Embeddings
from embrecall.recommender import Recommender
from helpers import build_small, import_extra

REDIS_URL_ENV = "EMBRECALL_TEST_REDIS_URL"


def save_small(tmp: Path, name: str = "artifact", **kwargs) -> Path:
    """The shared 500-item, 60-user world (seen items, catalog) saved as an artifact."""
    path = tmp / name
    build_small(tmp, **kwargs).save(str(path))
    return path


def save_synthetic(path: Path, n_users: int, n_items: int, dim: int = 16, seed: int = 0) -> Path:
    """Random MF-like vectors with 30 seen items per user, saved as an exact artifact."""
    from embrecall.interactions import Interactions

    rng = np.random.default_rng(seed)
    items = Embeddings(
        np.arange(n_items) + 10, rng.standard_normal((n_items, dim)).astype(np.float32)
    )
    users = Embeddings(
        np.arange(n_users) + 100_000, rng.standard_normal((n_users, dim)).astype(np.float32)
    )
    seen = Interactions(
        np.repeat(users.ids, 30), rng.choice(items.ids, 30 * n_users), source="synthetic"
    )
    Recommender.build(items, users, interactions=seen).save(str(path))
    return path


class RedisServer:
    """A redis-server on a free loopback port, without persistence, for one test session."""

    def __init__(self, binary: str, workdir: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._wait()

    def _wait(self) -> None:
        import redis

        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                return
            except redis.exceptions.ConnectionError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start on port {self.port}") from None
                time.sleep(0.05)
            finally:
                client.close()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def redis_url_or_skip(tmp_path_factory):
    """A Redis URL: $EMBRECALL_TEST_REDIS_URL, else a redis-server started here, else skip."""
    import_extra("redis", reason="the redis client is not installed (embrecall[redis])")
    if os.environ.get(REDIS_URL_ENV):
        yield os.environ[REDIS_URL_ENV]
        return
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip(
            f"no redis-server binary on PATH and {REDIS_URL_ENV} unset "
            "(CI installs Debian's redis-server; apt-get install redis-server)"
        )
    server = RedisServer(binary, tmp_path_factory.mktemp("redis"))
    try:
        yield server.url
    finally:
        server.stop()
