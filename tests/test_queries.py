"""Each query kind's spaces and exclusions come from one owner, and every user asks it."""

from __future__ import annotations

import numpy as np
import pytest

from embrecall.batch.compute import exclusions as batch_exclusions
from embrecall.batch.plan import plan_batch
from embrecall.errors import InvalidArgumentError
from embrecall.options import BuildOptions
from embrecall.queries import EXCLUSIONS, QUERY_SPACES, QueryKind
from embrecall.recommender import default_query_kinds
from helpers import build_small


@pytest.fixture(scope="module")
def rec(tmp_path_factory):
    return build_small(tmp_path_factory.mktemp("queries"))


def test_one_table_of_spaces_and_exclusions():
    assert QUERY_SPACES == {
        "recommend": ("users", "items"),
        "similar_items": ("items", "items"),
        "similar_users": ("users", "users"),
    }
    assert EXCLUSIONS == {"recommend": "seen", "similar_items": "self", "similar_users": "self"}
    for name, kind in default_query_kinds().items():
        assert (kind.query_space, kind.target_space) == QUERY_SPACES[name]
        assert kind.exclusion == EXCLUSIONS[name]
    assert QueryKind("custom", "items", "items", "ip").exclusion is None


def test_the_recommender_answers_spaces_from_the_query_kinds(rec):
    assert rec.space("items") is rec.items and rec.space("users") is rec.users
    for name, (source, target) in QUERY_SPACES.items():
        assert rec.query_space(name) is rec.space(source)
        assert rec.target_space(name) is rec.space(target)


def test_exclusions_follow_the_policy(rec):
    rows = np.array([0, 3])
    indptr, cols = rec.exclusions("recommend", rows)
    for i, r in enumerate(rows):
        assert cols[indptr[i] : indptr[i + 1]].tolist() == rec.seen.rows_for(r).tolist()
    indptr, cols = rec.exclusions("recommend", rows, exclude_seen=False)
    assert indptr.tolist() == [0, 0, 0] and len(cols) == 0
    for name in ("similar_items", "similar_users"):
        assert [e.tolist() for e in rec.exclusion_lists(name, rows)] == [[0], [3]]


def test_online_answers_apply_the_same_exclusions(rec):
    user = rec.users.ids[0]
    seen = set(rec.seen_items(user).tolist())
    assert not seen & set(rec.recommend(user, k=50).ids.tolist())
    item = rec.items.ids[5]
    assert item not in rec.similar_items(item, k=50).ids.tolist()


def test_batch_plans_ask_the_recommender(rec):
    plan = plan_batch(rec, 5, queries=("recommend", "similar_items", "similar_users"))
    for task in plan.tasks:
        kind = rec.query_kinds[task.query]
        assert plan.query_space(task) is rec.query_space(kind)
        assert plan.target_space(task) is rec.target_space(kind)
        assert task.exclude_self == kind.excludes_self
        assert task.exclude_seen == rec.excludes_seen(kind)
        got = batch_exclusions(plan, task, task.rows[:4])
        want = rec.exclusions(kind, task.rows[:4])
        assert all(np.array_equal(a, b) for a, b in zip(got, want))


def test_vector_query_defaults_and_refusals(rec):
    assert rec.vector_query() == "recommend"
    assert rec.vector_query("users") == "similar_users"
    assert rec.vector_query(None, "similar_items") == "similar_items"
    with pytest.raises(InvalidArgumentError, match="searches items, not users"):
        rec.vector_query("users", "recommend")


def test_build_options_are_one_value(tmp_path):
    options = BuildOptions(index="Flat", metrics={"similar_items": "l2"})
    rec = build_small(tmp_path, options=options)
    assert rec.query_kinds["similar_items"].metric == "l2"
    with pytest.raises(InvalidArgumentError, match="not both"):
        build_small(tmp_path, options=options, mips="native")
    assert BuildOptions.of(None, {"tune_k": 5, "items": None}) == BuildOptions(tune_k=5)
