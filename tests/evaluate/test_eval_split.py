"""Time splits: nothing from a user's future in training, every interaction in exactly one part."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from eval_data import planted_interactions
from hypothesis import given, settings
from hypothesis import strategies as st

from embrecall.errors import InputFormatError, InvalidArgumentError
from embrecall.evaluate.split import time_split
from embrecall.interactions import Interactions


def _frame(inter: Interactions) -> pd.DataFrame:
    return pd.DataFrame({"user": inter.users, "item": inter.items, "ts": inter.timestamps})


def _assert_partition(whole: Interactions, *parts: Interactions) -> None:
    """Every row of ``whole`` is in exactly one part (as a multiset of rows)."""
    cols = ["user", "item", "ts"]
    joined = pd.concat([_frame(p) for p in parts]).sort_values(cols).reset_index(drop=True)
    expected = _frame(whole).sort_values(cols).reset_index(drop=True)
    pd.testing.assert_frame_equal(joined, expected)


def test_per_user_split_never_puts_a_users_future_into_training():
    inter, _, _ = planted_interactions(n_users=80, seed=3)
    split = time_split(inter, holdout=0.2)
    train, test = _frame(split.train), _frame(split.test)
    last_train = train.groupby("user").ts.max()
    first_test = test.groupby("user").ts.min()
    assert (last_train.loc[first_test.index] <= first_test).all()
    _assert_partition(inter, split.train, split.test)
    # A fifth of each user's interactions (rounded down, at least one) is held out.
    counts = _frame(inter).groupby("user").size()
    held = test.groupby("user").size()
    np.testing.assert_array_equal(held.loc[counts.index], np.maximum(1, (0.2 * counts).astype(int)))
    assert split.info["test_users"] == 80
    assert split.info["train_interactions"] + split.info["test_interactions"] == len(inter)


def test_leave_last_n_and_short_histories_stay_in_training():
    users = [1] * 6 + [2] * 3
    items = [10, 11, 12, 13, 14, 15, 10, 11, 12]
    times = [5, 1, 4, 2, 6, 3, 9, 8, 7]
    split = time_split(Interactions(users, items, timestamps=times), holdout=2, min_interactions=5)
    assert sorted(split.test.items.tolist()) == [10, 14]  # user 1's two latest (t=5, t=6)
    assert set(split.test.users.tolist()) == {1}
    assert sorted(split.train.items[split.train.users == 2].tolist()) == [10, 11, 12]


def test_ties_in_time_are_broken_by_input_order():
    inter = Interactions([1] * 5, [1, 2, 3, 4, 5], timestamps=[7] * 5)
    split = time_split(inter, holdout=2)
    assert split.test.items.tolist() == [4, 5]


def test_global_split_cuts_everyone_at_one_time_and_drops_cold_users():
    inter, _, _ = planted_interactions(n_users=60, seed=4)
    # A latecomer whose whole history falls after every other interaction.
    late = Interactions(
        np.r_[inter.users, [999] * 6],
        np.r_[inter.items, np.arange(6) * 3 + 5000],
        timestamps=np.r_[inter.timestamps, np.arange(6) + 2_000_000_000],
    )
    split = time_split(late, holdout=0.25, strategy="global")
    assert split.train.timestamps.max() < split.test.timestamps.min()
    assert split.test.timestamps.min() == split.info["cutoff_timestamp"]
    assert 999 not in set(split.test.users.tolist()) and 999 not in set(split.train.users.tolist())
    assert split.info["dropped_cold_users"] >= 1
    dropped = split.info["dropped_cold_user_interactions"]
    assert len(split.train) + len(split.test) + dropped == len(late)


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(
        st.tuples(st.integers(0, 5), st.integers(0, 30), st.integers(0, 20)),
        min_size=1,
        max_size=60,
    ),
    holdout=st.one_of(st.floats(0.05, 0.95), st.integers(1, 4)),
    min_interactions=st.integers(1, 6),
)
def test_per_user_split_properties(rows, holdout, min_interactions):
    users, items, times = (np.array(c) for c in zip(*rows))
    inter = Interactions(users, items, timestamps=times)
    split = time_split(inter, holdout=holdout, min_interactions=min_interactions)
    _assert_partition(inter, split.train, split.test)
    for user in np.unique(users):
        train_t = split.train.timestamps[split.train.users == user]
        test_t = split.test.timestamps[split.test.users == user]
        n = int((users == user).sum())
        assert len(train_t) >= 1  # nobody is held out entirely
        if n < min_interactions:
            assert len(test_t) == 0
        if len(test_t):
            assert train_t.max() <= test_t.min()


@settings(max_examples=40, deadline=None)
@given(
    rows=st.lists(
        st.tuples(st.integers(0, 5), st.integers(0, 30), st.integers(0, 20)),
        min_size=1,
        max_size=60,
    ),
    holdout=st.floats(0.05, 0.95),
)
def test_global_split_properties(rows, holdout):
    users, items, times = (np.array(c) for c in zip(*rows))
    split = time_split(
        Interactions(users, items, timestamps=times),
        holdout=holdout,
        strategy="global",
        min_interactions=1,
    )
    if len(split.train) and len(split.test):
        assert split.train.timestamps.max() < split.test.timestamps.min()
    assert set(split.test.users.tolist()) <= set(split.train.users.tolist())


def test_refusals_say_what_is_wrong():
    no_time = Interactions([1, 2], [3, 4], source="r.csv")
    with pytest.raises(InputFormatError, match="r.csv: a time-based split needs timestamps"):
        time_split(no_time)
    inter = Interactions([1, 2], [3, 4], timestamps=[1, 2])
    for bad in (0.0, 1.0, 1.5, 0, -2, True):
        with pytest.raises(InvalidArgumentError, match="holdout"):
            time_split(inter, holdout=bad)
    with pytest.raises(InvalidArgumentError, match="global split takes holdout as a fraction"):
        time_split(inter, holdout=3, strategy="global")
    with pytest.raises(InvalidArgumentError, match="strategy must be one of per_user, global"):
        time_split(inter, strategy="random")
    with pytest.raises(InvalidArgumentError, match="min_interactions"):
        time_split(inter, min_interactions=0)
