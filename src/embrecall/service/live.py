"""Live updates over HTTP: admin routes that upsert, delete and record seen items, and the tail
that applies every server's changes in every process within a poll interval.

A change is validated against the served version (:mod:`embrecall.live.changes`), appended to
that version's change log and fsynced, applied in this process, and only then acknowledged.
Other processes of the root (``serve --workers N``, other servers) see it at their next poll.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Annotated, Any

from embrecall.errors import require_extra
from embrecall.live import changes
from embrecall.live.changelog import Record
from embrecall.service.errors import ApiError
from embrecall.service.registry import Served, VersionRegistry
from embrecall.service.runtime import Service
from embrecall.service.schemas import Id, errors

require_extra("fastapi", "server")

import anyio.to_thread  # noqa: E402
import orjson  # noqa: E402
from fastapi import APIRouter, Depends, Request  # noqa: E402
from pydantic import BaseModel, ConfigDict, Field  # noqa: E402
from starlette.responses import Response  # noqa: E402

log = logging.getLogger("embrecall.service")

POLL_INTERVAL_S = 0.2  # how often a process looks for changes other processes appended


def _service(request: Request) -> Service:
    return request.app.state.service


ServiceDep = Annotated[Service, Depends(_service)]


class ChangeResponse(BaseModel):
    """A change, acknowledged once it is durable (fsynced in the version's change log)."""

    version: str = Field(..., description="The version the change was recorded on.")
    op: str = Field(..., description="upsert, delete or seen.")
    space: str = Field(..., description="items or users.")
    id: Id = Field(..., description="The id changed.")
    durable: bool = Field(..., description="Always true: the answer waits for the fsync.")


class ItemUpsert(BaseModel):
    model_config = ConfigDict(extra="forbid")

    vector: list[float] = Field(..., description="The item's vector, of the items' dimension.")
    fields: dict[str, Any] | None = Field(
        None, description="Catalogue fields (title, genres, ...) shown with the item."
    )


class UserUpsert(BaseModel):
    model_config = ConfigDict(extra="forbid")

    vector: list[float] = Field(..., description="The user's vector, of the users' dimension.")


class SeenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[Id] = Field(..., min_length=1, description="Item ids the user has just consumed.")


def live_router(admin_key: Callable[..., None]) -> APIRouter:
    """The live-update routes, behind the admin key dependency ``admin_key``."""
    router = APIRouter(
        prefix="/v1",
        dependencies=[Depends(admin_key)],
        tags=["live updates"],
        responses=errors(
            401,
            403,
            409,
            422,
            503,
            e409="Live updates need a version root or a Milvus target (live_updates_off).",
        ),
    )
    body = errors(400, 413)

    @router.put(
        "/items/{item_id}", response_model=ChangeResponse, responses={**errors(404), **body}
    )
    async def put_item(service: ServiceDep, item_id: str, body: ItemUpsert) -> Response:
        """Add an item or replace its vector (and fields); answered once the change is durable."""
        served = _served_with_feed(service)
        return await _write(
            service,
            served,
            lambda: changes.upsert(served.rec, "items", item_id, body.vector, body.fields),
        )

    @router.delete("/items/{item_id}", response_model=ChangeResponse, responses=errors(404))
    async def delete_item(service: ServiceDep, item_id: str) -> Response:
        """Remove an item: never returned again once this answers."""
        served = _served_with_feed(service)
        live = served.feed.overlay
        return await _write(
            service, served, lambda: changes.delete(served.rec, live, "items", item_id)
        )

    @router.put(
        "/users/{user_id}", response_model=ChangeResponse, responses={**errors(404), **body}
    )
    async def put_user(service: ServiceDep, user_id: str, body: UserUpsert) -> Response:
        """Add a user or replace their vector."""
        served = _served_with_feed(service)
        return await _write(
            service, served, lambda: changes.upsert(served.rec, "users", user_id, body.vector)
        )

    @router.delete("/users/{user_id}", response_model=ChangeResponse, responses=errors(404))
    async def delete_user(service: ServiceDep, user_id: str) -> Response:
        """Remove a user."""
        served = _served_with_feed(service)
        live = served.feed.overlay
        return await _write(
            service, served, lambda: changes.delete(served.rec, live, "users", user_id)
        )

    @router.post(
        "/users/{user_id}/seen", response_model=ChangeResponse, responses={**errors(404), **body}
    )
    async def post_seen(service: ServiceDep, user_id: str, body: SeenRequest) -> Response:
        """Record items a user has just consumed: recommend leaves them out at once."""
        served = _served_with_feed(service)
        live = served.feed.overlay
        return await _write(
            service, served, lambda: changes.seen(served.rec, live, user_id, list(body.items))
        )

    return router


def _served_with_feed(service) -> Served:
    served = service.served()
    if served.feed is None:
        raise ApiError(
            409,
            "live_updates_off",
            "live updates need a version root or a Milvus target (not a single artifact)",
        )
    return served


async def _write(service: Service, served: Served, make: Callable[[], Record]) -> Response:
    def work() -> dict[str, Any]:
        record = make()  # validation raises the library's errors, mapped to 4xx
        served.feed.write([record])
        return record

    record = await anyio.to_thread.run_sync(work)
    service.metrics.live_changes.labels(record["op"], record["space"]).inc()
    body = {
        "version": served.version,
        "op": record["op"],
        "space": record["space"],
        "id": record["id"],
        "durable": True,
    }
    return Response(orjson.dumps(body), media_type="application/json")


class PendingChangesCollector:
    """Prometheus gauges of the served version's pending changes, read at every scrape from its
    feed (what ``/v1/info`` shows under ``live_changes``): they grow with changes and fall to
    zero when a compacted version serves."""

    PARTS = ("upserted", "hidden_rows", "deleted")

    def __init__(self, registry: VersionRegistry) -> None:
        self.registry = registry

    def describe(self):  # lets the registry detect duplicate names without reading a feed
        return list(self._families(None))

    def collect(self):
        served = self.registry.current
        return list(self._families(served.feed.describe() if served and served.feed else None))

    def _families(self, info: dict[str, Any] | None):
        from prometheus_client.core import GaugeMetricFamily

        records = GaugeMetricFamily(
            "embrecall_live_pending_records",
            "Change records applied over the served version's artifact.",
        )
        log_bytes = GaugeMetricFamily(
            "embrecall_live_log_bytes",
            "Bytes of the served version's change log applied here (a version root).",
        )
        pending = GaugeMetricFamily(
            "embrecall_live_pending",
            "Pending changes by space and part: upserted vectors (searched exactly), artifact "
            "rows deleted or replaced, ids deleted.",
            labels=["space", "part"],
        )
        if info is not None:
            records.add_metric([], info["records"])
            if "log_bytes" in info:  # a root's log; a Milvus target keeps its changes in Milvus
                log_bytes.add_metric([], info["log_bytes"])
            for space, parts in info["spaces"].items():
                for part in self.PARTS:
                    pending.add_metric([space, part], parts[part])
        yield records
        yield log_bytes
        yield pending


class LiveTail:
    """A thread that applies changes appended by other processes to the served version."""

    def __init__(self, registry: VersionRegistry, interval_s: float = POLL_INTERVAL_S) -> None:
        self.registry = registry
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="embrecall-live", daemon=True)

    def start(self) -> LiveTail:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        said = None  # the last failure logged: a log that stays bad is said once, not each tick
        while not self._stop.wait(self.interval_s):
            served = self.registry.current
            if served is None or served.feed is None:
                continue
            try:
                served.feed.poll()
                said = None
            except Exception as exc:  # the tail must outlive a bad tick
                if (served.version, str(exc)) != said:
                    log.exception("applying live changes of version %s failed", served.version)
                    said = (served.version, str(exc))
