"""Fixtures of the live-update tests: a version root and real servers on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from embrecall.versions import VersionRoot
from helpers import import_extra
from service.support import ADMIN_KEY, LiveServer, save_version

import_extra("fastapi")
import_extra("uvicorn")
import_extra("httpx")


@pytest.fixture(scope="session")
def live_artifacts(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("live-artifacts")
    return {"v1": save_version(tmp, "v1", seed=0), "v2": save_version(tmp, "v2", seed=1)}


@pytest.fixture
def root(tmp_path, live_artifacts) -> VersionRoot:
    vroot = VersionRoot(tmp_path / "root")
    vroot.publish(live_artifacts["v1"], "v1")
    return vroot


@pytest.fixture
def serve() -> Iterator:
    """``serve(target, **settings)``: a live in-process server with the admin key set."""
    from embrecall.service import create_app

    started: list[LiveServer] = []

    def start(target, **settings) -> LiveServer:
        settings.setdefault("watch_interval_s", 0.05)
        settings.setdefault("admin_api_key", ADMIN_KEY)
        server = LiveServer(create_app(target=str(target), **settings)).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
