"""Canary queries: a new version must agree with the exact answer before it may serve.

For every query kind, a seeded sample of query ids is asked through the version's own
``Recommender`` (id maps, exclusions, index) and the same vectors are searched by brute force
with :func:`embrecall.index.exact_search`, the oracle that shares no code with the faiss path.
The mean recall@k of the first against the second, ties tolerated (a result counts when its exact
score reaches the exact k-th score), must reach a threshold. This catches what checksums cannot
when the files are self-consistent: an index built from other vectors than the ones shipped
beside it, an approximate index whose parameters lost too much recall. (An id map shuffled
together with its vectors is consistent and cannot be caught: the artifact's checksums guard it.)

No HTTP here (the CLI's ``publish --check`` runs it too).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from embrecall.errors import ArtifactError, InvalidArgumentError
from embrecall.index.exact import exact_topk
from embrecall.index.recall import recall_at_k
from embrecall.service.canary_defaults import DEFAULT_K, DEFAULT_MIN_RECALL, DEFAULT_QUERIES

if TYPE_CHECKING:
    from embrecall.recommender import Recommender


class CanaryError(ArtifactError):
    """A version's answers disagree with the exact answer (``.report`` says by how much)."""

    def __init__(self, message: str, report: CanaryReport) -> None:
        super().__init__(message)
        self.report = report


@dataclass(frozen=True)
class CanaryReport:
    """Mean recall@k per query kind against the exact answer."""

    recall: dict[str, float]
    queries: int
    k: int
    min_recall: float
    seconds: float
    failed: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "recall": {q: round(r, 4) for q, r in self.recall.items()},
            "queries": self.queries,
            "k": self.k,
            "min_recall": self.min_recall,
            "seconds": round(self.seconds, 3),
            "failed": list(self.failed),
        }

    def summary(self) -> str:
        parts = ", ".join(f"{q} {r:.3f}" for q, r in self.recall.items())
        verdict = "ok" if self.ok else f"below {self.min_recall} for {', '.join(self.failed)}"
        return f"canary recall@{self.k} over {self.queries} queries: {parts} ({verdict})"


def run_canary(
    rec: Recommender,
    *,
    queries: int = DEFAULT_QUERIES,
    k: int = DEFAULT_K,
    min_recall: float = DEFAULT_MIN_RECALL,
    seed: int = 0,
) -> CanaryReport:
    """Ask ``queries`` sampled ids of every query kind and compare with the exact answer.

    Parameters
    ----------
    rec : Recommender
        The version under test.
    queries : int
        Query ids sampled per query kind (fewer when the space is smaller); 0 skips the check.
    k : int
        Results compared per query.
    min_recall : float in [0, 1]
        The mean recall@k every query kind must reach.
    seed : int
        Seeds the sample, so a version gets the same verdict every time it is checked.

    Returns
    -------
    CanaryReport
        ``.ok`` is False when a query kind is below ``min_recall``.
    """
    if queries < 0 or k < 1 or not 0.0 <= min_recall <= 1.0:
        raise InvalidArgumentError(
            "canary needs queries >= 0, k >= 1 and 0 <= min_recall <= 1; "
            f"got {queries}, {k}, {min_recall}"
        )
    t0 = time.perf_counter()
    recall: dict[str, float] = {}
    if queries:
        rng = np.random.default_rng(seed)
        for name, kind in rec.query_kinds.items():
            recall[name] = _kind_recall(rec, name, kind, queries, k, rng)
    failed = [name for name, r in recall.items() if r < min_recall]
    return CanaryReport(recall, queries, k, min_recall, time.perf_counter() - t0, failed)


def check_canary(rec: Recommender, **options: Any) -> CanaryReport:
    """:func:`run_canary`, raising :class:`CanaryError` when the version fails it."""
    report = run_canary(rec, **options)
    if not report.ok:
        raise CanaryError(report.summary(), report)
    return report


def _kind_recall(rec: Recommender, name: str, kind, queries: int, k: int, rng) -> float:
    source = rec.query_space(kind)
    target = rec.target_space(kind)
    rows = np.sort(rng.choice(len(source), min(queries, len(source)), replace=False))
    ids = source.ids[rows]
    # The by-id methods exercise the id maps as requests do; a custom kind goes by vector. The
    # index is checked without the seen items: the exclusions are the query kind's own.
    if name in ("recommend", "similar_items", "similar_users"):
        options = {"exclude_seen": False} if kind.excludes_seen else {}
        got, _ = getattr(rec, name)(ids, k, **options)
        exclude = rec.exclusion_lists(kind, rows, exclude_seen=False)
    else:
        got, _ = rec.search(name, source.vectors[rows], k)
        exclude = None
    queries_v = source.vectors[rows]
    _, exact_rows = exact_topk(target.vectors, queries_v, k, kind.metric, exclude)
    # Back from the ids served to rows, which the exact answer and the true scores speak.
    found = np.full(exact_rows.shape, -1, dtype=np.int64)
    for i, got_ids in enumerate(got):
        got_ids = got_ids[: exact_rows.shape[1]]
        if len(got_ids):
            found[i, : len(got_ids)] = target.lookup_rows(got_ids)
    # Ties tolerated: real ALS factors hold groups of identical vectors larger than k.
    return float(recall_at_k(target.vectors, queries_v, found, exact_rows, kind.metric).mean())
