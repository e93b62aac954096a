"""What the routes share: settings, the version registry, metrics, and the search thread pool.

Searches run in worker threads so that the event loop keeps accepting and parsing requests
while faiss works (faiss releases the GIL). A capacity limiter of ``search_threads`` bounds
them, and faiss runs ``omp_threads`` OpenMP threads per call, so that server threads x OpenMP
threads stay within the cores instead of thrashing.
"""

from __future__ import annotations

import functools
import hmac
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from embrecall.errors import require_extra
from embrecall.service.errors import ApiError
from embrecall.service.metrics import Metrics
from embrecall.service.monitor import LiveRecallMonitor
from embrecall.service.registry import Served, VersionRegistry
from embrecall.service.settings import Settings

require_extra("fastapi", "server")

import anyio  # noqa: E402
import anyio.to_thread  # noqa: E402
from pydantic import SecretStr  # noqa: E402
from starlette.responses import Response  # noqa: E402

T = TypeVar("T")
VERSION_HEADER = "X-Embrecall-Version"


@dataclass
class Service:
    """State of one app, created by the app factory; the limiter is made at startup."""

    settings: Settings
    registry: VersionRegistry
    metrics: Metrics
    limiter: anyio.CapacityLimiter | None = field(default=None, repr=False)
    startup_error: str | None = None  # why the first version did not load, if it did not
    monitor: LiveRecallMonitor | None = None  # live recall of sampled queries; made at startup

    def served(self) -> Served:
        """The version to answer from, read once per request; 503 before the first load."""
        served = self.registry.current
        if served is None:
            raise ApiError(503, "not_ready", "no index version is loaded yet")
        return served

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn`` in a search worker thread (at most ``search_threads`` at once)."""
        if self.limiter is None:  # search_threads=0: on the event loop, no thread hop
            return _in_worker(self.settings.omp_threads, fn, *args, **kwargs)
        call = functools.partial(_in_worker, self.settings.omp_threads, fn, *args, **kwargs)
        return await anyio.to_thread.run_sync(call, limiter=self.limiter)

    def check_k(self, k: int | None) -> int:
        if k is None:
            return self.settings.default_k
        if not 1 <= k <= self.settings.max_k:
            raise ApiError(
                422, "invalid_k", f"k must be between 1 and {self.settings.max_k}, got {k}"
            )
        return k

    def check_batch(self, n: int, what: str = "ids") -> None:
        if n > self.settings.max_batch:
            raise ApiError(
                422,
                "too_many_ids",
                f"the batch has {n} {what}, the limit is {self.settings.max_batch}",
            )

    def check_exclude(self, n: int) -> None:
        if n > self.settings.max_exclude:
            raise ApiError(
                422,
                "too_many_ids",
                f"{n} excluded ids in one query, the limit is {self.settings.max_exclude}",
            )

    def params(self, nprobe: int | None, ef_search: int | None) -> dict[str, int] | None:
        """Per-request search parameters; they reach faiss as SearchParameters, never as
        changes to the shared index."""
        params = {
            name: v for name, v in (("nprobe", nprobe), ("efSearch", ef_search)) if v is not None
        }
        cap = self.settings.max_search_param
        for name, value in params.items():
            if not 1 <= value <= cap:
                raise ApiError(
                    422, "invalid_argument", f"{name} must be between 1 and {cap}, got {value}"
                )
        return params or None


_worker = threading.local()


def _in_worker(omp_threads: int, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    # OpenMP's thread count is per calling thread: setting it once in the main thread leaves
    # every worker thread at one OpenMP thread per core, so set it in each worker, once.
    if getattr(_worker, "omp_threads", None) != omp_threads:
        import faiss

        faiss.omp_set_num_threads(omp_threads)
        _worker.omp_threads = omp_threads
    return fn(*args, **kwargs)


def respond(body: bytes, served: Served) -> Response:
    """JSON bytes as a response that names the version that answered."""
    return Response(body, media_type="application/json", headers={VERSION_HEADER: served.version})


def key_matches(given: str | None, expected: SecretStr) -> bool:
    """Constant-time comparison, so the key cannot be guessed byte by byte from timings."""
    if given is None:
        return False
    return hmac.compare_digest(given.encode(), expected.get_secret_value().encode())
