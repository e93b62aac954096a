"""Recommender: ids in, ids out; exclusions inside the search; the catalog join."""

from __future__ import annotations

import numpy as np
import pytest

from embrecall.catalog import read_catalog
from embrecall.errors import (
    DimensionMismatchError,
    InvalidArgumentError,
    InvalidVectorError,
    UnknownIdError,
)
from embrecall.index import exact_search
from embrecall.interactions import read_interactions
from embrecall.recommender import Recommender
from helpers import GENRES, build_small, small_world


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("world")
    items, users, catalog_path, ratings_path, favourite, labels = small_world(tmp)
    rec = Recommender.build(
        items,
        users,
        catalog=read_catalog(catalog_path),
        interactions=read_interactions(ratings_path),
    )
    return rec, favourite, labels


def test_recommend_excludes_seen_returns_k_and_matches_exact_ip(world):
    rec, _, _ = world
    for user in rec.users.ids[:10]:
        ids, scores = rec.recommend(user, k=30)
        seen = set(rec.seen_items(user).tolist())
        assert len(seen) == 20
        assert len(ids) == 30 and not seen & set(ids.tolist())
        row = rec.users.row_of(user)
        seen_rows = rec.items.rows_of(list(seen))
        o_scores, o_rows = exact_search(
            rec.items.vectors, rec.users.vectors[row : row + 1], 30, "ip", [seen_rows]
        )
        np.testing.assert_allclose(scores, o_scores[0], rtol=1e-5)
        assert set(ids.tolist()) == set(rec.items.ids[o_rows[0]].tolist())


def test_recommendations_follow_the_planted_taste(world):
    rec, favourite, labels = world
    for user in rec.users.ids[:20]:
        ids, _ = rec.recommend(user, k=10)
        genres = {r["genres"] for r in rec.results(ids, np.zeros(len(ids)))}
        assert genres == {GENRES[favourite[int(user)]]}


def test_exclude_seen_can_be_turned_off_and_exclude_lists_add_to_it(world):
    rec, _, _ = world
    user = rec.users.ids[0]
    seen = set(rec.seen_items(user).tolist())
    with_seen, _ = rec.recommend(user, k=30, exclude_seen=False)
    assert seen & set(with_seen.tolist())
    first = rec.recommend(user, k=5)[0]
    extra = [int(first[0]), int(first[1]), 99999999]  # an unknown id in an exclude list is ignored
    again, _ = rec.recommend(user, k=5, exclude=extra)
    assert (
        len(again) == 5 and not set(extra) & set(again.tolist()) and not seen & set(again.tolist())
    )


def test_similar_items_and_users_exclude_the_query_itself(world):
    rec, _, labels = world
    item = rec.items.ids[0]
    ids, scores = rec.similar_items(item, k=10)
    assert item not in ids and len(ids) == 10
    assert (np.diff(scores) <= 1e-6).all() and scores.max() <= 1.0 + 1e-5  # cosine
    assert {labels[r] for r in rec.items.rows_of(ids)} == {labels[0]}
    user = rec.users.ids[0]
    uids, _ = rec.similar_users(user, k=5)
    assert user not in uids and len(uids) == 5


def test_batches_are_2d_and_equal_to_single_queries(world):
    rec, _, _ = world
    users = list(rec.users.ids[:6])
    ids, scores = rec.recommend(users, k=7)
    assert ids.shape == (6, 7) and scores.shape == (6, 7)
    for i, user in enumerate(users):
        one_ids, one_scores = rec.recommend(user, k=7)
        assert ids[i].tolist() == one_ids.tolist()
        np.testing.assert_allclose(scores[i], one_scores)
    per_query = [[int(ids[i][0])] for i in range(6)]
    ids2, _ = rec.recommend(users, k=7, exclude=per_query)
    assert all(per_query[i][0] not in ids2[i] for i in range(6))


def test_k_beyond_the_catalogue_returns_what_exists(world):
    rec, _, _ = world
    ids, scores = rec.similar_items(rec.items.ids[3], k=10_000)
    assert len(ids) == len(rec.items) - 1 and np.isfinite(scores).all()
    rids, _ = rec.recommend(rec.users.ids[0], k=10_000)
    assert len(rids) == len(rec.items) - 20  # everything but the 20 seen


def test_unknown_ids_are_named(world):
    rec, _, _ = world
    with pytest.raises(UnknownIdError, match="unknown user id 424242"):
        rec.recommend(424242)
    with pytest.raises(UnknownIdError) as info:
        rec.similar_items([rec.items.ids[0], 5, 6])
    assert info.value.ids == [5, 6] and isinstance(info.value, KeyError)
    with pytest.raises(UnknownIdError):
        rec.similar_users("1")  # integer text is parsed as an int id, and 1 is not a user


def test_raw_vector_queries_are_validated_before_faiss(world):
    rec, _, _ = world
    vector = rec.users.vectors[0]
    ids, _ = rec.recommend_by_vector(vector, k=5)
    assert len(ids) == 5
    batch_ids, _ = rec.similar_items_by_vector(rec.items.vectors[:3], k=4)
    assert batch_ids.shape == (3, 4) and batch_ids[0][0] == rec.items.ids[0]
    with pytest.raises(DimensionMismatchError, match="query has dimension 12, index has 16"):
        rec.recommend_by_vector(np.ones(12))
    bad = vector.copy()
    bad[3] = np.nan
    with pytest.raises(InvalidVectorError, match="NaN"):
        rec.similar_users_by_vector(bad)
    with pytest.raises(InvalidVectorError):
        rec.search("recommend", [[1.0, 2.0], [3.0]])
    with pytest.raises(InvalidArgumentError, match="k must be"):
        rec.recommend_by_vector(vector, k=0)
    with pytest.raises(InvalidArgumentError, match="unknown query kind"):
        rec.search("nearest", vector)


def test_results_join_the_catalog(world):
    rec, _, _ = world
    ids, scores = rec.recommend(rec.users.ids[0], k=3)
    results = rec.results(ids, scores)
    assert [r["id"] for r in results] == ids.tolist()
    assert all(isinstance(r["id"], int) and isinstance(r["score"], float) for r in results)
    assert results[0]["title"].startswith("Movie ") and ", The" in results[0]["title"]
    users = rec.results(*rec.similar_users(rec.users.ids[0], k=2), space="users")
    assert set(users[0]) == {"id", "score"}


def test_string_ids(tmp_path):
    rec = build_small(tmp_path, string_ids=True)
    ids, _ = rec.recommend("user-3", k=5)
    assert ids.dtype == object and all(i.startswith("item-") for i in ids)
    assert not set(rec.seen_items("user-3").tolist()) & set(ids.tolist())
    sims, _ = rec.similar_items("item-0007", k=3)
    assert "item-0007" not in sims
    batch, _ = rec.similar_users(["user-1", "user-2"], k=2)
    assert batch.shape == (2, 2)


def test_metric_overrides_and_l2_scores_ascending(tmp_path):
    rec = build_small(tmp_path, metrics={"similar_items": "l2"})
    ids, scores = rec.similar_items(rec.items.ids[0], k=10)
    assert (np.diff(scores) >= -1e-6).all() and (scores >= 0).all()
    assert rec.describe()["queries"]["similar_items"]["score"].startswith("squared L2")


def test_items_only_recommender_says_what_is_missing(tmp_path):
    items, _, _, _, _, _ = small_world(tmp_path)
    rec = Recommender.build(items)
    assert len(rec.similar_items(items.ids[0], k=3)[0]) == 3
    with pytest.raises(InvalidArgumentError, match="needs user embeddings"):
        rec.recommend(1)
    with pytest.raises(InvalidArgumentError, match="needs user embeddings"):
        rec.similar_users_by_vector(np.ones(16))


def test_user_and_item_dimensions_must_agree(tmp_path):
    items, users, *_ = small_world(tmp_path)
    from embrecall.embeddings import Embeddings

    short = Embeddings(users.ids, users.vectors[:, :8])
    with pytest.raises(InvalidArgumentError, match="dimension 8, item vectors 16"):
        Recommender.build(items, short)


@pytest.mark.parametrize("spec", ["HNSW32", "IVF16,Flat", "PQ16x4"])
def test_approximate_indexes_still_exclude_and_return_k(tmp_path, spec):
    rec = build_small(tmp_path, index=spec)
    for user in rec.users.ids[:10]:
        ids, _ = rec.recommend(user, k=25)
        assert len(ids) == 25 and not set(rec.seen_items(user).tolist()) & set(ids.tolist())
    assert rec.describe()["queries"]["recommend"]["spec"] == spec
