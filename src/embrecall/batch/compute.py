"""Running a batch plan: compute each block, write it to a sink, flip the sink's pointer.

Blocks are computed one after another (each one uses every core: BLAS and faiss heaps on CPUs,
or the GPU) while the previous block is written on a background thread, so the sink's network
or disk time hides behind the next block's arithmetic. A block the sink already holds from an
interrupted run of the same plan is not computed again.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from tqdm.auto import tqdm

from embrecall._progress import bar_disabled
from embrecall.batch.plan import BatchPlan, Block, Task
from embrecall.index.exact import prepare
from embrecall.index.kernel import ExactKernel, gather_rows
from embrecall.queries import ID_WHAT, query_space

if TYPE_CHECKING:
    from embrecall.batch.sinks.base import Sink

log = logging.getLogger("embrecall")

# Queries per faiss call in index search, grouped by how many rows each excludes.
_INDEX_GROUP = 256
# Blocks waiting to be written while the next is computed: bounds memory, keeps both busy.
_WRITES_IN_FLIGHT = 2


@dataclass
class BatchReport:
    """What a finished run did.

    Attributes
    ----------
    version : str
        The version now current in the sink.
    sink : str
        Where it went.
    queries : dict
        Queries per query kind, e.g. ``{"recommend": 610}``.
    blocks_computed, blocks_resumed : int
        Blocks computed by this call, and blocks an interrupted run had already written.
    seconds : float
        Wall time of this call, from the sink's first contact to the pointer flip.
    queries_per_second : float
        Queries computed and written by this call per second of ``seconds``.
    unknown_ids : list
        Given user ids the artifact does not hold (left out under ``on_unknown="skip"``).
    """

    version: str
    sink: str
    device: str
    search: str
    queries: dict[str, int]
    blocks_computed: int
    blocks_resumed: int
    seconds: float
    queries_per_second: float
    unknown_ids: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return {**self.__dict__, "unknown_ids": [_py(i) for i in self.unknown_ids]}


class BlockSearcher:
    """Computes the blocks of a plan; bases are prepared once per task, not once per block."""

    def __init__(self, plan: BatchPlan) -> None:
        self.plan = plan
        self._engines: dict[str, object] = {}

    def search(self, block: Block) -> tuple[np.ndarray, np.ndarray]:
        """Scores (b, k') and target rows (b, k') of one block, padded with NaN / -1."""
        task = block.task
        engine = self._engines.get(task.query)
        if engine is None:
            engine = self._engines[task.query] = self._engine(task)
        return engine.search(block.rows, exclusions(self.plan, task, block.rows))

    def _engine(self, task: Task):
        plan = self.plan
        kind = plan.rec.query_kinds[task.query]
        queries = plan.query_space(task).vectors
        target = plan.target_space(task)
        device = "cuda" if plan.device == "cuda" else None  # None: the CPU kernel
        if plan.filter:
            allowed = plan.rec.compile_filter(kind.target_space, plan.filter)
            if plan.search == "index":
                index = plan.rec.indexes[kind.index_name]
                return _FilteredIndexEngine(index, target.vectors, queries, plan, allowed)
            base = prepare(target.vectors[allowed.rows], kind.metric)
            exact = _ExactEngine(base, queries, plan.k, kind.metric, device)
            return _Restricted(exact, allowed.rows, min(plan.k, len(target)))
        if plan.search == "index":
            return _IndexEngine(plan.rec.indexes[kind.index_name], queries, plan.k, plan.params)
        base = prepare(target.vectors, kind.metric)
        return _ExactEngine(base, queries, plan.k, kind.metric, device)


def exclusions(plan: BatchPlan, task: Task, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """CSR ``(indptr (b + 1,), cols)`` of the target rows each query of a block leaves out
    (the query kind's policy, as the recommender applies it online)."""
    return plan.rec.exclusions(task.query, rows, exclude_seen=task.exclude_seen)


class _ExactEngine:
    """One exact kernel over the prepared base (see :mod:`embrecall.index.kernel`)."""

    def __init__(self, base: np.ndarray, queries: np.ndarray, k: int, metric: str, device):
        self.exact = ExactKernel(base, metric, device=device, prepared=True)
        self.queries, self.k, self.metric = queries, k, metric

    def search(self, rows: np.ndarray, exclude) -> tuple[np.ndarray, np.ndarray]:
        q = prepare(self.queries[rows], self.metric)
        return self.exact.search(q, self.k, exclude, prepared=True)


class _Restricted:
    """An engine over the rows a filter passes (``rows``, sorted), in target rows outside."""

    def __init__(self, engine: _ExactEngine, rows: np.ndarray, width: int) -> None:
        self.engine, self.rows, self.width = engine, rows, width

    def search(self, query_rows: np.ndarray, exclude) -> tuple[np.ndarray, np.ndarray]:
        indptr, cols = exclude
        # excluded target rows -> positions among the passing rows; the others cannot appear
        at = np.minimum(np.searchsorted(self.rows, cols), max(self.rows.size - 1, 0))
        held = (self.rows[at] == cols) if self.rows.size else np.zeros(cols.size, dtype=bool)
        owner = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))[held]
        sub_ptr = np.zeros(len(indptr), dtype=np.int64)
        np.cumsum(np.bincount(owner, minlength=len(indptr) - 1), out=sub_ptr[1:])
        scores, found = self.engine.search(query_rows, (sub_ptr, at[held]))
        wide = np.full((len(query_rows), self.width), -1, dtype=np.int64)
        wide_s = np.full(wide.shape, np.nan, dtype=np.float32)
        width = found.shape[1]
        valid = found >= 0
        mapped = np.full(found.shape, -1, dtype=np.int64)
        mapped[valid] = self.rows[found[valid]]
        wide[:, :width], wide_s[:, :width] = mapped, scores
        return wide_s, wide


class _FilteredIndexEngine:
    """The artifact's index with the filter inside the search (see
    :func:`embrecall.index.filtered.filtered_search`), a block at a time."""

    def __init__(self, index, base: np.ndarray, queries: np.ndarray, plan, allowed) -> None:
        self.index, self.base, self.queries = index, base, queries
        self.k, self.params, self.allowed = plan.k, plan.params or None, allowed

    def search(self, rows: np.ndarray, exclude) -> tuple[np.ndarray, np.ndarray]:
        from embrecall.index.filtered import filtered_search

        indptr, cols = exclude
        excluded = [cols[indptr[i] : indptr[i + 1]] for i in range(len(rows))]
        scores, found, _ = filtered_search(
            self.index,
            self.base,
            self.queries[rows],
            self.k,
            self.allowed,
            exclude=excluded,
            params=self.params,
        )
        return scores, found


class _IndexEngine:
    """The artifact's own faiss index (exact or ANN), searched a group of queries at a time.

    Each group over-fetches ``k + most rows any of its queries excludes`` in one faiss batch
    call and drops the excluded rows, which leaves exactly what a search filtered inside faiss
    returns for exact and IVF indexes. Queries are grouped by their exclusion count so a user
    with thousands of seen items does not make a whole block fetch thousands. A query still
    short of results (an ANN index that visited too little) goes through the online search,
    which filters inside faiss and widens its parameters until k are found.
    """

    def __init__(self, index, queries: np.ndarray, k: int, params: dict) -> None:
        self.index, self.queries, self.params = index, queries, params or None
        self.n = index.ntotal
        self.kk = min(int(k), self.n)

    def search(self, rows: np.ndarray, exclude) -> tuple[np.ndarray, np.ndarray]:
        indptr, cols = exclude
        counts = np.diff(indptr)
        b, kk, n = len(rows), self.kk, self.n
        out_s = np.full((b, kk), np.nan, dtype=np.float32)
        out_r = np.full((b, kk), -1, dtype=np.int64)
        order = np.argsort(counts, kind="stable")
        for lo in range(0, b, _INDEX_GROUP):
            group = order[lo : lo + _INDEX_GROUP]
            fetch = int(min(n, kk + counts[group].max()))
            s, r = self.index.search(self.queries[rows[group]], fetch, params=self.params)
            sub_ptr, sub_cols = gather_rows(indptr, cols, group)
            owner = np.repeat(np.arange(len(group), dtype=np.int64), np.diff(sub_ptr))
            keys = np.arange(len(group), dtype=np.int64)[:, None] * n + r
            bad = (r < 0) | np.isin(keys, owner * n + sub_cols)
            keep = np.argsort(bad, axis=1, kind="stable")[:, :kk]  # survivors first, in order
            s = np.take_along_axis(s, keep, axis=1)
            r = np.take_along_axis(r, keep, axis=1)
            dropped = np.take_along_axis(bad, keep, axis=1)
            r[dropped], s[dropped] = -1, np.nan
            width = r.shape[1]
            out_s[group, :width], out_r[group, :width] = s, r
            want = np.minimum(kk, n - counts[group])
            for j in np.flatnonzero((r >= 0).sum(axis=1) < want):
                i = group[j]
                excluded = [cols[indptr[i] : indptr[i + 1]]]
                s1, r1 = self.index.search(
                    self.queries[rows[i : i + 1]], kk, exclude=excluded, params=self.params
                )
                out_s[i], out_r[i] = s1[0], r1[0]
        return out_s, out_r


def run_batch(
    plan: BatchPlan,
    sink: Sink | str,
    *,
    restart: bool = False,
    progress: bool | None = None,
) -> BatchReport:
    """Compute every block of ``plan``, write it to ``sink`` and make it current atomically.

    Parameters
    ----------
    plan : BatchPlan
        From :func:`~embrecall.batch.plan_batch`.
    sink : Sink or str
        A sink or its address (``redis://host:6379/0?prefix=recs``, ``out.sqlite``, a parquet
        directory); see :func:`~embrecall.batch.sinks.open_sink`.
    restart : bool
        Start afresh even when the sink holds an interrupted run of the same plan (by default
        that run is resumed: its finished blocks are kept, not computed again).
    progress : bool, optional
        A progress bar per query kind with queries/s and ETA; by default only on a terminal.

    Returns
    -------
    BatchReport

    Raises
    ------
    SinkError
        The sink cannot be reached or written. Nothing is made current then: readers keep the
        previous version.
    """
    from embrecall.batch.sinks import open_sink

    if isinstance(sink, str):
        sink = open_sink(sink)
    t0 = time.perf_counter()
    sink.check()
    run = sink.open_run(plan.fingerprint, plan.meta(), restart=restart)
    bars = {
        t.query: tqdm(
            total=len(t.rows),
            desc=t.query,
            unit=_unit(t),
            disable=bar_disabled(progress),
            dynamic_ncols=True,
            smoothing=0.1,
        )
        for t in plan.tasks
    }
    try:
        done = run.done_blocks()
        searcher = BlockSearcher(plan)
        computed = resumed = written_queries = 0
        pending: list[Future] = []
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="embrecall-sink") as writer:
            for block in plan.blocks():
                bar = bars[block.task.query]
                if block.name in done:
                    resumed += 1
                    bar.update(len(block.rows))
                    continue
                scores, rows = searcher.search(block)
                ids, counts = _to_ids(plan.target_space(block.task), rows)
                query_ids = plan.query_space(block.task).ids[block.rows]
                while len(pending) >= _WRITES_IN_FLIGHT:
                    pending.pop(0).result()  # re-raises a failed write here
                pending.append(
                    writer.submit(
                        run.write_block, block.name, block.task.key, query_ids, ids, scores, counts
                    )
                )
                computed += 1
                written_queries += len(block.rows)
                bar.update(len(block.rows))
            for f in pending:
                f.result()
        run.commit()
    finally:
        # Writes already submitted finish before this point (the pool waits for them), so an
        # interrupted run records every block it wrote as done, ready to resume.
        for bar in bars.values():
            bar.close()
        run.close()
    seconds = time.perf_counter() - t0
    log.info(
        "batch: %d blocks computed, %d resumed, %d queries in %.2fs -> %s",
        computed,
        resumed,
        written_queries,
        seconds,
        run.version,
    )
    return BatchReport(
        version=run.version,
        sink=sink.url,
        device=plan.device,
        search=plan.search,
        queries={t.query: int(len(t.rows)) for t in plan.tasks},
        blocks_computed=computed,
        blocks_resumed=resumed,
        seconds=seconds,
        queries_per_second=written_queries / seconds if seconds > 0 else 0.0,
        unknown_ids=list(plan.unknown_ids),
    )


def _to_ids(space, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """External ids (b, k') for target rows (padding -1 kept as -1 / None) and real counts."""
    valid = rows >= 0
    counts = valid.sum(axis=1)
    if space.id_kind == "int":
        ids = np.where(valid, space.ids[np.where(valid, rows, 0)], -1)
    else:
        ids = np.empty(rows.shape, dtype=object)
        ids[valid] = space.ids[rows[valid]]
    return ids, counts


def _unit(task: Task) -> str:
    return ID_WHAT[query_space(task.query)].removesuffix(" id")


def _py(value):
    return value.item() if isinstance(value, np.generic) else value
