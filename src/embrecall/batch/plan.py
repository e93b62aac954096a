"""What a batch run computes: which query kinds, for which query rows, in which blocks.

A :class:`BatchPlan` is fixed before anything is computed. Its ``fingerprint`` names the work
(artifact content, k, query kinds, exclusions, query ids, block size, search kind and its
parameters), so that a run interrupted midway can be recognised and resumed block by block, and
a run of different work never mixes with it. The device is not part of it: a run started on a
GPU may be finished on CPUs, since both give the same results.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from embrecall.batch import codec
from embrecall.embeddings import Embeddings
from embrecall.errors import InvalidArgumentError, UnknownIdError
from embrecall.index.torch_exact import resolve_device
from embrecall.recommender import Recommender

Search = Literal["exact", "index"]
Device = Literal["auto", "cpu", "cuda"]
OnUnknown = Literal["refuse", "skip"]

# Short names used in keys and folder names; the long ones are the library's query kinds.
QUERY_KEYS = {"recommend": "u2i", "similar_items": "i2i", "similar_users": "u2u"}
DEFAULT_BLOCK_SIZE = 4096


@dataclass(frozen=True)
class Task:
    """One query kind over a list of query rows.

    Attributes
    ----------
    query : {"recommend", "similar_items", "similar_users"}
    rows : (m,) int64
        Rows of the query space (users, or items for similar_items), in output order.
    exclude_seen : bool
        Leave out the user's seen items (recommend with interactions loaded).
    exclude_self : bool
        Leave out the query itself (similar_items / similar_users).
    """

    query: str
    rows: np.ndarray
    exclude_seen: bool
    exclude_self: bool

    @property
    def key(self) -> str:
        return QUERY_KEYS[self.query]

    def n_blocks(self, block_size: int) -> int:
        return -(-len(self.rows) // block_size)


@dataclass(frozen=True)
class Block:
    """Block ``number`` of a task: the query rows ``rows`` (at most ``block_size``)."""

    task: Task
    number: int
    rows: np.ndarray

    @property
    def name(self) -> str:
        """How a sink records this block as done: ``"u2i:12"``."""
        return f"{self.task.key}:{self.number}"


@dataclass
class BatchPlan:
    """The work of one batch run; build it with :func:`plan_batch`."""

    rec: Recommender
    k: int
    tasks: list[Task]
    block_size: int
    search: Search
    device: Device
    params: dict[str, int] = field(default_factory=dict)
    unknown_ids: list = field(default_factory=list)
    fingerprint: str = ""
    filter: tuple[str, ...] = ()  # catalogue filter expressions every result passes

    @property
    def n_queries(self) -> int:
        return sum(len(t.rows) for t in self.tasks)

    @property
    def n_blocks(self) -> int:
        return sum(t.n_blocks(self.block_size) for t in self.tasks)

    def blocks(self) -> Iterator[Block]:
        """Every block of every task, in a fixed order."""
        for task in self.tasks:
            for number in range(task.n_blocks(self.block_size)):
                start = number * self.block_size
                yield Block(task, number, task.rows[start : start + self.block_size])

    def query_space(self, task: Task) -> Embeddings:
        return self.rec.query_space(task.query)

    def target_space(self, task: Task) -> Embeddings:
        return self.rec.target_space(task.query)

    def value_bytes(self, task: Task) -> int:
        """Bytes of one stored result list of ``task`` (full k; estimated for string ids)."""
        target = self.target_space(task)
        kk = min(self.k, len(target))
        return codec.value_bytes(kk, target.id_kind, _mean_id_bytes(target))

    def meta(self) -> dict[str, Any]:
        """What a reader needs to know about the stored results (JSON-safe)."""
        described = self.rec.describe()
        return {
            "k": self.k,
            "fingerprint": self.fingerprint,
            "search": self.search,
            "params": dict(self.params),
            "block_size": self.block_size,
            "filter": list(self.filter),
            "blocks": {t.key: t.n_blocks(self.block_size) for t in self.tasks},
            "artifact": self.rec.info.get("artifact"),
            "id_kinds": {name: space["id_kind"] for name, space in described["spaces"].items()},
            "queries": {
                t.query: {
                    "key": t.key,
                    "count": int(len(t.rows)),
                    "metric": described["queries"][t.query]["metric"],
                    "score": described["queries"][t.query]["score"],
                    "exclude_seen": t.exclude_seen,
                    "exclude_self": t.exclude_self,
                }
                for t in self.tasks
            },
        }


def plan_batch(
    rec: Recommender,
    k: int = 100,
    *,
    queries: Sequence[str] = ("recommend",),
    user_ids: Sequence | np.ndarray | None = None,
    on_unknown: OnUnknown = "refuse",
    exclude_seen: bool = True,
    search: Search = "exact",
    device: Device = "auto",
    params: Mapping[str, int] | None = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
    filter: str | Sequence[str] | None = None,
) -> BatchPlan:
    """Decide what a batch run computes, checking every argument before any work starts.

    Parameters
    ----------
    rec : Recommender
        Usually ``embrecall.load(artifact)``.
    k : int
        Results per query, >= 1.
    queries : sequence of {"recommend", "similar_items", "similar_users"}
        Query kinds to compute. ``similar_items`` runs over every item.
    user_ids : sequence, optional
        Users to compute recommend / similar_users for (default: every user).
    on_unknown : {"refuse", "skip"}
        A user id the artifact does not hold: raise :class:`UnknownIdError` naming them
        (default), or leave it out and list it in ``BatchPlan.unknown_ids``.
    exclude_seen : bool
        Leave out seen items in recommend, as online ``recommend`` does by default.
    search : {"exact", "index"}
        ``"exact"``: brute force (blocked matrix products), the same results as an exact
        artifact online. ``"index"``: the artifact's own index (ANN when it was built so).
    device : {"auto", "cpu", "cuda"}
        Where exact search runs; ``"auto"`` takes a CUDA GPU when torch sees one.
    params : {"nprobe": int, "efSearch": int}, optional
        Search parameters of the artifact's index (``search="index"``).
    block_size : int
        Queries per block: the unit of writing and of resuming after an interruption.
    filter : expressions, optional
        Keep only results whose catalogue fields pass them (see :mod:`embrecall.filters`),
        for carousels: "the best 30 comedies". Each filter is its own namespace in a sink
        (:func:`filter_namespace`).
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise InvalidArgumentError(f"k must be a positive integer, got {k!r}")
    if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
        raise InvalidArgumentError(f"block size must be a positive integer, got {block_size!r}")
    if search not in ("exact", "index"):
        raise InvalidArgumentError(f"search must be 'exact' or 'index', not {search!r}")
    if on_unknown not in ("refuse", "skip"):
        raise InvalidArgumentError(f"on_unknown must be 'refuse' or 'skip', not {on_unknown!r}")
    queries = list(dict.fromkeys(queries))
    if not queries:
        raise InvalidArgumentError("no query kinds to compute")
    for q in queries:
        if q not in QUERY_KEYS:
            raise InvalidArgumentError(f"unknown query kind {q!r}; known: {', '.join(QUERY_KEYS)}")
        if q not in rec.query_kinds:
            raise InvalidArgumentError(f"{q} needs user embeddings, and none were loaded")
    if search == "index" and device == "cuda":
        raise InvalidArgumentError("search='index' runs the artifact's faiss index on CPUs")
    resolved = "cpu" if search == "index" else resolve_device(device)
    unknown: list = []
    user_rows = None
    if rec.users is not None:
        user_rows = np.arange(len(rec.users), dtype=np.int64)
        if user_ids is not None:
            user_rows, unknown = _user_rows(rec.users, user_ids, on_unknown)
    tasks = []
    for q in queries:
        kind = rec.query_kinds[q]
        everyone = np.arange(len(rec.items), dtype=np.int64)
        rows = user_rows if kind.query_space == "users" else everyone
        tasks.append(
            Task(
                q,
                rows,
                exclude_seen=rec.excludes_seen(kind, exclude_seen),
                exclude_self=kind.excludes_self,
            )
        )
    plan = BatchPlan(rec, int(k), tasks, block_size, search, resolved, dict(params or {}), unknown)
    if filter:
        for task in tasks:  # an unknown field or a bad expression: refused before any work
            compiled = rec.compile_filter(rec.query_kinds[task.query].target_space, filter)
        plan.filter = tuple(compiled.expressions)
    plan.fingerprint = _fingerprint(plan)
    return plan


def filter_namespace(expressions: Sequence[str]) -> str:
    """A readable, key- and file-name-safe name for a filter, e.g. ``genres-Comedy-ab12cd34``:
    the results of each filter live apart from the unfiltered ones and from each other."""
    from embrecall.filters import parse_filters

    canonical = ",".join(str(c) for c in parse_filters(expressions))
    readable = re.sub(r"[^A-Za-z0-9]+", "-", canonical).strip("-")[:48]
    digest = hashlib.sha256(canonical.encode()).hexdigest()[:8]
    return f"{readable}-{digest}" if readable else digest


def _user_rows(users: Embeddings, ids, on_unknown: str) -> tuple[np.ndarray, list]:
    ids = list(ids)
    if not ids:
        raise InvalidArgumentError("the list of user ids is empty")
    rows = users.lookup_rows(ids)
    # parsed, not coerced: an id beyond int64 is unknown like any other, skipped on request
    missing = [users.parse_id(ids[i]) for i in np.flatnonzero(rows < 0)]
    if missing and on_unknown == "refuse":
        shown = ", ".join(repr(m) for m in missing[:5])
        more = f" (and {len(missing) - 5} more)" if len(missing) > 5 else ""
        raise UnknownIdError(
            f"unknown user id {shown}{more}; leave them out with on_unknown='skip' "
            "(--unknown-users skip)",
            missing,
        )
    rows = rows[rows >= 0]
    if rows.size == 0:
        raise InvalidArgumentError("none of the given user ids is in the artifact")
    # A repeated id would be computed twice and written twice; keep its first place.
    _, first = np.unique(rows, return_index=True)
    return rows[np.sort(first)], missing


def _fingerprint(plan: BatchPlan) -> str:
    h = hashlib.sha256()
    work = {
        "k": plan.k,
        "block_size": plan.block_size,
        "search": plan.search,
        "params": sorted(plan.params.items()),
        "tasks": [(t.query, t.exclude_seen, t.exclude_self) for t in plan.tasks],
        "filter": list(plan.filter),
    }
    h.update(json.dumps(work, sort_keys=True).encode())
    h.update(_artifact_identity(plan.rec))
    for t in plan.tasks:
        h.update(np.ascontiguousarray(t.rows).tobytes())
    return h.hexdigest()


def _artifact_identity(rec: Recommender) -> bytes:
    """The checksums of a loaded artifact's files, or a hash of the data held in memory."""
    from embrecall.artifact import read_manifest

    path = rec.info.get("artifact")
    if path and Path(path).is_dir():
        files = read_manifest(path).get("files", {})
        return json.dumps(files, sort_keys=True).encode()
    h = hashlib.sha256()
    for space in (rec.items, rec.users):
        if space is not None:
            h.update(space.vectors.tobytes())
            h.update(repr(space.ids.tolist()).encode())
    if rec.seen is not None:
        h.update(rec.seen.indptr.tobytes())
        h.update(rec.seen.item_rows.tobytes())
    for kind in rec.query_kinds.values():
        h.update(f"{kind.name}:{kind.metric}:{kind.spec}".encode())
    return h.digest()


def _mean_id_bytes(space: Embeddings) -> float:
    if space.id_kind == "int":
        return 8.0
    sample = space.ids[:: max(1, len(space) // 1000)]
    return float(np.mean([len(str(s).encode()) for s in sample]))
