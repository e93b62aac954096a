"""The one recall measure: ties at the k-th place count, nothing else is forgiven."""

from __future__ import annotations

import numpy as np

from embrecall.index import exact_search
from embrecall.index.recall import recall_at_k


def _tied_base():
    """20 items share one vector (a group larger than k = 5); the rest score lower."""
    rng = np.random.default_rng(0)
    base = rng.standard_normal((100, 4)).astype(np.float32) * 0.1
    base[:20] = [1.0, 0.0, 0.0, 0.0]
    return base, np.array([[1.0, 0.0, 0.0, 0.0]], dtype=np.float32)


def test_any_members_of_a_group_tied_at_the_kth_place_are_right():
    base, query = _tied_base()
    _, exact = exact_search(base, query, 5, "ip")
    others = np.array([[15, 16, 17, 18, 19]])  # none of them in the exact list
    assert set(others[0]) & set(exact[0]) == set()
    assert recall_at_k(base, query, others, exact, "ip").tolist() == [1.0]


def test_a_lower_score_a_repeat_and_padding_do_not_count():
    base, query = _tied_base()
    _, exact = exact_search(base, query, 5, "ip")
    assert recall_at_k(base, query, np.array([[0, 1, 2, 3, 50]]), exact, "ip")[0] == 0.8
    assert recall_at_k(base, query, np.array([[0, 0, 0, 0, 0]]), exact, "ip")[0] == 0.2
    assert recall_at_k(base, query, np.array([[0, 1, -1, -1, -1]]), exact, "ip")[0] == 0.4


def test_a_row_better_than_the_kth_but_excluded_from_the_exact_answer_is_wrong():
    base, query = _tied_base()
    base[20] = [2.0, 0, 0, 0]  # the best item, excluded (a seen item)
    _, exact = exact_search(base, query, 5, "ip", exclude=[np.array([20])])
    served = np.array([[20, 0, 1, 2, 3]])
    assert recall_at_k(base, query, served, exact, "ip")[0] == 0.8


def test_cosine_and_l2_ties_are_judged_on_their_own_scale():
    base, query = _tied_base()
    base[:20] *= np.arange(1, 21, dtype=np.float32)[:, None]  # same direction, other norms
    _, exact = exact_search(base, query, 5, "cosine")
    assert recall_at_k(base, query, np.array([[15, 16, 17, 18, 19]]), exact, "cosine")[0] == 1
    _, exact = exact_search(base, query, 5, "l2")  # l2 tells the norms apart: no tie
    assert recall_at_k(base, query, np.array([[15, 16, 17, 18, 19]]), exact, "l2")[0] == 0
