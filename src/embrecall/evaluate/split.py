"""Time-based train/test splits of interactions, so that a model is scored on what came later.

Two strategies:

``per_user`` (the default, what most recommender papers call "leave last out")
    Each user's interactions are ordered by time; the last ``holdout`` of them (a fraction, or a
    count) are held out. Within a user, nothing held out is older than anything kept for
    training. Across users it is not a strict cut in time: user A's training part may be newer
    than user B's test part. It scores every active user, which is why it is the default.
``global``
    One cut-off time for everyone: interactions at or after the ``1 - holdout`` quantile of all
    timestamps are held out, so training never sees anything from the test period. Users with no
    interaction before the cut-off cannot be served by a factor model and are left out of the
    test part (counted in ``Split.info``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from embrecall.errors import InputFormatError, InvalidArgumentError
from embrecall.interactions import Interactions

Strategy = Literal["per_user", "global"]
STRATEGIES: tuple[str, ...] = ("per_user", "global")


@dataclass(frozen=True)
class Split:
    """The training and held-out parts of one set of interactions.

    ``info`` is JSON-safe: the strategy, its parameters and the counts of each part.
    """

    train: Interactions
    test: Interactions
    info: dict[str, Any] = field(default_factory=dict)


def time_split(
    interactions: Interactions,
    *,
    holdout: float | int = 0.2,
    strategy: Strategy = "per_user",
    min_interactions: int = 5,
) -> Split:
    """Split interactions by time into a training and a held-out part.

    Parameters
    ----------
    interactions : Interactions
        n interactions; must carry timestamps.
    holdout : float in (0, 1) or int >= 1
        ``per_user``: the fraction of each user's interactions to hold out (at least one), or
        how many of the user's last interactions to hold out. ``global``: the fraction of all
        interactions after the cut-off (a float only).
    strategy : {"per_user", "global"}
        See the module docstring.
    min_interactions : int
        ``per_user``: users with fewer interactions stay wholly in training (too little history
        to both learn and score). ``global``: a test user needs at least this many training
        interactions... of at least one; a user below it is left out of the test part.

    Returns
    -------
    Split
        ``train`` and ``test`` keep the source's ids, ratings and timestamps; row order within
        each part follows the input.

    Raises
    ------
    InputFormatError
        The interactions carry no timestamps.
    InvalidArgumentError
        ``holdout``, ``strategy`` or ``min_interactions`` out of range.
    """
    if strategy not in STRATEGIES:
        raise InvalidArgumentError(
            f"split strategy must be one of {', '.join(STRATEGIES)}, not {strategy!r}"
        )
    _check_holdout(holdout, strategy)
    if isinstance(min_interactions, bool) or not isinstance(min_interactions, (int, np.integer)):
        raise InvalidArgumentError(f"min_interactions must be an integer, got {min_interactions!r}")
    if min_interactions < 1:
        raise InvalidArgumentError(f"min_interactions must be at least 1, got {min_interactions}")
    if interactions.timestamps is None:
        raise InputFormatError(
            f"{interactions.source}: a time-based split needs timestamps, and this file has no "
            "timestamp column (name one with timestamp_column)"
        )
    if len(interactions) == 0:
        raise InputFormatError(f"{interactions.source}: no interactions to split")
    user_codes = pd.factorize(interactions.users)[0]
    dropped = np.zeros(len(interactions), dtype=bool)
    extra: dict[str, Any] = {}
    if strategy == "per_user":
        test_mask = _per_user_mask(user_codes, interactions.timestamps, holdout, min_interactions)
    else:
        test_mask, dropped, extra = _global_mask(
            user_codes, interactions.timestamps, float(holdout), min_interactions
        )
    train = _subset(interactions, ~test_mask & ~dropped)
    test = _subset(interactions, test_mask)
    info = {
        "strategy": strategy,
        "holdout": holdout,
        "min_interactions": int(min_interactions),
        "interactions": len(interactions),
        "users": int(user_codes.max()) + 1,
        "train_interactions": len(train),
        "test_interactions": len(test),
        "test_users": int(len(np.unique(user_codes[test_mask]))),
        **extra,
    }
    return Split(train, test, info)


def _check_holdout(holdout: float | int, strategy: str) -> None:
    if isinstance(holdout, bool):
        raise InvalidArgumentError(f"holdout must be a fraction or a count, got {holdout!r}")
    if isinstance(holdout, (int, np.integer)):
        if strategy == "global":
            raise InvalidArgumentError(
                "the global split takes holdout as a fraction of all interactions, e.g. 0.2"
            )
        if holdout < 1:
            raise InvalidArgumentError(f"holdout as a count must be at least 1, got {holdout}")
        return
    if not isinstance(holdout, (float, np.floating)) or not 0.0 < holdout < 1.0:
        raise InvalidArgumentError(
            f"holdout must be a fraction in (0, 1) or a count >= 1, got {holdout!r}"
        )


def _per_user_mask(
    user_codes: np.ndarray, timestamps: np.ndarray, holdout: float | int, min_interactions: int
) -> np.ndarray:
    """True for each user's last interactions by time (input order breaks ties)."""
    n = len(user_codes)
    # Sort by user, then time, then input position: one stable order, no Python loop per user.
    order = np.lexsort((np.arange(n), timestamps, user_codes))
    counts = np.bincount(user_codes)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    sorted_codes = user_codes[order]
    position = np.arange(n) - starts[sorted_codes]  # 0 = the user's oldest interaction
    if isinstance(holdout, (int, np.integer)):
        n_test = np.full(len(counts), int(holdout))
    else:
        # At least one held out, but always at least one kept for training.
        n_test = np.maximum(1, np.floor(holdout * counts).astype(np.int64))
    n_test = np.minimum(n_test, counts - 1)
    n_test[counts < min_interactions] = 0
    held = position >= (counts - n_test)[sorted_codes]
    mask = np.zeros(n, dtype=bool)
    mask[order[held]] = True
    return mask


def _global_mask(
    user_codes: np.ndarray, timestamps: np.ndarray, holdout: float, min_interactions: int
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """(held out, dropped, info): interactions at or after the cut-off time are held out, or
    dropped when their user has too little history before it (they may not train either)."""
    cutoff = int(np.quantile(timestamps, 1.0 - holdout, method="higher"))
    after = timestamps >= cutoff
    history = np.bincount(user_codes[~after], minlength=int(user_codes.max()) + 1)
    served = history[user_codes] >= min_interactions
    dropped = after & ~served
    info = {
        "cutoff_timestamp": cutoff,
        "dropped_cold_user_interactions": int(dropped.sum()),
        "dropped_cold_users": int(len(np.unique(user_codes[dropped]))),
    }
    return after & served, dropped, info


def _subset(interactions: Interactions, mask: np.ndarray) -> Interactions:
    return Interactions(
        interactions.users[mask],
        interactions.items[mask],
        None if interactions.ratings is None else interactions.ratings[mask],
        interactions.timestamps[mask],
        source=interactions.source,
    )
