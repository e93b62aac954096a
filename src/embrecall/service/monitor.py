"""Live recall monitoring: answer a sample of real queries exactly, off the request path.

A retrain or a drift in the data can quietly lower what an approximate index finds (a user
vector distribution the IVF cells were not trained on, norms that HNSW handles badly). The
:class:`LiveRecallMonitor` makes that visible while serving:

* ``observe(...)`` is called on the request path after a query was answered. It decides by a
  seeded coin flip whether to sample the query (``sample_rate``), copies what it needs, and puts
  it on a bounded queue with ``put_nowait``: when the queue is full the sample is *dropped* and
  counted, never waited for. It does no search and takes no lock that a search holds.
* A background thread answers each sample exactly (:func:`embrecall.index.exact_search`, run
  block by block so that a large catalogue needs no large scratch copy) under the same
  exclusions the query had (the user's seen items for ``recommend`` by id, the query's own id for
  ``similar_*`` by id, and the request's ``exclude`` list) and scores recall@k of what was
  served, ties tolerated.
* Per query kind it keeps the last ``window`` recall values; ``snapshot()`` returns their mean
  and counters as a JSON-safe dict (for an info endpoint) and ``register_prometheus(registry)``
  exports them as gauges and counters.

After an artifact swap call ``set_recommender(new)``: the windows restart, so the gauges show
the new index and not a blend; samples still queued from the old one are discarded.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from embrecall.embeddings import check_query_vectors
from embrecall.errors import InvalidArgumentError, require_extra
from embrecall.index.exact import exact_topk
from embrecall.index.recall import recall_against_exact, true_scores

if TYPE_CHECKING:
    from embrecall.recommender import Recommender

log = logging.getLogger("embrecall")

_POLL_S = 0.1  # how often an idle worker looks at the stop flag


@dataclass(frozen=True)
class _Sample:
    """What the worker needs to re-answer one served query exactly (copied on the request path)."""

    generation: int
    rec: Recommender
    query_kind: str
    query_id: Any
    vector: np.ndarray | None
    served: np.ndarray
    k: int
    exclude: tuple
    exclude_seen: bool


class LiveRecallMonitor:
    """Rolling recall@k of live queries against exact search, per query kind.

    Parameters
    ----------
    recommender : Recommender or None
        The recommender that answers queries now (see :meth:`set_recommender` for swaps);
        ``None`` until one is loaded: nothing is sampled meanwhile.
    sample_rate : float in [0, 1]
        Fraction of observed queries to check; 0 turns checking off.
    k : int
        Recall is measured at ``min(k, the request's k)`` on the served list's head.
    window : int
        How many recent checks per query kind the rolling mean covers.
    max_queue : int
        Samples waiting for the worker; beyond it new samples are dropped (and counted).
    seed : int, optional
        Seeds the sampling coin, for reproducible tests.
    start : bool
        Start the background thread now (else call :meth:`start`).

    Notes
    -----
    Thread-safe: ``observe`` may be called from any number of request threads or an event loop
    at once. The worker shares the recommender read-only.
    """

    def __init__(
        self,
        recommender: Recommender | None,
        *,
        sample_rate: float = 0.01,
        k: int = 10,
        window: int = 1000,
        max_queue: int = 256,
        seed: int | None = None,
        start: bool = True,
    ) -> None:
        if not 0.0 <= float(sample_rate) <= 1.0:
            raise InvalidArgumentError(f"sample_rate must be in [0, 1], got {sample_rate!r}")
        for name, value in (("k", k), ("window", window), ("max_queue", max_queue)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise InvalidArgumentError(f"{name} must be a positive integer, got {value!r}")
        self.sample_rate = float(sample_rate)
        self.k = int(k)
        self.window = int(window)
        self.max_queue = int(max_queue)
        self._rec = recommender
        self._rng = random.Random(seed)
        self._queue: queue.Queue[_Sample] = queue.Queue(maxsize=self.max_queue)
        self._lock = threading.Lock()  # guards everything below; held only for a few lines
        self._idle = threading.Condition(self._lock)
        self._generation = 0
        self._pending = 0
        self._windows: dict[str, deque[float]] = {}
        self._checked: dict[str, int] = {}
        self._sampled = 0
        self._dropped = 0
        self._errors = 0
        self._last_error: str | None = None
        self._last_check: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if start:
            self.start()

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Start the background worker (a daemon thread); a no-op when it already runs."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._work, name="embrecall-live-recall", daemon=True
            )
            self._thread.start()

    def close(self, timeout: float = 5.0) -> None:
        """Stop the worker; samples still queued are discarded. Safe to call twice."""
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        self._discard_queued()

    def __enter__(self) -> LiveRecallMonitor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def set_recommender(self, recommender: Recommender | None) -> None:
        """Check against ``recommender`` from now on (after a swap); the windows restart."""
        with self._lock:
            self._rec = recommender
            self._generation += 1
            self._windows.clear()
        self._discard_queued()

    # -- the request path --------------------------------------------------------------------
    def observe(
        self,
        query_kind: str,
        served_ids: Sequence | np.ndarray,
        *,
        query_id: Any = None,
        vector: np.ndarray | Sequence[float] | None = None,
        k: int | None = None,
        exclude: Iterable | None = None,
        exclude_seen: bool = True,
        recommender: Recommender | None = None,
    ) -> bool:
        """Offer one answered query for checking; returns whether it was queued.

        Cheap and non-blocking: a coin flip, and for a sampled query a copy of its inputs and a
        ``put_nowait``. Invalid input is counted as an error (``errors``), never raised here.

        Parameters
        ----------
        query_kind : "recommend" | "similar_items" | "similar_users"
        served_ids : (k',) ids the query returned, best first
        query_id : the user or item id asked about (a query by id), or
        vector : (d,) the raw query vector (a query by vector)
        k : the k the request asked for; default ``len(served_ids)``
        exclude : ids the request excluded (a flat list)
        exclude_seen : whether ``recommend`` by id excluded the user's seen items
        recommender : the recommender that answered, when the caller may have swapped since
        """
        if self.sample_rate <= 0.0 or self._stop.is_set():
            return False
        with self._lock:
            if self._rng.random() >= self.sample_rate:
                return False
            generation, rec = self._generation, self._rec
        if rec is None or (recommender is not None and recommender is not rec):
            return False  # nothing loaded yet, or answered by a version no longer current
        try:
            served = np.array(served_ids, copy=True)
            sample = _Sample(
                generation=generation,
                rec=rec,
                query_kind=query_kind,
                query_id=query_id,
                vector=None if vector is None else np.array(vector, dtype=np.float32, copy=True),
                served=served,
                k=int(k) if k is not None else len(served),
                exclude=tuple(exclude) if exclude is not None else (),
                exclude_seen=bool(exclude_seen),
            )
        except (TypeError, ValueError) as exc:  # the request path must not fail because of us
            with self._lock:
                self._errors += 1
                self._last_error = f"observe: {type(exc).__name__}: {exc}"
            return False
        with self._lock:
            try:
                self._queue.put_nowait(sample)
            except queue.Full:
                self._dropped += 1
                return False
            self._sampled += 1
            self._pending += 1
        return True

    def observe_batch(
        self,
        query_kind: str,
        served_ids: np.ndarray,
        *,
        query_ids: Sequence | None = None,
        vectors: np.ndarray | Sequence[Sequence[float]] | None = None,
        k: int | None = None,
        exclude: Iterable | None = None,
        exclude_seen: bool = True,
        recommender: Recommender | None = None,
    ) -> int:
        """:meth:`observe` for each row of a batch answer; returns how many rows were queued.

        Parameters
        ----------
        served_ids : (m, k') ids as a batch query returns them, padded with -1 / None
        query_ids : m query ids, or
        vectors : (m, d) query vectors
        exclude : one flat list for every row, or m lists (one per row)
        """
        if self.sample_rate <= 0.0:
            return 0
        served_ids = np.asarray(served_ids)
        m = len(served_ids)
        given = None if exclude is None else list(exclude)
        per_row = bool(given) and all(
            not isinstance(e, (str, bytes)) and isinstance(e, Iterable) for e in given
        )
        if per_row and len(given) != m:
            raise InvalidArgumentError(f"exclude has {len(given)} lists for {m} rows")
        exclusions = given if per_row else [given] * m
        queued = 0
        for i in range(m):
            row = served_ids[i]
            row = row[(row != -1) & (row != None)]  # noqa: E711 -- padding is -1 or None
            queued += self.observe(
                query_kind,
                row,
                query_id=None if query_ids is None else query_ids[i],
                vector=None if vectors is None else vectors[i],
                k=k,
                exclude=exclusions[i],
                exclude_seen=exclude_seen,
                recommender=recommender,
            )
        return queued

    # -- reading -----------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """Counters and rolling recall per query kind, JSON-safe.

        ``query_kinds[name]["recall"]`` is the mean recall@k over the last ``samples`` checks
        (``None`` before the first); ``checked`` counts all checks since start.
        """
        with self._lock:
            kinds = {}
            for name in sorted({*self._windows, *self._checked}):
                values = self._windows.get(name, ())
                kinds[name] = {
                    "recall": (sum(values) / len(values)) if values else None,
                    "samples": len(values),
                    "checked": self._checked.get(name, 0),
                }
            return {
                "k": self.k,
                "sample_rate": self.sample_rate,
                "window": self.window,
                "running": self._thread is not None and self._thread.is_alive(),
                "queue": {"size": self._queue.qsize(), "capacity": self.max_queue},
                "sampled": self._sampled,
                "dropped": self._dropped,
                "errors": self._errors,
                "last_error": self._last_error,
                "seconds_since_last_check": (
                    None
                    if self._last_check is None
                    else round(time.monotonic() - self._last_check, 3)
                ),
                "query_kinds": kinds,
            }

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued sample is checked; False when ``timeout`` ran out first."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def register_prometheus(self, registry: Any, *, prefix: str = "embrecall") -> Any:
        """Export the snapshot on a ``prometheus_client`` registry; returns the collector
        (pass it to ``registry.unregister`` to stop exporting).

        Metrics: ``{prefix}_live_recall{query_kind}`` (gauge, rolling mean recall@k),
        ``{prefix}_live_recall_window_samples{query_kind}`` (gauge),
        ``{prefix}_live_recall_checked_total{query_kind}``,
        ``{prefix}_live_recall_dropped_total``, ``{prefix}_live_recall_errors_total`` (counters)
        and ``{prefix}_live_recall_queue_size`` (gauge).
        """
        require_extra("prometheus_client", "server")
        collector = _PrometheusCollector(self, prefix)
        registry.register(collector)
        return collector

    # -- the worker --------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            try:
                sample = self._queue.get(timeout=_POLL_S)
            except queue.Empty:
                if self._stop.is_set():
                    return
                continue
            self._process(sample)
            # Drop the reference while waiting for the next one: a sample holds its
            # recommender, which must be freed once a swap has replaced it.
            del sample

    def _process(self, sample: _Sample) -> None:
        if self._stop.is_set():
            self._done(sample, None, None)
            return
        try:
            recall = _check(sample, self.k)
        except Exception as exc:  # a bad sample must not kill the monitor
            self._done(sample, None, f"{type(exc).__name__}: {exc}")
        else:
            self._done(sample, recall, None)

    def _done(self, sample: _Sample, recall: float | None, error: str | None) -> None:
        with self._idle:
            self._pending -= 1
            if error is not None:
                self._errors += 1
                self._last_error = error
                log.debug("live recall check failed: %s", error)
            elif recall is not None and sample.generation == self._generation:
                name = sample.query_kind
                self._windows.setdefault(name, deque(maxlen=self.window)).append(recall)
                self._checked[name] = self._checked.get(name, 0) + 1
                self._last_check = time.monotonic()
            self._idle.notify_all()

    def _discard_queued(self) -> None:
        while True:
            try:
                sample = self._queue.get_nowait()
            except queue.Empty:
                return
            self._done(sample, None, None)


def _check(sample: _Sample, k_max: int) -> float:
    """Recall@min(k, request k) of one served answer against the exact one."""
    rec = sample.rec
    try:
        kind = rec.query_kinds[sample.query_kind]
    except KeyError:
        raise InvalidArgumentError(f"unknown query kind {sample.query_kind!r}") from None
    target = rec.target_space(kind)
    excluded = [target.lookup_rows(list(sample.exclude))] if sample.exclude else []
    if sample.query_id is not None:
        space = rec.query_space(kind)
        row = space.row_of(sample.query_id)
        query = space.vectors[row : row + 1]
        # The same exclusions Recommender applies to a query by id.
        excluded.append(rec.exclusions(kind, [row], exclude_seen=sample.exclude_seen)[1])
    elif sample.vector is not None:
        query, _ = check_query_vectors(sample.vector, target.dim)
    else:
        raise InvalidArgumentError("observe needs a query_id or a vector")
    rows = np.concatenate(excluded) if excluded else np.empty(0, dtype=np.int64)
    rows = rows[rows >= 0]
    k = max(1, min(k_max, sample.k))
    exact_scores, exact_rows = exact_topk(target.vectors, query, k, kind.metric, [rows])
    served = target.lookup_rows(list(sample.served[:k]))
    found = np.full((1, exact_rows.shape[1]), -1, dtype=np.int64)
    found[0, : len(served)] = served[: exact_rows.shape[1]]
    scores = true_scores(target.vectors, query, found, kind.metric)
    return float(recall_against_exact(found, scores, exact_rows, exact_scores)[0])


class _PrometheusCollector:
    """A custom collector: reads a fresh snapshot at every scrape, so nothing to keep in sync."""

    def __init__(self, monitor: LiveRecallMonitor, prefix: str) -> None:
        self.monitor = monitor
        self.prefix = prefix

    def describe(self):  # lets the registry detect duplicate names without a snapshot
        return list(self._families(None))

    def collect(self):
        return list(self._families(self.monitor.snapshot()))

    def _families(self, snap: dict[str, Any] | None):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        p = self.prefix
        k = self.monitor.k
        recall = GaugeMetricFamily(
            f"{p}_live_recall",
            f"Rolling mean recall@{k} of sampled live queries against exact search",
            labels=["query_kind"],
        )
        samples = GaugeMetricFamily(
            f"{p}_live_recall_window_samples",
            "Checks in the rolling recall window",
            labels=["query_kind"],
        )
        checked = CounterMetricFamily(
            f"{p}_live_recall_checked",
            "Sampled live queries checked against exact search",
            labels=["query_kind"],
        )
        dropped = CounterMetricFamily(
            f"{p}_live_recall_dropped", "Samples dropped because the check queue was full"
        )
        errors = CounterMetricFamily(f"{p}_live_recall_errors", "Samples whose check failed")
        size = GaugeMetricFamily(f"{p}_live_recall_queue_size", "Samples waiting to be checked")
        if snap is not None:
            for name, stats in snap["query_kinds"].items():
                if stats["recall"] is not None:
                    recall.add_metric([name], stats["recall"])
                samples.add_metric([name], stats["samples"])
                checked.add_metric([name], stats["checked"])
            dropped.add_metric([], snap["dropped"])
            errors.add_metric([], snap["errors"])
            size.add_metric([], snap["queue"]["size"])
        yield from (recall, samples, checked, dropped, errors, size)
