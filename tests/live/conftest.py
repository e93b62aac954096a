"""Fixtures of the live-update tests: a version root and real servers on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from helpers import import_extra
from service.conftest import artifacts, root  # noqa: F401  the same versions and roots
from service.support import ADMIN_KEY, LiveServer

import_extra("fastapi")
import_extra("uvicorn")
import_extra("httpx")


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
