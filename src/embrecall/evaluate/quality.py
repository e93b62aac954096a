"""How good the recommendations are: HitRate@K, Recall@K, NDCG@K and catalogue coverage of
``recommend`` on held-out interactions, next to a popularity baseline.

The recommender must hold the *training* interactions as its seen items (build it with
``interactions=split.train``): those are excluded from every list, as in production, and the
popularity baseline is counted from them. A held-out item the user already saw in training is
dropped from the relevant set (it can never be recommended, so it would only add noise); a
held-out item the model does not know (new in the test period) stays relevant and counts as a
miss, because a user would have missed it too.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from embrecall._progress import bar_disabled
from embrecall.errors import InputFormatError, InvalidArgumentError, NotFoundError
from embrecall.evaluate.baselines import popularity_order, recommend_popular
from embrecall.evaluate.metrics import check_ks, coverage, ranking_metrics
from embrecall.interactions import Interactions
from embrecall.recommender import Recommender

log = logging.getLogger("embrecall")

DEFAULT_KS: tuple[int, ...] = (1, 5, 10, 20, 50, 100)
METHODS: tuple[str, ...] = ("model", "popularity")


@dataclass(frozen=True)
class QualityRow:
    """One method's metrics at one cut-off K, averaged over the evaluated users."""

    method: str  # "model" (the recommender's recommend) or "popularity"
    k: int
    hit_rate: float
    recall: float
    ndcg: float
    coverage: float


@dataclass(frozen=True)
class QualityReport:
    """Every method at every K, and how the held-out interactions were counted.

    ``info`` keys: ``users`` (evaluated), ``test_interactions``, ``relevant`` (pairs scored),
    ``relevant_unknown_items`` (relevant, but not in the model), ``dropped_seen_in_train``
    (pairs), ``dropped_unknown_users`` (users the model does not know), ``dropped_below_min_rating``
    (interactions), ``relevant_min_rating``, ``items`` (in the model).
    """

    rows: list[QualityRow]
    info: dict[str, Any] = field(default_factory=dict)

    def value(self, method: str, k: int, metric: str) -> float:
        """One number, e.g. ``report.value("model", 10, "ndcg")``."""
        for row in self.rows:
            if row.method == method and row.k == k:
                return float(getattr(row, metric))
        raise NotFoundError(f"no {method} row at k={k}")

    def to_dict(self) -> dict[str, Any]:
        return {"rows": [asdict(r) for r in self.rows], "info": dict(self.info)}


def evaluate_quality(
    rec: Recommender,
    test: Interactions,
    *,
    ks: Sequence[int] = DEFAULT_KS,
    relevant_min_rating: float | None = None,
    batch_size: int = 512,
    progress: bool | None = None,
) -> QualityReport:
    """Score ``rec.recommend`` (seen items excluded) and a popularity baseline on held-out data.

    Parameters
    ----------
    rec : Recommender
        With user embeddings and the training interactions as seen items.
    test : Interactions
        The held-out part of a split (see :func:`embrecall.evaluate.split.time_split`).
    ks : cut-offs, each >= 1
    relevant_min_rating : float, optional
        Count a held-out interaction as relevant only when its rating is at least this
        (e.g. 4.0 on MovieLens); default: every held-out interaction is relevant.
    batch_size : users per ``recommend`` batch
    progress : show a progress bar; ``None``: only on a terminal

    Returns
    -------
    QualityReport
        Rows for ``model`` and ``popularity`` at every k.
    """
    ks = check_ks(ks)
    if rec.users is None:
        raise InvalidArgumentError("quality evaluation needs user embeddings, and none were loaded")
    if rec.seen is None:
        raise InvalidArgumentError(
            "quality evaluation needs the training interactions as seen items: build the "
            "recommender (or artifact) with the training part of the split as interactions"
        )
    t0 = time.perf_counter()
    user_rows, item_rows, info = _relevant_pairs(rec, test, relevant_min_rating)
    eval_users, n_relevant = np.unique(user_rows, return_counts=True)
    n_items = len(rec.items)
    known = item_rows >= 0
    relevant_keys = np.sort(user_rows[known] * n_items + item_rows[known])
    k_max = max(ks)
    model = _model_lists(rec, eval_users, k_max, batch_size, progress)
    popular = recommend_popular(popularity_order(rec.seen, n_items), rec.seen, eval_users, k_max)
    rows = []
    for method, lists in (("model", model), ("popularity", popular)):
        keys = eval_users[:, None] * n_items + lists
        hits = (lists >= 0) & np.isin(keys, relevant_keys)
        scores = ranking_metrics(hits, n_relevant, ks)
        for k in ks:
            rows.append(QualityRow(method, k, **scores[k], coverage=coverage(lists, n_items, k)))
    info.update(
        users=int(len(eval_users)),
        items=n_items,
        relevant=int(len(user_rows)),
        relevant_unknown_items=int((~known).sum()),
    )
    log.info(
        "quality of %d users at k=%s in %.2fs", len(eval_users), list(ks), time.perf_counter() - t0
    )
    return QualityReport(rows, info)


def _relevant_pairs(
    rec: Recommender, test: Interactions, min_rating: float | None
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """(user rows, item rows or -1) of the distinct relevant held-out pairs, and counts."""
    info: dict[str, Any] = {"test_interactions": len(test), "relevant_min_rating": min_rating}
    keep = np.ones(len(test), dtype=bool)
    if min_rating is not None:
        if test.ratings is None:
            raise InputFormatError(
                f"{test.source}: relevant_min_rating needs ratings, and the file has none"
            )
        keep = test.ratings >= float(min_rating)
    info["dropped_below_min_rating"] = int((~keep).sum())
    user_rows = _rows_of_ids(rec.users, test.users[keep])
    item_codes = pd.factorize(test.items[keep])[0]
    item_rows = _rows_of_ids(rec.items, test.items[keep])
    info["dropped_unknown_users"] = int(len(pd.unique(test.users[keep][user_rows < 0])))
    frame = pd.DataFrame({"user": user_rows, "code": item_codes, "item": item_rows})
    frame = frame[frame.user >= 0].drop_duplicates(["user", "code"])
    seen = rec.seen
    seen_users = np.repeat(np.arange(seen.n_users, dtype=np.int64), np.diff(seen.indptr))
    seen_keys = np.sort(seen_users * len(rec.items) + seen.item_rows)
    pair_keys = frame.user.to_numpy() * len(rec.items) + frame.item.to_numpy()
    in_train = (frame.item.to_numpy() >= 0) & np.isin(pair_keys, seen_keys)
    info["dropped_seen_in_train"] = int(in_train.sum())
    frame = frame[~in_train]
    if frame.empty:
        raise InputFormatError(
            f"{test.source}: no held-out interaction is left to score (users unknown to the "
            "model, already seen in training, or below the rating threshold)"
        )
    return frame.user.to_numpy(np.int64), frame.item.to_numpy(np.int64), info


def _rows_of_ids(space, ids: np.ndarray) -> np.ndarray:
    """Row of each id in ``space`` (-1 when absent), converting each distinct id once."""
    codes, uniques = pd.factorize(ids)
    uniques = np.asarray(uniques)
    try:
        rows = space.lookup_rows(uniques)
    except InputFormatError:  # text ids that are not integers, against integer ids: none match
        rows = np.array(
            [space.row_of(u) if space.contains(u) else -1 for u in uniques], dtype=np.int64
        )
    return rows[codes]


def _model_lists(
    rec: Recommender, user_rows: np.ndarray, k: int, batch_size: int, progress: bool | None
) -> np.ndarray:
    """(u, k) item rows from ``rec.recommend``, -1 padded."""
    item_index = pd.Index(rec.items.ids)
    out = np.full((len(user_rows), k), -1, dtype=np.int64)
    bar = tqdm(total=len(user_rows), desc="recommend", unit="user", disable=bar_disabled(progress))
    for start in range(0, len(user_rows), batch_size):
        rows = user_rows[start : start + batch_size]
        ids, _ = rec.recommend(rec.users.ids[rows], k=k, exclude_seen=True)
        found = item_index.get_indexer(ids.ravel()).reshape(ids.shape)
        out[start : start + len(rows), : found.shape[1]] = found
        bar.update(len(rows))
    bar.close()
    return out
