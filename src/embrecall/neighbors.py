"""`Neighbors`: the answer of one query (or a batch of them), and what it means.

A query answers with ids and scores, and with what a caller needs to present them without
remembering which method it called: the query kind, the space the ids come from, the metric and
the score direction. Joining the catalogue costs time, so records are made only when asked
(:attr:`Neighbors.records`). ``ids, scores = rec.recommend(1)`` keeps working: a ``Neighbors``
unpacks as the pair.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from embrecall.catalog import Catalog

_SCORE = {True: "higher is better", False: "squared L2 distance, lower is better"}


def score_text(higher_is_better: bool) -> str:
    """How a score reads: ``"higher is better"`` or a squared L2 distance."""
    return _SCORE[bool(higher_is_better)]


class Neighbors:
    """Ids and scores of one query (1-D, best first, never padded) or a batch (2-D).

    A batch row with fewer results than the others is padded with id ``-1`` (``None`` for
    string ids) and score ``NaN``. Unpacks as ``ids, scores``.

    Attributes
    ----------
    ids, scores : np.ndarray
        ``(k',)`` for one query, ``(m, k')`` for a batch.
    query : str
        The query kind: ``"recommend"``, ``"similar_items"``, ``"similar_users"``.
    space : str
        The space the ids come from: ``"items"`` or ``"users"``.
    metric : str
        ``"ip"``, ``"cosine"`` or ``"l2"``.
    higher_is_better : bool
        The score direction (``False`` for ``l2``: squared distances).
    filter : dict or None
        When a filter applied: its ``expressions``, how many rows ``passing`` it, and the
        ``plan`` that answered (``"scan"`` or ``"index"``, see :mod:`embrecall.index.filtered`).
    """

    __slots__ = (
        "ids",
        "scores",
        "query",
        "space",
        "metric",
        "higher_is_better",
        "filter",
        "_catalog",
    )

    def __init__(
        self,
        ids: np.ndarray,
        scores: np.ndarray,
        *,
        query: str,
        space: str,
        metric: str,
        higher_is_better: bool,
        catalog: Catalog | None = None,
        filter: dict[str, Any] | None = None,
    ) -> None:
        self.ids = ids
        self.scores = scores
        self.query = query
        self.space = space
        self.metric = metric
        self.higher_is_better = higher_is_better
        self.filter = filter
        self._catalog = catalog

    # -- the (ids, scores) pair ------------------------------------------------------------------
    def __iter__(self):
        return iter((self.ids, self.scores))

    def __len__(self) -> int:
        return 2

    def __getitem__(self, i):
        return (self.ids, self.scores)[i]

    def __repr__(self) -> str:
        return (
            f"Neighbors(query={self.query!r}, space={self.space!r}, metric={self.metric!r}, "
            f"ids={self.ids!r}, scores={self.scores!r})"
        )

    # -- what it means ---------------------------------------------------------------------------
    @property
    def is_batch(self) -> bool:
        """Whether this answers a batch (2-D) rather than one query (1-D)."""
        return self.ids.ndim == 2

    @property
    def score(self) -> str:
        """The score direction in words, as ``describe()`` and the JSON answers state it."""
        return score_text(self.higher_is_better)

    def rows(self) -> list[Neighbors]:
        """A batch as one ``Neighbors`` per query, each without the batch's padding."""
        if not self.is_batch:
            return [self]
        out = []
        for ids, scores in zip(self.ids, self.scores):
            valid = ~np.isnan(scores)
            out.append(self._like(ids[valid], scores[valid]))
        return out

    # -- records joined with the catalogue (made only when asked) -----------------------------
    @property
    def records(self) -> list[dict[str, Any]] | list[list[dict[str, Any]]]:
        """``[{"id", "score", <catalog fields>}]`` best first; a list of those for a batch."""
        return self.to_records()

    def to_records(self) -> list[dict[str, Any]] | list[list[dict[str, Any]]]:
        """See :attr:`records`."""
        if self.is_batch:
            return [row.to_records() for row in self.rows()]
        return join_records(self.ids, self.scores, self._catalog)

    def to_dict(self, *, id: Any = None, k: int | None = None) -> dict[str, Any]:
        """One query's answer as the CLI's ``--json`` prints it: ``query, id, k, metric, score,
        returned, results`` (``k`` is the k asked; ``returned`` is fewer when fewer exist)."""
        results = self.to_records()
        out = {
            "query": self.query,
            "id": id,
            "k": k,
            "metric": self.metric,
            "score": self.score,
            "returned": len(results),
            "results": results,
        }
        if self.filter is not None:
            out["filter"] = self.filter
        return out

    def _like(self, ids: np.ndarray, scores: np.ndarray) -> Neighbors:
        """The same query kind, space, metric and catalogue over other ids and scores."""
        like = copy.copy(self)
        like.ids, like.scores = ids, scores
        return like


def join_records(ids, scores, catalog: Catalog | None) -> list[dict[str, Any]]:
    """``[{"id", "score", <catalog fields>}]`` for one query's ids (plain Python values)."""
    id_list = [_py(i) for i in ids]
    meta = catalog.records(id_list) if catalog is not None else [{} for _ in id_list]
    return [{"id": i, "score": float(s), **m} for i, s, m in zip(id_list, scores, meta)]


def _py(value):
    return value.item() if isinstance(value, np.generic) else value
