"""Fixtures of the Milvus tests: artifacts built once, Milvus Lite databases in the test process,
and a Milvus Lite gRPC server on a loopback port for what crosses processes."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import import_extra
from service.support import save_version

import_extra("pymilvus")
import_extra("milvus_lite")


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory) -> dict[str, Path]:
    """Two small artifacts (500 items, 60 users, exact indexes) with different answers."""
    tmp = tmp_path_factory.mktemp("milvus-artifacts")
    return {"v1": save_version(tmp, "v1", seed=0), "v2": save_version(tmp, "v2", seed=1)}


@pytest.fixture
def lite(tmp_path) -> Iterator[str]:
    """A fresh Milvus Lite target in this process; its engine is stopped at teardown."""
    path = tmp_path / "milvus.db"
    yield f"milvus-lite:{path}"
    from milvus_lite.server_manager import server_manager_instance

    server_manager_instance.release_server(str(path))


@pytest.fixture
def published(lite, artifacts):
    """``lite`` with v1 published and current."""
    from embrecall.milvus.versions import MilvusVersions

    source = MilvusVersions(lite)
    source.publish(str(artifacts["v1"]), "v1")
    return source


@pytest.fixture
def milvus_server(tmp_path) -> Iterator[str]:
    """A Milvus Lite server speaking the Milvus gRPC protocol on 127.0.0.1, as another process:
    ``milvus://127.0.0.1:PORT``."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    exe = Path(sys.executable).with_name("milvus-lite")
    proc = subprocess.Popen(
        [
            str(exe),
            "server",
            "--data-dir",
            str(tmp_path / "server"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the Milvus Lite server did not start")
            time.sleep(0.1)
        yield f"milvus://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, 9)
            proc.wait()
