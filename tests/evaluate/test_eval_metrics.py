"""The evaluation arithmetic, on cases small enough to work out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from embrecall.errors import InvalidArgumentError
from embrecall.evaluate.metrics import (
    check_ks,
    coverage,
    ranking_metrics,
    recall_against_exact,
    true_scores,
)


def test_ranking_metrics_by_hand():
    # user 0: hits at ranks 1 and 3, 2 relevant; user 1: no hit, 4 relevant.
    hits = np.array([[1, 0, 1, 0], [0, 0, 0, 0]], dtype=bool)
    out = ranking_metrics(hits, np.array([2, 4]), (1, 3))
    assert out[1] == {"hit_rate": 0.5, "recall": pytest.approx(0.25), "ndcg": pytest.approx(0.5)}
    dcg = 1 + 1 / math.log2(4)
    idcg = 1 + 1 / math.log2(3)
    assert out[3]["hit_rate"] == 0.5
    assert out[3]["recall"] == pytest.approx((2 / 2 + 0) / 2)
    assert out[3]["ndcg"] == pytest.approx((dcg / idcg + 0) / 2)


def test_ndcg_is_one_for_a_perfect_list_even_with_more_relevant_than_k():
    hits = np.ones((1, 5), dtype=bool)
    assert ranking_metrics(hits, np.array([9]), (5,))[5]["ndcg"] == pytest.approx(1.0)


def test_coverage_counts_distinct_items_ignoring_padding():
    lists = np.array([[0, 1, -1], [1, 2, 3]])
    assert coverage(lists, 10, 2) == pytest.approx(3 / 10)
    assert coverage(lists, 10, 3) == pytest.approx(4 / 10)


def test_recall_tolerates_ties_at_the_kth_place():
    base = np.array([[1.0, 0], [0.5, 0], [0.5, 0], [0.1, 0]], dtype=np.float32)
    query = np.array([[1.0, 0.0]], dtype=np.float32)
    exact_rows = np.array([[0, 1]])
    exact_scores = np.array([[1.0, 0.5]])
    tied = np.array([[0, 2]])  # row 2 ties row 1: just as right
    worse = np.array([[0, 3]])
    # Row 4 beats the k-th yet is not in the exact answer: it was excluded, serving it is wrong.
    base = np.vstack([base, [[0.9, 0]]]).astype(np.float32)
    excluded_served = np.array([[0, 4]])
    for rows, expected in ((tied, 1.0), (worse, 0.5), (excluded_served, 0.5)):
        scores = true_scores(base, query, rows, "ip")
        got = recall_against_exact(rows, scores, exact_rows, exact_scores)
        assert got.tolist() == [expected]


def test_recall_for_distances_and_short_answers():
    base = np.array([[0.0, 0], [1, 0], [2, 0], [3, 0]], dtype=np.float32)
    query = np.array([[0.0, 0.0]], dtype=np.float32)
    exact_rows, exact_scores = np.array([[0, 1, 2]]), np.array([[0.0, 1.0, 4.0]])
    found = np.array([[0, 3]])  # fewer than k, and one wrong
    scores = true_scores(base, query, found, "l2")
    assert scores.tolist() == [[0.0, 9.0]]
    got = recall_against_exact(found, scores, exact_rows, exact_scores)
    assert got.tolist() == [pytest.approx(1 / 3)]
    empty = recall_against_exact(found, scores, np.full((1, 3), -1), np.full((1, 3), np.nan))
    assert empty.tolist() == [1.0]


def test_true_scores_normalise_for_cosine_and_mark_padding():
    base = np.array([[3.0, 4.0], [1.0, 0.0]], dtype=np.float32)
    scores = true_scores(base, np.array([[2.0, 0.0]]), np.array([[0, -1]]), "cosine")
    assert scores[0, 0] == pytest.approx(0.6) and math.isnan(scores[0, 1])


def test_check_ks():
    assert check_ks([50, 10, 10]) == (10, 50)
    for bad in ([], [0], [True], [2.5]):
        with pytest.raises(InvalidArgumentError):
            check_ks(bad)
