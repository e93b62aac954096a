"""Tune an approximate index to a recall target: the smallest ``nprobe`` / ``efSearch`` whose
recall@k against exact search, on a sample of real queries, reaches the target.

Queries are what the index will really be asked: user vectors for recommend, item vectors for
similar items (the query item itself excluded, as the service does). The exact answers come from
faiss's brute-force kernel in float32, in blocks, which is fast enough for millions of vectors
(the numpy oracle that tests trust would take minutes there), or from torch on a GPU when one is
present.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field

import faiss
import numpy as np
from tqdm.auto import tqdm

from embrecall._progress import bar_disabled
from embrecall.errors import InvalidArgumentError
from embrecall.index.faiss_index import VectorIndex
from embrecall.index.kernel import exact_knn
from embrecall.index.recall import recall_against_exact, true_scores
from embrecall.index.structure import nlist_of, tunable_param
from embrecall.index.torch_exact import cuda_available

log = logging.getLogger("embrecall")

DEFAULT_QUERIES = 1000
_GROWTH = 1.5
_K_FACTORS = (4, 8, 16, 32, 64, 128, 256)
_PLATEAU_STEPS, _PLATEAU_GAIN = 3, 0.005
# One-sided 95% normal quantile: the held-out mean must clear the target by its sampling error,
# else a setting that just reaches it on 1,000 queries misses on fresh ones half the time.
_Z_95 = 1.645


@dataclass
class Tuning:
    """What tuning chose and measured; stored in the manifest beside the index.

    ``recall`` is measured on the queries the setting was tuned on, ``holdout_recall`` on a
    disjoint sample it never saw (None when too few queries exist to hold any out), and
    ``holdout_bound`` is the one-sided 95% lower confidence bound of the latter: what fresh
    queries can be expected to get at least. ``reached`` needs ``recall`` and ``holdout_bound``
    at the target.
    """

    target_recall: float
    k: int
    queries: int
    params: dict[str, int]
    recall: float
    reached: bool
    seconds: float
    sweep: list[dict] = field(default_factory=list)
    holdout_queries: int = 0
    holdout_recall: float | None = None
    holdout_bound: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class _Sample:
    """Query vectors with their exact answer, and how to measure an index on them."""

    base: np.ndarray
    queries: np.ndarray
    truth: np.ndarray
    exclude: list[np.ndarray] | None
    metric: str
    truth_scores: np.ndarray  # exact scores of ``truth``, computed once for every setting tried

    def recalls(self, index: VectorIndex, params: dict) -> np.ndarray:
        """(m,) recall@k of each query, ties tolerated: among identical vectors any choice at
        the k-th place is right."""
        found = index.search(self.queries, self.truth.shape[1], exclude=self.exclude, params=params)
        scores = true_scores(self.base, self.queries, found[1], self.metric)
        return recall_against_exact(found[1], scores, self.truth, self.truth_scores)

    def recall(self, index: VectorIndex, params: dict) -> float:
        return float(self.recalls(index, params).mean())

    def recall_and_bound(self, index: VectorIndex, params: dict) -> tuple[float, float]:
        """Mean recall and its one-sided 95% lower confidence bound (normal approximation)."""
        values = self.recalls(index, params)
        spread = values.std(ddof=1) / np.sqrt(len(values)) if len(values) > 1 else 0.0
        return float(values.mean()), float(values.mean() - _Z_95 * spread)


def tune_to_recall(
    index: VectorIndex,
    base: np.ndarray,
    queries: np.ndarray,
    *,
    target: float,
    k: int = 10,
    self_rows: np.ndarray | None = None,
    max_queries: int = DEFAULT_QUERIES,
    holdout_queries: int | None = None,
    seed: int = 0,
    progress: bool | None = None,
    warn: bool = True,
) -> Tuning:
    """Set ``index.search_params`` to the cheapest setting that reaches ``target`` recall@k on
    the tuning sample and on a disjoint held-out sample.

    A setting chosen as the smallest that reaches the target on one sample sits on that sample's
    edge: on fresh queries it misses about half the time. So it is confirmed on ``max_queries``
    other queries (half of them all when fewer exist) and stepped up until both samples reach
    the target.

    Parameters
    ----------
    index : the built index over ``base``
    base : (n, d) the raw vectors the index holds (rows 0..n-1)
    queries : (m, d) query vectors; seeded, disjoint samples of up to ``max_queries`` each are
        used for tuning and for the held-out check
    self_rows : (m,) row of each query in ``base`` when queries come from the same space (left out
        of both the exact and the approximate answers), else None
    holdout_queries : size of the held-out sample; None: as many as ``max_queries``; 0: no
        held-out check (the setting then just reaches the target on the tuning sample)
    warn : log a warning when the target is out of reach (a race of candidates expects misses)
    """
    if not 0 < target <= 1:
        raise InvalidArgumentError(f"target recall must be in (0, 1], got {target}")
    t0 = time.perf_counter()
    hold_max = max_queries if holdout_queries is None else holdout_queries
    tune_pick, hold_pick = _split(len(queries), max_queries, hold_max, seed)
    kk = min(k, index.ntotal - (0 if self_rows is None else 1))
    if kk < 1 or len(tune_pick) == 0:
        raise InvalidArgumentError("tuning needs at least one query and k results to find")
    tune = _sample(index, base, queries, self_rows, tune_pick, kk)
    param = tunable_param(index.index)
    values = _candidates(index, param, kk) if param else [None]
    sweep: list[dict] = []
    best: tuple[float, dict] = (-1.0, dict(index.search_params))
    for k_factor in _k_factors(index):
        base_params = dict(index.search_params)
        if k_factor is not None:
            base_params["k_factor"] = k_factor

        def measure(value, base_params=base_params) -> float:
            nonlocal best
            params = dict(base_params) if value is None else {**base_params, param: value}
            recall = tune.recall(index, params)
            sweep.append({"params": params, "recall": round(recall, 4)})
            # Of the settings reaching the target, the smallest; else the most accurate.
            if (recall >= target and (best[0] < target or value < best[1][param])) or (
                best[0] < target and recall > best[0]
            ):
                best = (recall, params)
            return recall

        previous: list[float] = []
        for i, value in enumerate(
            tqdm(values, desc=f"tuning {param or 'recall'}", disable=bar_disabled(progress))
        ):
            recall = measure(value)
            if recall >= target:
                if i > 0:  # the steps are 1.5x apart: bisect down to the smallest value
                    _bisect(measure, values[i - 1], value, target)
                break
            if _plateau(previous + [recall]):
                break
            previous.append(recall)
        if best[0] >= target:
            break
    recall, params = best
    if recall < target:
        # Out of reach: the cheapest setting within a hair of the best recall, not the widest
        # (on a plateau the widest costs many times more for nothing).
        near = [st for st in sweep if st["recall"] >= recall - _PLATEAU_GAIN]
        cheapest = min(
            near, key=lambda st: (st["params"].get(param, 0), st["params"].get("k_factor", 0))
        )
        recall, params = cheapest["recall"], cheapest["params"]
    hold_recall = hold_bound = None
    if len(hold_pick):
        hold = _sample(index, base, queries, self_rows, hold_pick, kk)
        recall, params, hold_recall, hold_bound = _confirm(
            index, tune, hold, param, values, params, recall, target, sweep
        )
    index.search_params = dict(params)
    reached = recall >= target and (hold_bound is None or hold_bound >= target)
    tuning = Tuning(
        target,
        kk,
        len(tune_pick),
        dict(params),
        round(recall, 4),
        reached,
        round(time.perf_counter() - t0, 2),
        sweep,
        len(hold_pick),
        None if hold_recall is None else round(hold_recall, 4),
        None if hold_bound is None else round(hold_bound, 4),
    )
    if warn and not tuning.reached:
        log.warning(
            "%s: recall@%d %.3f (held out: %s), short of the target %.3f",
            index.spec,
            kk,
            tuning.recall,
            "-" if hold_recall is None else f"{hold_recall:.3f}",
            target,
        )
    return tuning


def _split(m: int, tune_max: int, hold_max: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint seeded samples of query positions: (tuning, held out) of at most ``tune_max``
    and ``hold_max``; when too few queries exist for both, they share them half and half."""
    order = np.random.default_rng(seed).permutation(m)
    hold = min(hold_max, m // 2)
    take = min(tune_max, m - hold)
    return np.sort(order[:take]), np.sort(order[take : take + hold])


def _sample(index, base, queries, self_rows, pick, k) -> _Sample:
    q = np.ascontiguousarray(queries[pick], dtype=np.float32)
    own = None if self_rows is None else np.asarray(self_rows)[pick]
    truth = exact_rows(base, q, k, index.metric, own)
    exclude = None if own is None else [np.array([r]) for r in own]
    scores = true_scores(base, q, truth, index.metric)
    return _Sample(base, q, truth, exclude, index.metric, scores)


def _confirm(index, tune, hold, param, values, params, recall, target, sweep):
    """Step ``param`` up from the tuned value until the held-out sample reaches the target with
    its sampling error cleared, then bisect back down to within about 5% (the value kept passes
    on both samples).

    Returns the (tuning recall, params, held-out recall, held-out lower bound) finally chosen. A
    target the tuning sample never reached is not chased further: the held-out figures are
    recorded as they are.
    """
    measured: dict[int | None, tuple[float, float, float]] = {}

    def passes(value) -> bool:
        wider = params if value is None else {**params, param: value}
        tuned = recall if value == params.get(param) else tune.recall(index, wider)
        got = (tuned, *hold.recall_and_bound(index, wider))
        measured[value] = got
        sweep.append(
            {
                "params": wider,
                "recall": round(got[0], 4),
                "holdout_recall": round(got[1], 4),
                "holdout_bound": round(got[2], 4),
            }
        )
        return got[0] >= target and got[2] >= target

    start = params.get(param) if param else None
    if passes(start) or recall < target or param is None:
        return _pick(params, param, start, measured)
    low = start
    for value in (v for v in values if v > start):
        if passes(value):
            _bisect(lambda v: target if passes(v) else 0.0, low, value, target)
            break
        low = value
    passing = [v for v, got in measured.items() if got[0] >= target and got[2] >= target]
    # Nothing passed on both: keep the widest tried, the closest to the target.
    return _pick(params, param, min(passing) if passing else max(measured), measured)


def _pick(params, param, value, measured):
    recall, hold_recall, hold_bound = measured[value]
    chosen = params if value is None else {**params, param: value}
    return recall, chosen, hold_recall, hold_bound


def exact_rows(
    base: np.ndarray,
    queries: np.ndarray,
    k: int,
    metric: str,
    self_rows: np.ndarray | None,
    *,
    device: str | None = None,
) -> np.ndarray:
    """(m, k) exact top-k rows, each query's own row left out (-1 padded past n).

    ``device=None`` uses a CUDA GPU through torch when one is there, else the CPU kernel of
    :func:`~embrecall.index.kernel.exact_knn` (``"faiss"`` forces that); ``"cuda"`` or ``"cpu"``
    run the torch kernel on that torch device.
    """
    if device is None and cuda_available():
        device = "cuda"
    exclude = None
    if self_rows is not None:
        exclude = (np.arange(len(queries) + 1, dtype=np.int64), np.asarray(self_rows, np.int64))
    torch_device = None if device == "faiss" else device
    found = exact_knn(base, queries, k, metric, exclude=exclude, device=torch_device)[1]
    out = np.full((len(queries), k), -1, dtype=np.int64)
    out[:, : found.shape[1]] = found
    return out


def _candidates(index: VectorIndex, param: str, k: int) -> list[int]:
    """Ascending values to try, about 1.5x apart, up to the widest meaningful setting."""
    if param == "nprobe":
        top, start = nlist_of(index.index), 1
    else:
        top, start = max(k, min(index.ntotal, 4096)), max(k, 16)
    values, v = [], float(start)
    while int(v) < top:
        if not values or int(v) > values[-1]:
            values.append(int(v))
        v *= _GROWTH
    values.append(top)
    return values


def _k_factors(index: VectorIndex) -> list[int | None]:
    """Re-ranking depths to try for a refined index: the more candidates, the less the coarse
    codes' error matters; 4-bit PQ codes need far more than faiss's default."""
    if not isinstance(faiss.downcast_index(index.index), faiss.IndexRefine):
        return [None]
    start = int(index.search_params.get("k_factor", 4))
    return [f for f in _K_FACTORS if f >= start] or [start]


def _bisect(measure, low: int, high: int, target: float) -> None:
    """Narrow (low fails, high reaches) to within about 5%, measuring each midpoint."""
    while high - low > max(1, high // 20):
        mid = (low + high) // 2
        if measure(mid) >= target:
            high = mid
        else:
            low = mid


def _plateau(recalls: list[float]) -> bool:
    """Three widenings in a row that each gained (almost) nothing: the codes, not the search,
    limit. Each step on its own: recall can fall from one value to the next (a search that
    comes back short is widened, so a tiny nprobe can score above a larger one) and then climb
    again, and a fall is not a plateau."""
    last = recalls[-_PLATEAU_STEPS - 1 :]
    return len(last) > _PLATEAU_STEPS and all(
        abs(b - a) < _PLATEAU_GAIN for a, b in zip(last, last[1:])
    )
