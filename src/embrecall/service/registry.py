"""The served version and how it is replaced: load, verify, canary, swap, watch the pointer.

A request reads :attr:`VersionRegistry.current` once and uses that snapshot to the end, so every
answer comes from exactly one version. A new version is loaded and checked off the request path
(the watcher thread, or the loader thread for admin calls) while the old one keeps answering; the
swap is one reference assignment. A version that fails a check is never served: the old one
stays, readiness stays up, the failure is logged and counted.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, TypeVar

from embrecall.artifact import load_artifact
from embrecall.errors import ArtifactError, EmbrecallError
from embrecall.service.canary import CanaryError, check_canary
from embrecall.service.canary_defaults import DEFAULT_K, DEFAULT_MIN_RECALL, DEFAULT_QUERIES
from embrecall.versions import UnknownVersionError, VersionRoot, VersionSource

if TYPE_CHECKING:
    from embrecall.live.feed import LiveFeed
    from embrecall.recommender import Recommender
    from embrecall.service.metrics import Metrics
    from embrecall.service.settings import Settings

log = logging.getLogger("embrecall.service")
T = TypeVar("T")
_LOADER_NICENESS = 10


@dataclass(frozen=True, eq=False)
class Served:
    """One loaded, checked version: what a request answers from."""

    version: str
    rec: Recommender
    loaded_at: str
    queries: Mapping[str, Mapping[str, str]]  # query kind -> {"metric", "score"}, for responses
    description: dict[str, Any]
    canary: dict[str, Any] | None = None
    feed: LiveFeed | None = None  # its live changes (root mode); None for a single artifact


@dataclass(frozen=True)
class LoadOutcome:
    version: str
    status: str  # "swapped" | "unchanged"
    previous: str | None
    seconds: float
    canary: dict[str, Any] | None = None


class VersionRefused(EmbrecallError):
    """A version failed a check (or could not be found); the served one is unchanged.

    ``reason`` is one of artifact, canary, unknown_version, error.
    """

    def __init__(
        self, version: str, reason: str, message: str, details: dict | None = None
    ) -> None:
        super().__init__(message)
        self.version = version
        self.reason = reason
        self.message = message
        self.details = dict(details or {})


class VersionRegistry:
    """Holds the served version of one :class:`~embrecall.versions.VersionSource`.

    Parameters
    ----------
    source : VersionRoot, SingleArtifact or MilvusVersions
    settings : Settings
        Canary options and the pointer watch interval.
    metrics : Metrics
    """

    def __init__(self, source: VersionSource, settings: Settings, metrics: Metrics) -> None:
        self.source = source
        self.settings = settings
        self.metrics = metrics
        self._current: Served | None = None
        self._load_lock = threading.Lock()  # one load at a time; requests never take it
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self._pointer_seen: str | None = None
        self._pointer_error: str | None = None
        self._retired: list[weakref.ref] = []
        self.last_load: dict[str, Any] | None = None
        # Called with each newly served version (e.g. to point the live recall monitor at it).
        self.on_swap: Callable[[Served], None] | None = None
        # Admin loads run here, like the watcher's, at a lower CPU priority than searches.
        self._loader = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="embrecall-load", initializer=_lower_priority
        )

    # -- reading (request path) ------------------------------------------------------------
    @property
    def current(self) -> Served | None:
        """The served version, or None before the first successful load."""
        return self._current

    @property
    def loading(self) -> bool:
        return self._load_lock.locked()

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        """Load what the source points at now, then watch the pointer (root mode).

        Raises :class:`VersionRefused` when that first version fails; in root mode the watcher
        is started first, so a later publish can still bring the service up.
        """
        try:
            version = self.source.current()
        except ArtifactError as exc:
            version = None
            log.error("cannot read the version pointer: %s", exc)
        self._pointer_seen = version
        if self.source.mode in ("root", "milvus") and self.settings.watch_interval_s > 0:
            self._watcher = threading.Thread(
                target=self._watch, name="embrecall-watch", daemon=True
            )
            self._watcher.start()
        if version is None:
            log.warning("%s has no current version yet; waiting for a publish", self.source.path)
            return
        self.load(version)

    def stop(self) -> None:
        self._stop.set()
        self._loader.shutdown(wait=False, cancel_futures=True)
        if self._watcher is not None:
            self._watcher.join(timeout=10)

    def submit(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> Future[T]:
        """Run ``fn`` (``load``, ``reload``) in the low-priority loader thread."""
        return self._loader.submit(fn, *args, **kwargs)

    def reload(self) -> LoadOutcome:
        """Load the version the pointer names now (an admin call; retries a refused one)."""
        version = self.source.current()
        if version is None:
            raise VersionRefused(
                "", "unknown_version", f"{self.source.path} has no current version"
            )
        self._pointer_seen = version
        return self.load(version)

    def load(self, version: str, *, force: bool = False) -> LoadOutcome:
        """Load, verify and canary-check ``version``, then make it the served one.

        Blocks (in the caller's thread) for as long as the load takes. Returns
        ``status="unchanged"`` when it already serves, unless ``force``.

        Raises
        ------
        VersionRefused
            The version is unknown, corrupt, or fails the canary; nothing changed.
        """
        with self._load_lock:
            before = self._current
            if before is not None and before.version == version and not force:
                return LoadOutcome(version, "unchanged", version, 0.0, before.canary)
            t0 = time.perf_counter()
            try:
                served = self._load_checked(version)
            except VersionRefused as refusal:
                self._note_failure(refusal, time.perf_counter() - t0)
                raise
            seconds = time.perf_counter() - t0
            self._current = served  # the swap: readers see the old or the new snapshot
            if self.on_swap is not None:
                self.on_swap(served)
            previous = before.version if before is not None else None
            if before is not None:
                self.metrics.swaps.inc()
                self._retired.append(weakref.ref(before.rec))
            del before  # the old version lives only as long as requests that still hold it
            self.metrics.serving(version, previous)
            self.metrics.loads.labels("ok").inc()
            self.metrics.load_seconds.observe(seconds)
            for name, recall in (served.canary or {}).get("recall", {}).items():
                self.metrics.canary_recall.labels(name).set(recall)
            self.last_load = {
                "version": version,
                "ok": True,
                "at": _now(),
                "seconds": round(seconds, 3),
                "canary": served.canary,
            }
            log.info(
                "serving version %s (was %s); loaded and checked in %.2fs",
                version,
                previous,
                seconds,
            )
        self.release_retired()
        return LoadOutcome(version, "swapped", previous, seconds, served.canary)

    def release_retired(self) -> int:
        """Give memory of replaced versions back once no request holds them; return how many
        replaced versions are still held.

        Reference counting frees a replaced version when its last request ends. No explicit
        ``gc.collect()`` here: a full collection walks every object of the process and holds the
        GIL for ~100 ms, a stall every request in flight would see.
        """
        before = len(self._retired)
        self._retired = [r for r in self._retired if r() is not None]
        if len(self._retired) < before:
            _malloc_trim()
        self.metrics.in_memory.set((1 if self._current is not None else 0) + len(self._retired))
        return len(self._retired)

    # -- internals -------------------------------------------------------------------------
    def _load_checked(self, version: str) -> Served:
        s = self.settings
        try:
            if self.source.mode == "milvus":  # collections in Milvus, not files
                rec = self.source.load_version(version, self._predecessor(version))
            else:
                path = self.source.path_of(version)
                # Verify manifest, sizes and SHA-256 of every file, then read (or map) them.
                rec = load_artifact(path, verify=True, mmap=s.mmap)
            canary = None
            floor = self._canary_floor(version)
            if floor["queries"]:
                # the index against its own rows: live changes on Milvus are attached at load
                live, rec.live = rec.live, None
                try:
                    canary = check_canary(rec, **floor).as_dict()
                finally:
                    rec.live = live
            description = rec.describe()
            feed = self._live_feed(version, rec)  # after the canary, which checks the artifact
        except UnknownVersionError as exc:
            raise VersionRefused(version, "unknown_version", str(exc)) from None
        except CanaryError as exc:
            raise VersionRefused(
                version, "canary", f"version {version}: {exc}", exc.report.as_dict()
            ) from None
        except ArtifactError as exc:
            raise VersionRefused(version, "artifact", f"version {version}: {exc}") from None
        except EmbrecallError as exc:
            raise VersionRefused(version, "error", f"version {version}: {exc}") from None
        except Exception as exc:  # a bug or an OS error must not take the service down
            log.exception("loading version %s failed unexpectedly", version)
            raise VersionRefused(
                version, "error", f"version {version}: {type(exc).__name__}: {exc}"
            ) from None
        description.pop("artifact", None)  # a server path: not for clients
        queries = {
            name: {"metric": q["metric"], "score": q["score"]}
            for name, q in description["queries"].items()
        }
        return Served(version, rec, _now(), queries, description, canary, feed)

    def _live_feed(self, version: str, rec: Recommender) -> LiveFeed | None:
        """Replay ``version``'s change log onto ``rec`` before it serves a request, carrying
        over what the version it replaces took since (embrecall.live.feed)."""
        if self.source.mode == "milvus":  # loaded with its changes (embrecall.milvus.live)
            return getattr(rec.live, "feed", None)
        if not isinstance(self.source, VersionRoot):
            return None
        from embrecall.live.feed import LiveFeed

        return LiveFeed(self.source.path, version, rec, self._predecessor(version))

    def _predecessor(self, version: str) -> str | None:
        """The version whose late changes ``version`` carries over: the one served before it,
        or for a fresh process the source's previous current version."""
        before = self._current
        predecessor = before.version if before is not None else None
        if predecessor is None and self.source.current() == version:
            previous = self.source.history().get("previous") or []
            predecessor = previous[-1] if previous else None
        return predecessor

    def _canary_floor(self, version: str) -> dict[str, Any]:
        """The canary settings for ``version``: the server's own where set, else what publish
        recorded for it, else the shared defaults (the same rule as `embrecall rollback`)."""
        recorded = {}
        if self.source.mode in ("root", "milvus"):
            recorded = self.source.canary_floor(version) or {}
        s = self.settings
        chosen = {
            "queries": recorded.get("queries", DEFAULT_QUERIES),
            "k": recorded.get("k", DEFAULT_K),
            "min_recall": recorded.get("min_recall", DEFAULT_MIN_RECALL),
        }
        for key, value in (
            ("queries", s.canary_queries),
            ("k", s.canary_k),
            ("min_recall", s.canary_min_recall),
        ):
            if value is not None:
                chosen[key] = value
        return chosen

    def _note_failure(self, refusal: VersionRefused, seconds: float) -> None:
        self.metrics.loads.labels("failed").inc()
        self.metrics.load_failures.labels(refusal.reason).inc()
        self.last_load = {
            "version": refusal.version,
            "ok": False,
            "at": _now(),
            "seconds": round(seconds, 3),
            "reason": refusal.reason,
            "error": refusal.message,
        }
        serving = self._current.version if self._current is not None else None
        log.error(
            "refused version %s (%s): %s; still serving %s",
            refusal.version,
            refusal.reason,
            refusal.message,
            serving,
        )

    def _watch(self) -> None:
        """Poll the pointer; a change (publish, rollback) triggers a load off the request path."""
        interval = self.settings.watch_interval_s
        _lower_priority()
        while not self._stop.wait(interval):
            try:
                self._watch_once()
            except Exception:  # the watcher must outlive any one bad tick
                log.exception("version watcher tick failed")

    def _watch_once(self) -> None:
        self.release_retired()
        try:
            pointer = self.source.current()
            self._pointer_error = None
        except ArtifactError as exc:
            if str(exc) != self._pointer_error:  # say it once, not every tick
                log.error("cannot read the version pointer: %s", exc)
                self._pointer_error = str(exc)
            return
        # React to changes of the pointer, not to any difference from what is served: an admin
        # may have loaded another version on purpose, and a refused version is not retried
        # every tick.
        if pointer is None or pointer == self._pointer_seen:
            return
        self._pointer_seen = pointer
        served = self._current
        if served is not None and served.version == pointer:
            return
        log.info("version pointer moved to %s", pointer)
        with contextlib.suppress(VersionRefused):  # logged and counted in load()
            self.load(pointer)


def describe_source(source: VersionSource) -> dict[str, Any]:
    """Versions of a source for ``/v1/info``: mode, pointer, and the ids it holds."""
    try:
        pointer = source.current()
        ids = source.ids()
    except (ArtifactError, OSError) as exc:
        return {"mode": source.mode, "error": str(exc)}
    return {"mode": source.mode, "current": pointer, "available": ids}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _lower_priority() -> None:
    """Nice the calling thread (Linux: a thread id is a process id to setpriority).

    Loading, hashing and canary-checking a version is background work: the search threads
    should win the cores while it runs, so a swap costs the requests in flight little latency.
    """
    with contextlib.suppress(AttributeError, OSError):  # not Linux, or not permitted
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), _LOADER_NICENESS)


def _malloc_trim() -> None:
    """Ask glibc to hand freed heap pages back to the OS.

    Large index arrays can land on the heap (glibc raises its mmap threshold after frees), and
    without a trim the process would keep two versions' worth of resident memory after a swap.
    """
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to do
        ctypes.CDLL("libc.so.6").malloc_trim(0)
