"""The app factory: ``create_app(settings)`` builds a FastAPI app; nothing heavy at import.

The artifact loads in the lifespan (at server startup, in each worker process after any fork):
faiss must never run before a fork, because a forked child hangs in its next search.

Run it with ``embrecall serve TARGET``, or with uvicorn's factory mode (settings from the
environment)::

    EMBRECALL_TARGET=/srv/recall uvicorn --factory embrecall.service.app:create_app
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from embrecall import __version__
from embrecall.errors import InvalidArgumentError, require_extra
from embrecall.service.docs import docs_routes
from embrecall.service.errors import install_error_handlers
from embrecall.service.limits import BodyLimitMiddleware
from embrecall.service.live import LiveTail, PendingChangesCollector
from embrecall.service.metrics import Metrics, MetricsMiddleware
from embrecall.service.monitor import LiveRecallMonitor
from embrecall.service.openapi import install_openapi
from embrecall.service.page import page_routes
from embrecall.service.registry import VersionRefused, VersionRegistry
from embrecall.service.routes import build_routes
from embrecall.service.runtime import Service
from embrecall.service.settings import Settings
from embrecall.versions import open_target

require_extra("fastapi", "server")

import anyio  # noqa: E402
import anyio.to_thread  # noqa: E402
from fastapi import FastAPI  # noqa: E402

log = logging.getLogger("embrecall.service")

DESCRIPTION = """Online embedding recall: recommendations (u2i), similar users (u2u), similar
items (i2i) and search by raw vector, answered by one immutable index version at a time, with
zero-downtime swaps to a new version that passed its checksums and canary queries."""


def create_app(settings: Settings | None = None, **overrides: Any) -> FastAPI:
    """Build the app for ``settings`` (default: from ``EMBRECALL_*`` variables and ``overrides``).

    Only checks that the target exists; the version loads when the server starts.

    Raises
    ------
    InvalidArgumentError
        No target, or a setting out of range.
    ArtifactError
        The target is neither an artifact nor a version root.
    """
    if settings is None:
        settings = Settings.from_env(**overrides)
    elif overrides:  # validated again: model_copy(update=...) would not check them
        settings = Settings.model_validate({**settings.model_dump(), **overrides})
    if not settings.target:
        raise InvalidArgumentError("no target to serve: pass target= or set EMBRECALL_TARGET")
    source = open_target(settings.target)
    metrics = Metrics()
    service = Service(settings, VersionRegistry(source, settings, metrics), metrics)
    metrics.registry.register(PendingChangesCollector(service.registry))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        import faiss

        # server threads x OpenMP threads within the cores: one OpenMP thread per search
        # thread by default, instead of every search thread spawning a team per core
        faiss.omp_set_num_threads(settings.omp_threads)
        if settings.search_threads:
            service.limiter = anyio.CapacityLimiter(settings.search_threads)
        if settings.recall_sample_rate > 0:
            monitor = LiveRecallMonitor(
                None, sample_rate=settings.recall_sample_rate, k=settings.recall_k
            )
            monitor.register_prometheus(metrics.registry)
            service.registry.on_swap = lambda served: monitor.set_recommender(served.rec)
            service.monitor = monitor
        try:
            await anyio.to_thread.run_sync(service.registry.start)
        except VersionRefused as exc:
            # Stay up, not ready (a publish or an admin reload can fix it); `embrecall serve`
            # exits instead when a single artifact, the only version there is, fails.
            service.startup_error = f"cannot serve {settings.target}: {exc}"
            log.error("no version serving: %s", exc)
        tail = LiveTail(service.registry).start()  # changes other processes append
        try:
            yield
        finally:
            tail.stop()
            service.registry.stop()
            if service.monitor is not None:
                service.monitor.close()

    app = FastAPI(
        title="embrecall",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # FastAPI's pages load from a CDN: ours are served from the package
        redoc_url=None,
    )
    app.state.service = service
    install_error_handlers(app)
    for router in build_routes(service):
        app.include_router(router)
    if settings.web_page:
        app.include_router(page_routes())
    app.include_router(docs_routes(app.title, app.openapi_url))
    install_openapi(app, settings)
    # last added runs first: metrics see every request, the 413s included
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app
