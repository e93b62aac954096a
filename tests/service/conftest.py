"""Fixtures of the service tests: artifacts built once, version roots, live servers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from embrecall.versions import VersionRoot

from .support import ADMIN_KEY, LiveServer, save_version


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory) -> dict[str, Path]:
    """Two good versions with different answers, built once per session."""
    tmp = tmp_path_factory.mktemp("artifacts")
    return {"v1": save_version(tmp, "v1", seed=0), "v2": save_version(tmp, "v2", seed=1)}


@pytest.fixture
def root(tmp_path, artifacts) -> VersionRoot:
    """A version root with v1 published and current."""
    vroot = VersionRoot(tmp_path / "root")
    vroot.publish(artifacts["v1"], "v1")
    return vroot


@pytest.fixture
def serve() -> Iterator:
    """``serve(target, **settings)`` starts a live server; all are stopped at teardown."""
    started: list[LiveServer] = []

    from embrecall.service import create_app

    def start(target, **settings) -> LiveServer:
        settings.setdefault("watch_interval_s", 0.05)
        server = LiveServer(create_app(target=str(target), **settings)).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def client(shared_server):
    """An HTTP client of the module's shared server."""
    with shared_server.client() as c:
        yield c


@pytest.fixture(scope="module")
def oracle(shared_server):
    """The shared server's version, loaded independently in this process."""
    import embrecall

    return embrecall.load(shared_server.root.path_of("v1"))


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory) -> Iterator[LiveServer]:
    """One server over a root with v1 for read-only tests of a module (keys configured)."""
    from embrecall.service import create_app

    tmp = tmp_path_factory.mktemp("shared")
    vroot = VersionRoot(tmp / "root")
    vroot.publish(save_version(tmp, "v1", seed=0), "v1")
    server = LiveServer(
        create_app(
            target=str(vroot.path),
            admin_api_key=ADMIN_KEY,
            max_k=100,
            max_batch=8,
            max_exclude=8,
            search_threads=2,  # worker threads here; the lifecycle tests cover both modes
            max_body_bytes=16_384,
            watch_interval_s=0,
        )
    ).start()
    server.root = vroot
    yield server
    server.stop()
