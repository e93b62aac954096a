"""Prometheus metrics of one app, and the ASGI middleware that counts and times requests.

Each app has its own registry (not prometheus_client's global one), so that several apps in one
process (tests) do not share or clash on metrics.
"""

from __future__ import annotations

import time

from embrecall.errors import require_extra

require_extra("prometheus_client", "server")

from prometheus_client import (  # noqa: E402
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST  # noqa: E402

# Fine buckets under 10 ms: the latency target lives there.
LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0015,
    0.002,
    0.003,
    0.004,
    0.005,
    0.0075,
    0.01,
    0.015,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)
CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    """The service's metrics; names start with ``embrecall_``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        ProcessCollector(registry=r)  # process_resident_memory_bytes shows a swap freeing memory
        self.requests = Counter(
            "embrecall_http_requests",
            "HTTP requests by route template, method and status.",
            ["route", "method", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "embrecall_http_request_duration_seconds",
            "Time from the request's arrival to the end of its response, by route template.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.version = Gauge(
            "embrecall_version_info",
            "1 for the version that answers requests.",
            ["version"],
            registry=r,
        )
        self.ready = Gauge("embrecall_ready", "1 when a version is serving.", registry=r)
        self.loads = Counter(
            "embrecall_version_loads",
            "Version loads by result (ok or failed).",
            ["result"],
            registry=r,
        )
        self.load_failures = Counter(
            "embrecall_version_load_failures",
            "Versions refused, by reason: artifact (manifest, checksums, files), canary, "
            "unknown_version, error.",
            ["reason"],
            registry=r,
        )
        self.swaps = Counter(
            "embrecall_swaps", "Times a new version replaced the served one.", registry=r
        )
        self.load_seconds = Histogram(
            "embrecall_version_load_seconds",
            "Load, verify and canary time of a version.",
            buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
            registry=r,
        )
        self.canary_recall = Gauge(
            "embrecall_canary_recall",
            "Canary recall@k of the served version, by query kind.",
            ["query"],
            registry=r,
        )
        self.in_memory = Gauge(
            "embrecall_versions_in_memory",
            "Versions held in memory: the served one plus replaced ones still answering requests "
            "that started before the swap.",
            registry=r,
        )
        self.filtered = Counter(
            "embrecall_filtered_queries",
            "Filtered queries by query kind and the plan that answered: scan (the passing rows "
            "scored exactly) or index (the index searched with a selector).",
            ["query", "plan"],
            registry=r,
        )
        self.live_changes = Counter(
            "embrecall_live_changes",
            "Live changes this process accepted (durable), by op (upsert, delete, seen) and space.",
            ["op", "space"],
            registry=r,
        )
        for result in ("ok", "failed"):
            self.loads.labels(result)
        for reason in ("artifact", "canary", "unknown_version", "error"):
            self.load_failures.labels(reason)

    def serving(self, version: str, previous: str | None) -> None:
        if previous is not None and previous != version:
            self.version.remove(previous)
        self.version.labels(version).set(1)
        self.ready.set(1)

    def filter_plans(self) -> dict[str, dict[str, int]]:
        """Filtered queries answered so far, by query kind and plan (what /v1/info shows)."""
        out: dict[str, dict[str, int]] = {}
        for sample in self.filtered.collect()[0].samples:
            if sample.name.endswith("_total"):
                query, plan = sample.labels["query"], sample.labels["plan"]
                out.setdefault(query, {})[plan] = int(sample.value)
        return out

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Pure ASGI (no per-request Request objects): counts and times every HTTP request.

    The route label is the route's template (``/v1/users/{user_id}/similar``), never the raw
    path, so unknown paths cannot grow the label set. Each response also tells its client the
    server's time so far, ``Server-Timing: app;dur=1.234`` (milliseconds from arrival to the
    response's start, which for these JSON answers is the whole work), so a client can tell
    server time from network time.
    """

    def __init__(self, app, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_and_note(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                took_ms = (time.perf_counter() - start) * 1000
                timing = (b"server-timing", b"app;dur=%.3f" % took_ms)
                message = {**message, "headers": [*message.get("headers", ()), timing]}
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.requests.labels(template, scope["method"], str(status)).inc()
            self.metrics.latency.labels(template).observe(time.perf_counter() - start)
