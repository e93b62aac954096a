"""``embrecall serve --workers N``: N server processes answering on one listening socket.

The parent binds the socket and supervises the workers with uvicorn's multiprocess supervisor
(it restarts a worker that dies, stops them all on SIGTERM / SIGINT). It never loads a version
nor searches: each worker is a fresh interpreter started by spawn, never a fork of a process
that ran faiss, and builds its app with :func:`worker_app` from the ``EMBRECALL_*`` variables
the parent set, so that all workers run the same settings. Versions load memory-mapped, so the
workers share one copy of each version's files in the page cache.

Each worker watches the root's ``CURRENT`` and loads, checks and swaps on its own; an admin
call reaches the one worker that accepted its connection.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from embrecall.errors import EmbrecallError
from embrecall.service.settings import Settings, _cores, _default_search_threads

APP = "embrecall.service.workers:worker_app"
# An import string, not the class: the config is pickled to each worker, and the httptools
# protocol class is made inside a function (not picklable).
PROTOCOL = "embrecall.service.protocols:HttpProtocol"
# Where a worker writes why its single artifact cannot be served, for the parent's error line.
ERROR_FILE_VAR = "_EMBRECALL_WORKER_ERROR_FILE"
# Seconds the supervisor waits for a worker's answer to its health ping before it kills it as
# hung (uvicorn's 5 s is short on a busy machine). A ping that a worker leaves unanswered as it
# exits also costs this long, so a failed start is noticed within it.
HEALTHCHECK_S = 10

log = logging.getLogger("embrecall.service")


def worker_settings(settings: Settings, workers: int) -> Settings:
    """What each of ``workers`` processes runs: memory-mapped versions, and unless set, the
    default search threads of its share of the cores (threads x processes within the cores)."""
    update: dict[str, Any] = {"mmap": True}
    if "search_threads" not in settings.model_fields_set:
        update["search_threads"] = _default_search_threads(max(1, _cores() // workers))
    return settings.model_copy(update=update)


def serve_workers(settings: Settings, workers: int) -> int:
    """Run ``workers`` server processes until SIGTERM / SIGINT; 0 then.

    Raises
    ------
    EmbrecallError
        A worker could not start (a single artifact that fails its checks: with the reason),
        instead of being restarted again and again.
    """
    import uvicorn
    from uvicorn.config import STARTUP_FAILURE
    from uvicorn.supervisors import Multiprocess

    from embrecall.versions import open_target

    open_target(settings.target)  # neither an artifact nor a root: say so once, here
    fd, error_file = tempfile.mkstemp(prefix="embrecall-serve-", suffix=".txt")
    os.close(fd)
    os.environ.update(worker_settings(settings, workers).to_env())  # spawned workers inherit it
    os.environ[ERROR_FILE_VAR] = error_file
    config = uvicorn.Config(
        APP,
        factory=True,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=settings.access_log,
        lifespan="on",
        workers=workers,
        timeout_graceful_shutdown=10,
        timeout_worker_healthcheck=HEALTHCHECK_S,
        server_header=False,
        http=PROTOCOL,
    )
    try:
        sock = config.bind_socket()
        supervisor = Multiprocess(config, sockets=[sock])
        supervisor.run()
        sock.close()
        # uvicorn's supervisor stops all workers when one fails before it served: the same
        # failure would come back on every restart
        if any(p.exitcode == STARTUP_FAILURE for p in supervisor.processes):
            reason = Path(error_file).read_text().strip().splitlines()
            raise EmbrecallError(
                reason[0] if reason else "a worker could not start (its log above says why)"
            )
    finally:
        Path(error_file).unlink(missing_ok=True)
    return 0


def worker_app():
    """The app of one worker (uvicorn's factory), from ``EMBRECALL_*`` variables.

    A worker that cannot build its app, or whose single artifact cannot load, exits with
    uvicorn's startup-failure status, which makes the supervisor stop rather than restart it.
    """
    from uvicorn.config import STARTUP_FAILURE

    from embrecall.service.app import create_app
    from embrecall.service.commands import configure_logging

    try:
        settings = Settings.from_env()
        configure_logging(settings.log_level)
        app = create_app(settings)
    except EmbrecallError as exc:
        _report(str(exc))
        sys.exit(STARTUP_FAILURE)
    except Exception as exc:  # a bug: exit as failed, not as crashed (crashed is restarted)
        log.exception("the worker could not build its app")
        _report(f"the worker could not build its app: {type(exc).__name__}: {exc}")
        sys.exit(STARTUP_FAILURE)
    service = app.state.service
    if service.registry.source.mode != "artifact":
        return app  # a root stays up, not ready, until a good version is published
    return _FailStartupWithoutVersion(app, service)


class _FailStartupWithoutVersion:
    """ASGI wrapper: when the one artifact did not load, the lifespan answers startup failed
    (uvicorn then exits the worker with its startup-failure status) instead of complete."""

    def __init__(self, app, service) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        failed = False

        async def checked(message) -> None:
            nonlocal failed
            if failed:  # the app's shutdown as uvicorn cancels it: nothing left to report
                return
            error = self.service.startup_error
            if message["type"] == "lifespan.startup.complete" and error:
                failed = True
                _report(error)
                message = {"type": "lifespan.startup.failed", "message": ""}  # logged already
            await send(message)

        await self.app(scope, receive, checked)


def _report(error: str) -> None:
    path = os.environ.get(ERROR_FILE_VAR)
    if path:
        with open(path, "a") as f:  # one line per failed worker; the parent reads the first
            f.write(error.replace("\n", " ") + "\n")
